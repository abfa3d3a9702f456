//! Offset and page-number pages fetched ahead: once the first page of a pass told the
//! total (`total` / `total_pages`), up to `pagination.concurrency` of the pages after it
//! are in flight at once, every request through the connector's one limiter, and the
//! pages are taken in page order, so the output, the checkpoints and every stop rule are
//! those of the sequential loop.
//!
//! The reorder buffer is the queue of pages in flight: at most `concurrency` pages (sent,
//! or answered and waiting for an earlier one) are held. How many are kept in flight is
//! [`crate::http::Http::in_flight`]: with a `requests_per_second` ceiling, what the rate
//! times the API's latency needs (more would only wait in the limiter's queue); without
//! one, `concurrency`.
//!
//! A page that fails fails the pass at that page: the pages before it are written, none
//! after it; the pages still in flight are dropped (their requests are cancelled). An
//! error rule's `skip` or `end`, `stop_when`, `max_pages`, a short or empty page and
//! `--limit` end the pass where the sequential loop would: the paginator still decides,
//! page by page, in order; the plan only says what to fetch ahead.

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde_json::Value;

use crate::engine::Engine;
use crate::http::Outgoing;
use crate::http::rules::Reply;
use crate::paginate::{Paginator, Stop};
use crate::records::fetch::{self, CutShort};
use crate::records::output::Lines;
use crate::records::{Page, Pass};
use crate::stream::{StreamError, StreamRun};

/// What a pass hands over after its first page: the rest is fetched ahead.
pub(crate) struct Rest<'p, 's> {
    /// The pass's stages (window, `include`).
    pub(crate) pass: &'p Pass<'s>,
    /// What its templates read.
    pub(crate) ctx: Value,
    /// The window's parameters.
    pub(crate) extra: &'p [(String, String)],
    /// The paginator, after the first page.
    pub(crate) pager: Paginator,
    /// The pass's output buffer.
    pub(crate) lines: Lines,
}

/// A page's request and its reply, its error rules not yet settled; or why it failed.
type Sent = Result<(Outgoing, Reply), StreamError>;

/// Runs the rest of a pass with pages fetched ahead; returns why it ended.
pub(crate) async fn run(
    engine: &Engine,
    run: &StreamRun,
    rest: Rest<'_, '_>,
) -> Result<Stop, StreamError> {
    let Rest {
        pass,
        mut ctx,
        extra,
        mut pager,
        mut lines,
    } = rest;
    let max = run.stream.pagination.page_concurrency() as usize;
    let mut planned = pager.planned_pages().unwrap_or(0);
    let mut queue = FuturesOrdered::new();
    // The index (from 0, the first page) of the next page to send.
    let mut queued_to = pager.pages();
    loop {
        if run.is_full() {
            return Ok(Stop::MaxPages);
        }
        if queue.is_empty() {
            // The plan is spent but the paginator goes on (a total that grew): one more.
            planned = planned.max(pager.pages() + 1);
        }
        let want = engine.http.in_flight(max);
        while queue.len() < want && queued_to < planned {
            let Some((target, vars)) = pager.ahead(queued_to - pager.pages()) else {
                break;
            };
            set_page(&mut ctx, vars);
            let req = fetch::request(engine, run, &ctx, &target, extra);
            queue.push_back(send(engine, run, req));
            queued_to += 1;
        }
        let Some(sent) = queue.next().await else {
            return Err(StreamError(format!(
                "{}: no page left to fetch after page {} (the paginator's numbers overflowed)",
                run.name,
                pager.pages()
            )));
        };
        let (req, reply) = sent?;
        let mut resp = match fetch::settle(run, reply) {
            Ok(r) => r,
            Err(stop) => return Ok(stop),
        };
        let mut cut = CutShort::default();
        let page = loop {
            match Page::select(&run.extractor, &resp) {
                Ok(p) => break p,
                Err(e) => {
                    cut.again(engine, run, &req, e).await?;
                    resp = match fetch::send(engine, run, &req).await? {
                        Ok(r) => r,
                        Err(stop) => return Ok(stop),
                    };
                }
            }
        };
        set_page(&mut ctx, pager.vars());
        let step = run.take_page(engine, pass, &ctx, &mut pager, page, &req, &mut lines);
        if let Err(stop) = step.await? {
            return Ok(stop);
        }
    }
}

/// Sends one page's request (or passes on why it could not be built).
async fn send(engine: &Engine, run: &StreamRun, req: Result<Outgoing, StreamError>) -> Sent {
    let req = req?;
    let reply = fetch::send_unsettled(engine, run, &req).await?;
    Ok((req, reply))
}

/// Sets the `page` template variable.
fn set_page(ctx: &mut Value, vars: Value) {
    if let Value::Object(m) = ctx {
        m.insert("page".into(), vars);
    }
}
