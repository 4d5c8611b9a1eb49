//! Key paths, positions and the quoting of file text in messages, shared
//! by the YAML layer and the checker.

use super::Position;

/// `key.child` for messages; odd names are quoted so the path stays one line.
pub(super) fn child_key(parent: &str, name: &str) -> String {
    let name = shown_key(name);
    if parent.is_empty() {
        name
    } else {
        format!("{parent}.{name}")
    }
}

/// `key[index]` for messages.
pub(super) fn item_key(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A key name as it appears in a key path: bare when plain, else quoted.
fn shown_key(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !invisible(c));
    if plain {
        name.to_owned()
    } else {
        format!("{:?}", truncated(name))
    }
}

/// A value from the file as it appears in a message: in backquotes, escaped
/// and shortened when it would garble the line.
pub(super) fn shown(value: &str) -> String {
    let plain = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| !c.is_control() && c != '`' && !invisible(c));
    if plain {
        format!("`{value}`")
    } else {
        format!("{:?}", truncated(value))
    }
}

/// The first 64 characters, with `...` when there were more.
fn truncated(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_owned(),
    }
}

/// A parser location as a [`Position`]; `None` for the parser's "unknown"
/// (line 0).
pub(super) fn position(location: serde_saphyr::Location) -> Option<Position> {
    (location.line() > 0).then(|| Position {
        line: location.line(),
        column: location.column(),
    })
}

/// Characters that do not show as themselves: a name holding one looks
/// like another name in a listing or a log (`lagg0` with a zero-width
/// space, a path whose tail a right-to-left override reverses), so names
/// and paths refuse them.
pub(super) fn invisible(c: char) -> bool {
    matches!(
        c,
        // Zero-width space, non-joiner, joiner; word joiner; BOM.
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
        // Left-to-right, right-to-left and Arabic letter marks.
        | '\u{200E}' | '\u{200F}' | '\u{061C}'
        // Bidi embeddings, overrides and isolates.
        | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_keys_and_values_stay_on_one_line() {
        assert_eq!(child_key("", "groups"), "groups");
        assert_eq!(child_key("groups", "lagg0"), "groups.lagg0");
        assert_eq!(child_key("groups", "a\nb"), "groups.\"a\\nb\"");
        assert_eq!(item_key("hooks", 2), "hooks[2]");
        assert_eq!(shown("em0"), "`em0`");
        assert_eq!(shown("a\u{0}b"), "\"a\\0b\"");
        let long = shown(&"x".repeat(100));
        assert!(long.len() < 80 && long.ends_with("...\""), "{long}");
    }
}
