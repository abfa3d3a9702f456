//! Partitions: the lists of values a stream iterates over (literal, a config list, or a
//! field of another stream's records), their cartesian product, and their checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::templates::span_of;
use crate::check::{Ctx, Parts, join};
use crate::model::{ConfigType, Stream};
use crate::suggest;

/// One list of a stream's `partitions`: literal values, or where to take them from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PartitionList {
    /// The values themselves, e.g. `[open, closed]`.
    Values(#[schemars(length(min = 1))] Vec<PartitionValue>),
    /// A config list, or a field of another stream's records.
    From(PartitionSource),
}

/// A literal partition value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PartitionValue {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A number.
    Number(f64),
    /// `true` or `false`.
    Boolean(bool),
}

impl PartitionValue {
    /// The value as JSON, as templates and state keys see it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(s) => Value::String(s.clone()),
            Self::Integer(i) => Value::from(*i),
            Self::Number(n) => Value::from(*n),
            Self::Boolean(b) => Value::Bool(*b),
        }
    }
}

/// Where a partition list comes from: `config` or `stream` (with `field`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionSource {
    /// A config value of `type: array` whose items are the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Another stream whose records give the values (it runs first, like a parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The field of that stream's records holding a value; duplicates are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Values per pass, joined by `join` (for APIs that take many ids per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub batch: Option<u32>,
    /// What joins a batch's values; default `,`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
}

impl PartitionSource {
    /// The separator of a batch's values.
    pub fn separator(&self) -> &str {
        self.join.as_deref().unwrap_or(",")
    }
}

impl Stream {
    /// The first stream this one waits for: its `parent`, or the stream of its first
    /// partition list that reads one; [`Stream::upstreams`] gives them all.
    pub fn upstream(&self) -> Option<&str> {
        self.parent.as_ref().map(|p| p.stream.as_str()).or_else(|| {
            self.partition_stream()
                .map(|(_, s)| s.stream.as_deref().unwrap_or(""))
        })
    }

    /// The first partition list that reads another stream's records, with its name.
    pub fn partition_stream(&self) -> Option<(&str, &PartitionSource)> {
        self.partitions.iter().find_map(|(n, l)| match l {
            PartitionList::From(s) if s.stream.is_some() => Some((n.as_str(), s)),
            _ => None,
        })
    }
}

/// Checks a stream's `partitions` and `partition_concurrency`.
pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts, name: &str, base: &str, stream: &Stream) {
    let ptr = format!("{base}/partitions");
    if stream.partitions.is_empty() {
        if cx.written(&format!("{base}/partition_concurrency")) {
            cx.error(
                cx.key(&format!("{base}/partition_concurrency")),
                format!("stream `{name}` sets `partition_concurrency` but has no `partitions`"),
                Some("add `partitions:` or remove `partition_concurrency`".into()),
            );
        }
        return;
    }
    if cx.written(&ptr) && stream.parent.is_some() {
        cx.error(
            cx.key(&ptr),
            format!("stream `{name}` has both `parent` and `partitions`"),
            Some("take the parent's ids as a partition list instead: `partitions: { id: { stream: <parent>, field: id } }`".into()),
        );
    }
    for (pname, list) in &stream.partitions {
        let p = join(&ptr, pname);
        if !is_identifier(pname) {
            cx.error(
                cx.key(&p),
                format!("partition name `{pname}` is not a template name"),
                Some("use letters, digits and `_`, not starting with a digit, e.g. `repo_id`; templates read it as `partition.<name>`".into()),
            );
        }
        let PartitionList::From(src) = list else {
            continue;
        };
        source(cx, parts, name, &p, src, stream);
    }
    crate::upstreams::changed_only_twice(cx, parts, &ptr, stream);
}

/// One list that reads `config` or another stream.
fn source(
    cx: &mut Ctx<'_>,
    parts: &Parts,
    name: &str,
    p: &str,
    src: &PartitionSource,
    stream: &Stream,
) {
    match (&src.config, &src.stream) {
        (None, None) => cx.error(
            cx.value(p),
            "a partition list needs values, `config: <name>` or `stream: <name>` with `field`",
            Some(
                "e.g. `[open, closed]`, `{ config: repos }` or `{ stream: accounts, field: id }`"
                    .into(),
            ),
        ),
        (Some(_), Some(_)) => cx.error(
            cx.key(&join(p, "stream")),
            "a partition list comes from `config` or from `stream`, not both",
            None,
        ),
        (Some(c), None) => {
            config_list(cx, parts, p, c);
            for f in ["field", "batch", "join"] {
                if cx.written(&join(p, f)) {
                    cx.error(
                        cx.key(&join(p, f)),
                        format!("`{f}` only applies to a list from a `stream`"),
                        None,
                    );
                }
            }
        }
        (None, Some(s)) => stream_list(cx, parts, name, p, src, s, stream),
    }
}

/// `config: <name>`: declared, a list, and not a secret.
fn config_list(cx: &mut Ctx<'_>, parts: &Parts, p: &str, c: &str) {
    let at = cx.value(&join(p, "config"));
    let Some((_, decl)) = parts.config.iter().find(|(n, _)| n == c) else {
        if !parts.config_names.iter().any(|n| n == c) {
            let help = suggest::did_you_mean(c, parts.config_names.iter().map(String::as_str))
                .or_else(|| {
                    Some(format!(
                        "declare it under `config:`, e.g. `{c}: {{ type: array }}`"
                    ))
                });
            cx.error(
                at,
                format!("config `{c}` is not declared in `config`"),
                help,
            );
        }
        return;
    };
    if decl.kind != ConfigType::Array {
        cx.error(
            at,
            format!("config `{c}` is not a list, so it cannot be a partition list"),
            Some(format!("declare it as `{c}: {{ type: array }}`")),
        );
    }
    if decl.secret {
        cx.error(
            at,
            format!(
                "config `{c}` is a secret; partition values appear in the state file and in errors"
            ),
            Some("partition over values that are not secret".into()),
        );
    }
}

/// `stream: <name>` with `field`: an existing other stream, no batch under incremental.
fn stream_list(
    cx: &mut Ctx<'_>,
    parts: &Parts,
    name: &str,
    p: &str,
    src: &PartitionSource,
    s: &str,
    stream: &Stream,
) {
    let at = cx.value(&join(p, "stream"));
    if s == name {
        cx.error(
            at,
            format!("stream `{name}` takes its partitions from itself"),
            None,
        );
    } else if !parts.stream_names.iter().any(|n| n == s) {
        let others = parts
            .stream_names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != name);
        let help = suggest::did_you_mean(s, others);
        cx.error(at, format!("stream `{s}` does not exist"), help);
    }
    if src.field.is_none() {
        cx.error(
            cx.key(p),
            "a partition list from a stream needs `field`: which field of its records is the value",
            Some(format!("e.g. `{{ stream: {s}, field: id }}`")),
        );
    }
    if src.batch.is_none() && cx.written(&join(p, "join")) {
        cx.error(
            cx.key(&join(p, "join")),
            "`join` joins the values of a batch, and this list has no `batch`",
            Some("add `batch: <values per request>`".into()),
        );
    }
    if src.batch.is_some() && stream.incremental.is_some() {
        cx.error(
            cx.key(&join(p, "batch")),
            "an incremental stream keeps its state per partition, and a batch's members change from run to run",
            Some("remove `batch` (one pass per value), or `incremental`".into()),
        );
    }
}

/// A template's `partition` or `partition.<attr>`: only where `names` are declared.
pub(crate) fn check_var(
    cx: &mut Ctx<'_>,
    ptr: &str,
    src: &str,
    shift: usize,
    attr: Option<&str>,
    names: &[String],
) {
    if names.is_empty() {
        cx.error(
            span_of(cx, ptr, src, shift, "partition"),
            "`partition` is only available in a stream with `partitions`",
            None,
        );
        return;
    }
    let Some(a) = attr else { return };
    if names.iter().any(|n| n == a) {
        return;
    }
    let help = suggest::closest(a, names.iter().map(String::as_str))
        .map(|c| format!("did you mean `partition.{c}`?"));
    cx.error(
        span_of(cx, ptr, src, shift, &format!("partition.{a}")),
        format!(
            "`partition.{a}` is not declared in this stream's `partitions` ({})",
            suggest::list(names.iter().map(String::as_str))
        ),
        help,
    );
}

/// Whether `name` can be read as `partition.<name>` in a template.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    const HEAD: &str = "version: 1\nname: t\nconfig:\n  repos: { type: array }\n  token: { type: string, secret: true }\nhttp: { base_url: \"https://x\" }\nstreams:\n  accounts: { path: /a, records: \"$[*]\", primary_key: id }\n";

    /// (line, col, message, help) of every error.
    fn errors(body: &str) -> Vec<(usize, usize, String, Option<String>)> {
        crate::check::error_list(&format!("{HEAD}{body}"))
    }

    #[test]
    fn a_product_of_literal_config_and_stream_lists_is_valid() {
        let body = "  issues:
    path: \"/repos/{{ partition.repo }}/issues/{{ partition.account }}\"
    params: { state: \"{{ partition.state }}\" }
    records: $[*]
    partitions:
      repo: { config: repos }
      state: [open, closed, 3, true]
      account: { stream: accounts, field: id, batch: 50, join: \"|\" }
    partition_concurrency: 4
";
        assert_eq!(errors(body), Vec::new());
    }

    #[test]
    fn bad_lists_are_reported_where_they_are_written() {
        let body = "  issues:
    path: \"/x/{{ partition.rep }}\"
    records: $[*]
    primary_key: id
    incremental: { cursor_field: u, start: \"2024-01-01T00:00:00Z\" }
    partitions:
      repo: { config: repo }
      tok: { config: token }
      a: { stream: acounts, field: id, batch: 5 }
      b: { stream: issues }
      9x: [1]
";
        let e = errors(body);
        let find = |needle: &str| {
            e.iter()
                .find(|x| x.2.contains(needle))
                .unwrap_or_else(|| panic!("no `{needle}` in {e:#?}"))
                .clone()
        };
        let x = find("`partition.rep`");
        assert_eq!((x.0, x.1), (10, 18));
        assert_eq!(x.3.as_deref(), Some("did you mean `partition.repo`?"));
        let x = find("config `repo` is not declared");
        assert_eq!(
            (x.0, x.1, x.3.as_deref()),
            (15, 23, Some("did you mean `repos`?"))
        );
        assert_eq!(find("is a secret").0, 16);
        let x = find("stream `acounts` does not exist");
        assert_eq!(
            (x.0, x.3.as_deref()),
            (17, Some("did you mean `accounts`?"))
        );
        assert_eq!(find("a batch's members change").0, 17);
        assert_eq!(find("takes its partitions from itself").0, 18);
        assert_eq!(find("needs `field`").0, 18);
        assert_eq!(find("not a template name").0, 19);
        assert_eq!(e.len(), 9, "{e:#?}");
    }

    #[test]
    fn the_schema_refuses_empty_lists_and_unknown_keys() {
        let body = "  issues:
    path: /x
    records: $[*]
    partitions:
      state: []
      c: { stream: accounts, feild: id }
";
        let e = errors(body);
        assert_eq!((e[0].0, e[0].1), (13, 14), "{e:?}");
        assert!(e[0].2.contains("at least 1 item"), "{e:?}");
        assert_eq!((e[1].0, e[1].1), (14, 30), "{e:?}");
        assert_eq!(e[1].2, "unknown field `feild`");
        assert_eq!(e[1].3.as_deref(), Some("did you mean `field`?"));
    }

    #[test]
    fn partition_variables_need_partitions_and_parent_excludes_them() {
        let e = errors("  s: { path: \"/{{ partition.x }}\", records: $ }\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].2
                .contains("only available in a stream with `partitions`"),
            "{e:?}"
        );
        let e = errors(
            "  s: { path: /s, records: $, parent: { stream: accounts, key: id }, partitions: { x: [1] } }\n",
        );
        assert!(
            e.iter()
                .any(|x| x.2.contains("both `parent` and `partitions`")),
            "{e:?}"
        );
        let e = errors("  s: { path: /s, records: $, partition_concurrency: 2 }\n");
        assert!(e[0].2.contains("has no `partitions`"), "{e:?}");
        let e = errors(
            "  s: { path: /s, records: $, partitions: { x: { config: repos, join: \",\" } } }\n",
        );
        assert!(e[0].2.contains("`join` only applies"), "{e:?}");
    }

    #[test]
    fn partition_streams_join_the_cycle_check() {
        let body = "  b: { path: /b, records: $, partitions: { x: { stream: c, field: id } } }
  c: { path: /c, records: $, parent: { stream: b, key: id } }
";
        let e = errors(body);
        assert!(
            e.iter()
                .any(|x| x.2.contains("closes a cycle of streams: b -> c -> b")),
            "{e:?}"
        );
    }
}
