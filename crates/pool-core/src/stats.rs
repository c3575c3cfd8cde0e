//! Statistics: private atomics inside, one public `Serialize` snapshot
//! outside.
//!
//! The counters are `Relaxed` `AtomicU64`s, bumped on the hot path with one
//! uncontended `fetch_add` each and never under a lock. The size gauges are
//! the packed [`Gauges`] word owned by the slots, so `total`, `idle`,
//! `active` and `opening` in a snapshot always add up. Every field of
//! [`Statistics`] documents exactly when it moves. All counts are `u64`.

use std::time::SystemTime;

use serde::Serialize;

use crate::slot::Gauges;
use crate::sync::{AtomicU64, Ordering};

/// A monotonically increasing event counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The pool's live statistics. Shared by the pool and every slot.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) gauges: Gauges,
    pub(crate) acquisitions_immediate: Counter,
    pub(crate) acquisitions_waited: Counter,
    pub(crate) releases: Counter,
    pub(crate) timeouts: Counter,
    pub(crate) acquire_errors: Counter,
    pub(crate) connections_created: Counter,
    pub(crate) connection_failures: Counter,
    pub(crate) connections_closed: Counter,
    pub(crate) validations: Counter,
    pub(crate) validation_failures: Counter,
}

/// Inputs to a snapshot that do not live in [`Stats`].
pub(crate) struct SnapshotContext {
    pub(crate) min_size: u32,
    pub(crate) max_size: u32,
    pub(crate) waiting: u64,
    pub(crate) closed: bool,
    pub(crate) created_at: SystemTime,
}

impl Stats {
    pub(crate) fn snapshot(&self, ctx: SnapshotContext) -> Statistics {
        let gauges = self.gauges.read();
        let immediate = self.acquisitions_immediate.get();
        let waited = self.acquisitions_waited.get();
        Statistics {
            min_size: u64::from(ctx.min_size),
            max_size: u64::from(ctx.max_size),
            total_connections: gauges.open(),
            idle_connections: gauges.idle,
            active_connections: gauges.in_use,
            opening_connections: gauges.opening,
            waiting_requests: ctx.waiting,
            total_acquisitions: immediate + waited,
            acquisitions_immediate: immediate,
            acquisitions_waited: waited,
            total_releases: self.releases.get(),
            total_timeouts: self.timeouts.get(),
            acquire_errors: self.acquire_errors.get(),
            connections_created: self.connections_created.get(),
            connection_failures: self.connection_failures.get(),
            connections_closed: self.connections_closed.get(),
            validations: self.validations.get(),
            validation_failures: self.validation_failures.get(),
            closed: ctx.closed,
            pool_created_at: ctx.created_at,
        }
    }
}

/// An immutable snapshot of the pool's state and counters.
///
/// Gauges (`*_connections`, `waiting_requests`) are the value at the moment
/// of the snapshot; `total_connections == idle_connections +
/// active_connections + opening_connections` always holds within one
/// snapshot. Counters only grow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Statistics {
    /// The configured `min_size`.
    pub min_size: u64,
    /// The configured `max_size`.
    pub max_size: u64,
    /// Open connections, including those still opening:
    /// `idle + active + opening`. Never exceeds `max_size`.
    pub total_connections: u64,
    /// Connections in the idle queue, ready to be handed out.
    pub idle_connections: u64,
    /// Connections lent to callers, including one being validated for a
    /// caller during checkout.
    pub active_connections: u64,
    /// Connections whose connect is in progress (counted in
    /// `total_connections`, not in `idle` or `active`).
    pub opening_connections: u64,
    /// Callers queued in `acquire()` for a free slot right now.
    pub waiting_requests: u64,
    /// Successful `acquire()`/`try_acquire()` calls:
    /// `acquisitions_immediate + acquisitions_waited`.
    pub total_acquisitions: u64,
    /// Acquisitions that got a slot without queueing.
    pub acquisitions_immediate: u64,
    /// Acquisitions that had to queue for a slot first.
    pub acquisitions_waited: u64,
    /// Guards dropped or discarded: moves once per successful acquisition,
    /// when the caller gives the connection back.
    pub total_releases: u64,
    /// `acquire()` calls that ended with a timeout error, any phase.
    pub total_timeouts: u64,
    /// `acquire()` calls that ended with an error other than a timeout
    /// (closed pool, non-retryable connect failure).
    pub acquire_errors: u64,
    /// Connects that succeeded, warm-up included.
    pub connections_created: u64,
    /// Connects that failed or timed out.
    pub connection_failures: u64,
    /// Connections closed after having been open, for any reason.
    pub connections_closed: u64,
    /// Liveness checks run (on checkout of a connection idle longer than
    /// `validation_skip_window`, and during warm-up).
    pub validations: u64,
    /// Liveness checks that failed or timed out; each closed its connection.
    pub validation_failures: u64,
    /// Whether the pool has been closed.
    pub closed: bool,
    /// When the pool was built.
    pub pool_created_at: SystemTime,
}

impl Statistics {
    /// `true` when no connection is lent out, opening, or waited for: the
    /// quiet state every fault and cancellation must return to.
    pub fn is_quiet(&self) -> bool {
        self.active_connections == 0 && self.opening_connections == 0 && self.waiting_requests == 0
    }
}
