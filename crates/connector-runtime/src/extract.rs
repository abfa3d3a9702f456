//! Records out of a response body, as the bytes the API sent.
//!
//! For simple record paths (`$.a.b[*]`, `$[*]`) the body is parsed once and each record
//! is kept as borrowed raw JSON: no tree per record, no re-serialisation, numbers and
//! key order exactly as sent. Other paths go through the general JSONPath engine.
//!
//! Both paths treat the two things serde_json's modes disagree on the same way (see
//! `json_scan`): a lone surrogate escape refuses the page; a duplicate key makes the last
//! value win, so a page holding one goes through the general path.
//!
//! The fast path first tries its own walk (`walk`), which checks keys as it reads them;
//! on anything it does not handle, the serde walk and the scan decide, as before.

mod walk;

use std::borrow::Cow;
use std::fmt;

use connector_spec::JsonPath;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One record's JSON text: a single JSON value, the bytes the API sent (fast path) or
/// written by serde_json (general path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord<'a>(Cow<'a, str>);

impl<'a> RawRecord<'a> {
    /// A record's text out of a body already checked to be JSON.
    fn borrowed(text: &'a str) -> Self {
        Self(Cow::Borrowed(text))
    }

    /// The record's text.
    #[inline]
    pub fn get(&self) -> &str {
        &self.0
    }
}

impl From<&Value> for RawRecord<'static> {
    /// A record written from its value, compact.
    fn from(v: &Value) -> Self {
        Self(Cow::Owned(v.to_string()))
    }
}

/// One page of a response: the records and the rest of the body.
#[derive(Debug)]
pub struct Page<'a> {
    /// The body for the other JSONPaths (next cursor, totals); in the fast path the
    /// records' array is replaced by `null`.
    pub meta: Value,
    /// The records, compact JSON.
    pub records: Vec<RawRecord<'a>>,
    /// The records path's first step did not exist in the body at all.
    pub path_missing: bool,
}

/// A body that is not UTF-8 JSON.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExtractError {
    /// What is wrong, with the content type and the first bytes.
    pub message: String,
    /// The JSON stops before its end: a body cut short, worth fetching again.
    pub cut_short: bool,
}

impl ExtractError {
    fn new(message: String) -> Self {
        Self {
            message,
            cut_short: false,
        }
    }
}

/// How a stream's records are extracted; decided once per stream.
#[derive(Debug, Clone)]
pub struct Extractor {
    path: JsonPath,
    fast: Option<Vec<String>>,
}

impl Extractor {
    /// An extractor for `records`; `other_paths` are the stream's other body paths, which
    /// must not look inside the records for the fast path to be used.
    pub fn new(records: &JsonPath, other_paths: &[&JsonPath]) -> Self {
        let fast = records.simple_fields().and_then(|(fields, each)| {
            if !each {
                return None;
            }
            // The fast path hands other paths the body with the records' array replaced by
            // null: fine for siblings (`$.data.total` next to `$.data.items[*]`), not for a
            // path that reads inside the records, nor for paths it cannot see through.
            let overlaps = other_paths.iter().any(|p| match p.simple_fields() {
                Some((other, _)) => fields.is_empty() || other.starts_with(fields),
                None => true,
            });
            (!overlaps).then(|| fields.to_vec())
        });
        Self {
            path: records.clone(),
            fast,
        }
    }

    /// Whether the fast path is in use (for tests and the benchmark notes).
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// Splits a body into records and the rest.
    pub fn page<'a>(&self, body: &'a [u8], content_type: &str) -> Result<Page<'a>, ExtractError> {
        let text = std::str::from_utf8(body).map_err(|e| {
            ExtractError::new(format!(
                "the body is not UTF-8 (byte {} of {}; content-type: {}); first bytes: {}",
                e.valid_up_to(),
                body.len(),
                show_type(content_type),
                crate::http::snippet(body)
            ))
        })?;
        let not_json = |e: serde_json::Error| ExtractError {
            cut_short: e.is_eof(),
            message: format!(
                "the body is not JSON ({e}; content-type: {}); first bytes: {}",
                show_type(content_type),
                crate::http::snippet(body)
            ),
        };
        // Both paths must agree on what serde_json's two modes treat differently. The
        // fast path needs the scan on every page; the general path gets last-wins from
        // serde_json and refuses lone surrogates itself, so it scans only to word that
        // refusal the same way.
        let surrogate = |at: usize| {
            ExtractError::new(format!(
                "the body holds a lone UTF-16 surrogate escape `{}` at byte {at} of {} (content-type: {}): \
                 JSON text with an unpaired surrogate cannot be written as UTF-8, so the page is refused; first bytes: {}",
                crate::printable::api_text(&String::from_utf8_lossy(
                    &body[at..body.len().min(at + 6)]
                )),
                body.len(),
                show_type(content_type),
                crate::http::snippet(body)
            ))
        };
        let not_json = |e: serde_json::Error| match crate::json_scan::scan(body).lone_surrogate {
            Some(at) => surrogate(at),
            None => not_json(e),
        };
        if let Some(fields) = &self.fast {
            let mut out = Vec::new();
            if let Some((meta, found)) = walk::walk(text, fields, &mut out) {
                return Ok(Page {
                    meta,
                    records: out,
                    path_missing: !found,
                });
            }
            // The own walk gave up: the scan and serde_json's walk decide.
            out.clear();
            let scan = crate::json_scan::scan(body);
            if let Some(at) = scan.lone_surrogate {
                return Err(surrogate(at));
            }
            // A duplicate key anywhere: the general path, where the last value wins
            // everywhere, records and metadata alike.
            if !scan.duplicate_keys {
                match serde_walk(text, fields, &mut out) {
                    Ok(Walked::Done(meta, found)) => {
                        return Ok(Page {
                            meta,
                            records: out,
                            path_missing: !found,
                        });
                    }
                    Ok(Walked::Fallback) => {}
                    Err(e) => return Err(not_json(e)),
                }
            }
        }
        let doc: Value = serde_json::from_str(text).map_err(not_json)?;
        let found = self
            .path
            .query(&doc)
            .map_err(|e| ExtractError::new(e.to_string()))?;
        let records: Vec<_> = found.into_iter().map(RawRecord::from).collect();
        let path_missing = records.is_empty() && first_step_missing(&self.path, &doc);
        Ok(Page {
            meta: doc,
            records,
            path_missing,
        })
    }
}

fn show_type(ct: &str) -> &str {
    if ct.is_empty() { "none" } else { ct }
}

/// Whether the first field named by a simple path is absent from the document.
fn first_step_missing(path: &JsonPath, doc: &Value) -> bool {
    match path.simple_fields() {
        Some((fields, _)) => fields
            .first()
            .is_some_and(|f| doc.as_object().is_some_and(|m| !m.contains_key(f))),
        None => false,
    }
}

/// Appends one record to a JSON-lines buffer: compact, one line, optional extra fields first.
pub fn write_line(buf: &mut Vec<u8>, raw: &RawRecord<'_>, extra: &[(String, Value)]) {
    write_text(buf, raw.get(), extra);
}

/// [`write_line`] for a record's JSON text (the bytes sent, or a transformed record).
pub fn write_text(buf: &mut Vec<u8>, text: &str, extra: &[(String, Value)]) {
    let text = text.as_bytes();
    let start = buf.len();
    if !extra.is_empty() && text.first() == Some(&b'{') {
        buf.push(b'{');
        for (i, (k, v)) in extra.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            // Keys and values of our own making: serialising them cannot fail.
            let _ = serde_json::to_writer(&mut *buf, k);
            buf.push(b':');
            let _ = serde_json::to_writer(&mut *buf, v);
        }
        let rest = &text[1..];
        if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
            buf.push(b',');
        }
        buf.extend_from_slice(rest);
    } else {
        buf.extend_from_slice(text);
    }
    // Raw line breaks can only be whitespace between tokens (serde_json refuses them
    // inside strings); most APIs send none, and a SIMD scan makes checking cheap.
    if memchr::memchr2(b'\n', b'\r', &buf[start..]).is_some() {
        minify_in_place(buf, start);
    }
    buf.push(b'\n');
}

/// Drops whitespace outside strings from `buf[start..]` (raw newlines only occur there).
fn minify_in_place(buf: &mut Vec<u8>, start: usize) {
    let mut w = start;
    let mut in_str = false;
    let mut esc = false;
    for r in start..buf.len() {
        let b = buf[r];
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
        } else if b.is_ascii_whitespace() {
            continue;
        }
        buf[w] = b;
        w += 1;
    }
    buf.truncate(w);
}

/// serde_json's walk of a body along the records' fields (the fast path's way out).
fn serde_walk<'a>(
    text: &'a str,
    fields: &[String],
    out: &mut Vec<RawRecord<'a>>,
) -> Result<Walked, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = Walk { fields, out }.deserialize(&mut de)?;
    de.end()?;
    Ok(walked)
}

/// The result of walking a body along the records' fields.
enum Walked {
    /// The rest of the body, and whether the records' array was there.
    Done(Value, bool),
    /// The records' location holds an object: the general engine decides.
    Fallback,
}

/// Walks down `fields`, collecting the array at the end as raw records (straight into
/// the page's vector: on a page of millions of records a second vector is megabytes).
struct Walk<'p, 'a> {
    fields: &'p [String],
    out: &'p mut Vec<RawRecord<'a>>,
}

impl<'de, 'p> DeserializeSeed<'de> for Walk<'p, 'de> {
    type Value = Walked;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Walked, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'p> Visitor<'de> for Walk<'p, 'de> {
    type Value = Walked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walked, A::Error> {
        if self.fields.is_empty() {
            while let Some(r) = seq.next_element::<&'de RawValue>()? {
                self.out.push(RawRecord::borrowed(r.get()));
            }
            Ok(Walked::Done(Value::Null, true))
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Walked::Done(Value::Null, false))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walked, A::Error> {
        let Some((first, rest)) = self.fields.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Walked::Fallback);
        };
        let mut meta = Map::new();
        let mut found = false;
        let out = self.out;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == first.as_str() {
                match map.next_value_seed(Walk {
                    fields: rest,
                    out: &mut *out,
                })? {
                    Walked::Done(inner, f) => {
                        found = f;
                        meta.insert(key.into_owned(), inner);
                    }
                    Walked::Fallback => {
                        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                        return Ok(Walked::Fallback);
                    }
                }
            } else {
                let v: Value = map.next_value()?;
                meta.insert(key.into_owned(), v);
            }
        }
        Ok(Walked::Done(Value::Object(meta), found))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Walked, E> {
        Ok(Walked::Done(Value::Null, false))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Walked, E> {
        Ok(Walked::Done(Value::Null, false))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Walked, E> {
        Ok(Walked::Done(Value::Null, false))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Walked, E> {
        Ok(Walked::Done(Value::Null, false))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Walked, E> {
        Ok(Walked::Done(Value::Null, false))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Walked, E> {
        Ok(Walked::Done(Value::Null, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(ex: &Extractor, body: &str) -> (Vec<String>, Value, bool) {
        let page = ex.page(body.as_bytes(), "application/json").unwrap();
        let mut buf = Vec::new();
        for r in &page.records {
            write_line(&mut buf, r, &[]);
        }
        let text = String::from_utf8(buf).unwrap();
        (
            text.lines().map(str::to_owned).collect(),
            page.meta,
            page.path_missing,
        )
    }

    #[test]
    fn fast_path_keeps_bytes_exactly() {
        let next = JsonPath::new("$.next_cursor");
        let ex = Extractor::new(&JsonPath::new("$.data.orders[*]"), &[&next]);
        assert!(ex.is_fast());
        let body = r#"{"data": {"orders": [{"id": 1, "total": 12.50, "b": 1, "a": 2}, {"id":2,"s":"x\ny"}]}, "next_cursor": "c2"}"#;
        let (l, meta, missing) = lines(&ex, body);
        assert_eq!(
            l,
            vec![
                r#"{"id": 1, "total": 12.50, "b": 1, "a": 2}"#,
                r#"{"id":2,"s":"x\ny"}"#
            ]
        );
        assert_eq!(
            next.first(&meta).unwrap(),
            Some(&Value::String("c2".into()))
        );
        assert!(!missing);
    }

    #[test]
    fn pretty_records_become_one_line() {
        let ex = Extractor::new(&JsonPath::new("$[*]"), &[]);
        let body = "[\n  {\n    \"id\": 1,\n    \"s\": \"a b\"\n  }\n]";
        let (l, _, _) = lines(&ex, body);
        assert_eq!(l, vec![r#"{"id":1,"s":"a b"}"#]);
    }

    #[test]
    fn general_path_and_overlap() {
        let total = JsonPath::new("$.orders.length");
        let ex = Extractor::new(&JsonPath::new("$.orders[*]"), &[&total]);
        assert!(!ex.is_fast());
        let sibling = JsonPath::new("$.data.total");
        let similar = JsonPath::new("$.items_next");
        assert!(Extractor::new(&JsonPath::new("$.data.items[*]"), &[&sibling]).is_fast());
        assert!(Extractor::new(&JsonPath::new("$.items[*]"), &[&similar]).is_fast());
        assert!(
            !Extractor::new(&JsonPath::new("$.items[*]"), &[&JsonPath::new("$..next")]).is_fast()
        );
        let ex = Extractor::new(&JsonPath::new("$.orders[?@.id > 1]"), &[]);
        let (l, _, _) = lines(&ex, r#"{"orders": [{"id": 1}, {"id": 2}]}"#);
        assert_eq!(l, vec![r#"{"id":2}"#]);
    }

    #[test]
    fn missing_path_is_noticed() {
        let ex = Extractor::new(&JsonPath::new("$.items[*]"), &[]);
        let (l, _, missing) = lines(&ex, r#"{"orders": [{"id": 1}]}"#);
        assert!(l.is_empty() && missing);
        let (l, _, missing) = lines(&ex, r#"{"items": []}"#);
        assert!(l.is_empty() && !missing);
    }

    #[test]
    fn object_at_records_falls_back() {
        let ex = Extractor::new(&JsonPath::new("$.byid[*]"), &[]);
        let (l, _, _) = lines(&ex, r#"{"byid": {"a": {"id": 1}, "b": {"id": 2}}}"#);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn extra_fields_spliced_in_front() {
        let raw = RawRecord::from(&serde_json::json!({"x": 1}));
        let mut buf = Vec::new();
        write_line(&mut buf, &raw, &[("order_id".into(), Value::from(7))]);
        let empty = RawRecord::from(&serde_json::json!({}));
        write_line(&mut buf, &empty, &[("order_id".into(), Value::from(7))]);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"order_id\":7,\"x\":1}\n{\"order_id\":7}\n"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let ex = Extractor::new(&JsonPath::new("$.a[*]"), &[]);
        let e = ex
            .page(b"<html>oops</html>", "text/html")
            .unwrap_err()
            .message;
        assert!(
            e.contains("not JSON") && e.contains("text/html") && e.contains("<html>"),
            "{e}"
        );
        let e = ex
            .page(b"{\"a\": [\xff]}", "application/json")
            .unwrap_err()
            .message;
        assert!(e.contains("not UTF-8"), "{e}");
        let e = ex.page(b"{\"a\": [1, 2", "application/json").unwrap_err();
        assert!(e.message.contains("not JSON") && e.cut_short, "{e}");
        assert!(
            !ex.page(b"{\"a\": [1, 2]]", "application/json")
                .unwrap_err()
                .cut_short
        );
    }

    /// The simple path (fast) and a filter (general) over the same body.
    fn both(body: &str) -> [Result<Vec<String>, String>; 2] {
        let fast = Extractor::new(&JsonPath::new("$.data[*]"), &[&JsonPath::new("$.next")]);
        let general = Extractor::new(&JsonPath::new("$.data[?@.id]"), &[&JsonPath::new("$.next")]);
        assert!(fast.is_fast() && !general.is_fast());
        [fast, general].map(|ex| match ex.page(body.as_bytes(), "application/json") {
            Ok(page) => {
                let mut buf = Vec::new();
                for r in &page.records {
                    write_line(&mut buf, r, &[]);
                }
                let next = JsonPath::new("$.next").first(&page.meta).unwrap().cloned();
                let mut l: Vec<String> = String::from_utf8(buf)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                l.push(format!("next={}", next.unwrap_or(Value::Null)));
                Ok(l)
            }
            Err(e) => Err(e.message),
        })
    }

    #[test]
    fn duplicate_keys_last_wins_on_both_paths() {
        let cases = [
            r#"{"data":[{"id":1,"id":2,"x":"a"}],"next":"c"}"#,
            r#"{"data":[{"id":1}],"next":"c1","next":"c2"}"#,
            r#"{"data":[{"id":1}],"data":[{"id":2}],"next":null}"#,
            r#"{"data":[{"id":1,"o":{"k":1,"k":2}}]}"#,
        ];
        let want = [
            vec![r#"{"id":2,"x":"a"}"#, r#"next="c""#],
            vec![r#"{"id":1}"#, r#"next="c2""#],
            vec![r#"{"id":2}"#, "next=null"],
            vec![r#"{"id":1,"o":{"k":2}}"#, "next=null"],
        ];
        for (body, want) in cases.iter().zip(want) {
            let [fast, general] = both(body);
            assert_eq!(fast, general, "{body}");
            assert_eq!(fast.unwrap(), want, "{body}");
        }
    }

    #[test]
    fn lone_surrogates_refused_on_both_paths() {
        for body in [
            r#"{"data":[{"id":1,"s":"\ud800"}]}"#,
            r#"{"data":[{"id":1,"\udc00":1}]}"#,
            r#"{"data":[{"id":1}],"next":"\ud800x"}"#,
        ] {
            let [fast, general] = both(body);
            assert_eq!(fast, general, "{body}");
            let e = fast.unwrap_err();
            assert!(
                e.contains("lone UTF-16 surrogate") && e.contains("byte "),
                "{e}"
            );
        }
        // A proper pair is fine and kept byte for byte on the fast path.
        let [fast, _] = both(r#"{"data":[{"id":1,"s":"\ud83d\ude00"}]}"#);
        assert_eq!(fast.unwrap()[0], r#"{"id":1,"s":"\ud83d\ude00"}"#);
        // A body cut inside a pair is still "cut short", worth fetching again.
        let ex = Extractor::new(&JsonPath::new("$.data[*]"), &[]);
        let e = ex
            .page(br#"{"data":[{"s":"\ud83d"#, "application/json")
            .unwrap_err();
        assert!(e.cut_short, "{}", e.message);
    }

    /// What the own walk gives up on is decided as before: duplicates at any depth go
    /// through the general path, lone surrogates refuse the page, both paths alike.
    #[test]
    fn odd_json_alike_on_both_paths_at_any_depth() {
        let dups = [
            // Duplicates nested at depths 2, 3 and 4, and in a later record only.
            (
                r#"{"data":[{"id":1,"o":{"k":1,"k":2}}]}"#,
                vec![r#"{"id":1,"o":{"k":2}}"#],
            ),
            (
                r#"{"data":[{"id":1,"o":{"p":{"k":1,"j":0,"k":2}}}]}"#,
                vec![r#"{"id":1,"o":{"p":{"k":2,"j":0}}}"#],
            ),
            (
                r#"{"data":[{"id":1,"o":[{"p":{"q":{"k":1,"k":[2]}}}]}]}"#,
                vec![r#"{"id":1,"o":[{"p":{"q":{"k":[2]}}}]}"#],
            ),
            (
                r#"{"data":[{"id":1,"x":2},{"id":2,"x":3},{"id":3,"x":4,"id":5}]}"#,
                vec![
                    r#"{"id":1,"x":2}"#,
                    r#"{"id":2,"x":3}"#,
                    r#"{"id":5,"x":4}"#,
                ],
            ),
            // An escaped key is the same key as its plain spelling.
            (
                r#"{"data":[{"id":1,"a":1,"\u0061":2}]}"#,
                vec![r#"{"id":1,"a":2}"#],
            ),
        ];
        for (body, want) in dups {
            let [fast, general] = both(body);
            assert_eq!(fast, general, "{body}");
            let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
            want.push("next=null".into());
            assert_eq!(fast.unwrap(), want, "{body}");
        }
        // The same keys in different records and objects, or an escaped key alone, are
        // no duplicates: the fast path keeps the bytes as sent.
        for body in [
            r#"{"data":[{"id":1,"o":{"id":1}},{"id":2, "o":{"id":2}}]}"#,
            r#"{"data":[{"\u0061":1,"b":{"a":2}}]}"#,
        ] {
            let [fast, _] = both(body);
            let lines = fast.unwrap();
            let inner = body
                .trim_start_matches(r#"{"data":["#)
                .trim_end_matches("]}");
            assert_eq!(lines[..lines.len() - 1].join(","), inner, "{body}");
        }
        for body in [
            r#"{"data":[{"id":1},{"id":2,"o":{"p":{"s":"x\udc00"}}}]}"#,
            r#"{"data":[{"id":1,"o":{"\ud800":1}}]}"#,
            r#"{"data":[{"id":1,"o":{"\ud800\u0041":1}}]}"#,
            r#"{"data":[{"id":1}],"next":{"a":"\ud800"}}"#,
        ] {
            let [fast, general] = both(body);
            assert_eq!(fast, general, "{body}");
            assert!(
                fast.unwrap_err().contains("lone UTF-16 surrogate"),
                "{body}"
            );
        }
    }

    /// A small deterministic generator of page bodies (splitmix64): records with few
    /// keys (so that some repeat), nested objects and arrays, escapes, surrogates,
    /// numbers of every form, whitespace, and sometimes a broken byte.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }

        fn ws(&mut self, out: &mut String) {
            if self.below(4) == 0 {
                out.push_str(self.pick(&[" ", "\n  ", "\t", "\r\n", "   "]));
            }
        }

        fn string(&mut self, out: &mut String) {
            out.push('"');
            for _ in 0..self.below(4) {
                out.push_str(self.pick(&[
                    "abc",
                    "x y",
                    "é",
                    "{}:,[]",
                    r#"\""#,
                    r"\\",
                    r"\n",
                    r"\/",
                    r"\u0061",
                    r"\u00e9",
                    r"\ud83d\ude00",
                    r"\uDBFF\uDFFF",
                    r"\ud800",
                    r"\udc00",
                    r"\ud800\u0041",
                    r"\ud800\n",
                ]));
            }
            out.push('"');
        }

        fn key(&mut self, out: &mut String) {
            if self.below(12) == 0 {
                self.string(out);
            } else {
                out.push_str(self.pick(&[
                    r#""id""#,
                    r#""a""#,
                    r#""b""#,
                    r#""customer_id""#,
                    r#""abcdefghijklmnopq1""#,
                    r#""abcdefghijklmnopq2""#,
                    r#""""#,
                    r#""\u0061""#,
                ]));
            }
        }

        fn value(&mut self, depth: usize, out: &mut String) {
            let pick = if depth > 4 {
                3 + self.below(4)
            } else {
                self.below(7)
            };
            match pick {
                0 | 1 => {
                    out.push('{');
                    for i in 0..self.below(5) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        self.key(out);
                        self.ws(out);
                        out.push(':');
                        self.ws(out);
                        self.value(depth + 1, out);
                        self.ws(out);
                    }
                    out.push('}');
                }
                2 => {
                    out.push('[');
                    for i in 0..self.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        self.value(depth + 1, out);
                    }
                    out.push(']');
                }
                3 => self.string(out),
                4 => out.push_str(self.pick(&[
                    "0", "-0", "12", "-3.25", "1e5", "1E+2", "2.5e-3", "0.0", "1e999",
                ])),
                5 => out.push_str(self.pick(&["true", "false", "null"])),
                _ => out.push_str(&self.below(100_000).to_string()),
            }
        }

        /// A page: the records' array among other fields, or a bare array.
        fn body(&mut self) -> String {
            let mut out = String::new();
            let records = |g: &mut Self, out: &mut String| {
                out.push('[');
                for i in 0..g.below(6) {
                    if i > 0 {
                        out.push(',');
                    }
                    g.ws(out);
                    // Records mostly share their keys, as an API's do.
                    if g.below(3) == 0 {
                        out.push_str(r#"{"id":1,"a":"x","b":{"a":1,"id":2}}"#);
                    } else {
                        g.value(1, out);
                    }
                    g.ws(out);
                }
                out.push(']');
            };
            match self.below(5) {
                0 => records(self, &mut out),
                _ => {
                    out.push('{');
                    let n = self.below(4);
                    let at = self.below(n + 1);
                    for i in 0..=n {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(&mut out);
                        if i == at {
                            out.push_str(self.pick(&[r#""data""#, r#""data""#, r#""dat\u0061""#]));
                            out.push(':');
                            self.ws(&mut out);
                            match self.below(12) {
                                0 => self.value(1, &mut out),
                                _ => records(self, &mut out),
                            }
                        } else {
                            out.push_str(self.pick(&[r#""next""#, r#""total""#, r#""data""#]));
                            out.push(':');
                            self.value(1, &mut out);
                        }
                    }
                    out.push('}');
                }
            }
            self.ws(&mut out);
            out
        }

        /// Breaks the text now and then: cuts it, drops or inserts a byte.
        fn mangle(&mut self, text: &mut String) {
            let mut b = std::mem::take(text).into_bytes();
            let at = self.below(b.len() + 1);
            match self.below(3) {
                0 => b.truncate(at),
                1 => {
                    if at < b.len() {
                        b.remove(at);
                    }
                }
                _ => {
                    let junk =
                        self.pick(&["\"", "\\", "{", "}", ":", ",", "]", "0", "\t", "\x0c", "x"]);
                    b.splice(at..at, junk.bytes());
                }
            }
            *text = String::from_utf8_lossy(&b).into_owned();
        }
    }

    /// The own walk's answer, when it gives one, is the serde walk's, and the scan finds
    /// nothing in such a page; over bodies of every kind, broken ones included.
    #[test]
    fn own_walk_answers_as_the_serde_walk_does() {
        let fields = ["data".to_owned()];
        let mut g = Gen(5);
        let (mut answered, mut gave_up) = (0, 0);
        for round in 0..20_000 {
            let mut body = g.body();
            if round % 4 == 3 {
                g.mangle(&mut body);
            }
            for fields in [&fields[..], &[]] {
                let mut own = Vec::new();
                let Some((meta, found)) = walk::walk(&body, fields, &mut own) else {
                    gave_up += 1;
                    continue;
                };
                answered += 1;
                let scan = crate::json_scan::scan(body.as_bytes());
                assert_eq!(scan, crate::json_scan::Scan::default(), "{body}");
                let mut theirs = Vec::new();
                match serde_walk(&body, fields, &mut theirs) {
                    Ok(Walked::Done(m, f)) => {
                        assert_eq!((&own, &meta, found), (&theirs, &m, f), "{body}");
                    }
                    Ok(Walked::Fallback) => panic!("serde fell back on {body}"),
                    Err(e) => panic!("serde refused {body}: {e}"),
                }
                // And the general path reads the same records.
                // Both fast walks let a number serde_json cannot hold as f64 through;
                // the general path refuses it (as before the own walk).
                let Ok(general) = serde_json::from_str::<Value>(&body) else {
                    assert!(body.contains("1e999"), "{body}");
                    continue;
                };
                let path = if fields.is_empty() {
                    "$[*]"
                } else {
                    "$.data[*]"
                };
                let want: Vec<Value> = JsonPath::new(path)
                    .query(&general)
                    .unwrap()
                    .into_iter()
                    .cloned()
                    .collect();
                let got: Vec<Value> = own
                    .iter()
                    .map(|r| serde_json::from_str(r.get()).unwrap())
                    .collect();
                assert_eq!(got, want, "{body}");
            }
        }
        assert!(answered > 3_000 && gave_up > 3_000, "{answered} {gave_up}");
    }
}
