//! The streams a stream waits for: its `parent` and the streams its partition lists read.
//! A stream may have several; together they form a graph that must have no cycle.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::check::{Ctx, Parts, join};
use crate::model::{Spec, Stream};
use crate::partitions::PartitionList;

/// One stream a stream waits for, and where that is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge<'a> {
    /// The other stream.
    pub stream: &'a str,
    /// The partition list that reads it; `None` for the `parent`.
    pub list: Option<&'a str>,
}

impl Stream {
    /// Every stream this one waits for: its `parent`, then each partition list that reads
    /// a stream, in declared order (a stream read by two lists appears twice).
    pub fn upstreams(&self) -> Vec<Edge<'_>> {
        let parent = self.parent.as_ref().map(|p| Edge {
            stream: p.stream.as_str(),
            list: None,
        });
        let lists = self.partitions.iter().filter_map(|(n, l)| match l {
            PartitionList::From(s) => s.stream.as_deref().map(|stream| Edge {
                stream,
                list: Some(n.as_str()),
            }),
            PartitionList::Values(_) => None,
        });
        parent.into_iter().chain(lists).collect()
    }
}

impl Spec {
    /// Every stream `stream` waits for, directly or not, nearest first, each once (a
    /// cycle, refused by `validate`, ends the walk instead of looping).
    pub fn ancestors_of<'a>(&'a self, stream: &'a Stream) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        let mut queue: VecDeque<&str> = stream.upstreams().iter().map(|e| e.stream).collect();
        while let Some(name) = queue.pop_front() {
            if out.contains(&name) {
                continue;
            }
            out.push(name);
            if let Some(s) = self.streams.get(name) {
                queue.extend(s.upstreams().iter().map(|e| e.stream));
            }
        }
        out
    }
}

/// Streams that reach themselves through parents or partition lists: each cycle is
/// reported once, at the edge of its first stream (in spec order) that closes it.
pub(crate) fn cycles(cx: &mut Ctx<'_>, parts: &Parts) {
    let edges: HashMap<&str, Vec<Edge<'_>>> = parts
        .streams
        .iter()
        .map(|(n, s)| (n.as_str(), s.upstreams()))
        .collect();
    let mut reported: Vec<BTreeSet<&str>> = Vec::new();
    for (name, _) in &parts.streams {
        let Some(mine) = edges.get(name.as_str()) else {
            continue;
        };
        for edge in mine {
            // A stream naming itself is reported where its parent or list is checked.
            if edge.stream == name {
                continue;
            }
            let Some(path) = path(&edges, edge.stream, name) else {
                continue;
            };
            let members: BTreeSet<&str> = path.iter().copied().collect();
            if reported.contains(&members) {
                continue;
            }
            reported.push(members);
            let mut shown = vec![name.as_str()];
            shown.extend(&path);
            report(cx, name, edge, &shown);
        }
    }
}

/// Refuses a second partition list read from a stream that fetches only what changed
/// (incremental, or under an incremental stream): each run would pair only the values
/// both fetched in that run, never an old value of one with a new value of the other.
pub(crate) fn changed_only_twice(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, stream: &Stream) {
    let mut first: Option<(&str, &str)> = None;
    for edge in stream.upstreams() {
        let Some(list) = edge.list else { continue };
        let Some(why) = changes_only(parts, edge.stream) else {
            continue;
        };
        let Some((l1, w1)) = first else {
            first = Some((list, why));
            continue;
        };
        let which = match w1 == why {
            true => format!("`{why}` is incremental"),
            false => format!("`{w1}` and `{why}` are incremental"),
        };
        cx.error(
            cx.value(&join(&join(ptr, list), "stream")),
            format!(
                "partition lists `{l1}` and `{list}` both read a stream that fetches only what changed since its last run ({which}), so their product would miss every pair of an old value with a new one"
            ),
            Some(format!(
                "keep one such list; read `{list}` from a stream without `incremental`, or from `config`"
            )),
        );
        return;
    }
}

/// The incremental stream, `name` itself or one it waits for, whose window limits what
/// `name` fetches in a run.
fn changes_only<'a>(parts: &'a Parts, name: &'a str) -> Option<&'a str> {
    let mut queue = VecDeque::from([name]);
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    while let Some(at) = queue.pop_front() {
        if !seen.insert(at) {
            continue;
        }
        let Some((n, s)) = parts.streams.iter().find(|(n, _)| n == at) else {
            continue;
        };
        if s.incremental.is_some() {
            return Some(n.as_str());
        }
        queue.extend(s.upstreams().iter().map(|e| e.stream));
    }
    None
}

/// One cycle, at the `parent` or partition list of `name` that closes it.
fn report(cx: &mut Ctx<'_>, name: &str, edge: &Edge<'_>, shown: &[&str]) {
    let base = join("/streams", name);
    let chain = shown.join(" -> ");
    match edge.list {
        None => cx.error(
            cx.value(&format!("{base}/parent/stream")),
            format!("parent streams form a cycle: {chain}"),
            Some("a child stream's parents must lead to a stream without `parent`".into()),
        ),
        Some(list) => cx.error(
            cx.value(&join(&join(&format!("{base}/partitions"), list), "stream")),
            format!("partition list `{list}` closes a cycle of streams: {chain}"),
            Some(format!(
                "a stream's partition lists and parents must not lead back to it; read `{list}` from a stream that does not wait for `{name}`, or from `config`"
            )),
        ),
    }
}

/// The shortest chain of streams from `from` that reaches `to` (ending with `to`).
fn path<'a>(
    edges: &HashMap<&'a str, Vec<Edge<'a>>>,
    from: &'a str,
    to: &str,
) -> Option<Vec<&'a str>> {
    let mut came: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut out = vec![at];
            let mut cur = at;
            while let Some(&prev) = came.get(cur) {
                out.push(prev);
                cur = prev;
            }
            out.reverse();
            return Some(out);
        }
        for e in edges.get(at).into_iter().flatten() {
            if seen.insert(e.stream) {
                came.insert(e.stream, at);
                queue.push_back(e.stream);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    const HEAD: &str = "version: 1\nname: t\nhttp: { base_url: \"https://x\" }\nstreams:\n";

    /// (line, col, message, help) of every error.
    fn errors(body: &str) -> Vec<(usize, usize, String, Option<String>)> {
        crate::check::error_list(&format!("{HEAD}{body}"))
    }

    #[test]
    fn a_product_of_two_stream_lists_is_valid_and_both_are_upstreams() {
        let body = "  accounts: { path: /a, records: $, primary_key: id }
  regions: { path: /r, records: $, parent: { stream: accounts, key: id } }
  usage:
    path: \"/u/{{ partition.account }}/{{ partition.region }}\"
    records: $
    partitions:
      account: { stream: accounts, field: id }
      state: [open, closed]
      region: { stream: regions, field: code, batch: 10 }
";
        assert_eq!(errors(body), Vec::new());
        let text = format!("{HEAD}{body}");
        let spec = crate::load::load_str(std::path::Path::new("t.yaml"), &text)
            .unwrap()
            .spec;
        let usage = &spec.streams["usage"];
        let ups: Vec<(&str, Option<&str>)> = usage
            .upstreams()
            .iter()
            .map(|e| (e.stream, e.list))
            .collect();
        assert_eq!(
            ups,
            [("accounts", Some("account")), ("regions", Some("region"))]
        );
        assert_eq!(spec.ancestors_of(usage), ["accounts", "regions"]);
        assert_eq!(spec.ancestors_of(&spec.streams["regions"]), ["accounts"]);
    }

    #[test]
    fn a_cycle_through_the_second_list_is_reported_at_that_list() {
        let body = "  a: { path: /a, records: $ }
  s:
    path: /s
    records: $
    partitions:
      x: { stream: a, field: id }
      y: { stream: b, field: id }
  b: { path: /b, records: $, parent: { stream: s, key: id } }
";
        let e = errors(body);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(
            e[0].2,
            "partition list `y` closes a cycle of streams: s -> b -> s"
        );
        assert_eq!((e[0].0, e[0].1), (11, 20), "{e:#?}");
        assert!(e[0].3.as_deref().unwrap().contains("from `config`"));
        // Through two partition lists: reported once, at the first stream's list.
        let body = "  a: { path: /a, records: $ }
  s: { path: /s, records: $, partitions: { x: { stream: a, field: id }, y: { stream: t, field: id } } }
  t: { path: /t, records: $, partitions: { z: { stream: s, field: id } } }
";
        let e = errors(body);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(
            e[0].2,
            "partition list `y` closes a cycle of streams: s -> t -> s"
        );
        assert_eq!(e[0].0, 6, "{e:#?}");
    }

    #[test]
    fn two_lists_from_streams_that_fetch_only_changes_are_refused() {
        let body = "  a: { path: /a, records: $, primary_key: id, incremental: { cursor_field: u, start: \"2024-01-01T00:00:00Z\" } }
  b: { path: /b, records: $, parent: { stream: a, key: id } }
  c: { path: /c, records: $ }
  s:
    path: /s
    records: $
    partitions:
      x: { stream: a, field: id }
      y: { stream: c, field: id }
      z: { stream: b, field: id }
";
        let e = errors(body);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].2.starts_with(
                "partition lists `x` and `z` both read a stream that fetches only what changed"
            ),
            "{e:#?}"
        );
        assert_eq!((e[0].0, e[0].1), (14, 20), "{e:#?}");
    }
}
