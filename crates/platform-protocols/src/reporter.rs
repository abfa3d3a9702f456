//! Stream statuses, failures and warnings of a protocol run: TRACE and LOG messages for
//! Airbyte, standard error for Singer (through the ordinary log reporter either way).

use std::sync::Arc;

use connector_runtime::report::{LogReporter, Reporter, StreamOutcome};
use connector_runtime::stats::Stats;

use crate::FailureType;
use crate::airbyte::{Message, Status};
use crate::commands::{AirbyteOut, with};
use crate::incoming::Selection;

/// Airbyte's view of a run: STARTED when a selected stream starts, COMPLETE or a TRACE
/// error and INCOMPLETE when it ends, warnings as LOG messages. Streams run only to feed
/// a selected child say nothing on stdout.
pub struct AirbyteReporter {
    out: AirbyteOut,
    selection: Selection,
    logs: LogReporter,
}

impl AirbyteReporter {
    /// Reports the `selection`'s streams through `out`.
    pub fn new(out: AirbyteOut, selection: Selection) -> Self {
        Self {
            out,
            selection,
            logs: LogReporter,
        }
    }

    fn send(&self, m: &Message<'_>) {
        if let Err(e) = with(&self.out, |w| w.message(m)) {
            tracing::error!("{e}");
        }
    }
}

impl Reporter for AirbyteReporter {
    fn started(&self, stream: &str, stats: Arc<Stats>) {
        if self.selection.selected(stream) {
            self.send(&Message::status(stream, Status::Started));
        }
        self.logs.started(stream, stats);
    }

    fn finished(&self, o: &StreamOutcome) {
        self.logs.finished(o);
        if !self.selection.selected(&o.stream) {
            return;
        }
        match &o.error {
            None => self.send(&Message::status(&o.stream, Status::Complete)),
            Some(e) => {
                let text = format!("stream {} failed: {e}", o.stream);
                self.send(&Message::error(
                    &text,
                    FailureType::Transient,
                    Some(&o.stream),
                ));
                self.send(&Message::status(&o.stream, Status::Incomplete));
            }
        }
    }

    fn warning(&self, stream: &str, message: &str) {
        self.logs.warning(stream, message);
        if self.selection.selected(stream) {
            self.send(&Message::log("WARN", &format!("{stream}: {message}")));
        }
    }
}
