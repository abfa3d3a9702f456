//! The output stage: records as JSON lines in a page buffer, with a child stream's
//! `include` fields, flushed to the sink in bounded pieces.

use serde_json::Value;

use super::Rec;
use crate::extract::write_text;

/// Lines gathered before they are written, within a page: large enough that a typical
/// page goes out in one write, small enough that a huge page is not held twice.
const FLUSH_AT: usize = 4 * 1024 * 1024;

/// A page's lines on their way to the sink.
pub(crate) struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Appends one record; `include` fields the record lacks go first.
    #[inline]
    pub(crate) fn push(&mut self, rec: &Rec<'_>, include: &[(String, Value)]) {
        if include.is_empty() {
            write_text(&mut self.buf, rec.text(), &[]);
        } else {
            // The record as the API sent it wins over a copied parent field.
            let has = |k: &str| rec.value().is_some_and(|v| v.get(k).is_some());
            let extra: Vec<(String, Value)> =
                include.iter().filter(|(k, _)| !has(k)).cloned().collect();
            write_text(&mut self.buf, rec.text(), &extra);
        }
    }

    /// Appends a record's text as it is, with nothing to add.
    #[inline]
    pub(crate) fn push_text(&mut self, text: &str) {
        write_text(&mut self.buf, text, &[]);
    }

    /// Whether the buffer should go out now: a huge page's lines go as they are made, so
    /// one copy of the page (the body) is in memory, not two.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= FLUSH_AT
    }

    /// The buffer, for the sink to write and empty.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_records_are_copied_and_include_fields_go_first_unless_present() {
        let raw = r#"{"id": 1}"#;
        let mut lines = Lines::new();
        lines.push(&Rec::new(raw, false).unwrap(), &[]);
        let include = vec![("order".to_owned(), json!(7)), ("id".to_owned(), json!(9))];
        lines.push(&Rec::new(raw, true).unwrap(), &include);
        let text = String::from_utf8(lines.buf().clone()).unwrap();
        assert_eq!(text, "{\"id\": 1}\n{\"order\":7,\"id\": 1}\n");
        assert!(!lines.is_full());
    }
}
