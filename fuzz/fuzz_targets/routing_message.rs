//! Feeds arbitrary bytes to the FreeBSD routing-message parser, as a
//! hostile or buggy kernel buffer would: it must return a message, a skip
//! or an error, never panic, and never accept a message longer than its
//! buffer or shorter than its header.
#![no_main]

use laggmond::platform::freebsd::{messages, parse, RouteMessage};
use libfuzzer_sys::fuzz_target;

/// `size_of::<if_msghdr>()` and `size_of::<if_announcemsghdr>()` on amd64.
const IF_MSGHDR_LEN: usize = 168;
const IF_ANNOUNCE_LEN: usize = 24;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Some(message)) => {
            let msglen = usize::from(u16::from_le_bytes([data[0], data[1]]));
            assert!(msglen <= data.len());
            let needed = match message {
                RouteMessage::IfInfo { .. } => IF_MSGHDR_LEN,
                RouteMessage::IfAnnounce { .. } => IF_ANNOUNCE_LEN,
            };
            assert!(msglen >= needed);
            let _ = message.link_state();
        }
        Ok(None) => {}
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    for item in messages(data) {
        if let Err(error) = item {
            assert!(!error.to_string().is_empty());
        }
    }
});
