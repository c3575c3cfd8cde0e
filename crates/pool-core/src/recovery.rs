//! What the pool knows about an ongoing recovery: plain state, read by
//! errors and the health verdict, written by the reconnect supervisor and
//! the connect path (`reconnect.rs`, `open.rs`).
//!
//! Every field is an atomic or behind its own lock; the supervisor's task
//! handle is here so that `close()` can stop it without knowing the policy.

use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::stamp::Stamp;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};

/// What the pool knows about an ongoing recovery.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    /// ms since start when the database was lost; none when not recovering.
    pub(crate) since: Stamp,
    /// Probes made in this recovery.
    pub(crate) attempts: AtomicU64,
    /// ms since start of the next scheduled probe.
    pub(crate) next_attempt_at: AtomicU64,
    /// Wakes the supervisor for an early probe.
    pub(crate) demand: Arc<Notify>,
    /// The supervisor task of the current (or last) recovery.
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    /// Failed connects since the last successful one (any connect: callers,
    /// maintenance, probes).
    pub(crate) consecutive_failures: AtomicU64,
}

/// A snapshot of an ongoing recovery, for errors and health.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecoveryView {
    pub(crate) down_for: Duration,
    pub(crate) attempts: u64,
    pub(crate) next_attempt_in: Duration,
}

impl Recovery {
    /// Records a successful connect: the failure streak ends.
    pub(crate) fn connect_succeeded(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failed connect; returns the length of the streak.
    pub(crate) fn connect_failed(&self) -> u64 {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Asks the supervisor for an early probe (rate-limited by it).
    pub(crate) fn demand(&self) {
        self.demand.notify_one();
    }

    pub(crate) fn view(&self, now_ms: u64) -> RecoveryView {
        let since = self.since.get().unwrap_or(0);
        RecoveryView {
            down_for: Duration::from_millis(now_ms.saturating_sub(since)),
            attempts: self.attempts.load(Ordering::Relaxed),
            next_attempt_in: Duration::from_millis(
                self.next_attempt_at
                    .load(Ordering::Relaxed)
                    .saturating_sub(now_ms),
            ),
        }
    }

    /// Stops the supervisor, if one runs.
    pub(crate) fn stop(&self) -> Option<JoinHandle<()>> {
        let task = self.task.lock().take();
        if let Some(task) = &task {
            task.abort();
        }
        task
    }
}
