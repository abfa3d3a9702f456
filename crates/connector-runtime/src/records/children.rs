//! Feeding child streams: each parent record that went through goes to every child;
//! a record the incremental window dropped goes only to children with `all_records`.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::stream::ParentMsg;

/// One child stream's channel.
#[derive(Debug, Clone)]
pub struct Child {
    /// Where the parent's records go.
    pub tx: mpsc::Sender<ParentMsg>,
    /// `parent.all_records`: also the records the parent's window drops.
    pub all_records: bool,
}

/// A parent record for the children, and whether the parent wrote it (changed).
pub(crate) type ForChildren = (Arc<Value>, bool);

/// A stream's children.
#[derive(Debug, Default)]
pub(crate) struct Children {
    list: Vec<Child>,
}

impl Children {
    /// The children of a stream.
    pub(crate) fn new(list: Vec<Child>) -> Self {
        Self { list }
    }

    /// Whether the stream has no children.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a child wants the records the window drops.
    pub(crate) fn want_all(&self) -> bool {
        self.list.iter().any(|c| c.all_records)
    }

    /// Sends a page's parent records, in order.
    pub(crate) async fn feed(&self, records: Vec<ForChildren>) {
        for (record, written) in records {
            for c in &self.list {
                if written || c.all_records {
                    // A child that stopped listening has failed on its own; keep going.
                    let _ = c.tx.send(ParentMsg::Record(record.clone())).await;
                }
            }
        }
    }

    /// Tells the children the parent is over.
    pub(crate) async fn end(&self, ok: bool) {
        for c in &self.list {
            let _ = c.tx.send(ParentMsg::End(ok)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn unchanged_records_go_only_to_children_that_want_all() {
        let (tx1, mut rx1) = mpsc::channel(8);
        let (tx2, mut rx2) = mpsc::channel(8);
        let kids = Children::new(vec![
            Child {
                tx: tx1,
                all_records: false,
            },
            Child {
                tx: tx2,
                all_records: true,
            },
        ]);
        assert!(kids.want_all() && !kids.is_empty());
        kids.feed(vec![
            (Arc::new(json!({"id": 1})), true),
            (Arc::new(json!({"id": 2})), false),
        ])
        .await;
        kids.end(true).await;
        let ids = |rx: &mut mpsc::Receiver<ParentMsg>| {
            let mut out = Vec::new();
            while let Ok(m) = rx.try_recv() {
                out.push(match m {
                    ParentMsg::Record(r) => r["id"].to_string(),
                    ParentMsg::End(ok) => format!("end {ok}"),
                });
            }
            out
        };
        assert_eq!(ids(&mut rx1), ["1", "end true"]);
        assert_eq!(ids(&mut rx2), ["1", "2", "end true"]);
    }
}
