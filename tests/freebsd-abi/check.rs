//! The header check's assertions, compiled into `abi` only by
//! `scripts/freebsd-abi.sh` (for `x86_64-unknown-freebsd`, with
//! `--cfg laggmond_abi_check`). The script generates one assertion per
//! size, alignment, offset and constant listed in `items`, with the
//! header's value, into the file `LAGGMOND_ABI_ASSERTS` names; a
//! difference stops the build with an error naming the item and both
//! values.

use super::*;
use core::mem::{align_of, offset_of, size_of};

/// Fails the build, naming the item, when the header and Rust disagree.
/// The message is built by hand because a constant may panic only with a
/// plain string.
const fn check(item: &str, header: i128, rust: i128) {
    if header == rust {
        return;
    }
    let mut message = [0u8; 256];
    let mut len = append(&mut message, 0, item.as_bytes());
    len = append(&mut message, len, b": header ");
    len = append_number(&mut message, len, header);
    len = append(&mut message, len, b", Rust ");
    len = append_number(&mut message, len, rust);
    let (message, _) = message.split_at(len);
    match core::str::from_utf8(message) {
        Ok(message) => panic!("{}", message),
        Err(_) => panic!("an item name is not UTF-8"),
    }
}

/// Copies `bytes` to `buf` at `len`, as much as fits with room for two
/// numbers after it.
const fn append(buf: &mut [u8; 256], mut len: usize, bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() && len < buf.len() - 96 {
        buf[len] = bytes[i];
        len += 1;
        i += 1;
    }
    len
}

/// Writes `value` in decimal to `buf` at `len`.
const fn append_number(buf: &mut [u8; 256], mut len: usize, value: i128) -> usize {
    let mut digits = [0u8; 40];
    let mut count = 0;
    let mut rest = value.unsigned_abs();
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        buf[len] = b'-';
        len += 1;
    }
    while count > 0 {
        count -= 1;
        buf[len] = digits[count];
        len += 1;
    }
    len
}

include!(env!("LAGGMOND_ABI_ASSERTS"));
