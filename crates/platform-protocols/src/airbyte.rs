//! The Airbyte protocol's messages and its one writer.
//!
//! One JSON object per line on standard output. RECORD lines are spliced from the API's
//! bytes ([`Writer::records`]); every other message goes through [`Message`] and serde.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::FailureType;

/// One Airbyte message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message<'a> {
    /// The connector's specification (`spec`).
    Spec {
        /// `{"connectionSpecification": ..., ...}`.
        spec: &'a Value,
    },
    /// The outcome of `check`.
    ConnectionStatus {
        /// Succeeded or failed, and why.
        #[serde(rename = "connectionStatus")]
        connection_status: ConnectionStatus<'a>,
    },
    /// The streams (`discover`).
    Catalog {
        /// `{"streams": [...]}`.
        catalog: &'a Value,
    },
    /// One record; [`Writer::records`] writes the same bytes without serde.
    Record {
        /// The record and its stream.
        record: Record<'a>,
    },
    /// A stream's position, covering every record of it written before.
    State {
        /// Per-stream state.
        state: State<'a>,
    },
    /// A log line.
    Log {
        /// Level and text.
        log: Log<'a>,
    },
    /// An error or a stream status.
    Trace {
        /// What happened.
        trace: Trace<'a>,
    },
}

/// `check`'s answer.
#[derive(Debug, Serialize)]
pub struct ConnectionStatus<'a> {
    /// `SUCCEEDED` or `FAILED`.
    pub status: &'static str,
    /// Why, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

/// A RECORD's body.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The record as the API sent it.
    pub data: &'a RawValue,
    /// Milliseconds since the epoch.
    pub emitted_at: i64,
}

/// A stream's name, as the protocol wraps it.
#[derive(Debug, Serialize)]
pub struct Descriptor<'a> {
    /// The stream.
    pub name: &'a str,
}

/// A per-stream STATE.
#[derive(Debug, Serialize)]
pub struct State<'a> {
    /// Always `STREAM`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The stream and its state.
    pub stream: StreamState<'a>,
    /// Records of this stream emitted since its previous STATE.
    #[serde(rename = "sourceStats")]
    pub source_stats: SourceStats,
}

/// The stream part of a STATE.
#[derive(Debug, Serialize)]
pub struct StreamState<'a> {
    /// Which stream.
    pub stream_descriptor: Descriptor<'a>,
    /// Its position, opaque to the platform.
    pub stream_state: &'a Value,
}

/// Counts the platform checks against the records it received.
#[derive(Debug, Serialize)]
pub struct SourceStats {
    /// Records since the previous STATE of the stream.
    #[serde(rename = "recordCount")]
    pub record_count: f64,
}

/// A LOG's body.
#[derive(Debug, Serialize)]
pub struct Log<'a> {
    /// `FATAL`, `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The text.
    pub message: &'a str,
}

/// A TRACE's body.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Trace<'a> {
    /// The run failed (or one stream did).
    Error {
        /// Milliseconds since the epoch.
        emitted_at: f64,
        /// What failed.
        error: TraceError<'a>,
    },
    /// A stream started, is running, completed, or ended incomplete.
    StreamStatus {
        /// Milliseconds since the epoch.
        emitted_at: f64,
        /// Which stream and where it stands.
        stream_status: StreamStatus<'a>,
    },
}

/// The error of a TRACE.
#[derive(Debug, Serialize)]
pub struct TraceError<'a> {
    /// For the user, in plain words.
    pub message: &'a str,
    /// Whose problem it is.
    pub failure_type: &'static str,
    /// The stream it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_descriptor: Option<Descriptor<'a>>,
}

/// A stream status.
#[derive(Debug, Serialize)]
pub struct StreamStatus<'a> {
    /// Which stream.
    pub stream_descriptor: Descriptor<'a>,
    /// `STARTED`, `RUNNING`, `COMPLETE` or `INCOMPLETE`.
    pub status: Status,
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Its first request is about to go.
    Started,
    /// Records are flowing.
    Running,
    /// Every record was emitted.
    Complete,
    /// It failed; what was emitted before its last STATE stands.
    Incomplete,
}

impl<'a> Message<'a> {
    /// A TRACE error.
    pub fn error(message: &'a str, failure: FailureType, stream: Option<&'a str>) -> Self {
        Message::Trace {
            trace: Trace::Error {
                emitted_at: crate::now_millis() as f64,
                error: TraceError {
                    message,
                    failure_type: failure.as_str(),
                    stream_descriptor: stream.map(|name| Descriptor { name }),
                },
            },
        }
    }

    /// A TRACE stream status.
    pub fn status(stream: &'a str, status: Status) -> Self {
        Message::Trace {
            trace: Trace::StreamStatus {
                emitted_at: crate::now_millis() as f64,
                stream_status: StreamStatus {
                    stream_descriptor: Descriptor { name: stream },
                    status,
                },
            },
        }
    }

    /// A LOG line.
    pub fn log(level: &'static str, message: &'a str) -> Self {
        Message::Log {
            log: Log { level, message },
        }
    }

    /// A per-stream STATE.
    pub fn state(stream: &'a str, state: &'a Value, records: u64) -> Self {
        Message::State {
            state: State {
                kind: "STREAM",
                stream: StreamState {
                    stream_descriptor: Descriptor { name: stream },
                    stream_state: state,
                },
                source_stats: SourceStats {
                    record_count: records as f64,
                },
            },
        }
    }
}

/// The one writer of Airbyte messages: records are buffered, every other message is
/// written and flushed at once, so a STATE reaches the platform after, and only after,
/// the records before it.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// A writer over `out` (standard output, buffered, in the binary).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one message on its own line and flushes everything before it too.
    pub fn message(&mut self, m: &Message<'_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, m)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Writes one RECORD per line of `lines` (complete JSON records, each ending in
    /// `\n`, as the engine's sinks receive them), splicing the bytes in as `data`.
    /// Returns the number of records. Buffered: [`flush`](Self::flush) or the next
    /// [`message`](Self::message) sends them.
    pub fn records(&mut self, stream: &str, lines: &[u8], emitted_at: i64) -> io::Result<u64> {
        let mut head = Vec::with_capacity(stream.len() + 48);
        head.extend_from_slice(b"{\"type\":\"RECORD\",\"record\":{\"stream\":");
        serde_json::to_writer(&mut head, stream)?;
        head.extend_from_slice(b",\"data\":");
        let tail = format!(",\"emitted_at\":{emitted_at}}}}}\n");
        splice(&mut self.out, &head, lines, tail.as_bytes())
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The inner writer (tests).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes `head`, the line without its newline, `tail`, for every line of `lines`.
pub(crate) fn splice<W: Write>(
    out: &mut W,
    head: &[u8],
    lines: &[u8],
    tail: &[u8],
) -> io::Result<u64> {
    let mut n = 0u64;
    let mut rest = lines;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or(&[]);
        if line.is_empty() {
            continue;
        }
        out.write_all(head)?;
        out.write_all(line)?;
        out.write_all(tail)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_record_is_what_serde_writes() {
        let raw = r#"{"id":1,"name":"caf\u00e9","n":1.50}"#;
        let mut w = Writer::new(Vec::new());
        let n = w
            .records("orders", format!("{raw}\n{raw}\n").as_bytes(), 42)
            .unwrap();
        assert_eq!(n, 2);
        let got = String::from_utf8(w.into_inner()).unwrap();
        let data: Box<RawValue> = serde_json::from_str(raw).unwrap();
        let one = serde_json::to_string(&Message::Record {
            record: Record {
                stream: "orders",
                data: &data,
                emitted_at: 42,
            },
        })
        .unwrap();
        assert_eq!(got, format!("{one}\n{one}\n"));
        assert!(got.contains(r#""n":1.50"#), "bytes as sent: {got}");
    }

    #[test]
    fn messages_have_the_protocols_shape() {
        let mut w = Writer::new(Vec::new());
        let st = serde_json::json!({"a": 1});
        w.message(&Message::state("orders", &st, 3)).unwrap();
        w.message(&Message::error("bad", FailureType::Config, None))
            .unwrap();
        w.message(&Message::status("orders", Status::Complete))
            .unwrap();
        w.message(&Message::ConnectionStatus {
            connection_status: ConnectionStatus {
                status: "FAILED",
                message: Some("no"),
            },
        })
        .unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        let v: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            v[0]["state"]["stream"]["stream_descriptor"]["name"],
            "orders"
        );
        assert_eq!(v[0]["state"]["sourceStats"]["recordCount"], 3.0);
        assert_eq!(v[1]["trace"]["type"], "ERROR");
        assert_eq!(v[1]["trace"]["error"]["failure_type"], "config_error");
        assert_eq!(v[2]["trace"]["stream_status"]["status"], "COMPLETE");
        assert_eq!(v[3]["type"], "CONNECTION_STATUS");
        assert_eq!(v[3]["connectionStatus"]["status"], "FAILED");
    }
}
