//! FreeBSD: one BPF descriptor per probed port, attached to the port
//! itself (not the lagg), since BPF sees a member's frames before lagg
//! drops those arriving on a port that is not active, which is what lets
//! a backup's path be probed while it carries no traffic.
//!
//! A read from a BPF descriptor returns a whole buffer of captures, each
//! behind a `bpf_hdr` and padded to [`BPF_WORDALIGN`]; the prober wants
//! one frame at a time. The walking of that buffer ([`packets`],
//! [`Captures`]) is plain byte parsing that compiles and is tested on
//! every OS; only the device (`PortSocket`, `port_address`) is
//! FreeBSD's.

use std::fmt;
use std::io;
use std::mem::{offset_of, size_of};
use std::ops::Range;

use crate::platform::freebsd::abi::{bpf_hdr, BPF_WORDALIGN};

#[cfg(target_os = "freebsd")]
mod device;
#[cfg(target_os = "freebsd")]
pub use device::{port_address, PortSocket};

/// Where `bh_caplen` (the bytes captured) sits in a record header.
const CAPLEN_AT: usize = offset_of!(bpf_hdr, bh_caplen);
/// Where `bh_hdrlen` (where the frame starts) sits in a record header.
const HDRLEN_AT: usize = offset_of!(bpf_hdr, bh_hdrlen);
/// The bytes of a header the kernel writes (its `SIZEOF_BPF_HDR`): up to
/// the end of `bh_hdrlen`, without the struct's tail padding, so a record
/// may be shorter than `size_of::<bpf_hdr>()` and its frame start before.
pub const HEADER_FIELDS: usize = HDRLEN_AT + size_of::<u16>();

/// A read buffer the kernel cannot have written: the rest of the buffer
/// is unusable, since where the next record starts is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Fewer bytes left at `at` than a record header holds.
    TruncatedHeader { at: usize, left: usize },
    /// The header at `at` says the frame starts inside the header.
    HeaderLength { at: usize, hdrlen: usize },
    /// The frame of the record at `at` would end at `end`, past the
    /// `len` bytes read.
    BeyondBuffer { at: usize, end: usize, len: usize },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::TruncatedHeader { at, left } => write!(
                f,
                "{left} bytes at offset {at}, too few for a {HEADER_FIELDS}-byte capture header"
            ),
            Malformed::HeaderLength { at, hdrlen } => write!(
                f,
                "capture header at offset {at} says its frame starts {hdrlen} bytes in, \
                 inside the header"
            ),
            Malformed::BeyondBuffer { at, end, len } => write!(
                f,
                "the capture at offset {at} ends at byte {end}, past the {len} bytes read"
            ),
        }
    }
}

impl std::error::Error for Malformed {}

/// The first record of `buffer`, which starts `at` bytes into the read:
/// where its frame lies in `buffer`, and how far the next record is.
/// `None` when `buffer` is empty.
fn record(buffer: &[u8], at: usize) -> Option<Result<(Range<usize>, usize), Malformed>> {
    if buffer.is_empty() {
        return None;
    }
    let Some(header) = buffer.get(..HEADER_FIELDS) else {
        return Some(Err(Malformed::TruncatedHeader {
            at,
            left: buffer.len(),
        }));
    };
    // The kernel writes the header in its own byte order.
    let caplen = u32::from_ne_bytes([
        header[CAPLEN_AT],
        header[CAPLEN_AT + 1],
        header[CAPLEN_AT + 2],
        header[CAPLEN_AT + 3],
    ]);
    let hdrlen = usize::from(u16::from_ne_bytes([
        header[HDRLEN_AT],
        header[HDRLEN_AT + 1],
    ]));
    if hdrlen < HEADER_FIELDS {
        return Some(Err(Malformed::HeaderLength { at, hdrlen }));
    }
    let end = usize::try_from(caplen)
        .ok()
        .and_then(|caplen| hdrlen.checked_add(caplen));
    match end {
        Some(end) if end <= buffer.len() => {
            // The last record's padding is not part of the read.
            let next = BPF_WORDALIGN(end).min(buffer.len());
            Some(Ok((hdrlen..end, next)))
        }
        _ => Some(Err(Malformed::BeyondBuffer {
            at,
            end: at
                .saturating_add(hdrlen)
                .saturating_add(usize::try_from(caplen).unwrap_or(usize::MAX)),
            len: at + buffer.len(),
        })),
    }
}

/// The frames of one read buffer, in order. After a malformed record the
/// iterator yields its error and ends.
pub fn packets(buffer: &[u8]) -> Packets<'_> {
    Packets {
        buffer,
        at: 0,
        failed: false,
    }
}

/// The iterator [`packets`] returns.
#[derive(Clone, Debug)]
pub struct Packets<'a> {
    buffer: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<&'a [u8], Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buffer.get(self.at..)?;
        match record(rest, self.at)? {
            Ok((frame, next)) => {
                self.at += next;
                Some(Ok(&rest[frame]))
            }
            Err(malformed) => {
                self.failed = true;
                Some(Err(malformed))
            }
        }
    }
}

/// A BPF read buffer and the captures not yet handed out, so that each
/// receive returns one frame and the next starts where it left off.
pub struct Captures {
    buffer: Vec<u8>,
    /// Where the next record starts.
    next: usize,
    /// The end of what the last read returned.
    end: usize,
}

impl Captures {
    /// An empty buffer of `size` bytes, the size every read must ask for.
    pub fn new(size: usize) -> Captures {
        Captures {
            buffer: vec![0; size],
            next: 0,
            end: 0,
        }
    }

    /// Copies the next frame held into `out` (as much as fits) and returns
    /// its captured length, which may exceed `out`. `None` when every
    /// frame of the last read was handed out; after an error the rest of
    /// that read is dropped.
    pub fn next_frame(&mut self, out: &mut [u8]) -> Option<Result<usize, Malformed>> {
        let rest = self.buffer.get(self.next..self.end)?;
        match record(rest, self.next)? {
            Ok((frame, next)) => {
                let frame = &rest[frame];
                let copied = frame.len().min(out.len());
                out[..copied].copy_from_slice(&frame[..copied]);
                self.next += next;
                Some(Ok(frame.len()))
            }
            Err(malformed) => {
                self.next = self.end;
                Some(Err(malformed))
            }
        }
    }

    /// Replaces what is held with one read into the whole buffer; returns
    /// the bytes read. Meant for when [`Captures::next_frame`] has
    /// nothing left: whatever it still held is dropped.
    pub fn refill(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.next = 0;
        self.end = 0;
        let read = read(&mut self.buffer)?;
        self.end = read.min(self.buffer.len());
        Ok(self.end)
    }
}

impl fmt::Debug for Captures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Captures")
            .field("size", &self.buffer.len())
            .field("next", &self.next)
            .field("end", &self.end)
            .finish()
    }
}

// The records below are FreeBSD amd64's bytes, which the mirror of its
// structs reproduces on a 64-bit little-endian host.
#[cfg(all(test, target_endian = "little", target_pointer_width = "64"))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A record as FreeBSD amd64 writes it for an Ethernet port: the
    /// timestamp (16 bytes), caplen, datalen, hdrlen 26 (so that the IP
    /// header after the 14-byte Ethernet header is 8-byte aligned), then
    /// the frame.
    fn amd64_record(frame: &[u8]) -> Vec<u8> {
        let mut record = vec![0x11; 16]; // bh_tstamp: never read
        record.extend_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        record.extend_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        record.extend_from_slice(&26u16.to_le_bytes());
        record.extend_from_slice(frame);
        record
    }

    /// Records back to back, each but the last padded to 8 bytes, as a
    /// read returns them.
    fn buffer(frames: &[&[u8]]) -> Vec<u8> {
        let mut buffer = Vec::new();
        for frame in frames {
            buffer.resize(BPF_WORDALIGN(buffer.len()), 0);
            buffer.extend(amd64_record(frame));
        }
        buffer
    }

    #[test]
    fn the_header_is_freebsd_amd64s() {
        assert_eq!(CAPLEN_AT, 16);
        assert_eq!(offset_of!(bpf_hdr, bh_datalen), 20);
        assert_eq!(HDRLEN_AT, 24);
        assert_eq!(HEADER_FIELDS, 26);
        assert_eq!(size_of::<bpf_hdr>(), 32);
    }

    #[test]
    fn one_packet() {
        let frame: Vec<u8> = (0..42).collect();
        #[rustfmt::skip]
        let mut read = vec![
            1, 0, 0, 0, 0, 0, 0, 0,   2, 0, 0, 0, 0, 0, 0, 0, // bh_tstamp
            42, 0, 0, 0,                                      // bh_caplen
            60, 0, 0, 0,                                      // bh_datalen
            26, 0,                                            // bh_hdrlen
        ];
        read.extend_from_slice(&frame);
        assert_eq!(read.len(), 68);
        let got: Vec<_> = packets(&read).collect();
        assert_eq!(got, [Ok(&frame[..])]);
    }

    #[test]
    fn several_packets_with_alignment_padding() {
        let first = [0xaa; 42]; // 26 + 42 = 68: 4 bytes of padding follow
        let second = [0xbb; 46]; // 26 + 46 = 72: already aligned
        let third = [0xcc; 1];
        let read = buffer(&[&first, &second, &third]);
        assert_eq!(read.len(), 72 + 72 + 27);
        assert_eq!(&read[68..72], [0, 0, 0, 0]);
        assert_eq!(read[72 + HDRLEN_AT], 26);
        assert_eq!(read[144 + CAPLEN_AT], 1);
        let got: Vec<_> = packets(&read).collect();
        assert_eq!(got, [Ok(&first[..]), Ok(&second[..]), Ok(&third[..])]);
    }

    #[test]
    fn a_larger_header_moves_the_frame() {
        // A kernel with a longer header (another timestamp format) says so
        // in bh_hdrlen; the walk follows it, not the struct's size.
        let mut read = vec![0u8; 40];
        read[CAPLEN_AT] = 3;
        read[HDRLEN_AT] = 40;
        read.extend_from_slice(&[7, 8, 9]);
        assert_eq!(packets(&read).collect::<Vec<_>>(), [Ok(&[7u8, 8, 9][..])]);
    }

    #[test]
    fn an_empty_read_holds_nothing() {
        assert_eq!(packets(&[]).count(), 0);
    }

    #[test]
    fn a_truncated_header_is_malformed() {
        let mut read = buffer(&[&[1; 42]]);
        read.extend_from_slice(&[0; 4]); // padding
        read.extend_from_slice(&[0; 25]); // one byte short of a header
        let got: Vec<_> = packets(&read).collect();
        assert_eq!(
            got,
            [
                Ok(&[1u8; 42][..]),
                Err(Malformed::TruncatedHeader { at: 72, left: 25 })
            ]
        );
    }

    #[test]
    fn a_capture_beyond_the_buffer_is_malformed() {
        let mut read = buffer(&[&[1; 42]]);
        read[CAPLEN_AT] = 43;
        assert_eq!(
            packets(&read).collect::<Vec<_>>(),
            [Err(Malformed::BeyondBuffer {
                at: 0,
                end: 69,
                len: 68
            })]
        );
        // The largest caplen overflows nothing.
        read[CAPLEN_AT..CAPLEN_AT + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(
            packets(&read).next(),
            Some(Err(Malformed::BeyondBuffer { at: 0, len: 68, .. }))
        ));
    }

    #[test]
    fn a_frame_inside_its_header_is_malformed() {
        let mut read = buffer(&[&[1; 42]]);
        read[HDRLEN_AT] = 25;
        assert_eq!(
            packets(&read).collect::<Vec<_>>(),
            [Err(Malformed::HeaderLength { at: 0, hdrlen: 25 })]
        );
        assert_eq!(
            Malformed::HeaderLength { at: 0, hdrlen: 25 }.to_string(),
            "capture header at offset 0 says its frame starts 25 bytes in, inside the header"
        );
    }

    /// A reader that hands out `reads` one per call, as the device would.
    fn refill(captures: &mut Captures, read: &[u8]) -> usize {
        captures
            .refill(|space| {
                space[..read.len()].copy_from_slice(read);
                Ok(read.len())
            })
            .unwrap()
    }

    #[test]
    fn captures_hand_out_one_frame_per_call_and_keep_the_rest() {
        let mut captures = Captures::new(4096);
        let mut out = [0u8; 128];
        assert_eq!(captures.next_frame(&mut out), None);
        let read = buffer(&[&[0xaa; 42], &[0xbb; 60]]);
        assert_eq!(refill(&mut captures, &read), read.len());
        assert_eq!(captures.next_frame(&mut out), Some(Ok(42)));
        assert_eq!(out[..42], [0xaa; 42]);
        assert_eq!(captures.next_frame(&mut out), Some(Ok(60)));
        assert_eq!(out[..60], [0xbb; 60]);
        assert_eq!(captures.next_frame(&mut out), None);
        // The next read starts afresh.
        refill(&mut captures, &buffer(&[&[0xcc; 42]]));
        assert_eq!(captures.next_frame(&mut out), Some(Ok(42)));
        assert_eq!(out[..42], [0xcc; 42]);
        assert_eq!(captures.next_frame(&mut out), None);
    }

    #[test]
    fn captures_cut_a_frame_longer_than_the_caller_s_buffer() {
        let mut captures = Captures::new(4096);
        let frame: Vec<u8> = (0..200u8).collect();
        refill(&mut captures, &buffer(&[&frame, &[5; 42]]));
        let mut out = [0u8; 128];
        assert_eq!(captures.next_frame(&mut out), Some(Ok(200)));
        assert_eq!(out[..], frame[..128]);
        assert_eq!(captures.next_frame(&mut out), Some(Ok(42)));
    }

    #[test]
    fn captures_drop_the_rest_of_a_malformed_read() {
        let mut captures = Captures::new(4096);
        let mut read = buffer(&[&[1; 42], &[2; 42], &[3; 42]]);
        read[72 + HDRLEN_AT] = 0;
        refill(&mut captures, &read);
        let mut out = [0u8; 128];
        assert_eq!(captures.next_frame(&mut out), Some(Ok(42)));
        assert_eq!(
            captures.next_frame(&mut out),
            Some(Err(Malformed::HeaderLength { at: 72, hdrlen: 0 }))
        );
        assert_eq!(captures.next_frame(&mut out), None);
    }

    #[test]
    fn a_failed_or_oversized_read_leaves_nothing_held() {
        let mut captures = Captures::new(64);
        let mut out = [0u8; 128];
        let error = captures
            .refill(|_| Err(io::ErrorKind::WouldBlock.into()))
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(captures.next_frame(&mut out), None);
        // A reader claiming more than the buffer is cut to it.
        assert_eq!(captures.refill(|_| Ok(1000)).unwrap(), 64);
    }

    proptest! {
        /// Whatever a read holds, the walk ends, never panics, and every
        /// frame it returns lies inside the buffer, after a header.
        #[test]
        fn any_buffer_is_walked_safely(read in proptest::collection::vec(any::<u8>(), 0..512)) {
            let start = read.as_ptr() as usize;
            let mut count = 0;
            for item in packets(&read) {
                count += 1;
                prop_assert!(count <= read.len() / HEADER_FIELDS + 1);
                if let Ok(frame) = item {
                    let at = frame.as_ptr() as usize - start;
                    prop_assert!(at >= HEADER_FIELDS);
                    prop_assert!(at + frame.len() <= read.len());
                }
            }
            let mut captures = Captures::new(512);
            refill(&mut captures, &read);
            let mut out = [0u8; 16];
            let mut handed = 0;
            while let Some(item) = captures.next_frame(&mut out) {
                handed += 1;
                prop_assert!(handed <= read.len() / HEADER_FIELDS + 1);
                if let Ok(length) = item {
                    prop_assert!(length <= read.len());
                }
            }
        }

        /// Well-formed reads give back exactly the frames put in, through
        /// both the iterator and the held buffer.
        #[test]
        fn frames_come_back_as_they_went_in(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..12)
        ) {
            let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let read = buffer(&slices);
            let walked: Vec<&[u8]> = packets(&read).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(&walked, &slices);
            let mut captures = Captures::new(read.len().max(1));
            refill(&mut captures, &read);
            let mut out = [0u8; 100];
            for frame in &frames {
                prop_assert_eq!(captures.next_frame(&mut out), Some(Ok(frame.len())));
                prop_assert_eq!(&out[..frame.len()], &frame[..]);
            }
            prop_assert_eq!(captures.next_frame(&mut out), None);
        }
    }
}
