//! Error rules: what a response means beyond its status class, e.g. a 404 for a parent
//! deleted meanwhile (skip it), a 200 carrying GraphQL `errors` (fail), a 403 whose body
//! says "rate limited" (retry).
//!
//! A rule lists conditions (status, body, header); when all that it gives hold, its
//! `action` decides. Stream rules are tried before `http` rules; the first match wins;
//! without a match the response is handled as if there were no rules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jsonpath::JsonPath;
use crate::template::Template;

/// One error rule: conditions on a response, and what to do when all of them hold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// Status codes matched: `404`, `"5xx"`, `"400-499"`, or a list of these. Absent: any
    /// status, 2xx included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusMatch>,
    /// A body condition: a JSONPath that must select a value other than null, `[]` or `{}`
    /// (`"$.errors"`), or `{ path, equals }`, or `{ contains: "text" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyMatch>,
    /// A header condition: a name that must be present (`"X-Error"`), or
    /// `{ name, equals }` / `{ name, contains }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderMatch>,
    /// What a matching response does: `retry`, `skip`, `end` or `fail`.
    pub action: Action,
    /// With `fail`: the error message, a template over `status`, `body` (the response's
    /// JSON, or its text) and `headers` (lowercase names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Template>,
}

/// What a response matched by a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send the request again, with the usual backoff, `Retry-After` and `retry.max_attempts`.
    Retry,
    /// This response yields no records; the stream goes on with its next parent record
    /// (a stream without a parent ends here, successfully). Counted in the summary.
    Skip,
    /// The stream ends here, successfully; its state is saved as for any end.
    End,
    /// The stream fails with `message`.
    Fail,
}

impl Action {
    /// The action as written in the spec.
    pub fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Skip => "skip",
            Action::End => "end",
            Action::Fail => "fail",
        }
    }
}

/// Status codes: one, or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusMatch {
    /// One code, class or range.
    One(StatusSpec),
    /// Any of these.
    Many(#[schemars(length(min = 1))] Vec<StatusSpec>),
}

impl StatusMatch {
    /// The entries, in order.
    pub fn entries(&self) -> Vec<&StatusSpec> {
        match self {
            StatusMatch::One(s) => vec![s],
            StatusMatch::Many(v) => v.iter().collect(),
        }
    }

    /// Whether `status` is one of the entries; an entry that does not parse matches nothing.
    pub fn contains(&self, status: u16) -> bool {
        self.entries()
            .iter()
            .any(|s| s.range().is_ok_and(|(lo, hi)| (lo..=hi).contains(&status)))
    }
}

/// A status code (`404`), a class (`"5xx"`) or an inclusive range (`"400-499"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusSpec {
    /// One code.
    Code(u16),
    /// `"404"`, `"5xx"` or `"400-499"`.
    Text(String),
}

impl StatusSpec {
    /// The inclusive range of codes, or why the entry is not one.
    pub fn range(&self) -> Result<(u16, u16), String> {
        match self {
            StatusSpec::Code(c) => code(&c.to_string()).map(|c| (c, c)),
            StatusSpec::Text(t) => parse_status(t.trim()),
        }
    }
}

/// Reads `404`, `5xx` or `400-499`.
fn parse_status(t: &str) -> Result<(u16, u16), String> {
    if let Some(class) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX")) {
        return match class.parse::<u16>() {
            Ok(d @ 1..=5) if class.len() == 1 => Ok((d * 100, d * 100 + 99)),
            _ => Err(format!(
                "`{t}` is not a status class; classes are 1xx to 5xx"
            )),
        };
    }
    if let Some((lo, hi)) = t.split_once('-') {
        let (lo, hi) = (code(lo.trim())?, code(hi.trim())?);
        if lo > hi {
            return Err(format!(
                "the range `{t}` is empty: its start is above its end"
            ));
        }
        return Ok((lo, hi));
    }
    code(t).map(|c| (c, c))
}

/// One status code, 100 to 599.
fn code(t: &str) -> Result<u16, String> {
    match t.parse::<u16>() {
        Ok(c @ 100..=599) => Ok(c),
        Ok(_) => Err(format!(
            "`{t}` is not an HTTP status; statuses are 100 to 599"
        )),
        Err(_) => Err(format!(
            "`{t}` is not a status code, a class such as `5xx` or a range such as `400-499`"
        )),
    }
}

/// A condition on the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BodyMatch {
    /// A JSONPath that must select a value other than null, `[]` or `{}`, e.g. `$.errors`.
    Path(JsonPath),
    /// A JSONPath and the value it must select, or a text the body must contain.
    Detail(BodyDetail),
}

/// The long form of a body condition: `{ path, equals }` or `{ contains }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyDetail {
    /// JSONPath into the body (parsed as JSON; a body that is not JSON matches no path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<JsonPath>,
    /// The value `path` must select (any of its values), e.g. `"NOT_FOUND"` or `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// Text the raw body must contain (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
}

impl BodyMatch {
    /// The JSONPath, if the condition has one.
    pub fn path(&self) -> Option<&JsonPath> {
        match self {
            BodyMatch::Path(p) => Some(p),
            BodyMatch::Detail(d) => d.path.as_ref(),
        }
    }

    /// The value the path must select, if given.
    pub fn equals(&self) -> Option<&Value> {
        match self {
            BodyMatch::Path(_) => None,
            BodyMatch::Detail(d) => d.equals.as_ref(),
        }
    }

    /// The text the body must contain, if given.
    pub fn contains(&self) -> Option<&str> {
        match self {
            BodyMatch::Path(_) => None,
            BodyMatch::Detail(d) => d.contains.as_deref(),
        }
    }

    /// Whether the selected values satisfy the condition: one equals `equals`, or, without
    /// it, one is "there" (not null, `[]` or `{}`).
    pub fn selected(&self, values: &[&Value]) -> bool {
        match self.equals() {
            Some(want) => values.contains(&want),
            None => values.iter().any(|v| match v {
                Value::Null => false,
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            }),
        }
    }
}

/// A condition on a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderMatch {
    /// The header must be present.
    Name(String),
    /// The header must be present and have (or contain) a value.
    Detail(HeaderDetail),
}

/// The long form of a header condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderDetail {
    /// Header name (any case).
    pub name: String,
    /// The whole value, compared exactly (surrounding spaces ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// Text the value must contain (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
}

impl HeaderMatch {
    /// The header's name.
    pub fn name(&self) -> &str {
        match self {
            HeaderMatch::Name(n) => n,
            HeaderMatch::Detail(d) => &d.name,
        }
    }

    /// Whether one of the header's values satisfies the condition.
    pub fn accepts<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> bool {
        match self {
            HeaderMatch::Name(_) => values.next().is_some(),
            HeaderMatch::Detail(d) => values.any(|v| {
                d.equals.as_deref().is_none_or(|e| v.trim() == e.trim())
                    && d.contains.as_deref().is_none_or(|c| v.contains(c))
            }),
        }
    }
}

impl ErrorRule {
    /// Whether the rule could match a 2xx response (so 2xx bodies must be looked at).
    pub fn may_match_success(&self) -> bool {
        self.status
            .as_ref()
            .is_none_or(|s| (200..300).any(|c| s.contains(c)))
    }

    /// A short description for logs, e.g. `404 -> skip`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.status {
            let shown: Vec<String> = s
                .entries()
                .iter()
                .map(|e| match e {
                    StatusSpec::Code(c) => c.to_string(),
                    StatusSpec::Text(t) => t.clone(),
                })
                .collect();
            parts.push(format!("status {}", shown.join(", ")));
        }
        if let Some(b) = &self.body {
            if let Some(p) = b.path() {
                parts.push(format!("body {}", p.source()));
            }
            if b.contains().is_some() {
                parts.push("body text".to_owned());
            }
        }
        if let Some(h) = &self.header {
            parts.push(format!("header {}", h.name()));
        }
        format!("{} -> {}", parts.join(" and "), self.action.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> StatusMatch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn statuses_codes_classes_ranges_and_lists() {
        assert!(spec(json!(404)).contains(404));
        assert!(!spec(json!(404)).contains(403));
        assert!(spec(json!("5xx")).contains(503));
        assert!(!spec(json!("5xx")).contains(499));
        assert!(spec(json!("400-499")).contains(400) && spec(json!("400-499")).contains(499));
        assert!(!spec(json!("400-499")).contains(500));
        assert!(spec(json!([403, "404"])).contains(404));
        assert!(spec(json!([403, "2xx"])).contains(200));
    }

    #[test]
    fn bad_statuses_say_why() {
        for (bad, why) in [
            ("6xx", "classes are 1xx to 5xx"),
            ("4x", "not a status code"),
            ("499-400", "is empty"),
            ("700", "100 to 599"),
            ("40-499", "100 to 599"),
            ("abc", "not a status code"),
        ] {
            let e = StatusSpec::Text(bad.into()).range().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(StatusSpec::Code(99).range().is_err());
        assert!(
            !spec(json!("6xx")).contains(600),
            "a bad entry matches nothing"
        );
    }

    #[test]
    fn body_conditions() {
        let exists = BodyMatch::Path(JsonPath::new("$.errors"));
        let null = json!(null);
        let empty = json!([]);
        let one = json!([{"message": "x"}]);
        assert!(!exists.selected(&[]));
        assert!(!exists.selected(&[&null]));
        assert!(!exists.selected(&[&empty]));
        assert!(exists.selected(&[&one]));
        let eq: BodyMatch =
            serde_json::from_value(json!({"path": "$.ok", "equals": false})).unwrap();
        assert!(eq.selected(&[&json!(false)]));
        assert!(!eq.selected(&[&json!(true)]));
        let text: BodyMatch = serde_json::from_value(json!({"contains": "quota"})).unwrap();
        assert_eq!(text.contains(), Some("quota"));
        assert!(text.path().is_none());
    }

    #[test]
    fn header_conditions() {
        let present = HeaderMatch::Name("X-Err".into());
        assert!(present.accepts(["a"].into_iter()));
        assert!(!present.accepts(std::iter::empty()));
        let eq: HeaderMatch =
            serde_json::from_value(json!({"name": "X-Err", "equals": "quota"})).unwrap();
        assert!(eq.accepts([" quota "].into_iter()));
        assert!(!eq.accepts(["quota2"].into_iter()));
        let has: HeaderMatch =
            serde_json::from_value(json!({"name": "X-Err", "contains": "quo"})).unwrap();
        assert!(has.accepts(["a", "quota"].into_iter()));
    }

    #[test]
    fn rules_read_and_describe() {
        let r: ErrorRule = serde_json::from_value(
            json!({"status": [403, "5xx"], "header": "X-Err", "action": "skip"}),
        )
        .unwrap();
        assert_eq!(r.describe(), "status 403, 5xx and header X-Err -> skip");
        assert!(!r.may_match_success());
        let g: ErrorRule =
            serde_json::from_value(json!({"body": "$.errors", "action": "fail"})).unwrap();
        assert!(g.may_match_success());
    }
}
