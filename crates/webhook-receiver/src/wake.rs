//! A doorbell between threads: "new events are stored" and "time to finish".

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

#[derive(Default)]
struct Flags {
    pending: bool,
    closing: bool,
}

/// Wakes the drain worker; rings coalesce, so a burst of commits costs one wake-up.
#[derive(Default)]
pub struct Wake {
    flags: Mutex<Flags>,
    cond: Condvar,
}

impl Wake {
    /// Says that new events are stored.
    pub fn notify(&self) {
        let mut f = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        f.pending = true;
        self.cond.notify_all();
    }

    /// Says that no more events will come and the worker should finish.
    pub fn close(&self) {
        let mut f = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        f.closing = true;
        self.cond.notify_all();
    }

    /// Whether `close` was called.
    pub fn is_closing(&self) -> bool {
        self.flags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closing
    }

    /// Waits for a ring (at most `timeout` when given); returns whether closing was asked.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut f = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        while !f.pending && !f.closing {
            match timeout {
                None => f = self.cond.wait(f).unwrap_or_else(PoisonError::into_inner),
                Some(t) => {
                    let (g, res) = self
                        .cond
                        .wait_timeout(f, t)
                        .unwrap_or_else(PoisonError::into_inner);
                    f = g;
                    if res.timed_out() {
                        break;
                    }
                }
            }
        }
        f.pending = false;
        f.closing
    }
}
