//! Records out of a response body, as the bytes the API sent.
//!
//! For simple record paths (`$.a.b[*]`, `$[*]`) the body is parsed once and each record
//! is kept as borrowed raw JSON: no tree per record, no re-serialisation, numbers and
//! key order exactly as sent. Other paths go through the general JSONPath engine.
//!
//! Both paths treat the two things serde_json's modes disagree on the same way (see
//! `json_scan`): a lone surrogate escape refuses the page; a duplicate key makes the last
//! value win, so a page holding one goes through the general path.

use std::borrow::Cow;
use std::fmt;

use connector_spec::JsonPath;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One page of a response: the records and the rest of the body.
#[derive(Debug)]
pub struct Page<'a> {
    /// The body for the other JSONPaths (next cursor, totals); in the fast path the
    /// records' array is replaced by `null`.
    pub meta: Value,
    /// The records, compact JSON.
    pub records: Vec<Cow<'a, RawValue>>,
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
            let (scan, walked) = scan_beside(body, || {
                let mut de = serde_json::Deserializer::from_str(text);
                Walk {
                    fields,
                    out: &mut out,
                }
                .deserialize(&mut de)
                .and_then(|w| de.end().map(|()| w))
            });
            if let Some(at) = scan.lone_surrogate {
                return Err(surrogate(at));
            }
            // A duplicate key anywhere: the general path, where the last value wins
            // everywhere, records and metadata alike.
            if !scan.duplicate_keys {
                match walked {
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
        let records = found
            .into_iter()
            .map(|v| serde_json::value::to_raw_value(v).map(Cow::Owned))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExtractError::new(e.to_string()))?;
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
pub fn write_line(buf: &mut Vec<u8>, raw: &RawValue, extra: &[(String, Value)]) {
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

/// Pages from this size up are scanned on a second thread while the fast path walks them:
/// the SIMD scan costs about a third of the walk, a thread tens of microseconds; beside
/// saves wall time, inline CPU time (docs/performance.md, issue 11).
const SCAN_BESIDE_FROM: usize = 64 * 1024;

/// Runs the duplicate-key and surrogate scan of `body` and `walk` side by side (one after
/// the other for small pages) and returns both results.
fn scan_beside<T>(body: &[u8], walk: impl FnOnce() -> T) -> (crate::json_scan::Scan, T) {
    if body.len() < SCAN_BESIDE_FROM {
        return (crate::json_scan::scan(body), walk());
    }
    std::thread::scope(|s| {
        let side = std::thread::Builder::new()
            .name("json-scan".into())
            .spawn_scoped(s, || crate::json_scan::scan(body));
        let walked = walk();
        // No thread to be had, or one that failed: scan here instead.
        let scan = match side.map(|h| h.join()) {
            Ok(Ok(scan)) => scan,
            _ => crate::json_scan::scan(body),
        };
        (scan, walked)
    })
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
    out: &'p mut Vec<Cow<'a, RawValue>>,
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
                self.out.push(Cow::Borrowed(r));
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
        let raw = serde_json::value::to_raw_value(&serde_json::json!({"x": 1})).unwrap();
        let mut buf = Vec::new();
        write_line(&mut buf, &raw, &[("order_id".into(), Value::from(7))]);
        let empty = serde_json::value::to_raw_value(&serde_json::json!({})).unwrap();
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
}
