//! The Singer protocol's messages and its one writer.
//!
//! SCHEMA, RECORD and STATE, one JSON object per line on standard output; logs go to
//! standard error, as Singer taps do.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// One Singer message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message<'a> {
    /// A stream's schema and keys, before its first record.
    Schema {
        /// The stream.
        stream: &'a str,
        /// Its JSON schema.
        schema: &'a Value,
        /// Its primary key fields.
        key_properties: &'a [String],
        /// The replication key, for incremental streams.
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        bookmark_properties: &'a [String],
    },
    /// One record; [`Writer::records`] writes the same bytes without serde.
    Record {
        /// The stream.
        stream: &'a str,
        /// The record as the API sent it.
        record: &'a RawValue,
        /// When it was fetched (RFC 3339).
        time_extracted: &'a str,
    },
    /// The bookmarks of every stream, covering every record written before.
    State {
        /// `{"bookmarks": {...}}`.
        value: &'a Value,
    },
}

/// The one writer of Singer messages: records are buffered, SCHEMA and STATE flush
/// everything before them.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// A writer over `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one message on its own line and flushes everything before it too.
    pub fn message(&mut self, m: &Message<'_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, m)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Writes one RECORD per line of `lines` (complete records, `\n`-terminated), the
    /// bytes spliced in as `record`; returns how many. Buffered until the next message
    /// or [`flush`](Self::flush).
    pub fn records(&mut self, stream: &str, lines: &[u8], time_extracted: &str) -> io::Result<u64> {
        let mut head = Vec::with_capacity(stream.len() + 80);
        head.extend_from_slice(b"{\"type\":\"RECORD\",\"stream\":");
        serde_json::to_writer(&mut head, stream)?;
        head.extend_from_slice(b",\"record\":");
        let mut tail = b",\"time_extracted\":".to_vec();
        serde_json::to_writer(&mut tail, time_extracted)?;
        tail.extend_from_slice(b"}\n");
        crate::airbyte::splice(&mut self.out, &head, lines, &tail)
    }

    /// Writes a whole document (`--about`, `--discover`), already a line, and flushes.
    pub fn raw(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.flush()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_record_is_what_serde_writes() {
        let raw = r#"{"id":"a","v":[1,2]}"#;
        let mut w = Writer::new(Vec::new());
        assert_eq!(
            w.records("s", format!("{raw}\n").as_bytes(), "2024-01-01T00:00:00Z")
                .unwrap(),
            1
        );
        let got = String::from_utf8(w.into_inner()).unwrap();
        let rec: Box<RawValue> = serde_json::from_str(raw).unwrap();
        let one = serde_json::to_string(&Message::Record {
            stream: "s",
            record: &rec,
            time_extracted: "2024-01-01T00:00:00Z",
        })
        .unwrap();
        assert_eq!(got, format!("{one}\n"));
    }
}
