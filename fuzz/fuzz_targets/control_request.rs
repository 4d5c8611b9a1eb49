//! Feeds arbitrary bytes to the control socket's request handling, as a
//! hostile or confused local client would: the line framing must never
//! hand the parser a line over the request limit, and the parser must
//! answer every line with a request or a one-line error, never panic.
#![no_main]

use bytes::BytesMut;
use laggmond::control::protocol::{Reply, Request, MAX_REQUEST};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        check_line(line);
    }
    if let Some((&control, stream)) = data.split_first() {
        check_framing(control, stream);
    }
});

/// One request line: a request that survives a round trip, or an error
/// that fits the one-line reply the server sends.
fn check_line(line: &str) {
    match Request::parse(line) {
        Ok(request) => {
            let _ = request.is_privileged();
            let encoded = serde_json::to_string(&request).expect("a parsed request serializes");
            assert_eq!(Request::parse(&encoded), Ok(request));
        }
        Err(message) => {
            assert!(!message.is_empty());
            let reply = serde_json::to_string(&Reply::error(message)).expect("a reply serializes");
            assert!(!reply.contains('\n'), "error reply spans lines: {reply}");
        }
    }
}

/// The stream as the server reads it from a socket, in chunks whose size
/// the first byte picks; a first byte of 0xFF appends a run longer than
/// the limit with no newline, which must be refused rather than buffered.
fn check_framing(control: u8, stream: &[u8]) {
    let chunk_size = usize::from(control) + 1;
    let mut input = stream.to_vec();
    let oversized = control == 0xFF;
    if oversized {
        input.push(b'\n');
        input.resize(input.len() + MAX_REQUEST + 1, b'a');
    }
    let mut codec = LinesCodec::new_with_max_length(MAX_REQUEST);
    let mut buffer = BytesMut::new();
    for chunk in input.chunks(chunk_size) {
        buffer.extend_from_slice(chunk);
        match drain_lines(&mut codec, &mut buffer) {
            Ok(()) => {}
            // The server drops the client on any framing error.
            Err(_) => return,
        }
    }
    let end = codec.decode_eof(&mut buffer);
    assert!(
        !oversized,
        "oversized line accepted at end of stream: {end:?}"
    );
}

/// Decodes every complete line in `buffer`, checking each as a request.
fn drain_lines(codec: &mut LinesCodec, buffer: &mut BytesMut) -> Result<(), LinesCodecError> {
    while let Some(line) = codec.decode(buffer)? {
        assert!(line.len() <= MAX_REQUEST, "line of {} bytes", line.len());
        assert!(!line.contains('\n'));
        check_line(&line);
    }
    Ok(())
}
