//! The select stage: a response's records (as the bytes the API sent) and the rest of
//! its body, with the response's headers and URL, as one [`Page`] that the later stages
//! and the paginator read.

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::extract::{ExtractError, Extractor, RawRecord};
use crate::http::Incoming;

/// One page of a response.
#[derive(Debug)]
pub struct Page<'a> {
    /// The records, compact JSON as sent.
    pub records: Vec<RawRecord<'a>>,
    /// The body for the other JSONPaths (next cursor, totals); in the fast path the
    /// records' array is replaced by `null`.
    pub meta: Value,
    /// The records path's first step did not exist in the body at all.
    pub path_missing: bool,
    /// The response's headers.
    pub headers: &'a HeaderMap,
    /// The URL that answered.
    pub url: &'a Url,
    /// The response's status.
    pub status: u16,
}

impl<'a> Page<'a> {
    /// Splits a response into records and the rest.
    pub fn select(extractor: &Extractor, resp: &'a Incoming) -> Result<Self, ExtractError> {
        let ct = resp
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let page = extractor.page(&resp.body, ct)?;
        Ok(Self {
            records: page.records,
            meta: page.meta,
            path_missing: page.path_missing,
            headers: &resp.headers,
            url: &resp.url,
            status: resp.status,
        })
    }

    /// The last record, parsed (for paginators that read it).
    pub fn last_record(&self) -> Option<Result<Value, serde_json::Error>> {
        self.records.last().map(|r| serde_json::from_str(r.get()))
    }

    /// The body's top-level keys, for a message about a records path that matched nothing.
    pub fn top_keys(&self) -> String {
        self.meta
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(body: &str) -> Incoming {
        Incoming {
            status: 200,
            headers: HeaderMap::new(),
            body: bytes::Bytes::from(body.to_owned()),
            url: Url::parse("http://127.0.0.1/x").unwrap(),
        }
    }

    #[test]
    fn a_page_holds_records_meta_and_the_response() {
        let path = connector_spec::JsonPath::new("$.items[*]");
        let ex = Extractor::new(&path, &[]);
        let resp = incoming(r#"{"items": [{"id": 1}, {"id": 2}], "next": "b"}"#);
        let page = Page::select(&ex, &resp).unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.last_record().unwrap().unwrap()["id"], 2);
        assert_eq!(page.top_keys(), "items, next");
        assert_eq!(page.url.path(), "/x");
        let missing = incoming(r#"{"data": []}"#);
        assert!(Page::select(&ex, &missing).unwrap().path_missing);
    }
}
