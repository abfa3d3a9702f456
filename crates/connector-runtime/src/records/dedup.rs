//! The dedup and limit stages: drop a record whose primary key was already written in
//! this run, and stop at `--limit` records.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Primary keys written in this run, shared by every partition of the stream.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    seen: Mutex<HashSet<String>>,
}

impl Dedup {
    /// Whether `key` is new (and remembers it).
    pub(crate) fn fresh(&self, key: &str) -> bool {
        self.seen
            .lock()
            .map(|mut s| s.insert(key.to_owned()))
            .unwrap_or(true)
    }
}

/// `--limit`: at most this many records per stream, over every partition.
#[derive(Debug, Default)]
pub(crate) struct Limit {
    max: Option<u64>,
    taken: AtomicU64,
    full: AtomicBool,
}

impl Limit {
    /// A limit of `max` records (none: no limit).
    pub(crate) fn new(max: Option<u64>) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    /// The flag that stops every partition: set by the limit, or by an error rule's `end`.
    pub(crate) fn stop_flag(&self) -> &AtomicBool {
        &self.full
    }

    /// Takes one record; false (and full from now on) when the limit was already reached.
    pub(crate) fn take(&self) -> bool {
        match self.max {
            Some(max) if self.taken.fetch_add(1, Relaxed) >= max => {
                self.full.store(true, Relaxed);
                false
            }
            _ => true,
        }
    }

    /// After a page: a limit reached exactly at its end needs no further page.
    pub(crate) fn settle(&self) {
        if self.max.is_some_and(|m| self.taken.load(Relaxed) >= m) {
            self.full.store(true, Relaxed);
        }
    }

    /// Whether the limit is reached, so every partition stops.
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_lets_each_key_through_once() {
        let d = Dedup::default();
        assert!(d.fresh("[1]"));
        assert!(d.fresh("[2]"));
        assert!(!d.fresh("[1]"));
    }

    #[test]
    fn limit_takes_max_records_then_is_full() {
        let l = Limit::new(Some(2));
        assert!(l.take() && l.take());
        l.settle();
        assert!(l.is_full(), "reached exactly: full");
        assert!(!l.take());
        let none = Limit::new(None);
        assert!((0..100).all(|_| none.take()));
        none.settle();
        assert!(!none.is_full());
    }
}
