//! The classic BPF program a probe socket runs in the kernel (Linux
//! `SO_ATTACH_FILTER`, FreeBSD `BIOCSETF`), so that of all the frames a
//! port receives only answers to our probes reach the daemon.
//!
//! The program accepts exactly the frames [`parse_reply`] accepts whose
//! sender is one of the targets, so the kernel drops everything the daemon
//! would drop anyway (the daemon still parses what it gets: a filter is
//! attached after the socket opened, and frames may arrive before it).
//!
//! Classic BPF is encoded alike on Linux and FreeBSD; the opcodes are
//! FreeBSD's, checked against its headers, and on Linux against libc.
//!
//! [`parse_reply`]: super::arp::parse_reply

use std::fmt;
use std::net::Ipv4Addr;

use super::arp::{
    ARP_LENGTHS_OP, ARP_SENDER_IP, ARP_TARGET_IP, ARP_TARGET_MAC, ARP_TYPES, ETHERTYPE_ARP,
    ETH_DESTINATION, ETH_TYPE, HLEN_ETHERNET, HTYPE_ETHERNET, OP_REPLY, PLEN_IPV4, PTYPE_IPV4,
};
use crate::config::MAX_PROBE_TARGETS;
use crate::platform::freebsd::abi::{
    BPF_ABS, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W,
};

/// One classic BPF instruction, laid out as Linux's `struct sock_filter`
/// and FreeBSD's `struct bpf_insn`, so a program is handed to either
/// kernel as it is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The opcode: class, size or operation, mode or operand.
    pub code: u16,
    /// Instructions to skip when a comparison holds.
    pub jt: u8,
    /// Instructions to skip when it does not.
    pub jf: u8,
    /// The constant: an offset, a value compared, or a length returned.
    pub k: u32,
}

/// What the program returns for an accepted frame: "all of it". Both
/// kernels cap the length at the frame's own (and FreeBSD at its buffer),
/// so no MTU, jumbo or padding assumption is built in, and the parser
/// sees the frame as it came.
pub const ACCEPT: u32 = u32::MAX;

/// What the program returns for a frame it drops.
pub const DROP: u32 = 0;

/// The targets given to [`arp_reply_filter`] were none, or more than
/// [`MAX_PROBE_TARGETS`]. The config refuses both, so this is a bug in the
/// caller; a `Result` rather than a panic keeps it one probe's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetCount {
    /// How many targets were given.
    pub count: usize,
}

impl fmt::Display for TargetCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a probe filter takes 1 to {MAX_PROBE_TARGETS} targets, not {}",
            self.count
        )
    }
}

impl std::error::Error for TargetCount {}

/// The program that accepts an Ethernet II ARP reply for IPv4 addressed
/// to `our_mac` (Ethernet destination and ARP target hardware address)
/// from one of `targets`, and drops every other frame.
///
/// Cheapest test first: the EtherType drops almost all traffic at the
/// second instruction. A load past the end of a frame drops it in both
/// kernels, which is how frames shorter than an ARP frame are dropped.
/// Each target is one comparison, so the program grows with them; 1 to
/// [`MAX_PROBE_TARGETS`] are taken, which keeps every jump far within the
/// 255 instructions a jump can skip.
pub fn arp_reply_filter(our_mac: [u8; 6], targets: &[Ipv4Addr]) -> Result<Vec<Insn>, TargetCount> {
    if targets.is_empty() || targets.len() > MAX_PROBE_TARGETS {
        return Err(TargetCount {
            count: targets.len(),
        });
    }
    let mac_high = u32::from_be_bytes([our_mac[0], our_mac[1], our_mac[2], our_mac[3]]);
    let mac_low = u32::from(u16::from_be_bytes([our_mac[4], our_mac[5]]));
    let types = u32::from(HTYPE_ETHERNET) << 16 | u32::from(PTYPE_IPV4);
    let lengths_op =
        u32::from(HLEN_ETHERNET) << 24 | u32::from(PLEN_IPV4) << 16 | u32::from(OP_REPLY);

    // (load, value it must equal); a mismatch drops the frame.
    let checks = [
        (load_half(ETH_TYPE), u32::from(ETHERTYPE_ARP)),
        (load_word(ARP_TYPES), types),
        (load_word(ARP_LENGTHS_OP), lengths_op),
        (load_word(ARP_TARGET_MAC), mac_high),
        (load_half(ARP_TARGET_MAC + 4), mac_low),
        (load_word(ETH_DESTINATION), mac_high),
        (load_half(ETH_DESTINATION + 4), mac_low),
    ];

    // Laid out as: the checks (two instructions each, the length guard
    // after the first), the sender load, one comparison per target, then
    // accept and drop.
    let len = 2 * checks.len() + 1 + 1 + targets.len() + 2;
    let accept_at = len - 2;
    let drop_at = len - 1;
    let mut program = Vec::with_capacity(len);
    for (index, (load, value)) in checks.into_iter().enumerate() {
        program.push(load);
        let next = program.len() + 1;
        program.push(jump_equal(value, 0, drop_at - next));
        if index == 0 {
            // The last word of an ARP frame, loaded only so that a shorter
            // frame is dropped; the value is not used.
            program.push(load_word(ARP_TARGET_IP));
        }
    }
    program.push(load_word(ARP_SENDER_IP));
    for (index, target) in targets.iter().enumerate() {
        let next = program.len() + 1;
        let on_last = index + 1 == targets.len();
        let if_not = if on_last { drop_at - next } else { 0 };
        program.push(jump_equal(u32::from(*target), accept_at - next, if_not));
    }
    program.push(ret(ACCEPT));
    program.push(ret(DROP));
    debug_assert_eq!(program.len(), len);
    Ok(program)
}

/// Loads the 32-bit big-endian word at `offset` into the accumulator.
fn load_word(offset: usize) -> Insn {
    statement(BPF_LD | BPF_W | BPF_ABS, offset as u32)
}

/// Loads the 16-bit big-endian half word at `offset`.
fn load_half(offset: usize) -> Insn {
    statement(BPF_LD | BPF_H | BPF_ABS, offset as u32)
}

/// Skips `if_equal` instructions when the accumulator equals `value`,
/// `if_not` otherwise.
fn jump_equal(value: u32, if_equal: usize, if_not: usize) -> Insn {
    Insn {
        code: BPF_JMP | BPF_JEQ | BPF_K,
        jt: u8::try_from(if_equal).expect("jumps stay short"),
        jf: u8::try_from(if_not).expect("jumps stay short"),
        k: value,
    }
}

/// Ends the program, keeping `len` bytes of the frame (0 drops it).
fn ret(len: u32) -> Insn {
    statement(BPF_RET | BPF_K, len)
}

fn statement(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, size_of};

    use proptest::prelude::*;

    use super::*;
    use crate::probe::arp::{parse_reply, reply, request, FRAME_LEN};

    const OURS: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const ROUTER_MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc];
    const FIRST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const SECOND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const THIRD: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

    const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// What the kernels run: the instructions the program uses, with
    /// their semantics, loads past the end of the frame dropping it as
    /// both kernels do. Anything else is a program this module must not
    /// produce, and fails the test.
    fn run(program: &[Insn], frame: &[u8]) -> u32 {
        let mut accumulator = 0u32;
        let mut pc = 0;
        loop {
            let Insn { code, jt, jf, k } = program[pc];
            pc += 1;
            let at = k as usize;
            match code {
                0x20 => match frame.get(at..at + 4) {
                    Some(word) => accumulator = u32::from_be_bytes(word.try_into().unwrap()),
                    None => return 0,
                },
                0x28 => match frame.get(at..at + 2) {
                    Some(half) => {
                        accumulator = u32::from(u16::from_be_bytes(half.try_into().unwrap()))
                    }
                    None => return 0,
                },
                0x15 => pc += usize::from(if accumulator == k { jt } else { jf }),
                0x06 => return k,
                _ => panic!("opcode {code:#x} at {}", pc - 1),
            }
        }
    }

    /// The structural rules both kernels check before they take a program
    /// (Linux `bpf_check_classic`, FreeBSD `bpf_validate`): not empty,
    /// not too long, every jump inside the program, the last a return.
    fn assert_valid(program: &[Insn]) {
        // FreeBSD's BPF_MAXINSNS, the smaller of the two kernels'.
        assert!(!program.is_empty() && program.len() <= 512);
        for (at, insn) in program.iter().enumerate() {
            if insn.code == 0x15 {
                let next = at + 1;
                assert!(next + usize::from(insn.jt) < program.len(), "jt at {at}");
                assert!(next + usize::from(insn.jf) < program.len(), "jf at {at}");
            }
        }
        assert_eq!(program.last().unwrap().code, 0x06);
    }

    fn accepts(program: &[Insn], frame: &[u8]) -> bool {
        run(program, frame) != 0
    }

    #[test]
    fn an_instruction_is_laid_out_as_the_kernels_expect() {
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(align_of::<Insn>(), 4);
        let bsd = crate::platform::freebsd::abi::bpf_insn {
            code: 1,
            jt: 2,
            jf: 3,
            k: 4,
        };
        assert_eq!(size_of::<Insn>(), size_of_val(&bsd));
        assert_eq!(
            align_of::<Insn>(),
            align_of::<crate::platform::freebsd::abi::bpf_insn>()
        );
        assert_eq!(std::mem::offset_of!(Insn, jt), 2);
        assert_eq!(std::mem::offset_of!(Insn, jf), 3);
        assert_eq!(std::mem::offset_of!(Insn, k), 4);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_instruction_is_a_linux_sock_filter() {
        assert_eq!(size_of::<Insn>(), size_of::<libc::sock_filter>());
        assert_eq!(align_of::<Insn>(), align_of::<libc::sock_filter>());
        assert_eq!(
            std::mem::offset_of!(Insn, k),
            std::mem::offset_of!(libc::sock_filter, k)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_opcodes_are_linux_opcodes() {
        use crate::platform::freebsd::abi;
        let pairs: [(u16, u32); 17] = [
            (abi::BPF_LD, libc::BPF_LD),
            (abi::BPF_LDX, libc::BPF_LDX),
            (abi::BPF_ALU, libc::BPF_ALU),
            (abi::BPF_JMP, libc::BPF_JMP),
            (abi::BPF_RET, libc::BPF_RET),
            (abi::BPF_W, libc::BPF_W),
            (abi::BPF_H, libc::BPF_H),
            (abi::BPF_B, libc::BPF_B),
            (abi::BPF_ABS, libc::BPF_ABS),
            (abi::BPF_IND, libc::BPF_IND),
            (abi::BPF_AND, libc::BPF_AND),
            (abi::BPF_JA, libc::BPF_JA),
            (abi::BPF_JEQ, libc::BPF_JEQ),
            (abi::BPF_JGT, libc::BPF_JGT),
            (abi::BPF_JSET, libc::BPF_JSET),
            (abi::BPF_K, libc::BPF_K),
            (abi::BPF_X, libc::BPF_X),
        ];
        for (index, (ours, linux)) in pairs.into_iter().enumerate() {
            assert_eq!(u32::from(ours), linux, "pair {index}");
        }
    }

    #[test]
    fn the_opcodes_used_are_the_classic_encodings() {
        assert_eq!(BPF_LD | BPF_W | BPF_ABS, 0x20);
        assert_eq!(BPF_LD | BPF_H | BPF_ABS, 0x28);
        assert_eq!(BPF_JMP | BPF_JEQ | BPF_K, 0x15);
        assert_eq!(BPF_RET | BPF_K, 0x06);
    }

    #[test]
    fn the_program_for_one_target_is_exact() {
        let expected = [
            insn(0x28, 0, 0, 12),           // ldh [12]         EtherType
            insn(0x15, 0, 16, 0x0806),      // jeq ARP
            insn(0x20, 0, 0, 38),           // ld [38]          length guard
            insn(0x20, 0, 0, 14),           // ld [14]          htype, ptype
            insn(0x15, 0, 13, 0x0001_0800), // jeq Ethernet, IPv4
            insn(0x20, 0, 0, 18),           // ld [18]          hlen, plen, op
            insn(0x15, 0, 11, 0x0604_0002), // jeq 6, 4, reply
            insn(0x20, 0, 0, 32),           // ld [32]          target MAC
            insn(0x15, 0, 9, 0x0200_5e10),
            insn(0x28, 0, 0, 36),
            insn(0x15, 0, 7, 0x2030),
            insn(0x20, 0, 0, 0), // ld [0]           destination
            insn(0x15, 0, 5, 0x0200_5e10),
            insn(0x28, 0, 0, 4),
            insn(0x15, 0, 3, 0x2030),
            insn(0x20, 0, 0, 28),          // ld [28]          sender IP
            insn(0x15, 0, 1, 0xc000_0201), // jeq 192.0.2.1
            insn(0x06, 0, 0, 0xffff_ffff), // accept the whole frame
            insn(0x06, 0, 0, 0),           // drop
        ];
        let program = arp_reply_filter(OURS, &[FIRST]).unwrap();
        assert_eq!(program, expected);
        assert_valid(&program);
    }

    #[test]
    fn the_program_for_three_targets_is_exact() {
        let expected = [
            insn(0x28, 0, 0, 12),
            insn(0x15, 0, 18, 0x0806),
            insn(0x20, 0, 0, 38),
            insn(0x20, 0, 0, 14),
            insn(0x15, 0, 15, 0x0001_0800),
            insn(0x20, 0, 0, 18),
            insn(0x15, 0, 13, 0x0604_0002),
            insn(0x20, 0, 0, 32),
            insn(0x15, 0, 11, 0x0200_5e10),
            insn(0x28, 0, 0, 36),
            insn(0x15, 0, 9, 0x2030),
            insn(0x20, 0, 0, 0),
            insn(0x15, 0, 7, 0x0200_5e10),
            insn(0x28, 0, 0, 4),
            insn(0x15, 0, 5, 0x2030),
            insn(0x20, 0, 0, 28),
            insn(0x15, 2, 0, 0xc000_0201), // 192.0.2.1
            insn(0x15, 1, 0, 0xc633_6401), // 198.51.100.1
            insn(0x15, 0, 1, 0xcb00_7101), // 203.0.113.1
            insn(0x06, 0, 0, 0xffff_ffff),
            insn(0x06, 0, 0, 0),
        ];
        let program = arp_reply_filter(OURS, &[FIRST, SECOND, THIRD]).unwrap();
        assert_eq!(program, expected);
        assert_valid(&program);
    }

    fn many_targets(count: usize) -> Vec<Ipv4Addr> {
        (0..count)
            .map(|index| Ipv4Addr::new(10, 0, index as u8, 1))
            .collect()
    }

    /// Every comparison of a header field drops on a mismatch, every
    /// target comparison accepts on a match, and the last target's
    /// mismatch drops.
    fn assert_jumps(program: &[Insn], targets: usize) {
        assert_valid(program);
        let accept_at = program.len() - 2;
        let drop_at = program.len() - 1;
        assert_eq!(program[accept_at], insn(0x06, 0, 0, ACCEPT));
        assert_eq!(program[drop_at], insn(0x06, 0, 0, DROP));
        let first_target = accept_at - targets;
        for (at, insn) in program.iter().enumerate().filter(|(_, i)| i.code == 0x15) {
            let next = at + 1;
            if at < first_target {
                assert_eq!(
                    (insn.jt, next + usize::from(insn.jf)),
                    (0, drop_at),
                    "at {at}"
                );
            } else {
                assert_eq!(next + usize::from(insn.jt), accept_at, "jt at {at}");
                let miss = if at == accept_at - 1 { drop_at } else { next };
                assert_eq!(next + usize::from(insn.jf), miss, "jf at {at}");
            }
        }
    }

    #[test]
    fn the_jumps_land_right_for_one_and_for_sixteen_targets() {
        for count in [1, 2, 16] {
            let targets = many_targets(count);
            let program = arp_reply_filter(OURS, &targets).unwrap();
            assert_eq!(program.len(), 18 + count);
            assert_jumps(&program, count);
            for target in &targets {
                let frame = reply(ROUTER_MAC, *target, OURS, Ipv4Addr::UNSPECIFIED);
                assert_eq!(run(&program, &frame), ACCEPT, "{target} of {count}");
            }
            let stranger = reply(ROUTER_MAC, Ipv4Addr::new(10, 0, 99, 1), OURS, FIRST);
            assert_eq!(run(&program, &stranger), DROP);
        }
    }

    #[test]
    fn no_targets_or_more_than_sixteen_are_refused() {
        assert_eq!(arp_reply_filter(OURS, &[]), Err(TargetCount { count: 0 }));
        assert_eq!(
            arp_reply_filter(OURS, &many_targets(MAX_PROBE_TARGETS + 1)),
            Err(TargetCount { count: 17 })
        );
        assert_eq!(
            TargetCount { count: 17 }.to_string(),
            "a probe filter takes 1 to 16 targets, not 17"
        );
    }

    #[test]
    fn each_field_is_checked() {
        let program = arp_reply_filter(OURS, &[FIRST, SECOND]).unwrap();
        let good = reply(ROUTER_MAC, SECOND, OURS, Ipv4Addr::UNSPECIFIED);
        assert!(accepts(&program, &good));
        let mut padded = good.to_vec();
        padded.resize(60, 0);
        assert_eq!(run(&program, &padded), ACCEPT);

        // Bytes the filter does not judge: the Ethernet source, the
        // sender's MAC and the target IP.
        let free: Vec<usize> = (6..12).chain(22..28).chain(38..42).collect();
        for at in 0..FRAME_LEN {
            let mut frame = good;
            frame[at] ^= 0x40;
            assert_eq!(accepts(&program, &frame), free.contains(&at), "byte {at}");
        }
        for len in 0..FRAME_LEN {
            assert!(!accepts(&program, &good[..len]), "length {len}");
        }
        let asked = request(ROUTER_MAC, FIRST, Ipv4Addr::UNSPECIFIED);
        assert!(!accepts(&program, &asked));
    }

    /// A valid reply to `ours`, from `sender`, mutated: bytes set, then
    /// cut or extended. Kept close to valid so both outcomes are common.
    fn mutated_reply() -> impl Strategy<Value = ([u8; 6], Vec<Ipv4Addr>, Vec<u8>)> {
        (
            any::<[u8; 6]>(),
            proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..=16),
            any::<prop::sample::Index>(),
            any::<bool>(),
            any::<[u8; 6]>(),
            proptest::collection::vec((0..FRAME_LEN + 8, any::<u8>()), 0..3),
            0..FRAME_LEN + 20,
        )
            .prop_map(|(ours, targets, pick, from_target, mac, edits, len)| {
                let sender = if from_target {
                    targets[pick.index(targets.len())]
                } else {
                    Ipv4Addr::from(u32::from(targets[0]).wrapping_add(1))
                };
                let mut frame = reply(mac, sender, ours, Ipv4Addr::UNSPECIFIED).to_vec();
                frame.resize(len.max(FRAME_LEN - 2), 0);
                for (at, value) in edits {
                    if let Some(byte) = frame.get_mut(at) {
                        *byte = value;
                    }
                }
                frame.truncate(len);
                (ours, targets, frame)
            })
    }

    fn agrees(ours: [u8; 6], targets: &[Ipv4Addr], frame: &[u8]) -> Result<(), TestCaseError> {
        let program = arp_reply_filter(ours, targets).unwrap();
        let parsed = parse_reply(frame, ours);
        let wanted = parsed.is_ok_and(|reply| targets.contains(&reply.sender_ip));
        prop_assert_eq!(accepts(&program, frame), wanted, "parsed {:?}", parsed);
        if wanted {
            prop_assert_eq!(run(&program, frame), ACCEPT);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn agrees_with_the_parser_on_any_frame(
            ours in any::<[u8; 6]>(),
            targets in proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..=16),
            frame in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            agrees(ours, &targets, &frame)?;
        }

        #[test]
        fn agrees_with_the_parser_near_valid_replies((ours, targets, frame) in mutated_reply()) {
            agrees(ours, &targets, &frame)?;
        }

        #[test]
        fn every_program_is_valid(
            ours in any::<[u8; 6]>(),
            targets in proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..=16),
        ) {
            let program = arp_reply_filter(ours, &targets).unwrap();
            assert_jumps(&program, targets.len());
        }
    }
}
