//! Building a stream's requests from its compiled templates.

use connector_spec::{Method, Spec, Stream, Template};
use indexmap::IndexMap;
use serde_json::Value;
use url::Url;

use crate::http::Outgoing;
use crate::paginate::Target;
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
            q.extend(params.iter().cloned());
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
    let body = match body {
        Some(b) => Some(
            serde_json::to_vec(&b.render(ctx, &format!("{field}.body"))?).map_err(|e| {
                RenderError {
                    field: format!("{field}.body"),
                    message: e.to_string(),
                }
            })?,
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

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
