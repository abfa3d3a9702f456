//! `incremental.windows`: a size that is not zero, a time cursor, and a window that
//! reaches the API.

use super::{Ctx, paths};
use crate::model::{Incremental, Stream};

/// Checks the `windows` block of the incremental block at `ip`, when there is one.
pub(super) fn check(cx: &mut Ctx<'_>, ip: &str, stream: &Stream, inc: &Incremental) {
    let Some(w) = &inc.windows else {
        return;
    };
    let wp = format!("{ip}/windows");
    paths::nonzero_duration(
        cx,
        &format!("{wp}/size"),
        &w.size,
        "write the length of one window, e.g. `1d` or `7d`",
    );
    if !inc.cursor_type.is_time() {
        cx.error(
            cx.key(&wp),
            "date windows need a time cursor, and this stream's `cursor_type` is not a time",
            Some(
                "set `cursor_type: datetime`, `unix_seconds` or `unix_millis`, or remove `windows`"
                    .into(),
            ),
        );
    }
    if inc.param.is_none() && inc.end_param.is_none() && !reads_window(stream) {
        cx.warning(
            cx.key(&wp),
            "no request of this stream says which window it wants (no `param`, no `end_param`, no template reads `incremental.start` or `end`), so every window fetches the whole range and the runtime keeps only that window's records",
            Some("add `param` and `end_param`, e.g. `param: updated_after` and `end_param: updated_before`".into()),
        );
    }
}

/// Whether a template of the request reads the window (`incremental.start` or `end`).
fn reads_window(stream: &Stream) -> bool {
    let reads = |s: &str| s.contains("incremental.");
    reads(stream.path.source())
        || stream.params.values().any(|t| reads(t.source()))
        || stream.headers.values().any(|t| reads(t.source()))
        || stream.body.as_ref().is_some_and(|b| reads(&b.to_string()))
}

#[cfg(test)]
mod tests {
    use crate::check::errors_in;

    fn spec(inc: &str, extra: &str) -> String {
        format!(
            "version: 1\nname: t\nhttp: {{ base_url: \"http://x\" }}\nstreams:\n  a:\n    path: /a\n    primary_key: id\n    records: $[*]\n{extra}    incremental:\n      cursor_field: u\n      param: since\n      start: \"2024-01-01T00:00:00Z\"\n{inc}"
        )
    }

    fn errors(inc: &str, extra: &str) -> Vec<(usize, usize, String)> {
        errors_in(&spec(inc, extra))
            .into_iter()
            .map(|d| (d.location.line, d.location.col, d.message))
            .collect()
    }

    #[test]
    fn windows_inside_partitions_and_on_child_streams_are_accepted() {
        let found = errors(
            "      windows: { size: 7d }\n",
            "    partitions:\n      region: [eu, us]\n",
        );
        assert_eq!(found, Vec::new());
        let text = spec(
            "      windows: { size: 1d }\n",
            "    parent: { stream: b, key: id }\n",
        ) + "  b:\n    path: /b\n    records: $[*]\n";
        let e: Vec<String> = errors_in(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(e, Vec::<String>::new());
    }

    #[test]
    fn a_good_block_loads_with_its_defaults() {
        let text = spec("      windows: { size: 7d }\n", "");
        let loaded = crate::load::load_str(std::path::Path::new("t.yaml"), &text).unwrap();
        let w = loaded.spec.streams["a"]
            .incremental
            .as_ref()
            .and_then(|i| i.windows.clone())
            .unwrap();
        assert_eq!(w.size.get(), std::time::Duration::from_secs(7 * 86400));
        assert_eq!(w.concurrency, 4);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn zero_bad_sizes_and_concurrency_are_refused_at_their_place() {
        let e = errors("      windows: { size: 0s }\n", "");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].2.contains("is zero"), "{e:?}");
        assert_eq!((e[0].0, e[0].1), (13, 24), "line and column of `0s`");
        let e = errors("      windows: { size: weekly }\n", "");
        assert!(e[0].2.contains("not a duration"), "{e:?}");
        let e = errors("      windows: { size: 1d, concurrency: 0 }\n", "");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, 13, "{e:?}");
    }

    #[test]
    fn an_unknown_key_gets_a_suggestion() {
        let d = errors_in(&spec("      windows: { size: 1d, concurency: 2 }\n", ""));
        assert_eq!(d.len(), 1, "{d:?}");
        let all = format!("{} {:?}", d[0].message, d[0].help);
        assert!(all.contains("concurrency"), "{all}");
        assert_eq!(d[0].location.line, 13);
    }

    #[test]
    fn windows_need_a_time_cursor() {
        let e = errors(
            "      cursor_type: unix_seconds\n      windows: { size: 1d }\n",
            "",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].2.contains("not an integer"), "only the start: {e:?}");
        let e = errors(
            "      cursor_type: string\n      windows: { size: 1d }\n",
            "",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].2.contains("need a time cursor"), "{e:?}");
        assert_eq!(e[0].0, 14);
    }

    #[test]
    fn windows_take_an_end_without_end_param_and_the_reverse() {
        assert_eq!(
            errors("      end_param: until\n      windows: { size: 1d }\n", ""),
            Vec::new()
        );
        assert_eq!(
            errors(
                "      end: \"2024-02-01T00:00:00Z\"\n      windows: { size: 1d }\n",
                ""
            ),
            Vec::new()
        );
        let no_param =
            spec("      windows: { size: 1d }\n", "").replace("      param: since\n", "");
        let loaded = crate::load::load_str(std::path::Path::new("t.yaml"), &no_param).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.message.contains("every window fetches the whole range")),
            "{:?}",
            loaded.warnings
        );
    }
}
