//! Building a stream's requests from its compiled templates.

use connector_spec::{Method, ParamIn, Spec, Stream, Template};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use url::Url;

use crate::http::Outgoing;
use crate::paginate::{Target, Token};
use crate::render::{RenderError, render};

/// Joins a base URL and a path the way people mean it: `http://h/api` + `/orders` is
/// `http://h/api/orders` (unlike RFC 3986 resolution, which drops `api`).
pub fn join(base: &str, path: &str) -> Result<Url, String> {
    if path.starts_with("http://") || path.starts_with("https://") {
        return Url::parse(path).map_err(|e| format!("`{path}` is not a URL: {e}"));
    }
    let url = if path.is_empty() {
        base.to_owned()
    } else {
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    };
    let parsed = Url::parse(&url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    Ok(parsed)
}

/// Renders a map of templates into pairs.
fn pairs(
    out: &mut Vec<(String, String)>,
    templates: &IndexMap<String, Template>,
    ctx: &Value,
    field: &str,
) -> Result<(), RenderError> {
    for (k, t) in templates {
        out.push((k.clone(), render(t, ctx, &format!("{field}.{k}"))?));
    }
    Ok(())
}

/// A JSON body whose string leaves are templates, compiled once and rendered per request.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    /// A value without templates, sent as it is.
    Literal(Value),
    /// A string with template syntax.
    Text(Template),
    /// An array of bodies.
    Array(Vec<BodyTemplate>),
    /// An object of bodies, in order.
    Object(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// Compiles the templates of a body from the spec.
    pub fn new(body: &Value) -> Self {
        match body {
            Value::String(s) => {
                let t = Template::new(s.as_str());
                if t.is_literal() {
                    BodyTemplate::Literal(body.clone())
                } else {
                    BodyTemplate::Text(t)
                }
            }
            Value::Array(items) => {
                BodyTemplate::Array(items.iter().map(BodyTemplate::new).collect())
            }
            Value::Object(m) => BodyTemplate::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), BodyTemplate::new(v)))
                    .collect(),
            ),
            other => BodyTemplate::Literal(other.clone()),
        }
    }

    /// The body for one request; `field` names the spec field in errors.
    pub fn render(&self, ctx: &Value, field: &str) -> Result<Value, RenderError> {
        Ok(match self {
            BodyTemplate::Literal(v) => v.clone(),
            // One expression keeps its JSON type: `"{{ page.limit }}"` is a number,
            // `"{{ page.cursor }}"` on the first page is null.
            BodyTemplate::Text(t) => t.eval(ctx).map_err(|e| RenderError {
                field: field.to_owned(),
                message: e.to_string(),
            })?,
            BodyTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b.render(ctx, &format!("{field}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            BodyTemplate::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, b)| Ok((k.clone(), b.render(ctx, &format!("{field}.{k}"))?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
        })
    }
}

/// The request for one page of a stream.
pub fn build(
    spec: &Spec,
    name: &str,
    stream: &Stream,
    ctx: &Value,
    body: Option<&BodyTemplate>,
    target: &Target,
    extra: &[(String, String)],
) -> Result<Outgoing, RenderError> {
    let field = format!("streams.{name}");
    let mut url = match target {
        Target::Url(u) => u.clone(),
        Target::Params(params) => {
            let base = render(&spec.http.base_url, ctx, "http.base_url")?;
            let path = render(&stream.path, ctx, &format!("{field}.path"))?;
            let mut url = join(&base, &path).map_err(|message| RenderError {
                field: format!("{field}.path"),
                message,
            })?;
            let mut q = Vec::new();
            pairs(&mut q, &spec.http.params, ctx, "http.params")?;
            pairs(&mut q, &stream.params, ctx, &format!("{field}.params"))?;
            q.extend(params.iter().filter_map(|t| match t.at.place() {
                (ParamIn::Query, name) => Some((name.to_owned(), t.text())),
                _ => None,
            }));
            if !q.is_empty() {
                url.query_pairs_mut().extend_pairs(q);
            }
            url
        }
    };
    if !extra.is_empty() {
        // Incremental filters go on every page, next URLs included, unless already there.
        let present: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let add: Vec<&(String, String)> =
            extra.iter().filter(|(k, _)| !present.contains(k)).collect();
        if !add.is_empty() {
            url.query_pairs_mut().extend_pairs(add);
        }
    }
    let mut headers = Vec::new();
    pairs(&mut headers, &spec.http.headers, ctx, "http.headers")?;
    pairs(
        &mut headers,
        &stream.headers,
        ctx,
        &format!("{field}.headers"),
    )?;
    let tokens: &[Token] = match target {
        Target::Params(t) => t,
        Target::Url(_) => &[],
    };
    place_headers(&mut headers, tokens, &field)?;
    let rendered = match body {
        Some(b) => Some(b.render(ctx, &format!("{field}.body"))?),
        None => None,
    };
    let body = match place_body(rendered, tokens, &field)? {
        Some(b) => Some(serde_json::to_vec(&b).map_err(|e| RenderError {
            field: format!("{field}.body"),
            message: e.to_string(),
        })?),
        None => None,
    };
    Ok(Outgoing {
        method: match stream.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        },
        url,
        headers,
        body,
    })
}

/// Adds the paginator's header values; one the API gave that a header cannot carry (a
/// line break, say) is an error, not a request the HTTP library refuses later.
fn place_headers(
    headers: &mut Vec<(String, String)>,
    tokens: &[Token],
    field: &str,
) -> Result<(), RenderError> {
    for t in tokens {
        let (ParamIn::Header, name) = t.at.place() else {
            continue;
        };
        let text = t.text();
        if reqwest::header::HeaderValue::from_str(&text).is_err() {
            return Err(RenderError {
                field: format!("{field}.pagination"),
                message: format!(
                    "the value `{}` cannot be sent in header `{name}`: it holds characters a header cannot carry",
                    crate::printable::api_text(&text)
                ),
            });
        }
        headers.push((name.to_owned(), text));
    }
    Ok(())
}

/// Puts the paginator's body values at their dotted paths, creating the objects on the
/// way (and the body itself when the stream declares none).
fn place_body(
    body: Option<Value>,
    tokens: &[Token],
    field: &str,
) -> Result<Option<Value>, RenderError> {
    let mut body = body;
    for t in tokens {
        let (ParamIn::Body, path) = t.at.place() else {
            continue;
        };
        let root = body.get_or_insert_with(|| Value::Object(Map::new()));
        set_path(root, path, t.value.clone()).map_err(|message| RenderError {
            field: format!("{field}.body"),
            message,
        })?;
    }
    Ok(body)
}

/// Sets `value` at the dotted `path` of `root`, creating objects on the way.
fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut at = root;
    let mut segments = path.split('.').peekable();
    let mut walked = Vec::new();
    while let Some(seg) = segments.next() {
        let Value::Object(m) = at else {
            return Err(format!(
                "`{}` is not an object, so the paginator cannot set `{path}` inside it",
                if walked.is_empty() {
                    "the body".to_owned()
                } else {
                    walked.join(".")
                }
            ));
        };
        if segments.peek().is_none() {
            m.insert(seg.to_owned(), value);
            return Ok(());
        }
        walked.push(seg);
        at = m
            .entry(seg.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_spec::PageParam;
    use serde_json::json;

    fn token(at: PageParam, value: Value) -> Token {
        Token { at, value }
    }

    fn body_at(path: &str) -> PageParam {
        PageParam::Placed(connector_spec::Placement::Body(path.into()))
    }

    #[test]
    fn body_values_go_at_their_paths_with_their_types() {
        let tokens = [
            token(body_at("variables.after"), json!("c2")),
            token(body_at("variables.first"), json!(50)),
            token(body_at("page"), json!(3)),
            token("q".into(), json!("ignored here")),
        ];
        let got = place_body(Some(json!({"query": "{ x }"})), &tokens, "streams.s").unwrap();
        assert_eq!(
            got,
            Some(json!({"query": "{ x }", "variables": {"after": "c2", "first": 50}, "page": 3}))
        );
        // No body declared: one is made for the values.
        let got = place_body(None, &tokens[2..3], "streams.s").unwrap();
        assert_eq!(got, Some(json!({"page": 3})));
        // Nothing to place: no body stays no body.
        assert_eq!(place_body(None, &tokens[3..], "streams.s").unwrap(), None);
        // An existing non-object on the way is an error naming it.
        let e = place_body(Some(json!({"variables": [1]})), &tokens[..1], "streams.s").unwrap_err();
        assert!(
            e.to_string()
                .contains("streams.s.body: `variables` is not an object"),
            "{e}"
        );
        let e = place_body(Some(json!([1])), &tokens[..1], "streams.s").unwrap_err();
        assert!(e.to_string().contains("`the body` is not an object"), "{e}");
    }

    #[test]
    fn header_values_that_a_header_cannot_carry_are_errors() {
        let at = PageParam::Placed(connector_spec::Placement::Header("X-Cursor".into()));
        let mut h = Vec::new();
        place_headers(&mut h, &[token(at.clone(), json!("abc"))], "streams.s").unwrap();
        place_headers(&mut h, &[token(at.clone(), json!(42))], "streams.s").unwrap();
        assert_eq!(
            h,
            vec![
                ("X-Cursor".to_owned(), "abc".to_owned()),
                ("X-Cursor".to_owned(), "42".to_owned())
            ]
        );
        let e =
            place_headers(&mut h, &[token(at, json!("a\r\nX-Evil: 1"))], "streams.s").unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot be sent in header `X-Cursor`"),
            "{e}"
        );
    }

    #[test]
    fn join_keeps_base_path() {
        assert_eq!(
            join("http://h/api", "/orders").unwrap().as_str(),
            "http://h/api/orders"
        );
        assert_eq!(
            join("http://h/api/", "orders").unwrap().as_str(),
            "http://h/api/orders"
        );
        assert_eq!(
            join("http://h", "https://x/y").unwrap().as_str(),
            "https://x/y"
        );
        assert!(join("not a url", "/x").is_err());
        assert!(join("ftp://h", "/x").is_err());
    }
}
