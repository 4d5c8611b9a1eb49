//! Feeds arbitrary frames to the ARP reply parser, as anything on the
//! wire may be: it must accept or name a reason, never panic, and accept
//! only a frame addressed to our MAC whose sender it reports as written.
//! The first 6 bytes of the input are our MAC, so that the fuzzer can
//! reach the accepting path by matching it.
#![no_main]

use laggmond::probe::arp::{parse_reply, FRAME_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((ours, frame)) = data.split_first_chunk::<6>() else {
        return;
    };
    match parse_reply(frame, *ours) {
        Ok(reply) => {
            assert!(frame.len() >= FRAME_LEN);
            assert_eq!(frame[0..6], ours[..]);
            assert_eq!(frame[32..38], ours[..]);
            assert_eq!(frame[22..28], reply.sender_mac);
            assert_eq!(frame[28..32], reply.sender_ip.octets());
        }
        Err(reason) => assert!(!reason.as_str().is_empty()),
    }
});
