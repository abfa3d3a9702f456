//! Live progress on a terminal: one line per stream with records, pages and records/s.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::report::{Reporter, StreamOutcome};
use crate::stats::Stats;

/// How often the lines are refreshed.
const TICK: Duration = Duration::from_millis(150);

/// A [`Reporter`] that draws progress lines on standard error.
#[derive(Debug, Clone)]
pub struct TerminalReporter {
    multi: MultiProgress,
    bars: Arc<Mutex<Vec<(String, ProgressBar)>>>,
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalReporter {
    /// Progress lines on standard error.
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)),
            bars: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A writer for log lines that does not tear the progress lines.
    pub fn log_writer(&self) -> SuspendWriter {
        SuspendWriter {
            multi: self.multi.clone(),
        }
    }

    fn bar(&self, stream: &str) -> Option<ProgressBar> {
        self.bars
            .lock()
            .ok()?
            .iter()
            .find(|(n, _)| n == stream)
            .map(|(_, b)| b.clone())
    }
}

fn line(stream: &str, records: u64, pages: u64, rate: f64, extra: &str) -> String {
    format!("{stream:<20} {records:>10} records  {pages:>6} pages  {rate:>9.0} rec/s{extra}")
}

impl Reporter for TerminalReporter {
    fn started(&self, stream: &str, stats: Arc<Stats>) {
        let style = ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
        bar.set_message(line(stream, 0, 0, 0.0, ""));
        if let Ok(mut g) = self.bars.lock() {
            g.push((stream.to_owned(), bar.clone()));
        }
        let name = stream.to_owned();
        let weak = Arc::downgrade(&stats);
        drop(stats);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let started = Instant::now();
                loop {
                    tokio::time::sleep(TICK).await;
                    let Some(stats) = weak.upgrade() else { break };
                    if bar.is_finished() {
                        break;
                    }
                    let s = stats.snapshot();
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    let waiting = if s.retries > 0 {
                        format!("  {} retries", s.retries)
                    } else {
                        String::new()
                    };
                    bar.set_message(line(
                        &name,
                        s.records,
                        s.pages,
                        s.records as f64 / secs,
                        &waiting,
                    ));
                    bar.tick();
                }
            });
        }
    }

    fn finished(&self, o: &StreamOutcome) {
        if let Some(bar) = self.bar(&o.stream) {
            let end = match &o.error {
                None => "  done".to_owned(),
                Some(_) => "  FAILED".to_owned(),
            };
            bar.finish_with_message(line(
                &o.stream,
                o.stats.records,
                o.stats.pages,
                o.rate(),
                &end,
            ));
        }
        if let Some(e) = &o.error {
            let _ = self.multi.println(format!(
                "error: {}: {}",
                o.stream,
                crate::printable::escape(e)
            ));
        }
    }

    fn warning(&self, stream: &str, message: &str) {
        let message = crate::printable::escape(message);
        let _ = self.multi.println(format!("warning: {stream}: {message}"));
    }
}

/// Writes to standard error with the progress lines lifted out of the way.
#[derive(Debug, Clone)]
pub struct SuspendWriter {
    multi: MultiProgress,
}

impl Write for SuspendWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.multi.suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
