//! Reading the config file: only a regular file, and only so much of it.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use super::{ConfigError, Position, Problem, MAX_FILE_BYTES};

/// The refusal of a file over [`MAX_FILE_BYTES`].
pub(super) fn too_large() -> String {
    format!(
        "larger than {} MiB; this is not a laggmond config",
        MAX_FILE_BYTES >> 20
    )
}

/// Reads the file as UTF-8 text. Anything but a regular file is refused by
/// its type, before it is even opened: a FIFO whose writer stays open would
/// hold `check-config`, or a reload, for as long as it likes, and opening a
/// device can act on it (a watchdog arms, a tape rewinds). What was opened
/// is checked again, in case the path changed in between.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::MetadataExt;

    let fail = |message: String| ConfigError::whole(path, message);
    let named = fs::metadata(path).map_err(|e| fail(io_message(&e)))?;
    if let Some(kind) = not_a_regular_file(&named.file_type()) {
        return Err(fail(format!("is {kind}, not a config file")));
    }
    let file = open_for_reading(path).map_err(|e| fail(io_message(&e)))?;
    let metadata = file.metadata().map_err(|e| fail(io_message(&e)))?;
    if let Some(kind) = not_a_regular_file(&metadata.file_type()) {
        return Err(fail(format!("is {kind}, not a config file")));
    }
    if (metadata.dev(), metadata.ino()) != (named.dev(), named.ino()) {
        return Err(fail(
            "was replaced while being opened; try again".to_owned(),
        ));
    }
    if metadata.len() > MAX_FILE_BYTES as u64 {
        return Err(fail(too_large()));
    }
    let mut bytes = Vec::new();
    // Bounded even if the file grew since.
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(io_message(&e)))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(fail(too_large()));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ConfigError::new(
            path,
            vec![Problem {
                position: Some(end_of(valid)),
                key: String::new(),
                message: "not valid UTF-8 text".to_owned(),
            }],
        )
    })
}

/// What a file that is not a regular file is, for the refusal.
fn not_a_regular_file(kind: &fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;

    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

/// Opens `path` for reading without waiting: a plain open of a FIFO
/// nobody writes to blocks forever. A terminal does not become ours.
fn open_for_reading(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;

    fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// The position just after `valid`, a UTF-8 prefix of the file.
fn end_of(valid: &[u8]) -> Position {
    let text = String::from_utf8_lossy(valid);
    let line_start = text.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: text.matches('\n').count() as u64 + 1,
        column: text[line_start..].chars().count() as u64 + 1,
    }
}

fn io_message(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory, not a config file".to_owned(),
        _ => format!("cannot read: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_valid_prefix_is_a_line_and_column() {
        assert_eq!(end_of(b""), Position { line: 1, column: 1 });
        assert_eq!(end_of(b"ab\ncd"), Position { line: 2, column: 3 });
        // Columns count characters, not bytes.
        assert_eq!(
            end_of("a\n\u{e4}\u{e4}".as_bytes()),
            Position { line: 2, column: 3 }
        );
    }
}
