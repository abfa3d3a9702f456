//! The fetch stage: a page's request (built from the templates, the paginator's target
//! and the window's parameters), sent through the shared HTTP client, and the retry of a
//! JSON body cut short; then, after the page, the paginator's next target.

use serde_json::Value;

use crate::engine::Engine;
use crate::extract::ExtractError;
use crate::http::rules::Reply;
use crate::http::{Incoming, Outgoing};
use crate::paginate::{Paginator, Step, Stop, Target};
use crate::stats::Stats;
use crate::stream::{StreamError, StreamRun};

use super::select::Page;

/// Builds the request for `target`.
pub(crate) fn request(
    engine: &Engine,
    run: &StreamRun,
    ctx: &Value,
    target: &Target,
    extra: &[(String, String)],
) -> Result<Outgoing, StreamError> {
    crate::request::build(
        &engine.spec,
        &run.name,
        &run.stream,
        ctx,
        run.body.as_ref(),
        target,
        extra,
    )
    .map_err(|e| StreamError(engine.http.redact(&e.to_string())))
}

/// Sends a request (the client retries, backs off and waits for rate limits) and
/// settles the stream's error rules: the response, or where a `skip` or `end` rule
/// stops this pass.
pub(crate) async fn send(
    engine: &Engine,
    run: &StreamRun,
    req: &Outgoing,
) -> Result<Result<Incoming, Stop>, StreamError> {
    let reply = send_unsettled(engine, run, req).await?;
    Ok(settle(run, reply))
}

/// [`send`] without settling the error rules: a page fetched ahead is settled when its
/// turn comes, since an `end` stops every partition at once.
pub(crate) async fn send_unsettled(
    engine: &Engine,
    run: &StreamRun,
    req: &Outgoing,
) -> Result<Reply, StreamError> {
    engine
        .http
        .fetch(req, &run.stats, &run.name, &run.errors)
        .await
        .map_err(|e| StreamError(e.message))
}

/// What the stream's error rules make of a reply: the page, or where the pass stops.
pub(crate) fn settle(run: &StreamRun, reply: Reply) -> Result<Incoming, Stop> {
    run.errors
        .settle(reply, &run.stats, run.stages.limit.stop_flag())
}

/// Retries of a 200 whose JSON stops early (a proxy or the API cut it under a matching
/// Content-Length): the same request again, as for any body cut short.
#[derive(Debug, Default)]
pub(crate) struct CutShort {
    tries: u32,
}

impl CutShort {
    /// After an extraction error: waits and returns true when the page should be fetched
    /// again; otherwise the error, fit to print.
    pub(crate) async fn again(
        &mut self,
        engine: &Engine,
        run: &StreamRun,
        req: &Outgoing,
        e: ExtractError,
    ) -> Result<(), StreamError> {
        let retry = &engine.spec.http.retry;
        if !(e.cut_short && self.tries + 1 < retry.max_attempts) {
            return Err(StreamError(format!(
                "{} {}: {}",
                req.method,
                engine.http.show_url(&req.url),
                engine.http.redact(&e.message)
            )));
        }
        self.tries += 1;
        let wait =
            crate::http::backoff::full_jitter(retry.initial.get(), retry.max.get(), self.tries - 1);
        tracing::warn!(
            "{}: the JSON body of {} {} was cut short, waiting {:.1}s, attempt {}/{}",
            run.name,
            req.method,
            engine.http.show_url(&req.url),
            wait.as_secs_f64(),
            self.tries + 1,
            retry.max_attempts
        );
        Stats::add(&run.stats.retries, 1);
        run.stats.waited(wait);
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// A page came through whole: the next one starts with a fresh count.
    pub(crate) fn reset(&mut self) {
        self.tries = 0;
    }
}

/// The paginator's next target after `page`, checked before it is sent: a next URL on
/// another origin or scheme is refused, not retried.
pub(crate) fn next(
    engine: &Engine,
    run: &StreamRun,
    pager: &mut Paginator,
    page: &Page<'_>,
    req: &Outgoing,
) -> Result<Result<Target, Stop>, StreamError> {
    let at = || format!("{} {}", req.method, engine.http.show_url(&req.url));
    let step = pager
        .advance(&page.meta, page.headers, page.records.len(), page.url)
        .map_err(|e| StreamError(format!("{}: {}", at(), e.0)))?;
    let target = match step {
        Step::Next(t) => t,
        Step::Done(stop) => return Ok(Err(stop)),
    };
    if let Target::Url(u) = &target {
        engine.http.origins().check_next(u).map_err(|e| {
            StreamError(format!(
                "{}: {e} (next page URL: {})",
                at(),
                crate::http::snippet(engine.http.redact(u.as_str()).as_bytes())
            ))
        })?;
        tracing::debug!(stream = %run.name, "next page: {}", engine.http.show_url(u));
    }
    Ok(Ok(target))
}
