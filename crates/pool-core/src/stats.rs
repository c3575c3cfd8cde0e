//! Statistics: private atomics inside, one public `Serialize` snapshot
//! outside.
//!
//! Counters are `Relaxed` `AtomicU64`s bumped with one uncontended
//! `fetch_add` and never under a lock. The three that move on every acquire
//! and release (acquisitions, releases, total hold time) are not shared
//! counters at all: each seat counts its own, written only by the holder of
//! its connection with a plain store (`seats.rs`), and a snapshot sums them.
//! The fast path's zero waits are not recorded in the all-time wait histogram
//! either: they are the lendings the histogram lacks. The size gauges are the
//! packed word of `gauges.rs`, kept in the ledger (`ledger.rs`) and read
//! once per snapshot, so `total`, `idle`, `active` and `opening` always add
//! up. Latencies go into lock-free
//! log-linear histograms (`histogram.rs`). Every field of [`Statistics`]
//! documents exactly when it moves. All counts are `u64`.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::clock::rfc3339;
use crate::gauges::GaugeReading;
use crate::histogram::{LatencyHistogram, LatencySummary, WindowedHistogram};
use crate::metrics::Metrics;
use crate::retire::RetireReason;
use crate::seats::{SeatTotals, SlowWait};

use crate::state::PoolState;
use crate::sync::{AtomicU64, Ordering};

/// The span of the "recent" latency window: 60 s.
pub const RECENT_WINDOW: Duration = Duration::from_secs(60);

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

/// A high-water mark. Writes only when the value is exceeded, so the
/// common case is one load.
#[derive(Debug, Default)]
pub(crate) struct Peak(AtomicU64);

impl Peak {
    #[inline]
    pub(crate) fn observe(&self, value: u64) {
        if value > self.0.load(Ordering::Relaxed) {
            self.0.fetch_max(value, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The pool's event counters and latency histograms (and the metrics
/// facade they also record into): nothing else. The gauges, the seat
/// registry and the close signal are the ledger's (`ledger.rs`).
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) timeouts: Counter,
    pub(crate) acquires_cancelled: Counter,
    pub(crate) acquire_errors: Counter,
    pub(crate) connections_created: Counter,
    pub(crate) connection_failures: Counter,
    pub(crate) closed_by_reason: [Counter; RetireReason::ALL.len()],
    pub(crate) validations: Counter,
    pub(crate) validation_failures: Counter,
    pub(crate) maintenance_runs: Counter,
    pub(crate) leaks_reported: Counter,
    pub(crate) maintenance_errors: Counter,
    pub(crate) manager_panics: Counter,
    pub(crate) background_restarts: Counter,
    pub(crate) peak_active: Peak,
    pub(crate) wait_time: LatencyHistogram,
    pub(crate) wait_time_recent: WindowedHistogram,
    pub(crate) create_time: LatencyHistogram,
    pub(crate) hold_time: LatencyHistogram,
    /// The `metrics` facade handles (nothing without the feature).
    pub(crate) metrics: Metrics,
}

impl Stats {
    /// Statistics for the pool `pool` of `min_size` to `max_size`
    /// connections.
    pub(crate) fn new(pool: &str, min_size: u32, max_size: u32) -> Self {
        Self {
            metrics: Metrics::new(pool, min_size, max_size),
            timeouts: Counter::default(),
            acquires_cancelled: Counter::default(),
            acquire_errors: Counter::default(),
            connections_created: Counter::default(),
            connection_failures: Counter::default(),
            closed_by_reason: Default::default(),
            validations: Counter::default(),
            validation_failures: Counter::default(),
            maintenance_runs: Counter::default(),
            leaks_reported: Counter::default(),
            maintenance_errors: Counter::default(),
            manager_panics: Counter::default(),
            background_restarts: Counter::default(),
            peak_active: Peak::default(),
            wait_time: LatencyHistogram::new(),
            wait_time_recent: WindowedHistogram::new(RECENT_WINDOW),
            create_time: LatencyHistogram::new(),
            hold_time: LatencyHistogram::new(),
        }
    }
}

impl Stats {
    /// Total connections closed, any reason.
    pub(crate) fn closed_total(&self) -> u64 {
        self.closed_by_reason.iter().map(Counter::get).sum()
    }

    /// Records a lending at `now_ms` (milliseconds since the pool started),
    /// after `wait` if it came through the slow path, with `in_use`
    /// connections lent out now (for the peak). The guard calls it
    /// right before the lending's seat counts it (`seats.rs`), so a wait's
    /// histogram bucket moves before the seat publishes its count.
    ///
    /// The fast path's zero wait is not in the all-time wait histogram (a
    /// snapshot derives those zeros from the seats' lend count): one
    /// read-modify-write, for the recent window. A slow-path wait moves the
    /// all-time histogram's bucket only (the seat keeps its count and sum).
    #[inline]
    pub(crate) fn record_lent(&self, now_ms: u64, wait: Option<SlowWait>, in_use: u64) {
        match wait {
            None => {
                self.wait_time_recent.record_zero(now_ms);
                self.metrics.acquired(Duration::ZERO);
            }
            Some(wait) => {
                let waited = Duration::from_micros(wait.micros);
                self.wait_time.record_uncounted(wait.micros);
                self.wait_time_recent.record(waited, now_ms);
                self.metrics.acquired(waited);
            }
        }
        self.peak_active.observe(in_use);
    }
}

/// Inputs to a snapshot that do not live in [`Stats`].
pub(crate) struct SnapshotContext {
    pub(crate) pool: String,
    /// The gauges, read once for the snapshot.
    pub(crate) gauges: GaugeReading,
    /// The seats' per-connection counts, summed.
    pub(crate) seats: SeatTotals,
    pub(crate) min_size: u32,
    pub(crate) max_size: u32,
    pub(crate) waiting: u64,
    pub(crate) free_permits: u64,
    pub(crate) peak_waiting: u64,
    pub(crate) state: PoolState,
    pub(crate) now_ms: u64,
    pub(crate) created_at: SystemTime,
    pub(crate) last_health_check: Option<SystemTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_time: Option<SystemTime>,
}

impl Stats {
    pub(crate) fn snapshot(&self, ctx: SnapshotContext) -> Statistics {
        let gauges = ctx.gauges;
        // Derived, not counted (see `seats.rs`): the seats count every
        // lending (and of those the slow-path ones, the queued ones and
        // their wait) and every return; the wait histogram's buckets hold
        // only the slow path's samples, and the fast path's zeros are the
        // rest of the lendings.
        let seats = ctx.seats;
        let total_acquisitions = seats.lends;
        let waited = seats.queued_lends.min(total_acquisitions);
        let immediate = total_acquisitions - waited;
        let wait_time = self.wait_time.summary_counted_by(
            total_acquisitions,
            total_acquisitions.saturating_sub(seats.slow_lends),
            seats.wait_us,
        );
        let closed = |reason: RetireReason| self.closed_by_reason[reason.index()].get();
        Statistics {
            pool: ctx.pool,
            state: ctx.state,
            min_size: u64::from(ctx.min_size),
            max_size: u64::from(ctx.max_size),
            total_connections: gauges.open(),
            idle_connections: gauges.idle,
            active_connections: gauges.in_use,
            opening_connections: gauges.opening,
            waiting_requests: ctx.waiting,
            free_permits: ctx.free_permits,
            peak_active_connections: self.peak_active.get(),
            peak_waiting_requests: ctx.peak_waiting,
            total_acquisitions: immediate + waited,
            acquisitions_immediate: immediate,
            acquisitions_waited: waited,
            total_releases: seats.returns,
            total_timeouts: self.timeouts.get(),
            acquires_cancelled: self.acquires_cancelled.get(),
            acquire_errors: self.acquire_errors.get(),
            connections_created: self.connections_created.get(),
            connection_failures: self.connection_failures.get(),
            connections_closed: self.closed_total(),
            closed_by_reason: ClosedByReason {
                lifetime: closed(RetireReason::Lifetime),
                idle_timeout: closed(RetireReason::IdleTimeout),
                max_queries: closed(RetireReason::MaxQueries),
                broken: closed(RetireReason::Broken),
                dirty: closed(RetireReason::Dirty),
                validation_failed: closed(RetireReason::ValidationFailed),
                discarded: closed(RetireReason::Discarded),
                pool_closed: closed(RetireReason::PoolClosed),
                dropped: closed(RetireReason::Dropped),
                evicted: closed(RetireReason::Evicted),
            },
            validations: self.validations.get(),
            validation_failures: self.validation_failures.get(),
            avg_acquisition_time_ms: wait_time.mean_ms,
            peak_wait_time_ms: wait_time.max_ms,
            wait_time,
            wait_time_recent: self.wait_time_recent.summary(ctx.now_ms),
            create_time: self.create_time.summary(),
            hold_time: self
                .hold_time
                .summary_counted_by(seats.returns, 0, seats.held_us),
            maintenance_runs: self.maintenance_runs.get(),
            leaks_suspected: seats.suspected,
            leaks_reported_total: self.leaks_reported.get(),
            maintenance_errors: self.maintenance_errors.get(),
            manager_panics: self.manager_panics.get(),
            background_restarts: self.background_restarts.get(),
            pool_created_at: rfc3339(ctx.created_at),
            last_health_check: ctx.last_health_check.map(rfc3339),
            last_error: ctx.last_error,
            last_error_time: ctx.last_error_time.map(rfc3339),
        }
    }
}

/// Connections closed, by reason. The fields add up to
/// [`Statistics::connections_closed`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClosedByReason {
    /// Past their (jittered) `max_lifetime`: on checkout, on return, or by
    /// maintenance.
    pub lifetime: u64,
    /// Idle longer than `max_idle_time` while above `min_size` (maintenance).
    pub idle_timeout: u64,
    /// Ran `max_queries` statements (on return).
    pub max_queries: u64,
    /// Found closed or broken by the manager's free check (checkout or
    /// return).
    pub broken: u64,
    /// Returned mid-request or inside a transaction.
    pub dirty: u64,
    /// Failed or timed out the liveness check on checkout.
    pub validation_failed: u64,
    /// Closed by `discard()`.
    pub discarded: u64,
    /// Closed because the pool was closed.
    pub pool_closed: u64,
    /// Dropped by a cancelled checkout during its liveness check, or with
    /// the pool itself.
    pub dropped: u64,
    /// Opened before an eviction (`Pool::evict_all()`, or a connection
    /// that reported its server shut down, demoted or failed over).
    pub evicted: u64,
}

/// An immutable snapshot of the pool's state, gauges, counters and
/// latencies. Taking one is lock-free.
///
/// Gauges (`*_connections`, `waiting_requests`) are the value at the moment
/// of the snapshot; `total_connections == idle_connections +
/// active_connections + opening_connections` always holds within one
/// snapshot. Counters only grow. Latency summaries are in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Statistics {
    /// The pool's name ([`PoolConfig::name`](crate::PoolConfig::name),
    /// `POOL_NAME`).
    pub pool: String,
    /// The pool's state (`HEALTHY`, `RECOVERING`, `TERMINATED`, ...).
    pub state: PoolState,
    /// The configured `min_size`.
    pub min_size: u64,
    /// The configured `max_size`.
    pub max_size: u64,
    /// Open connections, including those still opening:
    /// `idle + active + opening`. Never exceeds `max_size`.
    pub total_connections: u64,
    /// Connections in the idle queue, ready to be handed out (including one
    /// maintenance is inspecting).
    pub idle_connections: u64,
    /// Connections lent to callers, including one being validated for a
    /// caller during checkout.
    pub active_connections: u64,
    /// Connections whose connect is in progress (counted in
    /// `total_connections`, not in `idle` or `active`).
    pub opening_connections: u64,
    /// Callers queued in `acquire()` for a free slot right now.
    pub waiting_requests: u64,
    /// Capacity nobody holds right now: `max_size` minus the permits held
    /// by lent connections, connects and checks under way, and callers
    /// between two steps of `acquire()`. Zero while callers are queued.
    /// Equals `max_size` whenever the pool is quiet; anything less then is
    /// lost capacity.
    pub free_permits: u64,
    /// The highest `active_connections` seen at an acquisition.
    pub peak_active_connections: u64,
    /// The highest `waiting_requests` seen when a caller queued.
    pub peak_waiting_requests: u64,
    /// Successful `acquire()`/`try_acquire()` calls:
    /// `acquisitions_immediate + acquisitions_waited`.
    pub total_acquisitions: u64,
    /// Acquisitions that got a slot without queueing.
    pub acquisitions_immediate: u64,
    /// Acquisitions that had to queue for a slot first.
    pub acquisitions_waited: u64,
    /// Connections given back (guard dropped or discarded): once per
    /// successful acquisition.
    pub total_releases: u64,
    /// `acquire()` calls that ended with a timeout error, any phase.
    pub total_timeouts: u64,
    /// `acquire()` futures dropped before they finished (the caller gave up
    /// or was cancelled, e.g. by its own timeout).
    pub acquires_cancelled: u64,
    /// `acquire()` calls that ended with an error other than a timeout
    /// (closed pool, non-retryable connect failure).
    pub acquire_errors: u64,
    /// Connects that succeeded, warm-up and maintenance included.
    pub connections_created: u64,
    /// Connects that failed or timed out.
    pub connection_failures: u64,
    /// Connections closed after having been open, for any reason: the sum
    /// of `closed_by_reason`.
    pub connections_closed: u64,
    /// Connections closed, by reason.
    pub closed_by_reason: ClosedByReason,
    /// Liveness checks run (on checkout of a connection idle longer than
    /// `validation_skip_window`, and during warm-up).
    pub validations: u64,
    /// Liveness checks that failed or timed out; each closed its connection.
    pub validation_failures: u64,
    /// Mean time `acquire()` took, over all successful acquisitions (the
    /// same as `wait_time.mean_ms`).
    pub avg_acquisition_time_ms: f64,
    /// The longest time a successful `acquire()` took (`wait_time.max_ms`).
    pub peak_wait_time_ms: f64,
    /// Time from calling `acquire()` to getting the connection, over all
    /// successful acquisitions; zero for the lock-free fast path.
    pub wait_time: LatencySummary,
    /// The same over the last 60 s only.
    pub wait_time_recent: LatencySummary,
    /// Time one successful connect took (TCP, TLS, startup, auth).
    pub create_time: LatencySummary,
    /// Time connections were held by callers, from acquisition to return.
    pub hold_time: LatencySummary,
    /// Maintenance rounds run.
    pub maintenance_runs: u64,
    /// Connections lent out right now that were reported as potential
    /// leaks (held longer than `leak_detection_timeout`).
    pub leaks_suspected: u64,
    /// Potential leaks reported since the pool was built (each lending is
    /// reported at most once).
    pub leaks_reported_total: u64,
    /// Errors met by maintenance (failed replenishing connects, a broken
    /// invariant); each is also logged under `pool_core::maintenance`.
    pub maintenance_errors: u64,
    /// Panics caught in the manager's `create` or `validate` (each also
    /// counted as a failed connect or validation, and logged at ERROR under
    /// `pool_core::manager`), and in a maintenance round.
    pub manager_panics: u64,
    /// Background tasks (deadlines, maintenance, the reconnect supervisor)
    /// started again on a caller's runtime because the runtime they ran on
    /// was shut down; each is logged at WARN under `pool_core::tasks`.
    pub background_restarts: u64,
    /// When the pool was built (RFC 3339, UTC).
    pub pool_created_at: String,
    /// When `health_check()` last ran, if ever.
    pub last_health_check: Option<String>,
    /// The most recent connection failure (connect or liveness check).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_time: Option<String>,
}

impl Statistics {
    /// `true` when no connection is lent out, opening, or waited for: the
    /// quiet state every fault and cancellation must return to.
    pub fn is_quiet(&self) -> bool {
        self.active_connections == 0 && self.opening_connections == 0 && self.waiting_requests == 0
    }
}
