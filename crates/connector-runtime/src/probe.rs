//! `check` and `discover`: one page of each stream, to see what works and what comes back.

use std::path::Path;

use connector_spec::Stream;
use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::extract::Extractor;
use crate::paginate::Paginator;
use crate::request;
use crate::stats::Stats;

/// Records kept from the first page for inferring a schema.
const SAMPLE: usize = 100;

/// What one page of a stream showed.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The stream.
    pub stream: String,
    /// The request sent (secrets masked), when one was.
    pub request: Option<String>,
    /// Records on the first page.
    pub records: usize,
    /// Why it failed, or why it was skipped.
    pub error: Option<String>,
    /// A warning, e.g. a records path that matched nothing.
    pub warning: Option<String>,
    /// Up to 100 records of the first page.
    #[serde(skip)]
    pub sample: Vec<Value>,
}

/// Fetches the first page of every stream, children with the first record of their parent.
pub async fn probe_all(engine: &Engine) -> Vec<Probe> {
    let mut out: Vec<Probe> = Vec::new();
    for (name, stream) in &engine.spec.streams {
        let parent = match &stream.parent {
            None => None,
            Some(p) => match out
                .iter()
                .find(|o| o.stream == p.stream)
                .and_then(|o| o.sample.first())
            {
                Some(rec) => Some(rec.clone()),
                None => {
                    out.push(Probe {
                        stream: name.clone(),
                        request: None,
                        records: 0,
                        error: Some(format!(
                            "skipped: parent stream {} gave no record to try with",
                            p.stream
                        )),
                        warning: None,
                        sample: Vec::new(),
                    });
                    continue;
                }
            },
        };
        let sample = |s: &str| {
            out.iter()
                .find(|o| o.stream == s)
                .and_then(|o| o.sample.first())
        };
        let partition = match crate::partitions::first(engine, name, stream, sample) {
            Ok(p) => p,
            Err(e) => {
                out.push(Probe {
                    stream: name.clone(),
                    request: None,
                    records: 0,
                    error: Some(e),
                    warning: None,
                    sample: Vec::new(),
                });
                continue;
            }
        };
        out.push(probe(engine, name, stream, parent.as_ref(), partition).await);
    }
    out
}

async fn probe(
    engine: &Engine,
    name: &str,
    stream: &Stream,
    parent: Option<&Value>,
    partition: Option<Value>,
) -> Probe {
    let mut p = Probe {
        stream: name.to_owned(),
        request: None,
        records: 0,
        error: None,
        warning: None,
        sample: Vec::new(),
    };
    let mut ctx = engine.context();
    let pager = Paginator::new(&stream.pagination);
    if let Value::Object(m) = &mut ctx {
        if let Some(par) = parent {
            m.insert("parent".into(), par.clone());
        }
        if let Some(vars) = partition {
            m.insert("partition".into(), vars);
        }
        m.insert("page".into(), pager.vars());
    }
    let req = match request::build(
        &engine.spec,
        name,
        stream,
        &ctx,
        stream
            .body
            .as_ref()
            .map(request::BodyTemplate::new)
            .as_ref(),
        &pager.first(),
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            p.error = Some(engine.http.redact(&e.to_string()));
            return p;
        }
    };
    let shown = format!("{} {}", req.method, engine.http.show_url(&req.url));
    p.request = Some(shown.clone());
    let stats = Stats::default();
    let resp = match engine.http.send(&req, &stats, name).await {
        Ok(r) => r,
        Err(e) => {
            p.error = Some(e.message);
            return p;
        }
    };
    let ct = resp
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let page = match Extractor::new(&stream.records, &[]).page(&resp.body, ct) {
        Ok(pg) => pg,
        Err(e) => {
            p.error = Some(format!("{shown}: {}", engine.http.redact(&e.message)));
            return p;
        }
    };
    p.records = page.records.len();
    if page.records.is_empty() && page.path_missing {
        p.warning = Some(format!(
            "records path {} matched nothing; the body's top-level keys are: {}",
            stream.records.source(),
            page.meta
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ));
    }
    p.sample = page
        .records
        .iter()
        .take(SAMPLE)
        .filter_map(|r| serde_json::from_str(r.get()).ok())
        .collect();
    p
}

/// A stream's schema: declared inline, from `schema_file`, or inferred from the sample.
pub fn schema_of(spec_path: &Path, stream: &Stream, sample: &[Value]) -> (Value, &'static str) {
    if let Some(s) = &stream.schema {
        return (s.clone(), "declared");
    }
    if let Some(f) = &stream.schema_file {
        let path = spec_path.parent().unwrap_or(Path::new(".")).join(f);
        if let Some(v) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            return (v, "declared");
        }
    }
    (crate::infer::infer(sample), "inferred")
}

/// The `discover` document: each stream's schema and keys.
pub fn catalog(spec_path: &Path, engine: &Engine, probes: &[Probe]) -> Value {
    let mut streams = serde_json::Map::new();
    for (name, stream) in &engine.spec.streams {
        let sample = probes
            .iter()
            .find(|p| &p.stream == name)
            .map(|p| p.sample.as_slice())
            .unwrap_or(&[]);
        let (schema, source) = schema_of(spec_path, stream, sample);
        streams.insert(
            name.clone(),
            json!({
                "schema": schema,
                "schema_source": source,
                "primary_key": stream.primary_key.as_ref().map(|k| k.fields()),
                "incremental": stream.incremental.as_ref().map(|i| &i.cursor_field),
                "parent": stream.parent.as_ref().map(|p| &p.stream),
            }),
        );
    }
    json!({ "connector": engine.spec.name, "streams": streams })
}
