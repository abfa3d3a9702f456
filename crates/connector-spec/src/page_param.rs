//! Where a paginator puts a value it sends (page number, offset, page size, cursor): a
//! query parameter by default, or a header, or a path inside the JSON body.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A value the paginator sends: a query parameter name (`cursor`), or
/// `{ header: X-Cursor }`, `{ body: variables.after }`, `{ query: cursor }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PageParam {
    /// A query parameter, by name.
    Query(String),
    /// A placement written out.
    Placed(Placement),
}

/// Where one paginator value goes, written out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Placement {
    /// A query parameter, e.g. `{ query: cursor }` (the same as writing `cursor`).
    Query(#[schemars(description = "Query parameter name.")] String),
    /// A request header, e.g. `{ header: X-Cursor }`.
    Header(#[schemars(description = "Header name, e.g. `X-Cursor`.")] String),
    /// A dotted path in the JSON body, e.g. `{ body: variables.after }`; the objects on the
    /// way are created, the value keeps its JSON type (numbers stay numbers).
    Body(#[schemars(description = "Dotted path in the JSON body, e.g. `variables.after`.")] String),
}

/// The part of the request a [`PageParam`] goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// The URL's query.
    Query,
    /// A header.
    Header,
    /// The JSON body.
    Body,
}

impl PageParam {
    /// Where the value goes, and under which name (or dotted body path).
    pub fn place(&self) -> (ParamIn, &str) {
        match self {
            PageParam::Query(n) | PageParam::Placed(Placement::Query(n)) => (ParamIn::Query, n),
            PageParam::Placed(Placement::Header(n)) => (ParamIn::Header, n),
            PageParam::Placed(Placement::Body(n)) => (ParamIn::Body, n),
        }
    }

    /// The query parameter's name, when the value goes in the query.
    pub fn query_name(&self) -> Option<&str> {
        match self.place() {
            (ParamIn::Query, n) => Some(n),
            _ => None,
        }
    }

    /// The JSON pointer suffix of the placement's value under the field, for diagnostics:
    /// `""` for a plain name, `/header` for `{ header: ... }`.
    pub fn pointer_suffix(&self) -> &'static str {
        match self {
            PageParam::Query(_) => "",
            PageParam::Placed(Placement::Query(_)) => "/query",
            PageParam::Placed(Placement::Header(_)) => "/header",
            PageParam::Placed(Placement::Body(_)) => "/body",
        }
    }
}

impl From<&str> for PageParam {
    fn from(name: &str) -> Self {
        PageParam::Query(name.to_owned())
    }
}

impl From<String> for PageParam {
    fn from(name: String) -> Self {
        PageParam::Query(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_query_parameter_and_a_mapping_says_where() {
        let p: PageParam = serde_json::from_str(r#""cursor""#).unwrap();
        assert_eq!(p.place(), (ParamIn::Query, "cursor"));
        let p: PageParam = serde_json::from_str(r#"{"body": "variables.after"}"#).unwrap();
        assert_eq!(p.place(), (ParamIn::Body, "variables.after"));
        assert_eq!(p.query_name(), None);
        let p: PageParam = serde_json::from_str(r#"{"header": "X-Cursor"}"#).unwrap();
        assert_eq!(p.place(), (ParamIn::Header, "X-Cursor"));
        assert_eq!(p.pointer_suffix(), "/header");
        assert!(serde_json::from_str::<PageParam>(r#"{"cookie": "c"}"#).is_err());
        assert!(serde_json::from_str::<PageParam>(r#"{"body": "a", "header": "b"}"#).is_err());
        // Written back as it was read.
        assert_eq!(
            serde_json::to_string(&PageParam::from("page")).unwrap(),
            r#""page""#
        );
    }
}
