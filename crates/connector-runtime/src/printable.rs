//! Text from a peer made safe to print: control characters escaped, length bounded.
//!
//! An API controls cursors, URLs, error bodies and header values. Printed as they are,
//! a newline forges a log line, an ESC sequence rewrites the terminal and a bidi
//! override reorders what the reader sees. Every such text goes through [`api_text`]
//! before it enters a message; the CLI passes whole lines through [`escape_lines`] as a
//! last line of defence.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters of API text kept in one message; the rest is cut (with a note of the size).
pub const MAX_API_TEXT: usize = 200;

/// Whether a character must not reach a terminal or a log line as it is.
fn unsafe_char(c: char) -> bool {
    // Cc: C0 controls, DEL, C1 controls. Then the Unicode format characters that move or
    // hide text: bidi embeddings, overrides, isolates and marks, and the line and
    // paragraph separators some viewers treat as line breaks.
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Writes one character as an escape: `\n`, `\r`, `\t`, or `\u{1b}`.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// The text with every control, bidi and line-separator character escaped; one line.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_except(text, None)
}

/// Like [`escape`], but keeps `\n`: for messages of several lines made by the runtime
/// itself (spec diagnostics), whose API parts were escaped already.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_except(text, Some('\n'))
}

fn escape_except(text: &str, keep: Option<char>) -> Cow<'_, str> {
    let bad = |c: char| unsafe_char(c) && Some(c) != keep;
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The first `max` characters of a text, with `... (N bytes in all)` when it was longer.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}... ({} bytes in all)", &text[..at], text.len())),
    }
}

/// API-controlled text fit for a message: cut to [`MAX_API_TEXT`] characters, then escaped.
pub fn api_text(text: &str) -> String {
    escape(&cut(text, MAX_API_TEXT)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_bidi_and_separators() {
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(
            escape("\u{0}\u{7f}\u{85}\u{9b}"),
            "\\u{0}\\u{7f}\\u{85}\\u{9b}"
        );
        assert_eq!(
            escape("x\u{202e}y\u{2066}z\u{2028}"),
            "x\\u{202e}y\\u{2066}z\\u{2028}"
        );
        assert_eq!(escape_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééééé", 2), "éé... (10 bytes in all)");
        let long = "x".repeat(10_000);
        let shown = api_text(&long);
        assert!(shown.len() < MAX_API_TEXT + 40, "{}", shown.len());
        assert!(shown.ends_with("... (10000 bytes in all)"), "{shown}");
        // Cut first, then escaped: a cut never splits an escape.
        assert_eq!(api_text("\n").as_str(), "\\n");
    }
}
