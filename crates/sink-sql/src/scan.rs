//! A page of JSON lines read straight from its bytes: each record's top-level fields,
//! their column and what kind of value they hold, without building a `serde_json::Value`
//! per record. Loaders encode the common values (numbers, booleans, plain strings,
//! date-times) from the bytes; anything else (escaped strings, nested values, a value
//! in a column of a wider type) goes through `serde_json` as before, so both paths give
//! the same rows.

use serde_json::Value;

use crate::table::{Change, Table};
use crate::types::{Shape, SqlType, datetime_micros};
use crate::worker::LoadError;

/// A value without a column (a field seen only as null so far).
pub const NO_COLUMN: u32 = u32::MAX;

/// What a top-level value is, as far as the columns care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `false`.
    False,
    /// `true`.
    True,
    /// An integer that fits in 64 bits, signed (`num` holds it).
    Int,
    /// An integer past `i64` that fits in `u64` (kept exactly, as text).
    Uint,
    /// Any other number: a fraction, an exponent, `-0`, or past `u64`.
    Float,
    /// A string without escapes: the bytes between its quotes are its text.
    Str,
    /// A string with escapes.
    StrEsc,
    /// An object or an array.
    Nested,
}

/// One top-level value of a record: where it is in the page and which column it fills.
#[derive(Debug, Clone, Copy)]
pub struct Raw {
    /// Index of its column in the model, or [`NO_COLUMN`].
    pub col: u32,
    /// Its kind.
    pub kind: Kind,
    /// Whether `num` holds the string's instant (microseconds since the epoch).
    pub time: bool,
    /// Start of the value's JSON text in the page (a string's opening quote).
    pub start: u32,
    /// End of the value's JSON text (after a string's closing quote).
    pub end: u32,
    /// The integer (`Int`), or the instant (`time`).
    pub num: i64,
}

impl Raw {
    /// The shape the column types judge the value by.
    fn shape(&self) -> Shape {
        let ty = match self.kind {
            Kind::Null => None,
            Kind::False | Kind::True => Some(SqlType::Boolean),
            Kind::Int => Some(SqlType::BigInt),
            Kind::Uint => Some(SqlType::Text),
            Kind::Float => Some(SqlType::Double),
            Kind::Str | Kind::StrEsc if self.time => Some(SqlType::Timestamp),
            Kind::Str | Kind::StrEsc => Some(SqlType::Text),
            Kind::Nested => Some(SqlType::Json),
        };
        Shape {
            ty,
            number: matches!(self.kind, Kind::Int | Kind::Uint | Kind::Float),
        }
    }
}

/// A page of records, read: the lines and every top-level value.
#[derive(Debug, Default)]
pub struct Page {
    bytes: Vec<u8>,
    raws: Vec<Raw>,
    /// The end of each record's values in `raws`.
    ends: Vec<u32>,
    /// The number of the page's first record in the load (for messages).
    first_row: i64,
}

impl Page {
    /// The number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The number of the page's first record in the load (for messages: add one).
    pub fn first_row(&self) -> i64 {
        self.first_row
    }

    /// The size of the page's JSON text in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the page holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The values of record `i`, in the order of its fields.
    pub fn row(&self, i: usize) -> &[Raw] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.raws[start..self.ends[i] as usize]
    }

    /// Puts the index in `row` of each column's value in `slots` (one per column,
    /// `u32::MAX` where the record has none); a repeated field's last value wins.
    pub fn fill(&self, row: &[Raw], columns: usize, slots: &mut Vec<u32>) {
        slots.clear();
        slots.resize(columns, u32::MAX);
        for (i, r) in row.iter().enumerate() {
            if let Some(s) = slots.get_mut(r.col as usize) {
                *s = i as u32;
            }
        }
    }

    /// The value's JSON text.
    pub fn text(&self, raw: &Raw) -> &[u8] {
        &self.bytes[raw.start as usize..raw.end as usize]
    }

    /// The text of a string without escapes (`Kind::Str`), between its quotes.
    pub fn plain(&self, raw: &Raw) -> &[u8] {
        &self.bytes[raw.start as usize + 1..raw.end as usize - 1]
    }

    /// The value as `serde_json` reads it, for the values the loaders do not encode from
    /// the bytes; `nul` replaces NUL characters (PostgreSQL refuses them).
    pub fn value(&self, raw: &Raw, row: usize, nul: bool) -> Result<Value, LoadError> {
        let mut v: Value = serde_json::from_slice(self.text(raw)).map_err(|e| {
            LoadError(format!(
                "record {} of the load is not JSON: {e}",
                self.first_row + row as i64 + 1
            ))
        })?;
        if nul {
            strip_nul(&mut v);
        }
        Ok(v)
    }
}

/// Reads pages for one table: remembers the fields of the last record by position, so
/// a record shaped like the one before costs a byte comparison per field.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Whether NUL characters in field names become U+FFFD (PostgreSQL).
    nul: bool,
    /// The last record's field names (raw JSON text) and columns, by position.
    last: Vec<(Box<[u8]>, u32)>,
}

impl Scanner {
    /// A scanner; `nul`: field names lose their NUL characters (PostgreSQL refuses them).
    pub fn new(nul: bool) -> Self {
        Self {
            nul,
            last: Vec::new(),
        }
    }

    /// Reads a page of JSON lines into `page` (reusing its buffers), placing every value
    /// in a column of `model`; returns the changes the page asks of the table. A record
    /// that is not an object is read as `{"value": ...}`.
    pub fn scan(
        &mut self,
        model: &mut Table,
        lines: Vec<u8>,
        first_row: i64,
        page: &mut Page,
    ) -> Result<Vec<Change>, LoadError> {
        page.bytes = lines;
        page.raws.clear();
        page.ends.clear();
        page.first_row = first_row;
        if let Err(e) = std::str::from_utf8(&page.bytes) {
            let at = e.valid_up_to();
            let n = page.bytes[..at].iter().filter(|&&b| b == b'\n').count();
            return Err(LoadError(format!(
                "record {} of the load is not JSON: invalid UTF-8",
                first_row + n as i64 + 1
            )));
        }
        let mut changes = Vec::new();
        let bytes = std::mem::take(&mut page.bytes);
        let result = self.lines(model, &bytes, page, &mut changes);
        page.bytes = bytes;
        result.map(|()| changes)
    }

    /// Every non-blank line of `bytes` as a record of `page`.
    fn lines(
        &mut self,
        model: &mut Table,
        bytes: &[u8],
        page: &mut Page,
        changes: &mut Vec<Change>,
    ) -> Result<(), LoadError> {
        let mut pos = 0;
        while pos < bytes.len() {
            let end = memchr_nl(bytes, pos);
            if bytes[pos..end].iter().any(|b| !b.is_ascii_whitespace()) {
                let row = page.first_row + page.ends.len() as i64 + 1;
                self.record(model, bytes, pos, end, &mut page.raws, changes)
                    .map_err(|what| {
                        LoadError(format!("record {row} of the load is not JSON: {what}"))
                    })?;
                page.ends.push(page.raws.len() as u32);
            }
            pos = end + 1;
        }
        Ok(())
    }

    /// One record (the line `bytes[start..end]`).
    fn record(
        &mut self,
        model: &mut Table,
        bytes: &[u8],
        start: usize,
        end: usize,
        raws: &mut Vec<Raw>,
        changes: &mut Vec<Change>,
    ) -> Result<(), &'static str> {
        let line = &bytes[..end];
        let mut i = skip_ws(line, start);
        if line.get(i) != Some(&b'{') {
            let mut raw = value(line, i)?;
            if skip_ws(line, raw.end as usize) != end {
                return Err("trailing characters");
            }
            raw.col = self.place(model, 0, b"\"value\"", &mut raw, line, changes)?;
            raws.push(raw);
            return Ok(());
        }
        i = skip_ws(line, i + 1);
        if line.get(i) == Some(&b'}') {
            return finish(line, i + 1, end);
        }
        let mut field = 0;
        loop {
            if line.get(i) != Some(&b'"') {
                return Err("expected a field name");
            }
            let (key_end, _) = string_end(line, i)?;
            let key = &line[i..key_end];
            i = skip_ws(line, key_end);
            if line.get(i) != Some(&b':') {
                return Err("expected `:`");
            }
            i = skip_ws(line, i + 1);
            let mut raw = value(line, i)?;
            raw.col = self.place(model, field, key, &mut raw, line, changes)?;
            raws.push(raw);
            field += 1;
            i = skip_ws(line, raw.end as usize);
            match line.get(i) {
                Some(b',') => i = skip_ws(line, i + 1),
                Some(b'}') => return finish(line, i + 1, end),
                _ => return Err("expected `,` or `}`"),
            }
        }
    }

    /// The column of the field at position `at` named `key` (its JSON text) with value
    /// `raw`; fills in `raw.time` for a date-time string.
    fn place(
        &mut self,
        model: &mut Table,
        at: usize,
        key: &[u8],
        raw: &mut Raw,
        line: &[u8],
        changes: &mut Vec<Change>,
    ) -> Result<u32, &'static str> {
        if let Some((k, col)) = self.last.get(at)
            && **k == *key
        {
            let col = *col;
            if raw.kind == Kind::Null {
                return Ok(col);
            }
            if let Some(ty) = model.columns().get(col as usize).map(|c| c.ty) {
                // A string in a date-time column must be one (and the loaders want its
                // instant); in a text or JSON column any string fits as it is.
                if ty == SqlType::Timestamp && matches!(raw.kind, Kind::Str | Kind::StrEsc) {
                    set_time(raw, line)?;
                }
                if ty.fits(raw.shape()) {
                    return Ok(col);
                }
            }
        }
        if matches!(raw.kind, Kind::Str | Kind::StrEsc) && !raw.time {
            set_time(raw, line)?;
        }
        let name = key_name(key, self.nul)?;
        let col = model
            .place(&name, raw.shape(), changes)
            .map_or(NO_COLUMN, |c| c as u32);
        if self.last.len() <= at {
            self.last.resize(at + 1, (Box::default(), NO_COLUMN));
        }
        self.last[at] = (key.into(), col);
        Ok(col)
    }
}

/// Sets `raw.time` and `raw.num` when the string is an RFC 3339 date-time.
fn set_time(raw: &mut Raw, line: &[u8]) -> Result<(), &'static str> {
    let text = &line[raw.start as usize..raw.end as usize];
    let micros = if raw.kind == Kind::Str {
        std::str::from_utf8(&text[1..text.len() - 1])
            .ok()
            .and_then(datetime_micros)
    } else {
        let s: String = serde_json::from_slice(text).map_err(|_| "invalid string")?;
        datetime_micros(&s)
    };
    if let Some(us) = micros {
        raw.time = true;
        raw.num = us;
    }
    Ok(())
}

/// A field name from its JSON text.
fn key_name(key: &[u8], nul: bool) -> Result<String, &'static str> {
    let mut name: String = if key.contains(&b'\\') {
        serde_json::from_slice(key).map_err(|_| "invalid field name")?
    } else {
        std::str::from_utf8(&key[1..key.len() - 1])
            .map_err(|_| "invalid UTF-8")?
            .to_owned()
    };
    if nul && name.contains('\0') {
        name = name.replace('\0', "\u{FFFD}");
    }
    Ok(name)
}

/// The end of the record: only whitespace may follow.
fn finish(line: &[u8], i: usize, end: usize) -> Result<(), &'static str> {
    if skip_ws(line, i) == end {
        Ok(())
    } else {
        Err("trailing characters")
    }
}

/// The next newline at or after `from`, or the end.
fn memchr_nl(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| from + p)
}

fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r' | b'\n') = line.get(i) {
        i += 1;
    }
    i
}

/// The value starting at `i`.
fn value(line: &[u8], i: usize) -> Result<Raw, &'static str> {
    let mut raw = Raw {
        col: NO_COLUMN,
        kind: Kind::Null,
        time: false,
        start: i as u32,
        end: i as u32,
        num: 0,
    };
    let end = match line.get(i) {
        Some(b'n') => word(line, i, b"null")?,
        Some(b't') => {
            raw.kind = Kind::True;
            word(line, i, b"true")?
        }
        Some(b'f') => {
            raw.kind = Kind::False;
            word(line, i, b"false")?
        }
        Some(b'"') => {
            let (end, escaped) = string_end(line, i)?;
            raw.kind = if escaped { Kind::StrEsc } else { Kind::Str };
            end
        }
        Some(b'{' | b'[') => {
            raw.kind = Kind::Nested;
            nested_end(line, i)?
        }
        Some(b'-' | b'0'..=b'9') => number(line, i, &mut raw)?,
        _ => return Err("expected a value"),
    };
    raw.end = u32::try_from(end).map_err(|_| "record too long")?;
    Ok(raw)
}

fn word(line: &[u8], i: usize, w: &[u8]) -> Result<usize, &'static str> {
    if line[i..].starts_with(w) {
        Ok(i + w.len())
    } else {
        Err("expected a value")
    }
}

/// The end of the string whose opening quote is at `i`, and whether it has escapes.
/// Control characters are refused, as JSON requires.
fn string_end(line: &[u8], i: usize) -> Result<(usize, bool), &'static str> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        match line.get(j) {
            Some(b'"') => return Ok((j + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                j += 2;
            }
            Some(&b) if b < 0x20 => return Err("control character in a string"),
            Some(_) => j += 1,
            None => return Err("unterminated string"),
        }
    }
}

/// The end of the object or array at `i`: brackets counted outside strings (the value is
/// read in full by `serde_json` when it is loaded).
fn nested_end(line: &[u8], i: usize) -> Result<usize, &'static str> {
    let mut depth = 0usize;
    let mut j = i;
    while let Some(&b) = line.get(j) {
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j + 1);
                }
            }
            b'"' => {
                j = string_end(line, j)?.0;
                continue;
            }
            _ => {}
        }
        j += 1;
    }
    Err("unterminated object or array")
}

/// A number in JSON's grammar; integers are classified as `serde_json` reads them.
fn number(line: &[u8], i: usize, raw: &mut Raw) -> Result<usize, &'static str> {
    let digits = |mut j: usize| {
        while line.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let neg = line[i] == b'-';
    let int_start = i + usize::from(neg);
    let int_end = digits(int_start);
    if int_end == int_start || (line[int_start] == b'0' && int_end > int_start + 1) {
        return Err("invalid number");
    }
    let mut j = int_end;
    let mut fraction = false;
    if line.get(j) == Some(&b'.') {
        let e = digits(j + 1);
        if e == j + 1 {
            return Err("invalid number");
        }
        j = e;
        fraction = true;
    }
    let mut exponent = false;
    if let Some(b'e' | b'E') = line.get(j) {
        j += 1;
        if let Some(b'+' | b'-') = line.get(j) {
            j += 1;
        }
        let e = digits(j);
        if e == j {
            return Err("invalid number");
        }
        j = e;
        exponent = true;
    }
    raw.kind = Kind::Float;
    if exponent {
        // serde_json refuses what does not fit a double.
        let text = std::str::from_utf8(&line[i..j]).map_err(|_| "invalid number")?;
        if !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err("number out of range");
        }
    } else if !fraction {
        let text = &line[int_start..int_end];
        if neg {
            // `-0` stays a double, as serde_json reads it.
            if let Some(n) = parse_u64(text).filter(|&n| n != 0 && n <= 1 << 63) {
                raw.kind = Kind::Int;
                raw.num = (n as i64).wrapping_neg();
            }
        } else if let Some(n) = parse_u64(text) {
            match i64::try_from(n) {
                Ok(v) => {
                    raw.kind = Kind::Int;
                    raw.num = v;
                }
                Err(_) => raw.kind = Kind::Uint,
            }
        }
    }
    Ok(j)
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Replaces NUL characters by U+FFFD, which PostgreSQL's text and jsonb accept.
pub fn strip_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(a) => a.iter_mut().for_each(strip_nul),
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().filter(|k| k.contains('\0')).cloned().collect();
            for k in keys {
                if let Some(v) = m.remove(&k) {
                    m.insert(k.replace('\0', "\u{FFFD}"), v);
                }
            }
            m.values_mut().for_each(strip_nul);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn scan(lines: &str) -> (Table, Page, Vec<Change>) {
        let mut t = Table::default();
        let mut p = Page::default();
        let c = Scanner::new(true)
            .scan(&mut t, lines.as_bytes().to_vec(), 0, &mut p)
            .unwrap();
        (t, p, c)
    }

    #[test]
    fn kinds_match_serde() {
        let (t, p, _) = scan(
            "{\"a\":1,\"b\":-2,\"c\":18446744073709551615,\"d\":18446744073709551616,\"e\":-0,\"f\":1.5,\"g\":1e3,\"h\":-9223372036854775808,\"i\":-9223372036854775809}\n",
        );
        let kinds: Vec<Kind> = p.row(0).iter().map(|r| r.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [Int, Int, Uint, Float, Float, Float, Float, Int, Float]
        );
        assert_eq!(p.row(0)[7].num, i64::MIN);
        // The same types serde_json's values give.
        let v: Value = serde_json::from_slice(&p.bytes).unwrap();
        for (c, (_, v)) in t.columns().iter().zip(v.as_object().unwrap()) {
            assert_eq!(Some(c.ty), SqlType::of_value(v), "{}", c.name);
        }
    }

    #[test]
    fn strings_names_and_scalars() {
        let (t, p, changes) = scan(
            "{\"at\":\"2024-01-01T00:00:00Z\",\"s\":\"x\\ty\",\"n\\u0000\":null,\"o\":{\"a\":[1,\"}\"]},\"b\":true}\n  \n7\n",
        );
        assert_eq!(p.len(), 2);
        let r = p.row(0);
        assert!(r[0].time && r[0].num == 1_704_067_200_000_000);
        assert_eq!(r[1].kind, Kind::StrEsc);
        assert_eq!(r[2].col, NO_COLUMN, "only null: no column");
        assert_eq!(p.text(&r[3]), b"{\"a\":[1,\"}\"]}");
        assert_eq!(p.value(&r[1], 0, true).unwrap(), "x\ty");
        let names: Vec<&str> = t.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["at", "s", "o", "b", "value"]);
        assert_eq!(changes.len(), 5);
        assert_eq!(p.row(1)[0].kind, Kind::Int);
    }

    #[test]
    fn a_known_shape_still_widens() {
        let mut t = Table::new(vec![Column {
            name: "at".into(),
            ty: SqlType::Timestamp,
        }]);
        let mut p = Page::default();
        let mut s = Scanner::new(false);
        let lines = "{\"at\":\"2024-01-01T00:00:00Z\"}\n{\"at\":\"soon\"}\n";
        let c = s.scan(&mut t, lines.into(), 0, &mut p).unwrap();
        assert_eq!(
            c,
            [Change::Widen {
                name: "at".into(),
                from: SqlType::Timestamp,
                to: SqlType::Text
            }]
        );
        let c = s.scan(&mut t, "{\"at\":5}\n".into(), 2, &mut p).unwrap();
        assert!(c.is_empty(), "text takes a number: {c:?}");
    }

    #[test]
    fn bad_json_names_the_record() {
        let mut s = Scanner::new(false);
        let mut p = Page::default();
        for bad in [
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1} x",
            "{\"a\":\"x",
            "{\"a\":1e999}",
            "{\"a\" 1}",
            "{\"a\":tru}",
            "[1",
            "{\"a\":\"\u{1}\"}",
        ] {
            let lines = format!("{{}}\n{bad}\n");
            let e = s
                .scan(&mut Table::default(), lines.into(), 10, &mut p)
                .unwrap_err();
            assert!(
                e.0.contains("record 12 of the load is not JSON"),
                "{bad}: {e}"
            );
        }
        let e = s
            .scan(&mut Table::default(), b"{}\n\"\xff\"\n".to_vec(), 0, &mut p)
            .unwrap_err();
        assert!(e.0.contains("record 2"), "{e}");
    }
}
