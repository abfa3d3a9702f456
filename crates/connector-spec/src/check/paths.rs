//! Small value checks shared by the sections: JSONPaths, durations, date-times.

use super::Ctx;
use crate::duration::Duration;
use crate::jsonpath::JsonPath;

/// Checks that the JSONPath at `ptr` compiles, pointing at the character it fails on.
pub(crate) fn jsonpath(cx: &mut Ctx<'_>, ptr: &str, p: &JsonPath) {
    let Err(e) = p.check() else {
        return;
    };
    let (col, expected) = pest_position(&e.0);
    let location = match col {
        Some(c) => {
            let src = p.source();
            let start = src
                .char_indices()
                .nth(c.saturating_sub(1))
                .map_or(src.len(), |(i, _)| i);
            let end = src[start..]
                .chars()
                .next()
                .map_or(start, |ch| start + ch.len_utf8());
            if start < end {
                cx.span_in(ptr, start..end)
            } else {
                cx.value(ptr)
            }
        }
        None => cx.value(ptr),
    };
    let detail = expected.unwrap_or_else(|| e.0.lines().next().unwrap_or_default().to_owned());
    cx.error(
        location,
        format!("JSONPath `{}` does not parse: {detail}", p.source()),
        Some(
            "JSONPath follows RFC 9535, e.g. `$.orders[*]`, `$.data.next_cursor`, `$['odd key']`"
                .into(),
        ),
    );
}

/// The column and the `expected ...` note of a pest error message.
fn pest_position(msg: &str) -> (Option<usize>, Option<String>) {
    let col = msg.split("-->").nth(1).and_then(|rest| {
        let pos = rest.split_whitespace().next()?;
        pos.split(':').nth(1)?.parse::<usize>().ok()
    });
    let expected = msg
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("= "))
        .map(str::to_owned);
    (col, expected)
}

/// Checks that the duration at `ptr` parses, when the spec writes one there.
pub(crate) fn duration(cx: &mut Ctx<'_>, ptr: &str, d: &Duration) {
    if !cx.written(ptr) {
        return;
    }
    if let Err(e) = d.parse() {
        cx.error(cx.value(ptr), e, None);
    }
}

/// Checks that the duration at `ptr` parses and is not zero, for settings where zero
/// cannot mean anything useful; `help` says what to write instead.
pub(crate) fn nonzero_duration(cx: &mut Ctx<'_>, ptr: &str, d: &Duration, help: &str) {
    if !cx.written(ptr) {
        return;
    }
    match d.parse() {
        Err(e) => cx.error(cx.value(ptr), e, None),
        Ok(v) if v.is_zero() => cx.error(
            cx.value(ptr),
            format!("`{}` is zero, which is not allowed here", d.as_str()),
            Some(help.to_owned()),
        ),
        Ok(_) => {}
    }
}

/// Whether `s` is an RFC 3339 date-time.
pub(crate) fn is_rfc3339(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pest_messages() {
        let e = JsonPath::new("$.orders[").check().unwrap_err();
        let (col, exp) = pest_position(&e.0);
        assert_eq!(col, Some(10));
        assert_eq!(exp.as_deref(), Some("expected selector"));
        assert!(is_rfc3339("2024-01-01T00:00:00Z"));
        assert!(!is_rfc3339("2024-01-01"));
    }
}
