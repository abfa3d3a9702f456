//! Rows in `COPY ... FROM STDIN` text format, from a page's bytes: numbers, booleans,
//! plain strings and date-times are copied as the API sent them; other values go
//! through `serde_json` (escaped strings, nested values, a value in a wider column).

use std::io::Write;

use sink_sql::{Cell, Kind, LoadError, Page, Raw, SqlType, Table};

/// The metadata columns' text, the same for a whole page: `\t<load id>\t<extracted at>`.
pub(crate) fn tail(load_id: &str, extracted_at: &str) -> Vec<u8> {
    let mut tail = Vec::with_capacity(64);
    tail.push(b'\t');
    put_text(&mut tail, load_id);
    tail.push(b'\t');
    put_text(&mut tail, extracted_at);
    tail
}

/// Appends record `i` of the page as one line; `row` is its staging order (`None`:
/// replace mode, whose staging table has no `_row`).
pub(crate) fn put_row(
    buf: &mut Vec<u8>,
    model: &Table,
    page: &Page,
    i: usize,
    tail: &[u8],
    row: Option<i64>,
    slots: &mut Vec<u32>,
) -> Result<(), LoadError> {
    let values = page.row(i);
    page.fill(values, model.columns().len(), slots);
    for (n, (c, &s)) in model.columns().iter().zip(slots.iter()).enumerate() {
        if n > 0 {
            buf.push(b'\t');
        }
        match values.get(s as usize) {
            Some(raw) => put_value(buf, c.ty, page, raw, i)?,
            None => buf.extend_from_slice(b"\\N"),
        }
    }
    if model.columns().is_empty() {
        // No data column: the tail's leading tab would open an empty one.
        buf.extend_from_slice(&tail[1..]);
    } else {
        buf.extend_from_slice(tail);
    }
    if let Some(r) = row {
        buf.push(b'\t');
        put_int(buf, r);
    }
    buf.push(b'\n');
    Ok(())
}

/// One value for a column of type `ty` (which fits it).
fn put_value(
    buf: &mut Vec<u8>,
    ty: SqlType,
    page: &Page,
    raw: &Raw,
    i: usize,
) -> Result<(), LoadError> {
    match (ty, raw.kind) {
        (_, Kind::Null) => buf.extend_from_slice(b"\\N"),
        // JSON's integers are PostgreSQL's bigint, double and text as they are.
        (SqlType::BigInt | SqlType::Double | SqlType::Text, Kind::Int)
        | (SqlType::Double | SqlType::Text, Kind::Uint) => buf.extend_from_slice(page.text(raw)),
        // A fraction without exponent is valid double input; an exponent is rewritten
        // (PostgreSQL refuses what underflows, serde_json rounds it to zero).
        (SqlType::Double, Kind::Float)
            if !page.text(raw).contains(&b'e') && !page.text(raw).contains(&b'E') =>
        {
            buf.extend_from_slice(page.text(raw));
        }
        (SqlType::Boolean, Kind::True) => buf.push(b't'),
        (SqlType::Boolean, Kind::False) => buf.push(b'f'),
        // A string without escapes has no backslash and no control character: nothing
        // to escape for COPY.
        (SqlType::Timestamp | SqlType::Text, Kind::Str) => buf.extend_from_slice(page.plain(raw)),
        _ => {
            let v = page.value(raw, i, true)?;
            put_cell(buf, &Cell::new(ty, &v));
        }
    }
    Ok(())
}

/// A non-negative or negative integer in decimal.
fn put_int(buf: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut m = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[at..]);
}

/// One cell in `COPY ... FROM STDIN` text format.
pub(crate) fn put_cell(buf: &mut Vec<u8>, cell: &Cell<'_>) {
    match cell {
        Cell::Null => buf.extend_from_slice(b"\\N"),
        Cell::Int(i) => put_int(buf, *i),
        Cell::Float(f) => {
            let _ = write!(buf, "{f}");
        }
        Cell::Bool(b) => buf.push(if *b { b't' } else { b'f' }),
        Cell::Timestamp(s) => put_text(buf, s),
        Cell::Text(s) => put_text(buf, s),
        Cell::Json(s) => put_text(buf, s),
    }
}

/// Text escaped for `COPY`: backslash, tab, newline and carriage return.
pub(crate) fn put_text(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use sink_sql::scan::Scanner;

    #[test]
    fn copy_text_is_escaped() {
        let mut b = Vec::new();
        put_text(&mut b, "a\tb\\c\nd\re");
        assert_eq!(b, b"a\\tb\\\\c\\nd\\re");
        b.clear();
        put_cell(&mut b, &Cell::Float(0.1));
        assert_eq!(b, b"0.1");
        for n in [0, 7, -12, i64::MIN, i64::MAX] {
            b.clear();
            put_int(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
        }
    }

    /// Every value encodes as the `serde_json` path (`Cell`) encodes it, or as a text
    /// PostgreSQL reads as the same value.
    #[test]
    fn bytes_and_values_give_the_same_rows() {
        let lines = concat!(
            r#"{"i":1,"f":2.50,"e":1e-400,"b":true,"s":"plain","x":"tab\there","t":"2024-01-01T00:00:00Z","u":18446744073709551615,"o":{"k":"\u0000"},"n":null}"#,
            "\n",
            r#"{"i":-3,"f":7,"e":1.5E3,"b":false,"s":5,"x":"é\"","t":"2024-01-01T00:00:00+01:00","u":1,"o":[1, 2],"n":"later"}"#,
            "\n"
        );
        let mut model = Table::default();
        let mut page = Page::default();
        Scanner::new(true)
            .scan(&mut model, lines.into(), 0, &mut page)
            .unwrap();
        let mut slots = Vec::new();
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for (i, line) in lines.lines().enumerate() {
            put_row(
                &mut fast,
                &model,
                &page,
                i,
                b"\tL\tE",
                Some(i as i64),
                &mut slots,
            )
            .unwrap();
            let mut v: Value = serde_json::from_str(line).unwrap();
            sink_sql::scan::strip_nul(&mut v);
            let cells: Vec<Vec<u8>> = model
                .columns()
                .iter()
                .map(|c| {
                    let mut b = Vec::new();
                    put_cell(
                        &mut b,
                        &v.get(&c.name).map_or(Cell::Null, |v| Cell::new(c.ty, v)),
                    );
                    b
                })
                .collect();
            slow.extend_from_slice(&cells.join(&b'\t'));
            slow.extend_from_slice(format!("\tL\tE\t{i}\n").as_bytes());
        }
        let fast = String::from_utf8(fast).unwrap();
        let slow = String::from_utf8(slow).unwrap();
        // The only difference: a double's text as sent (2.50) and as Rust prints it (2.5).
        assert_eq!(fast.replace("\t2.50\t", "\t2.5\t"), slow, "{fast}\n{slow}");
        assert!(fast.contains("\t0\t"), "an underflow is rewritten: {fast}");
        assert!(fast.contains("tab\\there"), "{fast}");
        assert!(fast.contains("{\"k\":\"\u{FFFD}\"}"), "{fast}");
    }
}
