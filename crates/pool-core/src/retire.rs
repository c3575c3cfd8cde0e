//! Why a connection was closed: the one reason every retirement carries.
//!
//! A leaf type: the slot that counts closes by reason, the statistics that
//! show them, the metrics that label them and the policies that decide them
//! (`recycle.rs`) all name it, so it depends on nothing of the pool.

use serde::Serialize;

/// Why a connection was closed. Each has its own counter in
/// [`Statistics::closed_by_reason`](crate::Statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetireReason {
    /// Older than its (jittered) `max_lifetime`.
    Lifetime,
    /// Idle longer than `max_idle_time` while above `min_size`.
    IdleTimeout,
    /// Ran `max_queries` statements.
    MaxQueries,
    /// The manager's free check found it closed or broken.
    Broken,
    /// Returned in an unknown or unusable state: dropped in the middle of a
    /// request, or left inside a transaction.
    Dirty,
    /// Failed (or timed out) its liveness check.
    ValidationFailed,
    /// The user called `discard()`.
    Discarded,
    /// The pool was closed.
    PoolClosed,
    /// Dropped by a cancelled operation (a checkout cancelled during the
    /// liveness check), or when the pool itself was dropped.
    Dropped,
    /// Opened before an eviction: `Pool::evict_all()`, or a connection that
    /// reported its server lost (shut down, demoted, failed over).
    Evicted,
}

impl RetireReason {
    /// Every reason, in counter order.
    pub const ALL: [RetireReason; 10] = [
        RetireReason::Lifetime,
        RetireReason::IdleTimeout,
        RetireReason::MaxQueries,
        RetireReason::Broken,
        RetireReason::Dirty,
        RetireReason::ValidationFailed,
        RetireReason::Discarded,
        RetireReason::PoolClosed,
        RetireReason::Dropped,
        RetireReason::Evicted,
    ];

    /// The stable name used in logs, JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RetireReason::Lifetime => "lifetime",
            RetireReason::IdleTimeout => "idle_timeout",
            RetireReason::MaxQueries => "max_queries",
            RetireReason::Broken => "broken",
            RetireReason::Dirty => "dirty",
            RetireReason::ValidationFailed => "validation_failed",
            RetireReason::Discarded => "discarded",
            RetireReason::PoolClosed => "pool_closed",
            RetireReason::Dropped => "dropped",
            RetireReason::Evicted => "evicted",
        }
    }

    /// Index into the per-reason counters.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RetireReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
