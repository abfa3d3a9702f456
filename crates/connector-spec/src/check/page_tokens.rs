//! Pagination that reads the records (`next_record`, `stop_when`), and where the values a
//! paginator sends go (query, header, body path): each placement fits the stream.

use serde_json::Value;

use super::templates::{self, Scope};
use super::{Ctx, Parts, join};
use crate::model::{ApiKeyLocation, Auth, Method, Pagination, Stream};
use crate::page_param::{PageParam, ParamIn};

/// The values a stream's paginator sends: the field under `pagination` (a pointer suffix,
/// e.g. `page_size/param`) and its placement.
pub(crate) fn page_params(p: &Pagination) -> Vec<(&'static str, &PageParam)> {
    match p {
        Pagination::Offset {
            offset_param,
            limit_param,
            ..
        } => vec![("offset_param", offset_param), ("limit_param", limit_param)],
        Pagination::PageNumber {
            page_param,
            size_param,
            ..
        } => {
            let mut v = vec![("page_param", page_param)];
            v.extend(size_param.iter().map(|s| ("size_param", s)));
            v
        }
        Pagination::Cursor {
            param, page_size, ..
        } => {
            let mut v = vec![("param", param)];
            v.extend(page_size.iter().map(|ps| ("page_size/param", &ps.param)));
            v
        }
        Pagination::None | Pagination::NextUrl { .. } | Pagination::LinkHeader { .. } => Vec::new(),
    }
}

/// `pagination.<field>` as people write it, from a pointer suffix.
pub(crate) fn label(field: &str) -> String {
    format!("pagination.{}", field.replace('/', "."))
}

/// Checks `next_record`, `stop_when` and every placement of the stream at `base`.
pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts, base: &str, stream: &Stream, scope: Scope) {
    let pg = format!("{base}/pagination");
    let with_record = Scope {
        record: true,
        ..scope
    };
    if let Pagination::Cursor {
        next_record: Some(t),
        ..
    } = &stream.pagination
    {
        templates::check(cx, parts, &format!("{pg}/next_record"), t, with_record);
    }
    if let Some(c) = stream.pagination.stop_when() {
        templates::check_condition(cx, parts, &format!("{pg}/stop_when"), c, scope);
    }
    let mut taken: Vec<(ParamIn, String)> = Vec::new();
    for (field, param) in page_params(&stream.pagination) {
        let ptr = format!("{pg}/{field}{}", param.pointer_suffix());
        let (place, name) = param.place();
        let id = match place {
            ParamIn::Header => name.to_ascii_lowercase(),
            _ => name.to_owned(),
        };
        if taken.contains(&(place, id.clone())) {
            cx.error(
                cx.value(&ptr),
                format!(
                    "`{}` goes to the same place as another pagination value (`{name}`)",
                    label(field)
                ),
                Some("give each paginator value its own name or path".into()),
            );
            continue;
        }
        taken.push((place, id));
        match place {
            ParamIn::Query => {}
            ParamIn::Header => header(cx, parts, &ptr, field, name, stream),
            ParamIn::Body => body(cx, &ptr, field, name, stream),
        }
    }
}

/// A header placement: a valid name that no declared header or the auth already sends.
fn header(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, field: &str, name: &str, stream: &Stream) {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        cx.error(
            cx.value(ptr),
            format!("`{name}` is not a header name"),
            Some("a header name is letters, digits and `-`, e.g. `X-Cursor`".into()),
        );
        return;
    }
    let same = |k: &String| k.eq_ignore_ascii_case(name);
    let declared = if stream.headers.keys().any(same) {
        Some("the stream's `headers`")
    } else if parts.http.iter().any(|h| h.headers.keys().any(same)) {
        Some("`http.headers`")
    } else {
        parts.http.as_ref().and_then(|h| match &h.auth {
            Auth::ApiKey {
                name: key,
                location: ApiKeyLocation::Header,
                ..
            } if key.eq_ignore_ascii_case(name) => Some("`http.auth`"),
            Auth::Bearer { .. } | Auth::Basic { .. } | Auth::Oauth2ClientCredentials { .. }
                if name.eq_ignore_ascii_case("authorization") =>
            {
                Some("`http.auth`")
            }
            _ => None,
        })
    };
    if let Some(whose) = declared {
        cx.error(
            cx.value(ptr),
            format!(
                "header `{name}` of `{}` is also sent by {whose}, so the API would receive it twice",
                label(field)
            ),
            Some(format!(
                "remove `{name}` from {whose}, or send the paginator's value under another header"
            )),
        );
    }
}

/// A body placement: a POST stream, a dotted path that the body does not set already.
fn body(cx: &mut Ctx<'_>, ptr: &str, field: &str, path: &str, stream: &Stream) {
    let what = label(field);
    if stream.method == Method::Get {
        cx.error(
            cx.value(ptr),
            format!("`{what}` goes in the body, but the stream's method is GET, which sends no body"),
            Some("add `method: POST` to the stream (search and GraphQL APIs read the body of a POST), or send it as a query parameter".into()),
        );
        return;
    }
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        cx.error(
            cx.value(ptr),
            format!("`{path}` is not a body path"),
            Some("write field names joined by dots, e.g. `variables.after`".into()),
        );
        return;
    }
    let Some(mut at) = stream.body.as_ref() else {
        return;
    };
    for (i, seg) in segments.iter().enumerate() {
        let Value::Object(m) = at else {
            let inside = segments[..i].join(".");
            cx.error(
                cx.value(ptr),
                format!("`{what}` goes inside body field `{inside}`, which is not an object"),
                Some("point the path at an object of the body, or at a new field".into()),
            );
            return;
        };
        match m.get(*seg) {
            Some(next) => at = next,
            None => return,
        }
    }
    let body_ptr = segments
        .iter()
        .fold(format!("{}/body", stream_base(ptr)), |p, s| join(&p, s));
    cx.error(
        cx.key(&body_ptr),
        format!("body field `{path}` is also filled by `{what}`, on every request"),
        Some(format!(
            "remove `{path}` from `body`: the paginator sets it (and leaves it out while it has no value)"
        )),
    );
}

/// `/streams/<name>` from a pointer under it.
fn stream_base(ptr: &str) -> &str {
    ptr.find("/pagination").map_or(ptr, |i| &ptr[..i])
}

#[cfg(test)]
mod tests {

    /// (line, col, message) of every error of a spec with this `http` and these streams.
    fn errors(http: &str, streams: &str) -> Vec<(usize, usize, String)> {
        let text = format!("version: 1\nname: t\nhttp: {http}\nstreams:\n{streams}");
        super::super::errors_in(&text)
            .into_iter()
            .map(|d| (d.location.line, d.location.col, d.message))
            .collect()
    }

    const HTTP: &str = "{ base_url: \"https://x\" }";

    #[test]
    fn placements_that_fit_pass() {
        let streams = "  a:
    path: /a
    method: POST
    records: $[*]
    pagination: { kind: offset, limit: 5, offset_param: { body: page.from }, limit_param: { header: X-Size }, stop_when: record.id > page.offset }
  b:
    path: /b
    method: POST
    body: { variables: { first: 5 } }
    records: $[*]
    pagination: { kind: cursor, next_record: \"{{ record.id + 1 }}\", param: { body: variables.after }, page_size: { param: { query: n }, value: 5 } }
";
        assert_eq!(errors(HTTP, streams), Vec::new());
    }

    #[test]
    fn placements_that_cannot_work_are_refused_where_they_are_written() {
        let http = "{ base_url: \"https://x\", auth: { kind: api_key, name: X-Key, value: k } }";
        let streams = "  a:
    path: /a
    method: POST
    body: { variables: [1] }
    records: $[*]
    pagination: { kind: offset, limit: 5, offset_param: { body: variables.from }, limit_param: { body: a..b } }
  b:
    path: /b
    records: $[*]
    pagination: { kind: page_number, page_param: { header: x-key }, size: 2, size_param: { header: \"bad name\" } }
  c:
    path: /c
    records: $[*]
    pagination: { kind: cursor, next: $.n, param: { header: X-C }, page_size: { param: { header: x-c }, value: 2 } }
";
        let got = errors(http, streams);
        let has =
            |line: usize, text: &str| got.iter().any(|(l, _, m)| *l == line && m.contains(text));
        assert!(
            has(10, "inside body field `variables`, which is not an object"),
            "{got:?}"
        );
        assert!(has(10, "`a..b` is not a body path"), "{got:?}");
        assert!(
            has(
                14,
                "header `x-key` of `pagination.page_param` is also sent by `http.auth`"
            ),
            "{got:?}"
        );
        assert!(has(14, "`bad name` is not a header name"), "{got:?}");
        assert!(
            has(18, "`pagination.page_size.param` goes to the same place"),
            "{got:?}"
        );
        assert_eq!(got.len(), 5, "{got:?}");
    }
}
