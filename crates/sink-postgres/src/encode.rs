//! Rows in `COPY ... FROM STDIN (FORMAT binary)`, from a page's bytes. Binary, because the
//! server's text input of `timestamptz` cost about as much as the rest of a row together
//! (three date-times per order: 45% of the COPY's server time); the scanner has already
//! read every date-time's instant, so it goes as the 8 bytes PostgreSQL stores. Numbers,
//! booleans and plain strings are encoded from the bytes; other values go through
//! `serde_json` (escaped strings, nested values, a value in a wider column).
//!
//! Binary input must match the column's type exactly: the staging tables it goes into
//! are always created by the loader with [`Dialect::Postgres`]'s six types.

use sink_sql::{Cell, Kind, LoadError, Page, Raw, SqlType, Table, datetime_micros};

/// The file header: signature, flags (no OIDs), no header extension.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The file trailer: a field count of -1.
pub(crate) const TRAILER: &[u8] = &[0xff, 0xff];

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// `jsonb`'s binary format version.
const JSONB_VERSION: u8 = 1;

/// The metadata fields, the same for a whole page: the load id and the page's arrival.
pub(crate) fn tail(load_id: &str, extracted_at: &str) -> Result<Vec<u8>, LoadError> {
    let at = datetime_micros(extracted_at).ok_or_else(|| {
        LoadError(format!(
            "the page's arrival time `{extracted_at}` is not an RFC 3339 date-time"
        ))
    })?;
    let mut tail = Vec::with_capacity(64);
    put_bytes(&mut tail, load_id.as_bytes())?;
    put_timestamp(&mut tail, at);
    Ok(tail)
}

/// Appends record `i` of the page as one tuple; `row` is its staging order (`None`:
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
    let fields = model.columns().len() + 2 + usize::from(row.is_some());
    let count = i16::try_from(fields)
        .map_err(|_| LoadError(format!("{fields} columns are more than a row can hold")))?;
    buf.extend_from_slice(&count.to_be_bytes());
    let values = page.row(i);
    page.fill(values, model.columns().len(), slots);
    for (c, &s) in model.columns().iter().zip(slots.iter()) {
        match values.get(s as usize) {
            Some(raw) => put_value(buf, c.ty, page, raw, i)?,
            None => put_null(buf),
        }
    }
    buf.extend_from_slice(tail);
    if let Some(r) = row {
        put_i64(buf, r);
    }
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
        (_, Kind::Null) => put_null(buf),
        (SqlType::BigInt, Kind::Int) => put_i64(buf, raw.num),
        // As the server's own input would round the text: to the nearest double.
        (SqlType::Double, Kind::Int) => put_f64(buf, raw.num as f64),
        (SqlType::Double, Kind::Uint | Kind::Float) => match parse_f64(page.text(raw)) {
            Some(f) => put_f64(buf, f),
            // Out of range: `serde_json` says so, as before.
            None => put_slow(buf, ty, page, raw, i)?,
        },
        (SqlType::Boolean, Kind::True) => put_bool(buf, true),
        (SqlType::Boolean, Kind::False) => put_bool(buf, false),
        // The scanner read the instant of every string in a date-time column.
        (SqlType::Timestamp, Kind::Str | Kind::StrEsc) if raw.time => {
            put_timestamp(buf, raw.num);
        }
        // A number in a text column keeps the text the API sent (`2.50`).
        (SqlType::Text, Kind::Int | Kind::Uint | Kind::Float) => put_bytes(buf, page.text(raw))?,
        (SqlType::Text, Kind::True) => put_bytes(buf, b"true")?,
        (SqlType::Text, Kind::False) => put_bytes(buf, b"false")?,
        // A string without escapes has no NUL: its bytes are its text.
        (SqlType::Text, Kind::Str) => put_bytes(buf, page.plain(raw))?,
        _ => put_slow(buf, ty, page, raw, i)?,
    }
    Ok(())
}

/// A value through `serde_json` (NUL characters replaced, as PostgreSQL refuses them).
fn put_slow(
    buf: &mut Vec<u8>,
    ty: SqlType,
    page: &Page,
    raw: &Raw,
    i: usize,
) -> Result<(), LoadError> {
    let v = page.value(raw, i, true)?;
    put_cell(buf, ty, &Cell::new(ty, &v))
}

/// A JSON number's text as a finite double (`None`: out of range).
fn parse_f64(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text)
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
}

/// One cell for a column of type `ty`.
pub(crate) fn put_cell(buf: &mut Vec<u8>, ty: SqlType, cell: &Cell<'_>) -> Result<(), LoadError> {
    match (ty, cell) {
        (_, Cell::Null) => put_null(buf),
        (SqlType::BigInt, Cell::Int(n)) => put_i64(buf, *n),
        (SqlType::Double, Cell::Float(f)) => put_f64(buf, *f),
        (SqlType::Double, Cell::Int(n)) => put_f64(buf, *n as f64),
        (SqlType::Boolean, Cell::Bool(b)) => put_bool(buf, *b),
        (SqlType::Timestamp, Cell::Timestamp(s)) => match datetime_micros(s) {
            Some(us) => put_timestamp(buf, us),
            None => {
                return Err(LoadError(format!(
                    "`{s}` in a date-time column is not an RFC 3339 date-time"
                )));
            }
        },
        (SqlType::Text, Cell::Text(s)) => put_bytes(buf, s.as_bytes())?,
        (SqlType::Json, Cell::Json(s)) => {
            put_len(buf, s.len() + 1)?;
            buf.push(JSONB_VERSION);
            buf.extend_from_slice(s.as_bytes());
        }
        (ty, cell) => {
            return Err(LoadError(format!(
                "internal error: {cell:?} does not fit a {ty:?} column"
            )));
        }
    }
    Ok(())
}

fn put_null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

fn put_len(buf: &mut Vec<u8>, len: usize) -> Result<(), LoadError> {
    let n = i32::try_from(len)
        .map_err(|_| LoadError(format!("a value of {len} bytes is more than a field holds")))?;
    buf.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), LoadError> {
    put_len(buf, bytes.len())?;
    buf.extend_from_slice(bytes);
    Ok(())
}

fn put_i64(buf: &mut Vec<u8>, n: i64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&n.to_be_bytes());
}

fn put_f64(buf: &mut Vec<u8>, f: f64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&f.to_bits().to_be_bytes());
}

fn put_bool(buf: &mut Vec<u8>, b: bool) {
    buf.extend_from_slice(&1i32.to_be_bytes());
    buf.push(u8::from(b));
}

/// An instant (microseconds since the Unix epoch) as `timestamptz` stores it.
fn put_timestamp(buf: &mut Vec<u8>, unix_micros: i64) {
    put_i64(buf, unix_micros.saturating_sub(PG_EPOCH_MICROS));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use sink_sql::scan::Scanner;

    /// The fields of one tuple: `None` for NULL.
    fn fields(mut b: &[u8]) -> (Vec<Option<Vec<u8>>>, &[u8]) {
        let n = i16::from_be_bytes([b[0], b[1]]);
        b = &b[2..];
        let mut out = Vec::new();
        for _ in 0..n {
            let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            b = &b[4..];
            if len < 0 {
                out.push(None);
            } else {
                out.push(Some(b[..len as usize].to_vec()));
                b = &b[len as usize..];
            }
        }
        (out, b)
    }

    #[test]
    fn scalars_are_postgres_binary() {
        let mut b = Vec::new();
        put_timestamp(&mut b, datetime_micros("2000-01-01T00:00:01Z").unwrap());
        assert_eq!(b, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]);
        b.clear();
        put_cell(&mut b, SqlType::Double, &Cell::Float(0.5)).unwrap();
        assert_eq!(b[4..], 0.5f64.to_bits().to_be_bytes());
        b.clear();
        put_cell(&mut b, SqlType::Json, &Cell::Json("{}".into())).unwrap();
        assert_eq!(b, [0, 0, 0, 3, 1, b'{', b'}']);
        b.clear();
        let t = tail("L", "2024-01-01T00:00:00+01:00").unwrap();
        let mut expect = vec![0, 0, 0, 1, b'L'];
        put_timestamp(
            &mut expect,
            datetime_micros("2023-12-31T23:00:00Z").unwrap(),
        );
        assert_eq!(t, expect);
        assert!(tail("L", "").is_err());
        assert!(put_cell(&mut b, SqlType::BigInt, &Cell::Text("x".into())).is_err());
    }

    /// Every value encodes as the `serde_json` path (`Cell`) encodes it.
    #[test]
    fn bytes_and_values_give_the_same_rows() {
        let lines = concat!(
            r#"{"i":1,"f":2.50,"e":1e-400,"b":true,"s":"plain","x":"tab\there","t":"2024-01-01T00:00:00Z","u":18446744073709551615,"o":{"k":"\u0000"},"n":null,"m":3}"#,
            "\n",
            r#"{"i":-3,"f":7,"e":1.5E3,"b":false,"s":5,"x":"é\"","t":"2024-01-01T00:00:00+01:00","u":1,"o":[1, 2],"n":"later","m":false}"#,
            "\n"
        );
        let mut model = Table::default();
        let mut page = Page::default();
        Scanner::new(true)
            .scan(&mut model, lines.into(), 0, &mut page)
            .unwrap();
        let tail = tail("L", "2024-01-01T00:00:00Z").unwrap();
        let mut slots = Vec::new();
        for (i, line) in lines.lines().enumerate() {
            let mut fast = Vec::new();
            put_row(
                &mut fast,
                &model,
                &page,
                i,
                &tail,
                Some(i as i64),
                &mut slots,
            )
            .unwrap();
            let mut v: Value = serde_json::from_str(line).unwrap();
            sink_sql::scan::strip_nul(&mut v);
            let mut slow = Vec::new();
            slow.extend_from_slice(&((model.columns().len() + 3) as i16).to_be_bytes());
            for c in model.columns() {
                let cell = v.get(&c.name).map_or(Cell::Null, |v| Cell::new(c.ty, v));
                put_cell(&mut slow, c.ty, &cell).unwrap();
            }
            slow.extend_from_slice(&tail);
            put_i64(&mut slow, i as i64);
            let (f, rest) = fields(&fast);
            assert!(rest.is_empty());
            let (s, _) = fields(&slow);
            for ((a, b), c) in f.iter().zip(&s).zip(model.columns()) {
                assert_eq!(a, b, "row {i}, column {}", c.name);
            }
        }
        let at = |name: &str| model.columns().iter().position(|c| c.name == name).unwrap();
        let mut fast = Vec::new();
        put_row(&mut fast, &model, &page, 0, &tail, None, &mut slots).unwrap();
        let (f, _) = fields(&fast);
        assert_eq!(f.len(), model.columns().len() + 2);
        assert_eq!(
            f[at("e")].as_deref(),
            Some(&0f64.to_bits().to_be_bytes()[..])
        );
        assert_eq!(f[at("x")].as_deref(), Some(&b"tab\there"[..]));
        assert_eq!(f[at("s")].as_deref(), Some(&b"plain"[..]));
        assert_eq!(f[at("m")].as_deref(), Some(&b"3"[..]));
        assert_eq!(
            f[at("o")].as_deref(),
            Some(&b"\x01{\"k\":\"\xef\xbf\xbd\"}"[..])
        );
        assert_eq!(f[at("n")], None);
    }
}
