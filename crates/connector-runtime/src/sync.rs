//! Running the selected streams of a spec: parents before children, bounded concurrency,
//! each stream's output committed only when it completed.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::engine::{Engine, SetupError};
use crate::paginate::Stop;
use crate::partition_lists::Inbox;
use crate::partitions;
use crate::records::Child;
use crate::report::{Reporter, StreamOutcome};
use crate::sink::Destination;
use crate::state::StreamState;
use crate::stream::{ParentMsg, StreamError, StreamRun};
use crate::window::{check_prior, has_incremental_ancestor};

/// Capacity of a parent-to-child channel: enough to keep children busy, small enough
/// that a slow child slows its parent instead of filling memory.
const CHANNEL: usize = 256;

/// What to sync and how.
#[derive(Clone)]
pub struct SyncOptions {
    /// Streams asked for (empty: all); their parents run too.
    pub streams: Vec<String>,
    /// Top-level streams running at once.
    pub concurrency: usize,
    /// At most this many records per stream.
    pub limit: Option<u64>,
    /// Where records and states go (opened, and locked where that applies, by the host).
    pub destination: Arc<dyn Destination>,
    /// Ignore saved incremental state.
    pub full_refresh: bool,
}

/// The outcome of every stream that ran, in spec order.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// One per stream.
    pub outcomes: Vec<StreamOutcome>,
}

impl SyncReport {
    /// Whether every stream succeeded.
    pub fn ok(&self) -> bool {
        self.outcomes.iter().all(|o| o.error.is_none())
    }
}

/// The streams to run, in spec order: those asked for and their ancestors.
pub fn select(spec: &connector_spec::Spec, asked: &[String]) -> Result<Vec<String>, SetupError> {
    if asked.is_empty() {
        return Ok(spec.streams.keys().cloned().collect());
    }
    let mut wanted: Vec<String> = Vec::new();
    for name in asked {
        if !spec.streams.contains_key(name) {
            let best = spec
                .streams
                .keys()
                .min_by_key(|k| strsim::levenshtein(k, name))
                .filter(|k| strsim::levenshtein(k, name) <= 3);
            let hint = match best {
                Some(b) => format!("did you mean `{b}`?"),
                None => format!(
                    "the spec has: {}",
                    spec.streams.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            return Err(SetupError(format!(
                "--streams: no stream named `{name}`; {hint}"
            )));
        }
        let ancestors = spec
            .streams
            .get(name)
            .map(|s| spec.ancestors_of(s))
            .unwrap_or_default();
        for n in std::iter::once(name.as_str()).chain(ancestors) {
            if !wanted.iter().any(|w| w == n) {
                wanted.push(n.to_owned());
            }
        }
    }
    Ok(spec
        .streams
        .keys()
        .filter(|k| wanted.contains(k))
        .cloned()
        .collect())
}

/// Runs a sync to the end; a failed stream does not stop the others.
pub async fn run(
    engine: Arc<Engine>,
    opts: SyncOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<SyncReport, SetupError> {
    let names = select(&engine.spec, &opts.streams)?;
    let destination = opts.destination.clone();
    // Children first, so each parent can be given its children's senders; and each
    // stream reports its end to its parent, which saves its own state only after every
    // child's output is durable.
    let mut senders: HashMap<String, Vec<Child>> = HashMap::new();
    // A stream may wait for several (a parent, or one per partition list read from a
    // stream): one channel and one handshake each.
    let mut receivers: HashMap<String, Vec<Inbox>> = HashMap::new();
    let mut done_rx: HashMap<String, Vec<oneshot::Receiver<bool>>> = HashMap::new();
    let mut done_tx: HashMap<String, Vec<oneshot::Sender<bool>>> = HashMap::new();
    for name in &names {
        let Some(stream) = engine.spec.streams.get(name) else {
            continue;
        };
        for p in partitions::upstreams(stream) {
            let (tx, rx) = mpsc::channel(CHANNEL);
            senders.entry(p.stream.to_owned()).or_default().push(Child {
                tx,
                all_records: p.all_records,
            });
            let inbox = (p.list.map(str::to_owned), rx);
            receivers.entry(name.clone()).or_default().push(inbox);
            let (tx, rx) = oneshot::channel();
            done_rx.entry(p.stream.to_owned()).or_default().push(rx);
            done_tx.entry(name.clone()).or_default().push(tx);
        }
    }

    // Every stored position is read and checked before any sink opens: a refused one
    // leaves every output as it was.
    let mut priors = resume_points(&engine, &names, &*destination, opts.full_refresh)?;

    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut outcomes: Vec<Option<StreamOutcome>> = vec![None; names.len()];
    for (i, name) in names.iter().enumerate() {
        let Some(stream) = engine.spec.streams.get(name) else {
            continue;
        };
        let children = senders.remove(name).unwrap_or_default();
        // Taken before the stream can fail to start, so that its upstreams hear back.
        let mut rx = receivers.remove(name).unwrap_or_default();
        let my_children = done_rx.remove(name).unwrap_or_default();
        let tell_parent = done_tx.remove(name).unwrap_or_default();
        let run = match StreamRun::new(
            &engine,
            name,
            stream,
            children,
            opts.limit,
            &*destination,
            priors.remove(name),
            reporter.clone(),
        ) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                outcomes[i] = Some(failed(name, e));
                continue;
            }
        };
        let engine = engine.clone();
        let reporter = reporter.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            // Children wait for their parent's records, not for a permit: a permit held
            // while waiting on a parent that needs one would deadlock.
            let permit = match rx.is_empty() {
                true => permits.acquire_owned().await.ok(),
                false => None,
            };
            reporter.started(name_of(&run), run.stats.clone());
            let started = Instant::now();
            let result = match rx.len() {
                _ if partitions::declared(&run.stream) => partitions::run(&engine, &run, rx).await,
                0 => crate::date_windows::run(&engine, &run).await,
                _ => run_children(&engine, &run, rx.swap_remove(0).1).await,
            };
            let ok = result.is_ok();
            run.end_children(ok).await;
            // Done fetching: waiting for its children needs no permit, and one held here
            // would keep another upstream of the same child from ever starting.
            drop(permit);
            let mut children_ok = true;
            for c in my_children {
                children_ok &= c.await.unwrap_or(false);
            }
            let result = match result {
                Ok(stop) if children_ok || !run.is_durable() => run.commit().map(|()| stop),
                Ok(stop) => {
                    // Its records are written, but a child missed some of their children:
                    // keep the state where it was so the next run fetches them again.
                    run.abandon();
                    reporter.warning(
                        &run.name,
                        "a child stream failed, so this stream's state was not saved; the next run fetches the same records again",
                    );
                    Ok(stop)
                }
                Err(e) => {
                    run.abandon();
                    Err(e)
                }
            };
            for tx in tell_parent {
                let _ = tx.send(result.is_ok());
            }
            run.errors.report(&run.name, reporter.as_ref());
            let outcome = StreamOutcome {
                stream: run.name.clone(),
                stats: run.stats.snapshot(),
                elapsed: started.elapsed(),
                stop: result.as_ref().ok().map(|s| format!("{s:?}")),
                error: result.err().map(|e| e.0),
            };
            reporter.finished(&outcome);
            (i, outcome)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, o)) => outcomes[i] = Some(o),
            Err(e) => tracing::error!("a stream task ended abnormally: {e}"),
        }
    }
    Ok(SyncReport {
        outcomes: outcomes
            .into_iter()
            .zip(names)
            .map(|(o, n)| {
                o.unwrap_or_else(|| {
                    failed(&n, StreamError("the stream task ended abnormally".into()))
                })
            })
            .collect(),
    })
}

/// Where each appending stream resumes (the default state with `full_refresh`).
/// Refuses a stored position whose cursor does not read as the declared type or that
/// the destination cannot resume from; nothing has been written at that point.
fn resume_points(
    engine: &Engine,
    names: &[String],
    destination: &dyn Destination,
    full_refresh: bool,
) -> Result<HashMap<String, StreamState>, SetupError> {
    let now = time::OffsetDateTime::now_utc();
    let mut priors = HashMap::new();
    for name in names {
        let Some(stream) = engine.spec.streams.get(name) else {
            continue;
        };
        if stream.incremental.is_none() && !has_incremental_ancestor(&engine.spec, stream) {
            continue;
        }
        // Read even with `full_refresh`: the state is locked and checked before any
        // output is touched.
        let stored = destination.prior_state(name).map_err(|e| SetupError(e.0))?;
        let prior = match stored {
            Some(p) if !full_refresh => p,
            _ => {
                priors.insert(name.clone(), StreamState::default());
                continue;
            }
        };
        let problem = stream
            .incremental
            .as_ref()
            .and_then(|spec| check_prior(spec, &prior, now).err())
            .or_else(|| destination.check_resume(name, &prior).err().map(|e| e.0));
        if let Some(problem) = problem {
            return Err(SetupError(destination.resume_refused(name, &problem)));
        }
        priors.insert(name.clone(), prior);
    }
    Ok(priors)
}

fn name_of(run: &StreamRun) -> &str {
    &run.name
}

fn failed(name: &str, e: StreamError) -> StreamOutcome {
    StreamOutcome {
        stream: name.to_owned(),
        stats: Default::default(),
        elapsed: Default::default(),
        error: Some(e.0),
        stop: None,
    }
}

/// A child stream: one pass per parent record, `parent.concurrency` at once.
async fn run_children(
    engine: &Engine,
    run: &StreamRun,
    rx: mpsc::Receiver<ParentMsg>,
) -> Result<Stop, StreamError> {
    let concurrency = run
        .stream
        .parent
        .as_ref()
        .map_or(1, |p| p.concurrency.max(1) as usize);
    let parent_name = run
        .stream
        .parent
        .as_ref()
        .map(|p| p.stream.clone())
        .unwrap_or_default();
    let first_error: std::sync::Mutex<Option<StreamError>> = std::sync::Mutex::new(None);
    let parent_ok: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);
    // `End` is the parent's last message: stop there, because the parent keeps its
    // senders (so the channel stays open) until it has heard back from this child.
    let msgs = futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let m = rx.recv().await?;
        let more = !matches!(m, ParentMsg::End(_));
        Some((m, more.then_some(rx)))
    });
    msgs.for_each_concurrent(concurrency, |msg| {
        let first_error = &first_error;
        let parent_ok = &parent_ok;
        let parent_name = &parent_name;
        async move {
            match msg {
                ParentMsg::End(ok) => {
                    if let Ok(mut g) = parent_ok.lock() {
                        *g = Some(ok);
                    }
                }
                ParentMsg::Record(parent) => {
                    // After a failure, keep draining so the parent is never blocked.
                    let failed = first_error.lock().map(|g| g.is_some()).unwrap_or(true);
                    if failed || run.is_full() {
                        return;
                    }
                    if let Err(e) = run.run_partition(engine, Some(&parent)).await {
                        let key = run
                            .stream
                            .parent
                            .as_ref()
                            .and_then(|p| parent.get(&p.key).cloned())
                            .unwrap_or_default();
                        if let Ok(mut g) = first_error.lock() {
                            g.get_or_insert(StreamError(format!(
                                "partition {parent_name} {key}: {}",
                                e.0
                            )));
                        }
                    }
                }
            }
        }
    })
    .await;
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    match parent_ok.into_inner().ok().flatten() {
        Some(true) => Ok(Stop::NoNext),
        _ => Err(StreamError(format!(
            "parent stream {parent_name} failed, so this child stream is incomplete; its previous output is kept"
        ))),
    }
}
