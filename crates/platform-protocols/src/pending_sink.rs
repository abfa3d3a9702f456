//! TEMPORARY: the sink trait's shape as announced for connector_runtime::sink, until it lands.
#![allow(missing_docs, dead_code)]
use connector_runtime::state::StreamState;

pub enum WriteMode {
    Replace,
    Append,
}

pub struct StreamTarget<'a> {
    pub name: &'a str,
    pub stream: &'a connector_spec::Stream,
    pub mode: WriteMode,
    pub prior: &'a StreamState,
}

pub trait RecordSink: Send {
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError>;
    fn checkpoint(&mut self, state: &mut StreamState) -> Result<(), SinkError>;
    fn commit(self: Box<Self>, state: Option<&mut StreamState>) -> Result<(), SinkError>;
}

pub trait Destination: Send + Sync {
    fn prior_state(&self, stream: &str) -> Result<Option<StreamState>, SinkError>;
    fn open(&self, target: &StreamTarget<'_>) -> Result<Box<dyn RecordSink>, SinkError>;
    fn location(&self, stream: &str) -> String;
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);
