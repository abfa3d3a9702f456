//! The window stage: drops records before the incremental window (or already written at
//! its boundary), and moves the position past the records that go through.

use serde_json::Value;

use crate::stream::StreamError;
use crate::window::{Inc, Window};

/// One pass's window over a stream's incremental state.
pub(crate) struct WindowStage<'s> {
    inc: &'s Inc,
    window: Window,
    partition: Option<String>,
    stream: &'s str,
    /// A date window's spool, where its lines wait until the window is finished.
    spool: Option<&'s crate::date_windows::Spool>,
}

impl<'s> WindowStage<'s> {
    /// The window of the pass for `partition` (a parent key), or of the whole stream.
    pub(crate) fn new(
        inc: &'s Inc,
        partition: Option<String>,
        stream: &'s str,
    ) -> Result<Self, StreamError> {
        let window = Window::new(inc, partition.as_deref())
            .map_err(|e| StreamError(format!("{stream}: {e}")))?;
        Ok(Self {
            inc,
            window,
            partition,
            stream,
            spool: None,
        })
    }

    /// The same stage, its lines held in a date window's spool.
    pub(crate) fn spooled(self, spool: &'s crate::date_windows::Spool) -> Self {
        Self {
            spool: Some(spool),
            ..self
        }
    }

    /// The date window's spool, when the pass is one.
    pub(crate) fn spool(&self) -> Option<&'s crate::date_windows::Spool> {
        self.spool
    }

    /// The query parameters that place the window.
    pub(crate) fn params(&self) -> &[(String, String)] {
        &self.window.params
    }

    /// What templates read as `incremental`: `{start, end}`.
    pub(crate) fn vars(&self) -> Value {
        serde_json::json!({"start": self.window.lower, "end": self.inc.end})
    }

    /// False for a record before the window, or one already written at its boundary.
    pub(crate) fn keeps(&self, record: &Value, key: &str, hash: &str) -> Result<bool, StreamError> {
        self.window
            .keep(self.inc, record, key, hash)
            .map_err(|e| StreamError(format!("{}: {e}", self.stream)))
    }

    /// Moves the position past a record (written, or dropped by the filter); returns the
    /// cursor of a record too far in the future to be saved.
    pub(crate) fn track(
        &self,
        record: &Value,
        key: String,
        hash: String,
    ) -> Result<Option<String>, StreamError> {
        self.inc
            .advance(self.partition.as_deref(), record, key, hash)
            .map_err(|e| StreamError(format!("{}: {e}", self.stream)))
    }

    /// Whether the pass is one partition (a parent record) of a child stream.
    pub(crate) fn is_partition(&self) -> bool {
        self.partition.is_some()
    }

    /// The incremental side of the stream.
    pub(crate) fn inc(&self) -> &Inc {
        self.inc
    }
}
