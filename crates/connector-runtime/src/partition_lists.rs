//! Several partition lists read from streams: every such list is collected whole before
//! the product runs.
//!
//! Each upstream stream sends its records over its own channel (the child-stream channel,
//! with its end handshake). All channels are drained at once and without waiting on
//! anything else, so no upstream is ever held back by this stream: an upstream that is a
//! child of another upstream, or that feeds children of its own, keeps flowing, and the
//! scheduler cannot deadlock. The values are kept anyway (each distinct value is
//! remembered to drop duplicates), so collecting them all costs at most
//! [`MAX_VALUES`](crate::partitions::MAX_VALUES) values per list.

use connector_spec::Stream;
use connector_spec::partitions::{PartitionList, PartitionSource};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::partitions::{Collector, List};
use crate::stream::{ParentMsg, StreamError};

/// One upstream's channel: the partition list it fills (`None` for a parent), and its
/// records, then its end.
pub(crate) type Inbox = (Option<String>, mpsc::Receiver<ParentMsg>);

/// Fills every list read from a stream with that stream's values, in the order they
/// arrived; fails on the first upstream that fails or gives a bad or excess value.
pub(crate) async fn collect(
    stream: &Stream,
    lists: &mut [List],
    inboxes: Vec<Inbox>,
) -> Result<(), StreamError> {
    let jobs = inboxes.into_iter().map(|(list, rx)| {
        let list = list.unwrap_or_default();
        let src = match stream.partitions.get(&list) {
            Some(PartitionList::From(src)) if src.stream.is_some() => Ok(src),
            _ => Err(StreamError(format!(
                "partition list `{list}` does not read a stream"
            ))),
        };
        async move { drain(&list, src?, rx).await.map(|v| (list, v)) }
    });
    // The first failure drops the other channels: their streams go on (a send to a
    // closed channel is not waited on) and hear back that this stream failed.
    for (name, values) in futures::future::try_join_all(jobs).await? {
        if let Some(l) = lists.iter_mut().find(|l| l.name == name) {
            l.values = Some(values);
        }
    }
    Ok(())
}

/// One upstream's values (or joined batches) until its end.
async fn drain(
    list: &str,
    src: &PartitionSource,
    mut rx: mpsc::Receiver<ParentMsg>,
) -> Result<Vec<Value>, StreamError> {
    let upstream = src.stream.as_deref().unwrap_or_default();
    let mut c = Collector::new(
        src.field.clone().unwrap_or_default(),
        src.batch.map(|b| b.max(1) as usize),
        src.separator().to_owned(),
        upstream,
    );
    let mut out = Vec::new();
    // `End` is the last message: the other stream keeps its sender (so the channel stays
    // open) until it has heard back from this one.
    while let Some(msg) = rx.recv().await {
        let end = matches!(msg, ParentMsg::End(_));
        let got = c
            .take(msg)
            .map_err(|e| StreamError(format!("partition list `{list}`: {}", e.0)))?;
        out.extend(got);
        if end {
            break;
        }
    }
    match c.ended {
        Some(true) => Ok(out),
        _ => Err(StreamError(format!(
            "stream {upstream}, whose records are the values of partition list `{list}`, failed, so this stream did not run; its previous output is kept"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn spec() -> Stream {
        let yaml = "version: 1\nname: t\nhttp: { base_url: \"https://x\" }\nstreams:\n  a: { path: /a, records: $ }\n  b: { path: /b, records: $ }\n  s:\n    path: /s\n    records: $\n    partitions:\n      x: { stream: a, field: id }\n      st: [open, closed]\n      y: { stream: b, field: code, batch: 2, join: \"+\" }\n";
        let loaded = connector_spec::load::load_str(std::path::Path::new("t.yaml"), yaml).unwrap();
        loaded.spec.streams["s"].clone()
    }

    fn lists() -> Vec<List> {
        ["x", "st", "y"]
            .into_iter()
            .map(|n| List {
                name: n.into(),
                values: (n == "st").then(|| vec![json!("open"), json!("closed")]),
            })
            .collect()
    }

    async fn send(tx: &mpsc::Sender<ParentMsg>, field: &str, values: &[Value], ok: Option<bool>) {
        for v in values {
            let r = ParentMsg::Record(Arc::new(json!({ field: v })));
            tx.send(r).await.unwrap();
        }
        if let Some(ok) = ok {
            tx.send(ParentMsg::End(ok)).await.unwrap();
        }
    }

    #[tokio::test]
    async fn both_lists_are_collected_whatever_order_their_streams_end_in() {
        let stream = spec();
        let mut lists = lists();
        let (ta, ra) = mpsc::channel(1);
        let (tb, rb) = mpsc::channel(1);
        let inboxes = vec![(Some("x".into()), ra), (Some("y".into()), rb)];
        // Small channels: `b` sends all its values and ends while `a` is still sending,
        // so both must be drained at once.
        let feed = async {
            send(
                &tb,
                "code",
                &[json!("n"), json!("s"), json!("n"), json!("e")],
                Some(true),
            )
            .await;
            send(&ta, "id", &[json!(1), json!(2), json!(1)], Some(true)).await;
        };
        let both = async { tokio::join!(collect(&stream, &mut lists, inboxes), feed) };
        let (got, ()) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("the lists were drained one after the other: a deadlock");
        got.unwrap();
        assert_eq!(lists[0].values, Some(vec![json!(1), json!(2)]));
        assert_eq!(lists[2].values, Some(vec![json!("n+s"), json!("e")]));
    }

    #[tokio::test]
    async fn a_failed_or_vanished_upstream_fails_the_collection() {
        let stream = spec();
        let (ta, ra) = mpsc::channel(8);
        let (tb, rb) = mpsc::channel(8);
        send(&ta, "id", &[json!(1)], Some(true)).await;
        send(&tb, "code", &[json!("n")], Some(false)).await;
        let inboxes = vec![(Some("x".into()), ra), (Some("y".into()), rb)];
        let e = collect(&stream, &mut lists(), inboxes).await.unwrap_err().0;
        assert!(
            e.starts_with("stream b, whose records are the values of partition list `y`, failed"),
            "{e}"
        );
        let (ta, ra) = mpsc::channel(8);
        let (tb, rb) = mpsc::channel(8);
        send(&ta, "id", &[json!(1)], Some(true)).await;
        drop(tb);
        let inboxes = vec![(Some("x".into()), ra), (Some("y".into()), rb)];
        let e = collect(&stream, &mut lists(), inboxes).await.unwrap_err().0;
        assert!(e.contains("partition list `y`, failed"), "{e}");
        drop(ta);
    }

    #[tokio::test]
    async fn too_many_values_fail_naming_the_list_the_stream_and_the_limit() {
        let mut c = Collector::new("id".into(), None, ",".into(), "a").with_limit(2);
        let rec = |v: Value| ParentMsg::Record(Arc::new(json!({ "id": v })));
        c.take(rec(json!(1))).unwrap();
        c.take(rec(json!(2))).unwrap();
        let e = c.take(rec(json!(3))).unwrap_err().0;
        assert!(
            e.contains("stream a gave more than 2 distinct `id` values"),
            "{e}"
        );
    }
}
