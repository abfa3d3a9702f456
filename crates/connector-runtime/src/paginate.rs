//! Which page comes next, and when to stop: one state machine per pagination kind.

use std::collections::HashSet;

use connector_spec::{JsonPath, PageParam, Pagination};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use url::Url;

use crate::extract::RawRecord;
use crate::printable;

/// Where the next request goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The stream's own URL, with the paginator's values placed in it.
    Params(Vec<Token>),
    /// A URL given by the API, used as it is.
    Url(Url),
}

/// One value the paginator sends (page number, offset, page size, cursor), and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Query parameter, header or body path.
    pub at: PageParam,
    /// The value: a number, or the cursor (a string, or a number from `next_record`).
    pub value: Value,
}

impl Token {
    /// The value as text, for a query parameter or a header.
    pub fn text(&self) -> String {
        text_of(&self.value)
    }
}

/// A string as it is, anything else as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// One page was all there is.
    Single,
    /// The API gave no next cursor, URL or link.
    NoNext,
    /// A page held no records.
    Empty,
    /// A page held fewer records than the page size.
    Short,
    /// The page's `has_more` flag was `false`.
    NoMore,
    /// A record met `stop_when`.
    Condition,
    /// The total count (or total pages) was reached.
    Total,
    /// `max_pages` was reached.
    MaxPages,
    /// An error rule skipped the response (`action: skip`).
    Skipped,
    /// An error rule ended the stream (`action: end`).
    Ended,
}

/// After a page: go on, or stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Fetch this next.
    Next(Target),
    /// The stream is complete.
    Done(Stop),
}

/// Pagination that cannot go on safely.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PaginateError(pub String);

/// The pagination state of one stream (or one child partition).
#[derive(Debug)]
pub struct Paginator {
    kind: Pagination,
    pages: u64,
    records: u64,
    offset: u64,
    page: u64,
    /// A string from the API, or what `next_record` gave (a string or a number).
    cursor: Option<Value>,
    seen: HashSet<String>,
    /// A record of the last page met `stop_when`.
    stopped: bool,
    /// The next cursor `next_record` made from the last page's last record.
    from_record: Option<Value>,
    /// Pages there are in all, counted from the first, as the last total read says.
    planned: Option<u64>,
}

impl Paginator {
    /// A paginator at the first page.
    pub fn new(kind: &Pagination) -> Self {
        let (offset, page) = match kind {
            Pagination::Offset { start, .. } => (*start, 0),
            Pagination::PageNumber { start, .. } => (0, *start),
            _ => (0, 0),
        };
        Self {
            kind: kind.clone(),
            pages: 0,
            records: 0,
            offset,
            page,
            cursor: None,
            seen: HashSet::new(),
            stopped: false,
            from_record: None,
            planned: None,
        }
    }

    /// The paginator's values for the first request.
    pub fn first(&self) -> Target {
        Target::Params(self.params())
    }

    /// The values to send, in order; a cursor is left out while there is none.
    fn params(&self) -> Vec<Token> {
        self.params_at(self.offset, self.page)
    }

    /// [`params`](Self::params) for the page at this offset and number.
    fn params_at(&self, offset: u64, page: u64) -> Vec<Token> {
        let t = |at: &PageParam, value: Value| Token {
            at: at.clone(),
            value,
        };
        match &self.kind {
            Pagination::Offset {
                limit,
                offset_param,
                limit_param,
                ..
            } => vec![
                t(offset_param, offset.into()),
                t(limit_param, (*limit).into()),
            ],
            Pagination::PageNumber {
                page_param,
                size,
                size_param,
                ..
            } => {
                let mut p = vec![t(page_param, page.into())];
                if let (Some(s), Some(n)) = (size, size_param) {
                    p.push(t(n, (*s).into()));
                }
                p
            }
            Pagination::Cursor {
                param, page_size, ..
            } => {
                let mut p = Vec::new();
                if let Some(ps) = page_size {
                    p.push(t(&ps.param, ps.value.into()));
                }
                if let Some(c) = &self.cursor {
                    p.push(t(param, c.clone()));
                }
                p
            }
            Pagination::None | Pagination::NextUrl { .. } | Pagination::LinkHeader { .. } => {
                Vec::new()
            }
        }
    }

    /// The `page` template variable: number, offset, limit, cursor.
    pub fn vars(&self) -> Value {
        self.vars_at(self.pages, self.offset, self.page)
    }

    /// [`vars`](Self::vars) of the page with this index, offset and number.
    fn vars_at(&self, index: u64, offset: u64, page: u64) -> Value {
        let limit = match &self.kind {
            Pagination::Offset { limit, .. } => Some(*limit),
            Pagination::PageNumber { size, .. } => *size,
            Pagination::Cursor { page_size, .. } => page_size.as_ref().map(|p| p.value),
            _ => None,
        };
        json!({
            "index": index,
            "number": page,
            "offset": offset,
            "limit": limit,
            "cursor": self.cursor,
        })
    }

    /// The values of the next page (what `advance` last returned for these kinds).
    #[cfg(test)]
    fn first_after(&self) -> Target {
        Target::Params(self.params())
    }

    /// Pages received so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// How many pages there are in all (the first included), as the last total the API
    /// sent says: offset and page-number pagination with `total` (or `total_pages`) only.
    /// `max_pages` caps it.
    pub fn planned_pages(&self) -> Option<u64> {
        let cap = self.kind.max_pages().unwrap_or(u64::MAX);
        self.planned.map(|p| p.min(cap))
    }

    /// The target and `page` variables of the page `k` pages after the next one, for
    /// fetching ahead: offset and page-number pagination only; `None` for any other kind
    /// or when the numbers would overflow. The paginator itself does not move.
    pub fn ahead(&self, k: u64) -> Option<(Target, Value)> {
        let (offset, page) = match &self.kind {
            Pagination::Offset { limit, .. } => {
                (self.offset.checked_add(k.checked_mul(*limit)?)?, self.page)
            }
            Pagination::PageNumber { .. } => (self.offset, self.page.checked_add(k)?),
            _ => return None,
        };
        let index = self.pages.checked_add(k)?;
        Some((
            Target::Params(self.params_at(offset, page)),
            self.vars_at(index, offset, page),
        ))
    }

    /// Reads a page's records where the pagination needs them, before anything else sees
    /// them: `stop_when` cuts the page at the first record that meets it (that record and
    /// the rest are dropped, and no further page is read); `next_record` makes the next
    /// cursor from the last record. Returns how many records to keep; without either
    /// rule, all of them, untouched.
    pub fn cut(&mut self, records: &[RawRecord<'_>], ctx: &Value) -> Result<usize, PaginateError> {
        self.from_record = None;
        let next = match &self.kind {
            Pagination::Cursor {
                next_record: Some(t),
                ..
            } => Some(t),
            _ => None,
        };
        let stop = self.kind.stop_when();
        if stop.is_none() && next.is_none() {
            return Ok(records.len());
        }
        let base = minijinja::Value::from(minijinja::value::Serde(ctx));
        let with = |raw: &RawRecord<'_>| -> Result<minijinja::Value, PaginateError> {
            let record: Value = serde_json::from_str(raw.get())
                .map_err(|e| PaginateError(format!("a record is not JSON: {e}")))?;
            Ok(minijinja::context! {
                record => minijinja::Value::from(minijinja::value::Serde(&record)),
                ..base.clone()
            })
        };
        if let Some(cond) = stop {
            for (i, raw) in records.iter().enumerate() {
                let meets = cond.holds(with(raw)?).map_err(|e| {
                    PaginateError(format!(
                        "pagination.stop_when `{}`: {}",
                        cond.source(),
                        printable::api_text(&e.to_string())
                    ))
                })?;
                if meets {
                    self.stopped = true;
                    return Ok(i);
                }
            }
        }
        if let (Some(t), Some(last)) = (next, records.last()) {
            let v = t.eval(with(last)?).map_err(|e| {
                PaginateError(format!(
                    "pagination.next_record `{}`: {}",
                    t.source(),
                    printable::api_text(&e.to_string())
                ))
            })?;
            self.from_record = Some(v);
        }
        Ok(records.len())
    }

    /// Decides what follows a page with `count` records.
    pub fn advance(
        &mut self,
        meta: &Value,
        headers: &HeaderMap,
        count: usize,
        request_url: &Url,
    ) -> Result<Step, PaginateError> {
        self.pages = add(self.pages, 1, "the page count")?;
        self.records = add(self.records, count as u64, "the record count")?;
        if self.pages == 1
            && matches!(
                self.kind,
                Pagination::NextUrl { .. } | Pagination::LinkHeader { .. }
            )
        {
            // A next link pointing back to the first page is a loop too.
            self.seen.insert(request_url.as_str().to_owned());
        }
        if matches!(self.kind, Pagination::None) {
            return Ok(Step::Done(Stop::Single));
        }
        if self.stopped {
            return Ok(Step::Done(Stop::Condition));
        }
        if count == 0 {
            return Ok(Step::Done(Stop::Empty));
        }
        if self.kind.max_pages().is_some_and(|m| self.pages >= m) {
            return Ok(Step::Done(Stop::MaxPages));
        }
        if let Some(path) = self.kind.has_more()
            && !more_at(path, meta)?
        {
            return Ok(Step::Done(Stop::NoMore));
        }
        let kind = self.kind.clone();
        match &kind {
            Pagination::None => Ok(Step::Done(Stop::Single)),
            Pagination::Offset { limit, total, .. } => {
                if (count as u64) < *limit {
                    return Ok(Step::Done(Stop::Short));
                }
                self.offset = add(self.offset, *limit, "the next offset")?;
                if let Some(t) = number_at(total.as_ref(), meta)? {
                    self.planned = Some(offset_pages(t, self.offset, *limit, self.pages));
                    if self.offset >= t {
                        return Ok(Step::Done(Stop::Total));
                    }
                }
                Ok(Step::Next(Target::Params(self.params())))
            }
            Pagination::PageNumber {
                size,
                total,
                total_pages,
                start,
                ..
            } => {
                if size.is_some_and(|s| (count as u64) < s) {
                    return Ok(Step::Done(Stop::Short));
                }
                let records_total = number_at(total.as_ref(), meta)?;
                self.planned = match (number_at(total_pages.as_ref(), meta)?, records_total, size) {
                    (Some(tp), _, _) => Some(tp),
                    (None, Some(t), Some(s)) => Some(t.div_ceil((*s).max(1))),
                    _ => None,
                };
                if let Some(tp) = number_at(total_pages.as_ref(), meta)? {
                    // Pages numbered from `start`: this was page number `page - start + 1`
                    // of `tp` (so no sum can overflow, whatever the API claims).
                    if self.page.saturating_sub(*start) + 1 >= tp {
                        return Ok(Step::Done(Stop::Total));
                    }
                }
                if let Some(t) = records_total
                    && self.records >= t
                {
                    return Ok(Step::Done(Stop::Total));
                }
                self.page = add(self.page, 1, "the next page number")?;
                Ok(Step::Next(Target::Params(self.params())))
            }
            Pagination::Cursor {
                next,
                next_header,
                next_record,
                page_size,
                ..
            } => {
                let token = match (next, next_header, next_record) {
                    (Some(p), _, _) => string_at(p, meta)?.map(Value::String),
                    (None, Some(h), _) => headers
                        .get(h.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned())),
                    (None, None, Some(t)) => {
                        // No cursor from the API: a short page is the only sign of the end.
                        if page_size
                            .as_ref()
                            .is_some_and(|ps| (count as u64) < ps.value)
                        {
                            return Ok(Step::Done(Stop::Short));
                        }
                        record_cursor(self.from_record.take(), t.source())?
                    }
                    (None, None, None) => None,
                };
                let Some(token) = token else {
                    return Ok(Step::Done(Stop::NoNext));
                };
                self.check_repeat(&text_of(&token), "cursor")?;
                self.cursor = Some(token);
                Ok(Step::Next(Target::Params(self.params())))
            }
            Pagination::NextUrl { next, .. } => {
                let Some(link) = string_at(next, meta)? else {
                    return Ok(Step::Done(Stop::NoNext));
                };
                let url = request_url.join(&link).map_err(|e| {
                    PaginateError(format!(
                        "the next page URL `{}` from {} is not a URL: {e}",
                        printable::api_text(&link),
                        next.source()
                    ))
                })?;
                self.check_repeat(url.as_str(), "next URL")?;
                Ok(Step::Next(Target::Url(url)))
            }
            Pagination::LinkHeader { rel, .. } => {
                let Some(url) = link_target(headers, rel, request_url)? else {
                    return Ok(Step::Done(Stop::NoNext));
                };
                self.check_repeat(url.as_str(), "Link rel=\"next\" URL")?;
                Ok(Step::Next(Target::Url(url)))
            }
        }
    }

    fn check_repeat(&mut self, token: &str, what: &str) -> Result<(), PaginateError> {
        if !self.seen.insert(token.to_owned()) {
            return Err(PaginateError(format!(
                "the API returned the {what} `{}` a second time (page {}); stopping instead of looping forever",
                printable::api_text(token),
                self.pages
            )));
        }
        Ok(())
    }
}

/// Pages of an offset stream in all: the `done` pages so far, plus one per `limit`
/// records from the `next` offset up to the `total`.
fn offset_pages(total: u64, next: u64, limit: u64, done: u64) -> u64 {
    let more = total.saturating_sub(next).div_ceil(limit.max(1));
    done.saturating_add(more)
}

/// `a + b`, or an error naming what overflowed (the API's numbers must not wrap or panic).
fn add(a: u64, b: u64, what: &str) -> Result<u64, PaginateError> {
    a.checked_add(b).ok_or_else(|| {
        PaginateError(format!(
            "{what} ({a} + {b}) does not fit in 64 bits; stopping instead of wrapping around"
        ))
    })
}

/// The JSON type of a value, in words.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A count at a JSONPath (a total or a number of pages): a non-negative integer, or a
/// string holding one. Absent or null: none on this page. Anything else is an error,
/// never a silent zero or a wrapped-around number.
fn number_at(path: Option<&JsonPath>, meta: &Value) -> Result<Option<u64>, PaginateError> {
    let Some(path) = path else { return Ok(None) };
    let v = path.first(meta).map_err(|e| PaginateError(e.to_string()))?;
    let bad = |what: String| {
        PaginateError(format!(
            "the count at {} is {what}, not a non-negative whole number; check the pagination's `total`/`total_pages` path",
            path.source()
        ))
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => Ok(Some(u)),
            // 20.0 is a whole number; 2.5, -1 and 1e30 are not counts.
            None => match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                    Ok(Some(f as u64))
                }
                _ => Err(bad(format!("the number {n}"))),
            },
        },
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("the string \"{}\"", printable::api_text(s)))),
        Some(other) => Err(bad(type_name(other).to_owned())),
    }
}

/// The `has_more` flag at a JSONPath: `true` or `false`; anything else (absent, null, a
/// string) is an error rather than a guess, since either guess can be wrong: stopping
/// loses pages, going on loops on an API that never says no.
fn more_at(path: &JsonPath, meta: &Value) -> Result<bool, PaginateError> {
    match path.first(meta).map_err(|e| PaginateError(e.to_string()))? {
        Some(Value::Bool(b)) => Ok(*b),
        found => Err(PaginateError(format!(
            "pagination.has_more {} is {}, not true or false; point it at the API's boolean that says whether more pages follow",
            path.source(),
            match found {
                None | Some(Value::Null) => "absent or null".to_owned(),
                Some(v) => format!("{} ({})", type_name(v), printable::api_text(&v.to_string())),
            }
        ))),
    }
}

/// A non-empty string (or number) at a JSONPath; absent, null or "" means no next page.
/// Any other type is an error: an object taken as "no cursor" would end a stream early.
fn string_at(path: &JsonPath, meta: &Value) -> Result<Option<String>, PaginateError> {
    let v = path.first(meta).map_err(|e| PaginateError(e.to_string()))?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(PaginateError(format!(
            "the next page value at {} is {} ({}), not a string or a number; point the path at the cursor or URL itself",
            path.source(),
            type_name(other),
            printable::api_text(&other.to_string())
        ))),
    }
}

/// The cursor `next_record` made: a string or a number; none, `null` or `""` means no
/// next page; any other type is an error, as for a cursor read from the body.
fn record_cursor(v: Option<Value>, source: &str) -> Result<Option<Value>, PaginateError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v @ (Value::String(_) | Value::Number(_))) => Ok(Some(v)),
        Some(other) => Err(PaginateError(format!(
            "pagination.next_record `{source}` gave {} ({}), not a string or a number",
            type_name(&other),
            printable::api_text(&other.to_string())
        ))),
    }
}

/// The target of the first link with relation `rel` in the `Link` header(s), per RFC 8288.
fn link_target(headers: &HeaderMap, rel: &str, base: &Url) -> Result<Option<Url>, PaginateError> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        let links = http_link::parse_link_header(text, base).map_err(|e| {
            PaginateError(format!(
                "the Link header `{}` does not parse: {e}",
                printable::api_text(text)
            ))
        })?;
        for link in links {
            if link
                .rel
                .split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case(rel))
            {
                return Ok(Some(link.target));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_spec::PageSize;
    use reqwest::header::HeaderValue;

    /// Query placements of these values (numbers as JSON numbers, as the paginator makes them).
    fn q(pairs: Vec<(&str, &str)>) -> Target {
        Target::Params(
            pairs
                .into_iter()
                .map(|(k, v)| Token {
                    at: k.into(),
                    value: v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
                })
                .collect(),
        )
    }

    fn url() -> Url {
        Url::parse("http://h/api/items?x=1").unwrap()
    }

    #[test]
    fn offset_stops_on_short_page_and_total() {
        let kind = Pagination::Offset {
            limit: 10,
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            start: 0,
            total: Some(JsonPath::new("$.total")),
            concurrency: None,
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(p.first(), q(vec![("offset", "0"), ("limit", "10")]));
        let meta = json!({"total": 20});
        let h = HeaderMap::new();
        assert_eq!(
            p.advance(&meta, &h, 10, &url()).unwrap(),
            Step::Next(q(vec![("offset", "10"), ("limit", "10")]))
        );
        assert_eq!(
            p.advance(&meta, &h, 10, &url()).unwrap(),
            Step::Done(Stop::Total)
        );
        let mut p = Paginator::new(&kind);
        assert_eq!(
            p.advance(&json!({}), &h, 3, &url()).unwrap(),
            Step::Done(Stop::Short)
        );
    }

    #[test]
    fn the_total_plans_the_pages_fetched_ahead() {
        let kind = Pagination::Offset {
            limit: 10,
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            start: 5,
            total: Some(JsonPath::new("$.total")),
            concurrency: Some(4),
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(p.planned_pages(), None);
        let h = HeaderMap::new();
        // Records 5..48: offsets 5, 15, 25, 35, 45.
        p.advance(&json!({"total": 48}), &h, 10, &url()).unwrap();
        assert_eq!(p.planned_pages(), Some(5));
        let (t, vars) = p.ahead(2).unwrap();
        assert_eq!(t, q(vec![("offset", "35"), ("limit", "10")]));
        assert_eq!(vars["index"], 3);
        assert_eq!(vars["offset"], 35);
        assert_eq!(p.ahead(0).unwrap().0, p.first_after());
        assert!(p.ahead(u64::MAX).is_none(), "an overflow plans nothing");

        let kind = Pagination::PageNumber {
            page_param: "page".into(),
            start: 1,
            size: Some(5),
            size_param: None,
            total: Some(JsonPath::new("$.n")),
            total_pages: None,
            concurrency: Some(2),
            stop_when: None,
            max_pages: Some(3),
        };
        let mut p = Paginator::new(&kind);
        p.advance(&json!({"n": 23}), &h, 5, &url()).unwrap();
        assert_eq!(p.planned_pages(), Some(3), "5 pages, capped by max_pages");
        assert_eq!(p.ahead(1).unwrap().0, q(vec![("page", "3")]));
        let mut c = Paginator::new(&Pagination::Cursor {
            has_more: None,
            next: Some(JsonPath::new("$.n")),
            next_header: None,
            next_record: None,
            param: "c".into(),
            page_size: None,
            stop_when: None,
            max_pages: None,
        });
        c.advance(&json!({"n": "x"}), &h, 5, &url()).unwrap();
        assert!(c.ahead(0).is_none() && c.planned_pages().is_none());
    }

    #[test]
    fn page_number_total_pages_and_max_pages() {
        let kind = Pagination::PageNumber {
            page_param: "page".into(),
            start: 1,
            size: None,
            size_param: None,
            total: None,
            total_pages: Some(JsonPath::new("$.total_pages")),
            concurrency: None,
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let h = HeaderMap::new();
        let meta = json!({"total_pages": 2});
        assert!(matches!(
            p.advance(&meta, &h, 5, &url()).unwrap(),
            Step::Next(_)
        ));
        assert_eq!(
            p.advance(&meta, &h, 5, &url()).unwrap(),
            Step::Done(Stop::Total)
        );

        let kind = Pagination::PageNumber {
            page_param: "p".into(),
            start: 0,
            size: None,
            size_param: None,
            total: None,
            total_pages: None,
            concurrency: None,
            stop_when: None,
            max_pages: Some(2),
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(p.first(), q(vec![("p", "0")]));
        assert!(matches!(
            p.advance(&json!({}), &h, 5, &url()).unwrap(),
            Step::Next(_)
        ));
        assert_eq!(
            p.advance(&json!({}), &h, 5, &url()).unwrap(),
            Step::Done(Stop::MaxPages)
        );
    }

    #[test]
    fn cursor_from_body_header_and_repeat() {
        let kind = Pagination::Cursor {
            has_more: None,
            next: Some(JsonPath::new("$.next")),
            next_header: None,
            param: "cursor".into(),
            page_size: Some(PageSize {
                param: "limit".into(),
                value: 2,
            }),
            stop_when: None,
            next_record: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let h = HeaderMap::new();
        assert_eq!(
            p.advance(&json!({"next": "c1"}), &h, 2, &url()).unwrap(),
            Step::Next(q(vec![("limit", "2"), ("cursor", "c1")]))
        );
        let e = p
            .advance(&json!({"next": "c1"}), &h, 2, &url())
            .unwrap_err();
        assert!(e.0.contains("second time"), "{e}");
        assert_eq!(
            p.advance(&json!({"next": null}), &h, 2, &url()).unwrap(),
            Step::Done(Stop::NoNext)
        );

        let kind = Pagination::Cursor {
            has_more: None,
            next: None,
            next_header: Some("X-Next".into()),
            param: "after".into(),
            page_size: None,
            stop_when: None,
            next_record: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let mut h = HeaderMap::new();
        h.insert("x-next", HeaderValue::from_static("tok"));
        assert_eq!(
            p.advance(&json!([]), &h, 1, &url()).unwrap(),
            Step::Next(q(vec![("after", "tok")]))
        );
    }

    #[test]
    fn has_more_false_ends_the_stream_whatever_the_cursor_says() {
        let kind = Pagination::Cursor {
            has_more: Some(JsonPath::new("$.has_more")),
            next: Some(JsonPath::new("$.data[-1:].id")),
            next_header: None,
            param: "starting_after".into(),
            page_size: None,
            stop_when: None,
            next_record: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let h = HeaderMap::new();
        let page = |more: Value, last: &str| json!({"data": [{"id": last}], "has_more": more});
        assert_eq!(
            p.advance(&page(json!(true), "a"), &h, 1, &url()).unwrap(),
            Step::Next(q(vec![("starting_after", "a")]))
        );
        assert_eq!(
            p.advance(&page(json!(false), "b"), &h, 1, &url()).unwrap(),
            Step::Done(Stop::NoMore)
        );
        for (bad, says) in [
            (json!({"data": [{"id": "c"}]}), "absent or null"),
            (page(json!("false"), "c"), "a string (\"false\")"),
            (page(Value::Null, "c"), "absent or null"),
        ] {
            let e = Paginator::new(&kind)
                .advance(&bad, &h, 1, &url())
                .unwrap_err();
            assert!(
                e.0.contains("has_more $.has_more") && e.0.contains(says),
                "{e}"
            );
        }
        // On a next-URL stream too.
        let kind = Pagination::NextUrl {
            has_more: Some(JsonPath::new("$.more")),
            next: JsonPath::new("$.next"),
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(
            p.advance(&json!({"next": "/p2", "more": false}), &h, 1, &url())
                .unwrap(),
            Step::Done(Stop::NoMore)
        );
    }

    #[test]
    fn next_url_relative_and_link_header() {
        let kind = Pagination::NextUrl {
            has_more: None,
            next: JsonPath::new("$.links.next"),
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let h = HeaderMap::new();
        assert_eq!(
            p.advance(
                &json!({"links": {"next": "/api/items?page=2"}}),
                &h,
                1,
                &url()
            )
            .unwrap(),
            Step::Next(Target::Url(
                Url::parse("http://h/api/items?page=2").unwrap()
            ))
        );

        let kind = Pagination::LinkHeader {
            rel: "next".into(),
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let mut h = HeaderMap::new();
        h.append(
            "link",
            HeaderValue::from_static("<http://h/api/items?page=1>; rel=\"first\""),
        );
        h.append(
            "link",
            HeaderValue::from_static("<items?page=3>; rel=\"next last\", <x>; rel=prev"),
        );
        assert_eq!(
            p.advance(&json!([1]), &h, 1, &url()).unwrap(),
            Step::Next(Target::Url(
                Url::parse("http://h/api/items?page=3").unwrap()
            ))
        );
        assert_eq!(
            p.advance(&json!([1]), &HeaderMap::new(), 1, &url())
                .unwrap(),
            Step::Done(Stop::NoNext)
        );
    }

    #[test]
    fn empty_page_stops_every_kind() {
        let kind = Pagination::LinkHeader {
            rel: "next".into(),
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(
            p.advance(&json!([]), &HeaderMap::new(), 0, &url()).unwrap(),
            Step::Done(Stop::Empty)
        );
    }

    fn cursor_kind() -> Pagination {
        Pagination::Cursor {
            has_more: None,
            next: Some(JsonPath::new("$.meta.next")),
            next_header: None,
            param: "cursor".into(),
            page_size: None,
            stop_when: None,
            next_record: None,
            max_pages: None,
        }
    }

    #[test]
    fn cursor_of_the_wrong_type_is_an_error() {
        let h = HeaderMap::new();
        for (next, ty) in [
            (json!({"id": "c2"}), "an object"),
            (json!(["c2"]), "an array"),
            (json!(true), "a boolean"),
        ] {
            let mut p = Paginator::new(&cursor_kind());
            let e = p
                .advance(&json!({"meta": {"next": next}}), &h, 1, &url())
                .unwrap_err();
            assert!(e.0.contains("$.meta.next") && e.0.contains(ty), "{e}");
        }
        let mut p = Paginator::new(&cursor_kind());
        assert_eq!(
            p.advance(&json!({"meta": {"next": ""}}), &h, 1, &url())
                .unwrap(),
            Step::Done(Stop::NoNext)
        );
        assert!(matches!(
            p.advance(&json!({"meta": {"next": 42}}), &h, 1, &url())
                .unwrap(),
            Step::Next(_)
        ));
    }

    #[test]
    fn repeated_cursor_is_escaped_in_the_error() {
        let mut p = Paginator::new(&cursor_kind());
        let h = HeaderMap::new();
        let meta = json!({"meta": {"next": "c\n\u{1b}[31m"}});
        p.advance(&meta, &h, 1, &url()).unwrap();
        let e = p.advance(&meta, &h, 1, &url()).unwrap_err();
        assert!(e.0.contains("c\\n\\u{1b}[31m"), "{e}");
        assert!(!e.0.contains('\n') && !e.0.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn page_variables_follow_the_paginator() {
        let h = HeaderMap::new();
        let mut p = Paginator::new(&offset_kind(5, 2));
        assert_eq!(
            p.vars(),
            json!({"index": 0, "number": 0, "offset": 5, "limit": 2, "cursor": null})
        );
        p.advance(&json!({"total": 100}), &h, 2, &url()).unwrap();
        assert_eq!(
            p.vars(),
            json!({"index": 1, "number": 0, "offset": 7, "limit": 2, "cursor": null})
        );
        assert_eq!(p.pages(), 1);
        let kind = Pagination::PageNumber {
            page_param: "page".into(),
            start: 1,
            size: Some(3),
            size_param: Some("per_page".into()),
            total: None,
            total_pages: None,
            concurrency: None,
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(p.first(), q(vec![("page", "1"), ("per_page", "3")]));
        p.advance(&json!({}), &h, 3, &url()).unwrap();
        assert_eq!(
            p.vars(),
            json!({"index": 1, "number": 2, "offset": 0, "limit": 3, "cursor": null})
        );
        let mut p = Paginator::new(&cursor_kind());
        assert_eq!(p.vars()["limit"], json!(null));
        p.advance(&json!({"meta": {"next": "c9"}}), &h, 1, &url())
            .unwrap();
        assert_eq!(p.vars()["cursor"], json!("c9"));
        let kind = Pagination::Cursor {
            has_more: None,
            next: Some(JsonPath::new("$.next")),
            next_header: None,
            param: "cursor".into(),
            page_size: Some(PageSize {
                param: "limit".into(),
                value: 4,
            }),
            stop_when: None,
            next_record: None,
            max_pages: None,
        };
        assert_eq!(Paginator::new(&kind).vars()["limit"], json!(4));
        assert_eq!(
            Paginator::new(&Pagination::None).vars()["limit"],
            json!(null)
        );
    }

    #[test]
    fn page_number_stops_on_a_short_page_or_the_total_record_count() {
        let h = HeaderMap::new();
        let kind = Pagination::PageNumber {
            page_param: "page".into(),
            start: 1,
            size: Some(3),
            size_param: None,
            total: Some(JsonPath::new("$.total")),
            total_pages: None,
            concurrency: None,
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(p.pages(), 0);
        assert!(matches!(
            p.advance(&json!({"total": 7}), &h, 3, &url()).unwrap(),
            Step::Next(_)
        ));
        assert!(matches!(
            p.advance(&json!({"total": 7}), &h, 3, &url()).unwrap(),
            Step::Next(_)
        ));
        assert_eq!(p.pages(), 2);
        assert_eq!(
            p.advance(&json!({"total": 7}), &h, 2, &url()).unwrap(),
            Step::Done(Stop::Short)
        );
        // Full pages, but the total is reached exactly: no further request.
        let mut p = Paginator::new(&kind);
        p.advance(&json!({"total": 6}), &h, 3, &url()).unwrap();
        assert_eq!(
            p.advance(&json!({"total": 6}), &h, 3, &url()).unwrap(),
            Step::Done(Stop::Total)
        );
    }

    #[test]
    fn only_next_links_remember_the_first_request_url() {
        // A cursor that happens to read like the first request's URL is just a cursor.
        let mut p = Paginator::new(&cursor_kind());
        let h = HeaderMap::new();
        let first = url();
        assert!(matches!(
            p.advance(&json!({"meta": {"next": first.as_str()}}), &h, 1, &first)
                .unwrap(),
            Step::Next(_)
        ));
    }

    #[test]
    fn a_cursor_cycle_of_two_is_refused_on_its_return() {
        let mut p = Paginator::new(&cursor_kind());
        let h = HeaderMap::new();
        let page = |c: &str| json!({"meta": {"next": c}});
        for c in ["a", "b"] {
            assert!(matches!(
                p.advance(&page(c), &h, 1, &url()).unwrap(),
                Step::Next(_)
            ));
        }
        let e = p.advance(&page("a"), &h, 1, &url()).unwrap_err();
        assert!(
            e.0.contains("cursor `a` a second time (page 3)") && e.0.contains("looping"),
            "{e}"
        );
    }

    #[test]
    fn a_next_url_back_to_the_first_page_or_an_earlier_one_is_refused() {
        let kind = Pagination::NextUrl {
            has_more: None,
            next: JsonPath::new("$.next"),
            stop_when: None,
            max_pages: None,
        };
        let h = HeaderMap::new();
        let first = Url::parse("http://h/api/items?size=2").unwrap();
        let second = Url::parse("http://h/api/items?page=2").unwrap();
        // Page 2 points back at page 1, whose URL the API never named itself.
        let mut p = Paginator::new(&kind);
        p.advance(&json!({"next": second.as_str()}), &h, 1, &first)
            .unwrap();
        let e = p
            .advance(&json!({"next": "/api/items?size=2"}), &h, 1, &second)
            .unwrap_err();
        assert!(
            e.0.contains("next URL `http://h/api/items?size=2` a second time (page 2)"),
            "{e}"
        );
        // A -> B -> A further on.
        let mut p = Paginator::new(&kind);
        let third = Url::parse("http://h/api/items?page=3").unwrap();
        p.advance(&json!({"next": second.as_str()}), &h, 1, &first)
            .unwrap();
        p.advance(&json!({"next": third.as_str()}), &h, 1, &second)
            .unwrap();
        let e = p
            .advance(&json!({"next": second.as_str()}), &h, 1, &third)
            .unwrap_err();
        assert!(e.0.contains("page=2` a second time (page 3)"), "{e}");
    }

    #[test]
    fn a_link_header_back_to_the_first_page_is_refused() {
        let kind = Pagination::LinkHeader {
            rel: "next".into(),
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let mut h = HeaderMap::new();
        h.insert("link", HeaderValue::from_static("</api/items>; rel=next"));
        let first = Url::parse("http://h/api/items").unwrap();
        let e = p.advance(&json!([1]), &h, 1, &first).unwrap_err();
        assert!(e.0.contains("a second time (page 1)"), "{e}");
    }

    fn offset_kind(start: u64, limit: u64) -> Pagination {
        Pagination::Offset {
            limit,
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            start,
            total: Some(JsonPath::new("$.total")),
            concurrency: None,
            stop_when: None,
            max_pages: None,
        }
    }

    #[test]
    fn totals_of_the_wrong_type_or_sign_are_errors() {
        let h = HeaderMap::new();
        for (total, shown) in [
            (json!(-1), "the number -1"),
            (json!(2.5), "the number 2.5"),
            (json!(1e30), "the number 1e+30"),
            // 2^64 exactly: one past the largest count, not u64::MAX.
            (json!(18_446_744_073_709_551_616.0_f64), "the number"),
            (json!("many"), "the string \"many\""),
            (json!({"n": 1}), "an object"),
            (json!(false), "a boolean"),
        ] {
            let mut p = Paginator::new(&offset_kind(0, 2));
            let e = p
                .advance(&json!({"total": total}), &h, 2, &url())
                .unwrap_err();
            assert!(e.0.contains("$.total") && e.0.contains(shown), "{e}");
        }
        let mut p = Paginator::new(&offset_kind(0, 2));
        assert!(matches!(
            p.advance(&json!({"total": "10"}), &h, 2, &url()).unwrap(),
            Step::Next(_)
        ));
        assert!(matches!(
            p.advance(&json!({"total": 10.0}), &h, 2, &url()).unwrap(),
            Step::Next(_)
        ));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let h = HeaderMap::new();
        let mut p = Paginator::new(&offset_kind(u64::MAX - 5, 10));
        let e = p
            .advance(&json!({"total": u64::MAX}), &h, 10, &url())
            .unwrap_err();
        assert!(
            e.0.contains("next offset") && e.0.contains("64 bits"),
            "{e}"
        );

        // total_pages at the maximum: no sum overflows, paging goes on.
        let kind = Pagination::PageNumber {
            page_param: "page".into(),
            start: 1,
            size: None,
            size_param: None,
            total: None,
            total_pages: Some(JsonPath::new("$.pages")),
            concurrency: None,
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert!(matches!(
            p.advance(&json!({"pages": u64::MAX}), &h, 1, &url())
                .unwrap(),
            Step::Next(_)
        ));
        let kind = Pagination::PageNumber {
            page_param: "page".into(),
            start: u64::MAX,
            size: None,
            size_param: None,
            total: None,
            total_pages: None,
            concurrency: None,
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let e = p.advance(&json!({}), &h, 1, &url()).unwrap_err();
        assert!(e.0.contains("next page number"), "{e}");
    }

    fn raws(items: &[Value]) -> Vec<RawRecord<'static>> {
        items.iter().map(RawRecord::from).collect()
    }

    fn record_kind(next: &str, size: Option<u64>, stop: Option<&str>) -> Pagination {
        Pagination::Cursor {
            has_more: None,
            next: None,
            next_header: None,
            next_record: Some(connector_spec::Template::new(next)),
            param: "since_id".into(),
            page_size: size.map(|value| PageSize {
                param: "limit".into(),
                value,
            }),
            stop_when: stop.map(connector_spec::Condition::new),
            max_pages: None,
        }
    }

    #[test]
    fn the_next_cursor_comes_from_the_last_record_and_keeps_its_type() {
        let h = HeaderMap::new();
        let ctx = json!({"config": {"step": 1}});
        let mut p = Paginator::new(&record_kind("{{ record.id + config.step }}", None, None));
        assert_eq!(p.first(), q(vec![]), "no cursor on the first page");
        let page = raws(&[json!({"id": 3}), json!({"id": 7})]);
        assert_eq!(p.cut(&page, &ctx).unwrap(), 2);
        let step = p.advance(&json!({}), &h, 2, &url()).unwrap();
        assert_eq!(step, Step::Next(q(vec![("since_id", "8")])));
        assert_eq!(p.vars()["cursor"], json!(8), "a number stays a number");
        // A string cursor, and an empty page ends it.
        let mut p = Paginator::new(&record_kind("{{ record.name }}", None, None));
        p.cut(&raws(&[json!({"name": "b c"})]), &ctx).unwrap();
        assert_eq!(
            p.advance(&json!({}), &h, 1, &url()).unwrap(),
            Step::Next(Target::Params(vec![Token {
                at: "since_id".into(),
                value: json!("b c")
            }]))
        );
        assert_eq!(p.cut(&[], &ctx).unwrap(), 0);
        assert_eq!(
            p.advance(&json!({}), &h, 0, &url()).unwrap(),
            Step::Done(Stop::Empty)
        );
    }

    #[test]
    fn a_record_cursor_stops_on_a_short_page_null_or_a_repeat_and_refuses_other_types() {
        let h = HeaderMap::new();
        let ctx = json!({});
        let mut p = Paginator::new(&record_kind("{{ record.id }}", Some(2), None));
        p.cut(&raws(&[json!({"id": 1})]), &ctx).unwrap();
        assert_eq!(
            p.advance(&json!({}), &h, 1, &url()).unwrap(),
            Step::Done(Stop::Short)
        );
        let mut p = Paginator::new(&record_kind("{{ record.next }}", None, None));
        p.cut(&raws(&[json!({"next": null})]), &ctx).unwrap();
        assert_eq!(
            p.advance(&json!({}), &h, 1, &url()).unwrap(),
            Step::Done(Stop::NoNext)
        );
        let mut p = Paginator::new(&record_kind("{{ record.id }}", None, None));
        for _ in 0..2 {
            p.cut(&raws(&[json!({"id": 5})]), &ctx).unwrap();
            let r = p.advance(&json!({}), &h, 1, &url());
            if let Err(e) = r {
                assert!(e.0.contains("cursor `5` a second time"), "{e}");
                break;
            }
        }
        let mut p = Paginator::new(&record_kind("{{ record.tags }}", None, None));
        p.cut(&raws(&[json!({"tags": ["x"]})]), &ctx).unwrap();
        let e = p.advance(&json!({}), &h, 1, &url()).unwrap_err();
        assert!(
            e.0.contains("gave an array") && e.0.contains("not a string or a number"),
            "{e}"
        );
        let mut p = Paginator::new(&record_kind("{{ record.missing }}", None, None));
        let e = p.cut(&raws(&[json!({"id": 1})]), &ctx).unwrap_err();
        assert!(e.0.contains("pagination.next_record"), "{e}");
    }

    #[test]
    fn stop_when_cuts_the_page_at_the_first_match_and_ends_the_stream() {
        let h = HeaderMap::new();
        let ctx = json!({"incremental": {"start": "2024-03-01"}});
        let kind = Pagination::NextUrl {
            has_more: None,
            next: JsonPath::new("$.next"),
            stop_when: Some(connector_spec::Condition::new(
                "record.at < incremental.start",
            )),
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let page = raws(&[json!({"at": "2024-03-05"}), json!({"at": "2024-03-02"})]);
        assert_eq!(p.cut(&page, &ctx).unwrap(), 2, "nothing older yet");
        assert!(matches!(
            p.advance(&json!({"next": "/p2"}), &h, 2, &url()).unwrap(),
            Step::Next(_)
        ));
        let page = raws(&[
            json!({"at": "2024-03-01"}),
            json!({"at": "2024-02-28"}),
            json!({"at": "2024-03-09"}),
        ]);
        assert_eq!(p.cut(&page, &ctx).unwrap(), 1, "kept up to the match");
        assert_eq!(
            p.advance(&json!({"next": "/p3"}), &h, 1, &url()).unwrap(),
            Step::Done(Stop::Condition)
        );
        let e = p.cut(&raws(&[json!({"id": 1})]), &ctx).unwrap_err();
        assert!(e.0.contains("pagination.stop_when `record.at <"), "{e}");
    }

    #[test]
    fn values_go_where_they_are_placed_and_a_missing_cursor_nowhere() {
        use connector_spec::Placement;
        let h = HeaderMap::new();
        let kind = Pagination::Cursor {
            has_more: None,
            next: Some(JsonPath::new("$.next")),
            next_header: None,
            next_record: None,
            param: PageParam::Placed(Placement::Body("variables.after".into())),
            page_size: Some(PageSize {
                param: PageParam::Placed(Placement::Header("X-Size".into())),
                value: 5,
            }),
            stop_when: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let Target::Params(first) = p.first() else {
            panic!()
        };
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].at.place(),
            (connector_spec::ParamIn::Header, "X-Size")
        );
        assert_eq!(first[0].value, json!(5));
        let Step::Next(Target::Params(next)) =
            p.advance(&json!({"next": "c2"}), &h, 5, &url()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            next[1].at.place(),
            (connector_spec::ParamIn::Body, "variables.after")
        );
        assert_eq!(next[1].value, json!("c2"));
        // A stream without the record rules leaves the page alone.
        let mut p = Paginator::new(&kind);
        assert_eq!(p.cut(&raws(&[json!(1), json!(2)]), &json!({})).unwrap(), 2);
    }
}
