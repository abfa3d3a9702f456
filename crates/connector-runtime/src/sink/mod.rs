//! Where records go and where positions are kept: the [`Destination`] a run writes to and
//! the [`RecordSink`] of each stream.
//!
//! The stream driver hands a sink complete JSON lines (the API's bytes) and, for an
//! appending stream, asks it to checkpoint: the sink makes the lines durable first and
//! stores the state with them, so a position never covers a record that could be lost.
//! Each destination decides what durable means (fsync, a transaction, a message written
//! after its records). This module owns the contract and the JSON-lines folder; other
//! destinations live in their own crates and must keep the same order.

mod folder;
mod jsonl;

pub use folder::JsonlFolder;
pub(crate) use folder::lock_state;
pub use jsonl::{
    AppendSink, JsonlSink, ResumeError, check_resume, remove_stale_temps, replace, sync_dir,
    write_atomic,
};

use crate::state::StreamState;

/// How a stream's output relates to what the destination already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Full refresh: the new output replaces the old one when the stream completes.
    Replace,
    /// Incremental, or a child of an incremental parent: appended and checkpointed.
    Append,
}

/// What a destination needs to know to open one stream's sink.
#[derive(Debug, Clone, Copy)]
pub struct StreamTarget<'a> {
    /// The stream's name (a safe name: see `connector_spec::names`).
    pub name: &'a str,
    /// Its spec: primary key, incremental cursor, declared schema, parent.
    pub stream: &'a connector_spec::Stream,
    /// Replace or append.
    pub mode: WriteMode,
    /// Where the stream resumes (the default state when it starts over).
    pub prior: &'a StreamState,
}

/// A sink or destination failed; the message is fit to print (no secrets).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// One stream's records on their way out.
///
/// Called from async tasks under a mutex: an implementation must not block on an async
/// runtime (a database sink does its work on its own thread behind a bounded channel).
pub trait RecordSink: Send {
    /// Takes complete JSON lines, one record each, `\n`-terminated.
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError>;

    /// Makes everything written so far durable, then stores `state` so that it covers
    /// exactly that (a sink may fill in its own fields, such as `output_bytes`).
    fn checkpoint(&mut self, state: &mut StreamState) -> Result<(), SinkError>;

    /// The stream succeeded: publishes the output (a replacing sink swaps it in) and,
    /// given a state, stores it as [`checkpoint`](Self::checkpoint) would.
    ///
    /// Dropping a sink without committing abandons it: a replacing sink leaves the old
    /// output in place, an appending one resumes after its last checkpoint next time.
    fn commit(self: Box<Self>, state: Option<&mut StreamState>) -> Result<(), SinkError>;
}

/// Where a run's records and positions live.
pub trait Destination: Send + Sync {
    /// The stored position of a stream, read back at the start of a run (`None`: never
    /// saved). Called for every appending stream before any sink is opened.
    fn prior_state(&self, stream: &str) -> Result<Option<StreamState>, SinkError>;

    /// Checks, changing nothing, that `stream` can resume from `prior`; called for every
    /// appending stream before any sink is opened.
    fn check_resume(&self, _stream: &str, _prior: &StreamState) -> Result<(), SinkError> {
        Ok(())
    }

    /// The error for a stored position that cannot be used, with what to do about it.
    fn resume_refused(&self, stream: &str, problem: &str) -> String {
        format!(
            "stream `{stream}`: {problem}. Nothing was changed; run with --full-refresh to start this stream over"
        )
    }

    /// Opens one stream's sink.
    fn open(&self, target: &StreamTarget<'_>) -> Result<Box<dyn RecordSink>, SinkError>;

    /// Where a stream's records go, for people (a path, a table).
    fn location(&self, stream: &str) -> String;
}
