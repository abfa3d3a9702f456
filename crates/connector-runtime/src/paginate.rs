//! Which page comes next, and when to stop: one state machine per pagination kind.

use std::collections::HashSet;

use connector_spec::{JsonPath, Pagination};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use url::Url;

/// Where the next request goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The stream's own URL with these query parameters added.
    Params(Vec<(String, String)>),
    /// A URL given by the API, used as it is.
    Url(Url),
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
    /// The total count (or total pages) was reached.
    Total,
    /// `max_pages` was reached.
    MaxPages,
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
    cursor: Option<String>,
    seen: HashSet<String>,
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
        }
    }

    /// The query parameters of the first request.
    pub fn first(&self) -> Target {
        Target::Params(self.params())
    }

    fn params(&self) -> Vec<(String, String)> {
        match &self.kind {
            Pagination::Offset {
                limit,
                offset_param,
                limit_param,
                ..
            } => vec![
                (offset_param.clone(), self.offset.to_string()),
                (limit_param.clone(), limit.to_string()),
            ],
            Pagination::PageNumber {
                page_param,
                size,
                size_param,
                ..
            } => {
                let mut p = vec![(page_param.clone(), self.page.to_string())];
                if let (Some(s), Some(n)) = (size, size_param) {
                    p.push((n.clone(), s.to_string()));
                }
                p
            }
            Pagination::Cursor {
                param, page_size, ..
            } => {
                let mut p = Vec::new();
                if let Some(ps) = page_size {
                    p.push((ps.param.clone(), ps.value.to_string()));
                }
                if let Some(c) = &self.cursor {
                    p.push((param.clone(), c.clone()));
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
        let limit = match &self.kind {
            Pagination::Offset { limit, .. } => Some(*limit),
            Pagination::PageNumber { size, .. } => *size,
            Pagination::Cursor { page_size, .. } => page_size.as_ref().map(|p| p.value),
            _ => None,
        };
        json!({
            "index": self.pages,
            "number": self.page,
            "offset": self.offset,
            "limit": limit,
            "cursor": self.cursor,
        })
    }

    /// Pages received so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Decides what follows a page with `count` records.
    pub fn advance(
        &mut self,
        meta: &Value,
        headers: &HeaderMap,
        count: usize,
        request_url: &Url,
    ) -> Result<Step, PaginateError> {
        self.pages += 1;
        self.records += count as u64;
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
        if count == 0 {
            return Ok(Step::Done(Stop::Empty));
        }
        if self.kind.max_pages().is_some_and(|m| self.pages >= m) {
            return Ok(Step::Done(Stop::MaxPages));
        }
        let kind = self.kind.clone();
        match &kind {
            Pagination::None => Ok(Step::Done(Stop::Single)),
            Pagination::Offset { limit, total, .. } => {
                if (count as u64) < *limit {
                    return Ok(Step::Done(Stop::Short));
                }
                self.offset += limit;
                if let Some(t) = number_at(total.as_ref(), meta)?
                    && self.offset >= t
                {
                    return Ok(Step::Done(Stop::Total));
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
                if let Some(tp) = number_at(total_pages.as_ref(), meta)? {
                    // Pages numbered from `start`: the last is start + tp - 1.
                    if self.page + 1 >= start + tp {
                        return Ok(Step::Done(Stop::Total));
                    }
                }
                if let Some(t) = number_at(total.as_ref(), meta)?
                    && self.records >= t
                {
                    return Ok(Step::Done(Stop::Total));
                }
                self.page += 1;
                Ok(Step::Next(Target::Params(self.params())))
            }
            Pagination::Cursor {
                next, next_header, ..
            } => {
                let token = match (next, next_header) {
                    (Some(p), _) => string_at(p, meta)?,
                    (None, Some(h)) => headers
                        .get(h.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    (None, None) => None,
                };
                let Some(token) = token else {
                    return Ok(Step::Done(Stop::NoNext));
                };
                self.check_repeat(&token, "cursor")?;
                self.cursor = Some(token);
                Ok(Step::Next(Target::Params(self.params())))
            }
            Pagination::NextUrl { next, .. } => {
                let Some(link) = string_at(next, meta)? else {
                    return Ok(Step::Done(Stop::NoNext));
                };
                let url = request_url.join(&link).map_err(|e| {
                    PaginateError(format!(
                        "the next page URL `{link}` from {} is not a URL: {e}",
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
                shorten(token),
                self.pages
            )));
        }
        Ok(())
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// A number (or numeric string) at a JSONPath.
fn number_at(path: Option<&JsonPath>, meta: &Value) -> Result<Option<u64>, PaginateError> {
    let Some(path) = path else { return Ok(None) };
    let v = path.first(meta).map_err(|e| PaginateError(e.to_string()))?;
    Ok(match v {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A non-empty string (or number) at a JSONPath.
fn string_at(path: &JsonPath, meta: &Value) -> Result<Option<String>, PaginateError> {
    let v = path.first(meta).map_err(|e| PaginateError(e.to_string()))?;
    Ok(match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The target of the first link with relation `rel` in the `Link` header(s), per RFC 8288.
fn link_target(headers: &HeaderMap, rel: &str, base: &Url) -> Result<Option<Url>, PaginateError> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        let links = http_link::parse_link_header(text, base).map_err(|e| {
            PaginateError(format!(
                "the Link header `{}` does not parse: {e}",
                shorten(text)
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
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(
            p.first(),
            Target::Params(vec![
                ("offset".into(), "0".into()),
                ("limit".into(), "10".into())
            ])
        );
        let meta = json!({"total": 20});
        let h = HeaderMap::new();
        assert_eq!(
            p.advance(&meta, &h, 10, &url()).unwrap(),
            Step::Next(Target::Params(vec![
                ("offset".into(), "10".into()),
                ("limit".into(), "10".into())
            ]))
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
    fn page_number_total_pages_and_max_pages() {
        let kind = Pagination::PageNumber {
            page_param: "page".into(),
            start: 1,
            size: None,
            size_param: None,
            total: None,
            total_pages: Some(JsonPath::new("$.total_pages")),
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
            max_pages: Some(2),
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(p.first(), Target::Params(vec![("p".into(), "0".into())]));
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
            next: Some(JsonPath::new("$.next")),
            next_header: None,
            param: "cursor".into(),
            page_size: Some(PageSize {
                param: "limit".into(),
                value: 2,
            }),
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let h = HeaderMap::new();
        assert_eq!(
            p.advance(&json!({"next": "c1"}), &h, 2, &url()).unwrap(),
            Step::Next(Target::Params(vec![
                ("limit".into(), "2".into()),
                ("cursor".into(), "c1".into())
            ]))
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
            next: None,
            next_header: Some("X-Next".into()),
            param: "after".into(),
            page_size: None,
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        let mut h = HeaderMap::new();
        h.insert("x-next", HeaderValue::from_static("tok"));
        assert_eq!(
            p.advance(&json!([]), &h, 1, &url()).unwrap(),
            Step::Next(Target::Params(vec![("after".into(), "tok".into())]))
        );
    }

    #[test]
    fn next_url_relative_and_link_header() {
        let kind = Pagination::NextUrl {
            next: JsonPath::new("$.links.next"),
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
            max_pages: None,
        };
        let mut p = Paginator::new(&kind);
        assert_eq!(
            p.advance(&json!([]), &HeaderMap::new(), 0, &url()).unwrap(),
            Step::Done(Stop::Empty)
        );
    }
}
