//! Which write mode a stream gets: from the spec, or forced per stream at run time.

use serde_json::Value;

use crate::sql::Mode;
use crate::table::column_name;
use crate::worker::LoadError;

/// What a database needs to open one stream's table.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The stream's name, which is the table's.
    pub stream: String,
    /// How rows meet the table's rows.
    pub mode: Mode,
    /// The declared JSON schema of the records, if any.
    pub schema: Option<Value>,
}

/// The mode of a stream: `appends` is the engine's word (incremental, or under an
/// incremental parent); `forced` a `--write-mode` value. Defaults: replace for a full
/// refresh, merge for an appending stream with a primary key, append without one.
pub fn mode_for(
    name: &str,
    stream: &connector_spec::Stream,
    appends: bool,
    forced: Option<&str>,
) -> Result<Mode, LoadError> {
    let merge = || {
        stream.primary_key.as_ref().map(|pk| Mode::Merge {
            key: pk.fields().iter().map(|f| column_name(f)).collect(),
            // A JSONPath cursor has no column of its own: the last read version wins then.
            cursor: stream
                .incremental
                .as_ref()
                .map(|i| i.cursor_field.as_str())
                .filter(|c| !c.starts_with('$') && !c.contains('.'))
                .map(column_name),
        })
    };
    match forced {
        None if !appends => Ok(Mode::Replace),
        None => Ok(merge().unwrap_or(Mode::Append)),
        Some("append") => Ok(Mode::Append),
        Some("merge") => merge().ok_or_else(|| {
            LoadError(format!(
                "--write-mode {name}=merge: stream `{name}` has no primary_key to merge on"
            ))
        }),
        Some("replace") if !appends => Ok(Mode::Replace),
        Some("replace") => Err(LoadError(format!(
            "--write-mode {name}=replace: stream `{name}` loads increments; replacing its table with one increment would drop the rest (use --full-refresh to reload it, or append/merge)"
        ))),
        Some(other) => Err(LoadError(format!(
            "--write-mode {name}={other}: unknown mode; use append, merge or replace"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(yaml: &str) -> connector_spec::Stream {
        let text = format!(
            "version: 1\nname: t\nhttp: {{ base_url: \"https://x\" }}\nstreams:\n  s:\n{yaml}"
        );
        let loaded = connector_spec::load_str(std::path::Path::new("t.yaml"), &text).unwrap();
        loaded.spec.streams["s"].clone()
    }

    #[test]
    fn defaults_follow_the_spec() {
        let inc = stream(
            "    path: /s\n    records: $[*]\n    primary_key: id\n    incremental: { cursor_field: updated_at, start: \"2024-01-01T00:00:00Z\" }\n",
        );
        assert_eq!(
            mode_for("s", &inc, true, None).unwrap(),
            Mode::Merge {
                key: vec!["id".into()],
                cursor: Some("updated_at".into())
            }
        );
        assert_eq!(
            mode_for("s", &inc, true, Some("append")).unwrap(),
            Mode::Append
        );
        assert!(mode_for("s", &inc, true, Some("replace")).is_err());
        let full = stream("    path: /s\n    records: $[*]\n");
        assert_eq!(mode_for("s", &full, false, None).unwrap(), Mode::Replace);
        assert_eq!(mode_for("s", &full, true, None).unwrap(), Mode::Append);
        let e = mode_for("s", &full, false, Some("merge")).unwrap_err();
        assert!(e.0.contains("no primary_key"), "{e}");
    }
}
