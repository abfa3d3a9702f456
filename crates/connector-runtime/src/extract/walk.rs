//! The fast path's own walk over a page: one pass that checks the JSON grammar, cuts
//! the records out as the bytes sent, and checks every object's keys for duplicates as
//! it reads them, so that no second scan of the page is needed.
//!
//! It is an optimisation with a way out, never a second opinion: on anything it does
//! not handle itself (a duplicate key, a lone surrogate or any `\u` escape it cannot
//! place, an escaped key, deep nesting, malformed text, an unexpected shape) it gives
//! up and the serde walk with the scan (`json_scan`) decides, exactly as before. When it
//! does answer, the answer is the one the serde walk would give: the same records, the
//! same metadata, the same "found" (the differential tests check this).
//!
//! Keys are compared as raw bytes, which is exact because escaped keys give up. An
//! object's keys are first compared with those of the last object at the same depth
//! found without duplicates (the previous record of the array, usually the same keys in
//! the same order): a length and one 16-byte compare per key; only an object that
//! differs is searched for a repeat.

use serde_json::{Map, Value};

use super::RawRecord;

/// Objects and arrays nested deeper than this (counted from the body's top) give up:
/// serde_json refuses a metadata value nested past 128, and deep records are rare.
const MAX_DEPTH: usize = 48;

/// Keys of objects with more keys than this are sorted to find a repeat, not compared
/// pair by pair.
const PAIRWISE: usize = 16;

/// Walks `text` down `fields` to the records' array; pushes the records onto `out` and
/// returns the rest of the body (the records' array as `null`) and whether the array
/// was there. None: the serde walk decides (`out` may hold some records then).
pub(super) fn walk<'a>(
    text: &'a str,
    fields: &[String],
    out: &mut Vec<RawRecord<'a>>,
) -> Option<(Value, bool)> {
    let mut w = Walker {
        text,
        t: text.as_bytes(),
        i: 0,
        keys: Vec::new(),
        clean: Vec::new(),
    };
    let found = w.level(fields, 0, out)?;
    w.ws();
    (w.i == w.t.len()).then_some(found)
}

/// A key: its first 16 bytes (zero after its end), where its text starts in the body
/// and how long it is (without the quotes).
#[derive(Clone, Copy)]
struct Key {
    head: u128,
    at: usize,
    len: usize,
}

/// For each length up to 16, which bytes of a 16-byte read belong to the key.
const KEEP: [u128; 17] = {
    let mut k = [0; 17];
    let mut n = 1;
    while n < 16 {
        k[n] = (1u128 << (8 * n)) - 1;
        n += 1;
    }
    k[16] = u128::MAX;
    k
};

impl Key {
    /// The key `t[at..at + len]`: one 16-byte read away from the end of the body.
    #[inline(always)]
    fn new(t: &[u8], at: usize, len: usize) -> Self {
        let head = match t.get(at..).and_then(<[u8]>::first_chunk::<16>) {
            Some(w) => u128::from_le_bytes(*w) & KEEP[len.min(16)],
            None => {
                let mut w = [0u8; 16];
                let n = len.min(16);
                if let (Some(dst), Some(src)) = (w.get_mut(..n), t.get(at..at + n)) {
                    dst.copy_from_slice(src);
                }
                u128::from_le_bytes(w)
            }
        };
        Self { head, at, len }
    }

    /// Whether two keys of `t` have the same bytes.
    #[inline(always)]
    fn same(&self, other: &Self, t: &[u8]) -> bool {
        self.head == other.head
            && self.len == other.len
            && (self.len <= 16
                || t.get(self.at + 16..self.at + self.len)
                    == t.get(other.at + 16..other.at + other.len))
    }
}

struct Walker<'a> {
    text: &'a str,
    t: &'a [u8],
    /// Index of the next byte to read.
    i: usize,
    /// The keys of the open objects, innermost last.
    keys: Vec<Key>,
    /// Per depth, the keys of the last object found without duplicates there.
    clean: Vec<Vec<Key>>,
}

impl<'a> Walker<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.t.get(self.i).copied()
    }

    /// Skips JSON whitespace (serde_json's four bytes, no others).
    #[inline(always)]
    fn ws(&mut self) {
        // Most bodies are compact: one compare settles it.
        while let Some(&b) = self.t.get(self.i)
            && b <= b' '
            && matches!(b, b' ' | b'\n' | b'\t' | b'\r')
        {
            self.i += 1;
        }
    }

    /// Reads `b` (after whitespace) or gives up.
    #[inline]
    fn expect(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.peek()? == b).then(|| self.i += 1)
    }

    /// One level of the path: an object holding `fields[0]`, or the records' array when
    /// `fields` is empty. Returns the level's metadata and whether the array was found.
    fn level(
        &mut self,
        fields: &[String],
        depth: usize,
        out: &mut Vec<RawRecord<'a>>,
    ) -> Option<(Value, bool)> {
        self.ws();
        let Some((first, rest)) = fields.split_first() else {
            self.records(depth + 1, out)?;
            return Some((Value::Null, true));
        };
        self.expect(b'{')?;
        let mut meta = Map::new();
        let mut found = false;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some((Value::Object(meta), false));
        }
        loop {
            let key = self.plain_key()?;
            let key = self.text.get(key.at..key.at + key.len)?;
            self.expect(b':')?;
            self.ws();
            let value = if key == first.as_str() {
                let (inner, f) = self.level(rest, depth + 1, out)?;
                found = f;
                inner
            } else {
                let start = self.i;
                self.value(depth + 1)?;
                // serde_json parses the value itself: numbers and strings exactly as
                // the general path reads them (a number it refuses gives up too).
                serde_json::from_str(self.text.get(start..self.i)?).ok()?
            };
            // A key twice at this level: the general path, where the last one wins.
            if meta.insert(key.to_owned(), value).is_some() {
                return None;
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some((Value::Object(meta), found));
                }
                _ => return None,
            }
            self.ws();
        }
    }

    /// The records' array: each element's text goes onto `out`.
    fn records(&mut self, depth: usize, out: &mut Vec<RawRecord<'a>>) -> Option<()> {
        self.ws();
        if self.peek()? != b'[' {
            return None;
        }
        self.elements(depth, |w, start| {
            out.push(RawRecord::borrowed(w.text.get(start..w.i)?));
            Some(())
        })
    }

    /// An array's elements, from its `[` at the cursor to past its `]`; `each` sees the
    /// walk after every element and where that element began.
    fn elements(
        &mut self,
        depth: usize,
        mut each: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            let start = self.i;
            self.value(depth)?;
            each(self, start)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
            self.ws();
        }
    }

    /// One value at the cursor (no whitespace before it), inside `depth` containers.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(drop)
            }
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => None,
        }
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        let end = self.i + w.len();
        (self.t.get(self.i..end)? == w).then(|| self.i = end)
    }

    /// A number as serde_json's grammar has it: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)?
    /// ([eE] [+-]? [0-9]+)?.
    fn number(&mut self) -> Option<()> {
        let t = self.t;
        let mut i = self.i;
        let digits = |mut i: usize| {
            while let Some(b'0'..=b'9') = t.get(i) {
                i += 1;
            }
            i
        };
        if t.get(i) == Some(&b'-') {
            i += 1;
        }
        match t.get(i)? {
            b'0' => {
                i += 1;
                if let Some(b'0'..=b'9') = t.get(i) {
                    return None;
                }
            }
            b'1'..=b'9' => i = digits(i + 1),
            _ => return None,
        }
        if t.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        if let Some(b'e' | b'E') = t.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = t.get(i) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                return None;
            }
            i = end;
        }
        self.i = i;
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.elements(depth, |_, _| Some(()))
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        if self.clean.len() <= depth {
            self.clean.resize_with(depth + 1, Vec::new);
        }
        // The keys of the last clean object at this depth: while this one's keys are the
        // same, one at a time, they need not be kept; at the first that differs, the
        // ones before it are copied and every key is kept from then on.
        let mut last = std::mem::take(&mut self.clean[depth]);
        let base = self.keys.len();
        let mut matching = true;
        let mut n = 0;
        loop {
            let key = self.plain_key()?;
            if matching {
                if last.get(n).is_some_and(|k| k.same(&key, self.t)) {
                    n += 1;
                } else {
                    matching = false;
                    self.keys.extend_from_slice(&last[..n]);
                    self.keys.push(key);
                }
            } else {
                self.keys.push(key);
            }
            self.expect(b':')?;
            self.ws();
            if self.peek()? == b'"' {
                self.i += 1;
                self.string()?;
            } else {
                self.value(depth)?;
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
            self.ws();
        }
        if matching {
            // All of them keys of the last clean object (all or the first n): distinct.
            self.clean[depth] = last;
            return Some(());
        }
        let keys = &self.keys[base..];
        if has_repeat(self.t, keys) {
            return None;
        }
        last.clear();
        last.extend_from_slice(keys);
        self.clean[depth] = last;
        self.keys.truncate(base);
        Some(())
    }

    /// A key without escapes at the cursor; an escaped key gives up (its decoded text
    /// is what counts, and comparing bytes would not see `"a"` and `"\u0061"` alike).
    #[inline(always)]
    fn plain_key(&mut self) -> Option<Key> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let at = self.i;
        if self.string()? {
            return None;
        }
        Some(Key::new(self.t, at, self.i - 1 - at))
    }

    /// The rest of a string after its opening quote; Some(whether it holds an escape).
    /// Gives up on a control byte, a bad escape, a lone surrogate or the end of the text.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        self.skip_plain();
        if self.peek()? == b'"' {
            self.i += 1;
            return Some(false);
        }
        self.escaped_string()
    }

    /// [`string`](Self::string) from its first backslash or control byte on.
    #[inline(never)]
    fn escaped_string(&mut self) -> Option<bool> {
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(true);
                }
                b'\\' => self.escape()?,
                _ => return None,
            }
            self.skip_plain();
        }
    }

    /// Moves to the next `"`, `\` or control byte (or the end), eight bytes at a time.
    #[inline(always)]
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::MAX / 255;
        const HIGH: u64 = ONES << 7;
        while let Some(w) = self.t.get(self.i..).and_then(<[u8]>::first_chunk::<8>) {
            let x = u64::from_le_bytes(*w);
            // The lowest flagged byte of each test is exact (higher ones may be false).
            let ctrl = x.wrapping_sub(ONES * 0x20) & !x;
            let q = x ^ (ONES * u64::from(b'"'));
            let quote = q.wrapping_sub(ONES) & !q;
            let s = x ^ (ONES * u64::from(b'\\'));
            let slash = s.wrapping_sub(ONES) & !s;
            let hit = (ctrl | quote | slash) & HIGH;
            if hit != 0 {
                self.i += (hit.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        while let Some(&b) = self.t.get(self.i) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return;
            }
            self.i += 1;
        }
    }

    /// An escape at the cursor (on its backslash).
    fn escape(&mut self) -> Option<()> {
        match self.t.get(self.i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.i += 2;
                Some(())
            }
            b'u' => {
                let unit = hex4(self.t.get(self.i + 2..self.i + 6)?)?;
                self.i += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate needs a low one right after it.
                        if self.t.get(self.i..self.i + 2)? != b"\\u" {
                            return None;
                        }
                        let low = hex4(self.t.get(self.i + 2..self.i + 6)?)?;
                        self.i += 6;
                        (0xDC00..=0xDFFF).contains(&low).then_some(())
                    }
                    0xDC00..=0xDFFF => None,
                    _ => Some(()),
                }
            }
            _ => None,
        }
    }
}

/// Four hex digits (either case), as serde_json reads them.
fn hex4(b: &[u8]) -> Option<u16> {
    b.iter().try_fold(0u16, |n, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        Some(n << 4 | u16::from(d))
    })
}

/// Whether some key of `keys` occurs twice.
fn has_repeat(t: &[u8], keys: &[Key]) -> bool {
    if keys.len() <= PAIRWISE {
        return keys
            .iter()
            .enumerate()
            .any(|(i, a)| keys[..i].iter().any(|b| a.same(b, t)));
    }
    let mut texts: Vec<&[u8]> = keys
        .iter()
        .filter_map(|k| t.get(k.at..k.at + k.len))
        .collect();
    texts.sort_unstable();
    texts.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, fields: &[&str]) -> Option<(Vec<String>, Value, bool)> {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        let mut out = Vec::new();
        let (meta, found) = walk(body, &fields, &mut out)?;
        Some((
            out.iter().map(|r| r.get().to_owned()).collect(),
            meta,
            found,
        ))
    }

    #[test]
    fn cuts_records_and_keeps_the_rest() {
        let (recs, meta, found) = run(
            r#" {"data": {"items": [ {"id": 1, "s": "a\"b\\\/\u00e9\ud83d\ude00"} , 2, "x", [], {}, null, true, -0.5e+3 ], "total": 7}, "next": "c"} "#,
            &["data", "items"],
        )
        .unwrap();
        assert_eq!(
            recs,
            [
                r#"{"id": 1, "s": "a\"b\\\/\u00e9\ud83d\ude00"}"#,
                "2",
                r#""x""#,
                "[]",
                "{}",
                "null",
                "true",
                "-0.5e+3"
            ]
        );
        assert_eq!(
            meta,
            serde_json::json!({"data": {"items": null, "total": 7}, "next": "c"})
        );
        assert!(found);
        let (recs, meta, found) = run(r#"{"other": [1]}"#, &["data"]).unwrap();
        assert!(recs.is_empty() && !found);
        assert_eq!(meta, serde_json::json!({"other": [1]}));
        assert_eq!(run("[1, {\"a\": 2}]", &[]).unwrap().0, ["1", r#"{"a": 2}"#]);
    }

    #[test]
    fn gives_up_on_what_it_does_not_handle() {
        for body in [
            // Duplicate keys, at any depth, in records and around them.
            r#"{"d":[{"a":1,"a":2}]}"#,
            r#"{"d":[{"a":1,"b":{"x":1,"y":{"k":1,"k":2}}}]}"#,
            r#"{"d":[{"a":1,"b":2},{"a":1,"a":2}]}"#,
            r#"{"d":[{"a":{"p":1,"q":2}},{"a":{"p":1,"p":2}}]}"#,
            r#"{"d":[],"n":1,"n":2}"#,
            r#"{"d":[],"d":[]}"#,
            r#"{"d":[{"a":1,"aa":2,"b":3,"a":4}]}"#,
            // Escaped keys (decoded text counts) and lone surrogates anywhere.
            r#"{"d":[{"a":1,"\u0061":2}]}"#,
            r#"{"d":[{"\u0062":1}]}"#,
            r#"{"d":[{"s":"\ud800"}]}"#,
            r#"{"d":[{"s":"\udc00x"}]}"#,
            r#"{"d":[{"s":"\ud800\u0041"}]}"#,
            r#"{"d":[{"\ud800":1}]}"#,
            r#"{"d":[],"n":"\ud800"}"#,
            // Malformed or cut text.
            r#"{"d":[{"a":1,}]}"#,
            r#"{"d":[1,]}"#,
            r#"{"d":[01]}"#,
            r#"{"d":[1.]}"#,
            r#"{"d":[1e]}"#,
            r#"{"d":[-]}"#,
            r#"{"d":[tru]}"#,
            r#"{"d":["a\x"]}"#,
            "{\"d\":[\"a\tb\"]}",
            r#"{"d":[1]} x"#,
            r#"{"d":[1]"#,
            r#"{"d":["\u12"]}"#,
            // Shapes the serde walk decides, and what serde_json refuses as a value.
            r#"{"d":{"a":1}}"#,
            r#"{"d":3}"#,
            r#"[{"d":[]}]"#,
            r#"{"d":[],"n":1e999}"#,
        ] {
            assert!(run(body, &["d"]).is_none(), "{body}");
        }
        let deep = format!("{{\"d\":[{}{}]}}", "[".repeat(60), "]".repeat(60));
        assert!(run(&deep, &["d"]).is_none());
    }

    #[test]
    fn same_keys_in_other_objects_are_not_duplicates() {
        let body = r#"{"d":[{"a":1,"b":{"a":1,"b":2}},{"b":{"b":1},"a":[{"a":1},{"a":2}]},{"a":"a","b":"a"}],"a":1}"#;
        assert_eq!(run(body, &["d"]).unwrap().0.len(), 3);
        // Keys that differ only past 16 bytes, or in length, at the end of the body.
        let long = r#"{"d":[{"abcdefghijklmnopq1":1,"abcdefghijklmnopq2":2,"abcdefghijklmnop":3,"abcdefghijklmno":4,"x":{"y":1,"yy":2}}]}"#;
        assert!(run(long, &["d"]).is_some());
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let body = format!("{{\"d\":[{{{}}}]}}", many.join(","));
        assert!(run(&body, &["d"]).is_some());
        let body = format!("{{\"d\":[{{{},\"k7\":0}}]}}", many.join(","));
        assert!(run(&body, &["d"]).is_none());
    }

    #[test]
    fn key_compare_anywhere_in_the_text() {
        let same = |t: &[u8], a: (usize, usize), b: (usize, usize)| {
            Key::new(t, a.0, a.1).same(&Key::new(t, b.0, b.1), t)
        };
        // Short keys within 16 bytes of the end are copied, not read 16 bytes at once.
        assert!(!same(b"abcabd", (0, 3), (3, 3)));
        assert!(same(b"abcabc", (0, 3), (3, 3)));
        assert!(same(b"abcabc", (0, 0), (3, 0)));
        let t = b"xxxxxxxxxxxxxxxxxxabcdefghijklmnopabcdefghijklmnopzzzzzzzzzzzzzzzz";
        assert!(same(t, (18, 16), (34, 16)));
        assert!(same(t, (18, 15), (34, 15)));
        assert!(!same(t, (18, 16), (34, 15)));
        assert!(!same(t, (17, 16), (34, 16)));
        // Long keys: the head, then the rest; the same key near the end of the text.
        let t = b"abcdefghijklmnopq1abcdefghijklmnopq2abcdefghijklmnopq1";
        assert!(!same(t, (0, 18), (18, 18)));
        assert!(same(t, (0, 18), (36, 18)));
        assert!(same(t, (36, 18), (0, 18)));
        assert!(!same(t, (0, 17), (18, 16)));
        // Every placement of a short key, read whole or copied, gives the same head.
        let t = b"0123456789abcdef0123456789abcdef";
        for at in 0..16 {
            for len in 0..=16 - at {
                assert!(same(t, (at, len), (at + 16, len)), "{at} {len}");
                if len > 0 && at + len < 16 {
                    assert!(!same(t, (at, len), (at + 1, len)), "{at} {len}");
                }
            }
        }
    }
}
