//! `streams`: templates and JSONPaths, pagination rules, incremental, parents, schemas.

use std::path::Path;

use serde_json::Value;

use super::templates::{self, Scope};
use super::{Ctx, Parts, join, page_tokens, paths};
use crate::model::{CursorType, Method, Pagination, Stream};
use crate::suggest;
use crate::timefmt::TimeFormat;

/// Largest `schema_file` read.
const MAX_SCHEMA_FILE: u64 = 4 * 1024 * 1024;

pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts) {
    for (name, stream) in &parts.streams {
        let base = join("/streams", name);
        let p = |f: &str| format!("{base}/{f}");
        let partition_names: Vec<String> = stream.partitions.keys().cloned().collect();
        let scope = Scope {
            partitions: &partition_names,
            parent: stream.parent.is_some(),
            page: !matches!(stream.pagination, Pagination::None),
            incremental: stream.incremental.is_some(),
            record: false,
            ..Scope::CONFIG
        };
        templates::check(cx, parts, &p("path"), &stream.path, scope);
        for (k, t) in &stream.params {
            templates::check(cx, parts, &join(&p("params"), k), t, scope);
        }
        for (k, t) in &stream.headers {
            templates::check(cx, parts, &join(&p("headers"), k), t, scope);
        }
        if let Some(body) = &stream.body {
            templates::check_body(cx, parts, &p("body"), body, scope);
            if stream.method == Method::Get {
                cx.error(
                    cx.key(&p("body")),
                    format!("stream `{name}` has a `body` but its method is GET, which sends none"),
                    Some(
                        "add `method: POST` (search and GraphQL APIs read the body of a POST)"
                            .into(),
                    ),
                );
            }
        }
        duplicate_params(cx, parts, &base, stream);
        if let Some(f) = &stream.filter {
            templates::check_condition(cx, parts, &p("filter"), f, scope);
        }
        if let Some(steps) = &stream.transform {
            super::transform::check(cx, parts, &p("transform"), steps, scope);
        }
        paths::jsonpath(cx, &p("records"), &stream.records);
        super::error_rules::check(cx, &p("errors"), &stream.errors);
        pagination(cx, &base, stream);
        super::parallel_pages::check(cx, &base, stream);
        page_tokens::check(cx, parts, &base, stream, scope);
        incremental(cx, parts, &base, stream);
        if stream.dedup && stream.primary_key.is_none() {
            cx.error(
                cx.key(&p("dedup")),
                format!("stream `{name}` sets `dedup: true` but has no `primary_key` to dedupe by"),
                Some("add `primary_key: <field>` to the stream".into()),
            );
        }
        parent(cx, parts, name, &base, stream);
        crate::partitions::check(cx, parts, name, &base, stream);
        schema(cx, &base, stream);
    }
    if let Some(d) = &parts.defaults {
        super::transform::check(
            cx,
            parts,
            "/defaults/transform",
            &d.transform,
            Scope::CONFIG,
        );
    }
    crate::upstreams::cycles(cx, parts);
}

fn pagination(cx: &mut Ctx<'_>, base: &str, stream: &Stream) {
    let p = |f: &str| format!("{base}/pagination/{f}");
    match &stream.pagination {
        Pagination::None | Pagination::LinkHeader { .. } => {}
        Pagination::Offset { total, .. } => {
            if let Some(t) = total {
                paths::jsonpath(cx, &p("total"), t);
            }
            if stream.primary_key.is_none() || !stream.dedup {
                cx.warning(
                    cx.value(&p("kind")),
                    "offset pagination over live data can skip or repeat records when records are added or removed between pages",
                    Some("set `primary_key` and `dedup: true` so repeats are dropped, or use cursor pagination if the API has it".into()),
                );
            }
        }
        Pagination::PageNumber {
            total,
            total_pages,
            size,
            size_param,
            ..
        } => {
            if let Some(t) = total {
                paths::jsonpath(cx, &p("total"), t);
            }
            if let Some(t) = total_pages {
                paths::jsonpath(cx, &p("total_pages"), t);
            }
            if size_param.is_some() && size.is_none() {
                cx.error(
                    cx.key(&p("size_param")),
                    "`size_param` is set but `size` is not, so there is no page size to send",
                    Some("add `size: <records per page>`".into()),
                );
            }
        }
        Pagination::Cursor {
            next,
            next_header,
            next_record,
            ..
        } => {
            if let Some(n) = next {
                paths::jsonpath(cx, &p("next"), n);
            }
            let set: Vec<&str> = [
                (next.is_some(), "next"),
                (next_header.is_some(), "next_header"),
                (next_record.is_some(), "next_record"),
            ]
            .into_iter()
            .filter_map(|(on, f)| on.then_some(f))
            .collect();
            match set.as_slice() {
                [] => cx.error(
                    cx.key(&format!("{base}/pagination")),
                    "cursor pagination needs `next` (JSONPath of the cursor in the body), `next_header` (a response header) or `next_record` (a template over the page's last record)",
                    Some("e.g. `next: $.next_cursor`, or `next_record: \"{{ record.id }}\"`".into()),
                ),
                [_] => {}
                [_, extra, ..] => cx.error(
                    cx.key(&p(extra)),
                    format!(
                        "cursor pagination takes the cursor from one place, not {} {}",
                        if set.len() == 2 { "both" } else { "all of" },
                        set.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" and ")
                    ),
                    Some("keep `next` for a cursor in the body, `next_header` for one in a header, `next_record` for one made from the last record".into()),
                ),
            }
        }
        Pagination::NextUrl { next, .. } => paths::jsonpath(cx, &p("next"), next),
    }
    if let Some(h) = stream.pagination.has_more() {
        paths::jsonpath(cx, &p("has_more"), h);
    }
}

fn incremental(cx: &mut Ctx<'_>, parts: &Parts, base: &str, stream: &Stream) {
    let Some(inc) = &stream.incremental else {
        return;
    };
    let ip = format!("{base}/incremental");
    let p = |f: &str| format!("{ip}/{f}");
    if stream.primary_key.is_none() {
        cx.error(
            cx.key(&ip),
            "an incremental stream needs a `primary_key`, to drop the records re-read at the cursor boundary",
            Some("add `primary_key: <field>` to the stream".into()),
        );
    }
    if inc.cursor_field.starts_with('$') {
        paths::jsonpath(
            cx,
            &p("cursor_field"),
            &crate::JsonPath::new(inc.cursor_field.as_str()),
        );
    }
    templates::check(cx, parts, &p("start"), &inc.start, Scope::CONFIG);
    if inc.start.is_literal() {
        let s = inc.start.source();
        let ok = match inc.cursor_type {
            CursorType::Datetime if inc.format.is_none() => paths::is_rfc3339(s),
            CursorType::Datetime => true,
            CursorType::Integer | CursorType::UnixSeconds | CursorType::UnixMillis => {
                s.trim().parse::<i64>().is_ok()
            }
            CursorType::String => true,
        };
        if !ok {
            let what = match inc.cursor_type {
                CursorType::Integer | CursorType::UnixSeconds | CursorType::UnixMillis => {
                    "an integer"
                }
                _ => "an RFC 3339 date-time",
            };
            cx.error(
                cx.value(&p("start")),
                format!("incremental start `{s}` is not {what}"),
                Some("e.g. `2024-01-01T00:00:00Z`, or `\"{{ config.start_date }}\"`".into()),
            );
        }
    }
    if let Some(end) = &inc.end {
        templates::check(cx, parts, &p("end"), end, Scope::CONFIG);
    }
    super::date_windows::check(cx, &ip, stream, inc);
    // With windows, `end` bounds the range and `end_param` takes each window's end.
    match (&inc.end, &inc.end_param) {
        _ if inc.windows.is_some() => {}
        (Some(_), None) => cx.error(
            cx.key(&p("end")),
            "`end` is set but `end_param` is not, so the end is never sent",
            Some("add `end_param: <query parameter>`".into()),
        ),
        (None, Some(_)) => cx.error(
            cx.key(&p("end_param")),
            "`end_param` is set but `end` is not, so there is no value to send",
            Some("add `end: \"{{ config.end_date }}\"` or remove `end_param`".into()),
        ),
        _ => {}
    }
    if let Some(l) = &inc.lookback {
        paths::duration(cx, &p("lookback"), l);
    }
    if let Some(t) = &inc.future_tolerance {
        paths::duration(cx, &p("future_tolerance"), t);
        if !inc.cursor_type.is_time() {
            cx.warning(
                cx.key(&p("future_tolerance")),
                "`future_tolerance` only applies to time cursors (`datetime`, `unix_seconds`, `unix_millis`)",
                Some("if the integers are Unix timestamps, say so with `cursor_type: unix_seconds` or `unix_millis`".into()),
            );
        }
    }
    if let Some(f) = &inc.format {
        if inc.cursor_type != CursorType::Datetime {
            cx.warning(
                cx.key(&p("format")),
                "`format` only applies to `cursor_type: datetime`",
                None,
            );
        } else if let Err(e) = TimeFormat::parse(f) {
            cx.error(
                cx.value(&p("format")),
                e.0,
                Some("e.g. `%Y-%m-%d %H:%M:%S` (strftime) or `[year]-[month]-[day]` (a `time` format description)".into()),
            );
        }
    }
    if let Some(f) = &inc.param_format {
        if !inc.cursor_type.is_time() {
            cx.error(
                cx.key(&p("param_format")),
                "`param_format` converts a time cursor; this stream's `cursor_type` is not a time",
                Some("set `cursor_type: datetime`, `unix_seconds` or `unix_millis`, or remove `param_format`".into()),
            );
        } else if let Err(e) = TimeFormat::parse(f) {
            cx.error(cx.value(&p("param_format")), e.0, None);
        } else if inc.param.is_none() && inc.end_param.is_none() {
            cx.warning(
                cx.key(&p("param_format")),
                "`param_format` is set but neither `param` nor `end_param` is, so no value is sent",
                None,
            );
        }
    }
    dotted_cursor_field(cx, &p("cursor_field"), &inc.cursor_field);
}

/// A dotted name such as `attributes.updated` reads a top-level field of that exact name,
/// which is almost never what was meant: the nested field is the JSONPath
/// `$.attributes.updated`.
fn dotted_cursor_field(cx: &mut Ctx<'_>, ptr: &str, field: &str) {
    if field.starts_with('$') || !field.contains('.') {
        return;
    }
    cx.error(
        cx.value(ptr),
        format!("`{field}` is read as one field named `{field}`, not as a nested field"),
        Some(format!(
            "for the nested field write the JSONPath `$.{field}`; for a field whose name has a dot write `$['{field}']`"
        )),
    );
}

/// Query parameters that a stream sets itself and that the paginator or the incremental
/// window also sends: the API would get both values.
fn duplicate_params(cx: &mut Ctx<'_>, parts: &Parts, base: &str, stream: &Stream) {
    let page: Vec<(&str, String)> = page_tokens::page_params(&stream.pagination)
        .into_iter()
        .filter_map(|(field, p)| Some((p.query_name()?, page_tokens::label(field))))
        .collect();
    let mut owned: Vec<(&str, &str)> = page.iter().map(|(n, l)| (*n, l.as_str())).collect();
    if let Some(inc) = &stream.incremental {
        if let Some(p) = &inc.param {
            owned.push((p.as_str(), "incremental.param"));
        }
        if let Some(p) = &inc.end_param {
            owned.push((p.as_str(), "incremental.end_param"));
        }
    }
    let http_params = parts.http.iter().flat_map(|h| h.params.keys());
    for key in stream.params.keys().chain(http_params) {
        let Some((_, owner)) = owned.iter().find(|(name, _)| *name == key.as_str()) else {
            continue;
        };
        let (ptr, whose) = if stream.params.contains_key(key) {
            (join(&format!("{base}/params"), key), String::new())
        } else {
            (join("/http/params", key), format!(" of {base}"))
        };
        cx.error(
            cx.key(&ptr),
            format!("query parameter `{key}` is also sent by `{owner}`{whose}, so the API would receive it twice"),
            Some(format!("remove `{key}` here: `{owner}` fills it on every request")),
        );
    }
}

fn parent(cx: &mut Ctx<'_>, parts: &Parts, name: &str, base: &str, stream: &Stream) {
    let Some(parent) = &stream.parent else {
        return;
    };
    let ptr = format!("{base}/parent/stream");
    if parent.stream == name {
        cx.error(
            cx.value(&ptr),
            format!("stream `{name}` names itself as its parent"),
            None,
        );
    } else if !parts.stream_names.contains(&parent.stream) {
        let others = parts
            .stream_names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != name);
        let help = suggest::did_you_mean(&parent.stream, others.clone())
            .or_else(|| Some(format!("streams in this spec: {}", suggest::list(others))));
        cx.error(
            cx.value(&ptr),
            format!("parent stream `{}` does not exist", parent.stream),
            help,
        );
    }
    let incremental = parts
        .stream(&parent.stream)
        .is_some_and(|p| p.incremental.is_some());
    if parent.all_records && !incremental && parts.stream(&parent.stream).is_some() {
        cx.error(
            cx.key(&format!("{base}/parent/all_records")),
            format!(
                "`all_records` is only meaningful under an incremental parent, and stream `{}` has no `incremental`: its children already see every record",
                parent.stream
            ),
            Some("remove `all_records`".into()),
        );
    }
}

fn schema(cx: &mut Ctx<'_>, base: &str, stream: &Stream) {
    let p = |f: &str| format!("{base}/{f}");
    if let Some(inline) = &stream.schema {
        if stream.schema_file.is_some() {
            cx.error(
                cx.key(&p("schema_file")),
                "`schema` and `schema_file` are both set; keep one",
                None,
            );
        }
        json_schema(cx, &p("schema"), inline, None);
    }
    let Some(rel) = &stream.schema_file else {
        return;
    };
    let ptr = p("schema_file");
    let dir = cx.file().parent().unwrap_or(Path::new(""));
    let full = dir.join(rel);
    let meta = match std::fs::metadata(&full) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            cx.error(
                cx.value(&ptr),
                format!("schema file `{}` is not a file", full.display()),
                None,
            );
            return;
        }
        Err(e) => {
            cx.error(
                cx.value(&ptr),
                format!("schema file `{}` cannot be read: {e}", full.display()),
                Some("the path is relative to the spec file's folder".into()),
            );
            return;
        }
    };
    if meta.len() > MAX_SCHEMA_FILE {
        cx.error(
            cx.value(&ptr),
            format!(
                "schema file `{}` is over {MAX_SCHEMA_FILE} bytes",
                full.display()
            ),
            None,
        );
        return;
    }
    let parsed = std::fs::read(&full)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(v) => json_schema(cx, &ptr, &v, Some(&full)),
        Err(e) => cx.error(
            cx.value(&ptr),
            format!("schema file `{}` is not JSON: {e}", full.display()),
            None,
        ),
    }
}

/// A record schema must itself be a valid JSON Schema.
fn json_schema(cx: &mut Ctx<'_>, ptr: &str, schema: &Value, file: Option<&Path>) {
    if !(schema.is_object() || schema.is_boolean()) {
        cx.error(
            cx.value(ptr),
            "a record schema must be a JSON Schema object",
            None,
        );
        return;
    }
    if let Err(e) = jsonschema::meta::validate(schema) {
        let at = e.instance_path().as_str().to_owned();
        let whence = match file {
            Some(f) => format!("`{}`", f.display()),
            None => "the inline schema".into(),
        };
        let location = if file.is_none() && !at.is_empty() {
            cx.value(&format!("{ptr}{at}"))
        } else {
            cx.value(ptr)
        };
        let bad_type = at.ends_with("/type")
            && matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::AnyOf { .. }
                    | jsonschema::error::ValidationErrorKind::Enum { .. }
            );
        let detail = if bad_type {
            format!(
                "{} is not a JSON Schema type; use `string`, `number`, `integer`, `boolean`, `object`, `array` or `null`",
                e.instance()
            )
        } else {
            e.masked().to_string()
        };
        cx.error(
            location,
            format!(
                "{whence} is not a valid JSON Schema{}: {detail}",
                if at.is_empty() {
                    String::new()
                } else {
                    format!(" at `{at}`")
                },
            ),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::pagination_errors as errors;

    #[test]
    fn has_more_is_a_path_of_cursor_and_next_url_pagination() {
        let ok = [
            "{ kind: cursor, next: $.next, has_more: $.has_more, param: after }",
            "{ kind: next_url, next: $.next, has_more: $.meta.more }",
        ];
        for p in ok {
            assert!(errors(p).is_empty(), "{p}: {:?}", errors(p));
        }
        let e = errors("{ kind: cursor, next: $.next, has_more: \"$.[\", param: after }");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].0, e[0].1),
            (10, 60),
            "the `[` where the path stops parsing: {e:?}"
        );
        let e = errors("{ kind: offset, limit: 10, has_more: $.more }");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].2.contains("has_more"), "{e:?}");
    }
}
