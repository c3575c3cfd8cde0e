//! Metrics at the source, through the [`metrics`](https://docs.rs/metrics)
//! facade (cargo feature `metrics`; without it every method here is an empty
//! inline function).
//!
//! # Design
//!
//! Every handle is registered once, when the pool is built, with the labels
//! it will always carry (`pool`, plus `state` or `reason`), so recording is
//! one call on a ready handle: no registry lookup and no allocation on the
//! hot path. The pool never installs a recorder: the service does (e.g.
//! `metrics-exporter-prometheus`), **before** building the pool, since
//! handles registered earlier go nowhere.
//!
//! * Counters and histograms are recorded where the event happens, so they
//!   are exact: `..._created_total` moves in the same step as
//!   `Statistics::connections_created`.
//! * The connection gauges are published from the one atomic word that holds
//!   them, right after every change. Two threads changing it at once may
//!   publish in the opposite order, leaving a gauge one step stale until the
//!   next change; every maintenance round, `statistics()` and
//!   `health_check()` republish them from a fresh reading, which bounds that.
//!
//! Names follow Prometheus conventions (base units, `_seconds`, `_total`);
//! `docs/operations/connection_pool_monitoring.md` maps each to its
//! OpenTelemetry `db.client.connection.*` name.

/// `db_client_connection_count{pool, state}`: connections by state,
/// `state` = `idle` | `used` | `opening`.
pub const CONNECTION_COUNT: &str = "db_client_connection_count";
/// `db_client_connection_max{pool}`: `max_size`.
pub const CONNECTION_MAX: &str = "db_client_connection_max";
/// `db_client_connection_idle_min{pool}`: `min_size`.
pub const CONNECTION_IDLE_MIN: &str = "db_client_connection_idle_min";
/// `db_client_connection_pending_requests{pool}`: callers waiting in
/// `acquire()`.
pub const PENDING_REQUESTS: &str = "db_client_connection_pending_requests";
/// `db_client_connection_wait_time_seconds{pool}`: histogram of the time
/// each successful `acquire()` took (0 on the lock-free fast path).
pub const WAIT_TIME: &str = "db_client_connection_wait_time_seconds";
/// `db_client_connection_use_time_seconds{pool}`: histogram of how long
/// callers held a connection.
pub const USE_TIME: &str = "db_client_connection_use_time_seconds";
/// `db_client_connection_create_time_seconds{pool}`: histogram of
/// successful connects.
pub const CREATE_TIME: &str = "db_client_connection_create_time_seconds";
/// `db_client_connection_timeouts_total{pool}`: `acquire()` timeouts.
pub const TIMEOUTS: &str = "db_client_connection_timeouts_total";
/// `db_client_connection_created_total{pool}`: connections opened.
pub const CREATED: &str = "db_client_connection_created_total";
/// `db_client_connection_create_failures_total{pool}`: failed connects.
pub const CREATE_FAILURES: &str = "db_client_connection_create_failures_total";
/// `db_client_connection_closed_total{pool, reason}`: connections closed,
/// by [`RetireReason`](crate::RetireReason) name.
pub const CLOSED: &str = "db_client_connection_closed_total";
/// `db_client_connection_pool_state{pool, state}`: 1 for the current
/// [`PoolState`](crate::PoolState), 0 for the others.
pub const POOL_STATE: &str = "db_client_connection_pool_state";
/// `db_client_connection_pool_health{pool, status}`: 1 for the last health
/// verdict (`healthy` | `degraded` | `unhealthy`), 0 for the others.
pub const POOL_HEALTH: &str = "db_client_connection_pool_health";

#[cfg(feature = "metrics")]
pub(crate) use enabled::Metrics;

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Metrics;

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Duration;

    use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
    use metrics::{histogram, Counter, Gauge, Histogram, Unit};

    use super::*;
    use crate::gauges::GaugeReading;
    use crate::retire::RetireReason;
    use crate::state::HealthState;
    use crate::state::PoolState;

    /// The pool's registered metric handles.
    #[derive(Debug)]
    pub(crate) struct Metrics {
        idle: Gauge,
        used: Gauge,
        opening: Gauge,
        pending: Gauge,
        wait_time: Histogram,
        use_time: Histogram,
        create_time: Histogram,
        timeouts: Counter,
        created: Counter,
        create_failures: Counter,
        closed: [Counter; RetireReason::ALL.len()],
        state: [Gauge; PoolState::ALL.len()],
        health: [Gauge; HealthState::ALL.len()],
    }

    impl Metrics {
        pub(crate) fn new(pool: &str, min_size: u32, max_size: u32) -> Self {
            describe();
            let pool = pool.to_owned();
            let count = |state: &'static str| gauge!(CONNECTION_COUNT, "pool" => pool.clone(), "state" => state);
            gauge!(CONNECTION_MAX, "pool" => pool.clone()).set(f64::from(max_size));
            gauge!(CONNECTION_IDLE_MIN, "pool" => pool.clone()).set(f64::from(min_size));
            Self {
                idle: count("idle"),
                used: count("used"),
                opening: count("opening"),
                pending: gauge!(PENDING_REQUESTS, "pool" => pool.clone()),
                wait_time: histogram!(WAIT_TIME, "pool" => pool.clone()),
                use_time: histogram!(USE_TIME, "pool" => pool.clone()),
                create_time: histogram!(CREATE_TIME, "pool" => pool.clone()),
                timeouts: counter!(TIMEOUTS, "pool" => pool.clone()),
                created: counter!(CREATED, "pool" => pool.clone()),
                create_failures: counter!(CREATE_FAILURES, "pool" => pool.clone()),
                closed: RetireReason::ALL
                    .map(|r| counter!(CLOSED, "pool" => pool.clone(), "reason" => r.as_str())),
                state: PoolState::ALL
                    .map(|s| gauge!(POOL_STATE, "pool" => pool.clone(), "state" => s.as_str())),
                health: HealthState::ALL
                    .map(|h| gauge!(POOL_HEALTH, "pool" => pool.clone(), "status" => h.as_str())),
            }
        }

        #[inline]
        pub(crate) fn connections(&self, gauges: GaugeReading) {
            self.idle.set(gauges.idle as f64);
            self.used.set(gauges.in_use as f64);
            self.opening.set(gauges.opening as f64);
        }

        /// `waiting` is called only with the feature on: without it, the
        /// queue length (a load of a line the releasers write) is not read.
        #[inline]
        pub(crate) fn pending(&self, waiting: impl FnOnce() -> u64) {
            self.pending.set(waiting() as f64);
        }

        #[inline]
        pub(crate) fn acquired(&self, wait: Duration) {
            self.wait_time.record(wait.as_secs_f64());
        }

        #[inline]
        pub(crate) fn released(&self, held: Duration) {
            self.use_time.record(held.as_secs_f64());
        }

        pub(crate) fn created(&self, took: Duration) {
            self.created.increment(1);
            self.create_time.record(took.as_secs_f64());
        }

        pub(crate) fn create_failed(&self) {
            self.create_failures.increment(1);
        }

        pub(crate) fn timed_out(&self) {
            self.timeouts.increment(1);
        }

        #[inline]
        pub(crate) fn closed(&self, reason: RetireReason) {
            self.closed[reason.index()].increment(1);
        }

        pub(crate) fn state(&self, to: PoolState) {
            for (state, gauge) in PoolState::ALL.iter().zip(&self.state) {
                gauge.set(if *state == to { 1.0 } else { 0.0 });
            }
        }

        pub(crate) fn health(&self, verdict: HealthState) {
            for (status, gauge) in HealthState::ALL.iter().zip(&self.health) {
                gauge.set(if *status == verdict { 1.0 } else { 0.0 });
            }
        }
    }

    /// Units and help texts, for exporters that show them.
    fn describe() {
        let connections = Unit::Count;
        describe_gauge!(
            CONNECTION_COUNT,
            connections,
            "Connections by state (idle, used, opening)."
        );
        describe_gauge!(CONNECTION_MAX, connections, "The pool's max_size.");
        describe_gauge!(CONNECTION_IDLE_MIN, connections, "The pool's min_size.");
        describe_gauge!(
            PENDING_REQUESTS,
            Unit::Count,
            "Callers waiting in acquire()."
        );
        describe_histogram!(
            WAIT_TIME,
            Unit::Seconds,
            "Time each successful acquire() took."
        );
        describe_histogram!(
            USE_TIME,
            Unit::Seconds,
            "How long callers held a connection."
        );
        describe_histogram!(CREATE_TIME, Unit::Seconds, "Time to open a connection.");
        describe_counter!(TIMEOUTS, Unit::Count, "acquire() calls that timed out.");
        describe_counter!(CREATED, Unit::Count, "Connections opened.");
        describe_counter!(CREATE_FAILURES, Unit::Count, "Connects that failed.");
        describe_counter!(CLOSED, Unit::Count, "Connections closed, by reason.");
        describe_gauge!(POOL_STATE, Unit::Count, "1 for the pool's current state.");
        describe_gauge!(POOL_HEALTH, Unit::Count, "1 for the last health verdict.");
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use std::time::Duration;

    use crate::gauges::GaugeReading;
    use crate::retire::RetireReason;
    use crate::state::HealthState;
    use crate::state::PoolState;

    /// Without the `metrics` feature: nothing, at no cost.
    #[derive(Debug)]
    pub(crate) struct Metrics;

    #[allow(clippy::unused_self)]
    impl Metrics {
        pub(crate) fn new(_pool: &str, _min_size: u32, _max_size: u32) -> Self {
            Metrics
        }
        #[inline(always)]
        pub(crate) fn connections(&self, _gauges: GaugeReading) {}
        #[inline(always)]
        pub(crate) fn pending(&self, _waiting: impl FnOnce() -> u64) {}
        #[inline(always)]
        pub(crate) fn acquired(&self, _wait: Duration) {}
        #[inline(always)]
        pub(crate) fn released(&self, _held: Duration) {}
        #[inline(always)]
        pub(crate) fn created(&self, _took: Duration) {}
        #[inline(always)]
        pub(crate) fn create_failed(&self) {}
        #[inline(always)]
        pub(crate) fn timed_out(&self) {}
        #[inline(always)]
        pub(crate) fn closed(&self, _reason: RetireReason) {}
        #[inline(always)]
        pub(crate) fn state(&self, _to: PoolState) {}
        #[inline(always)]
        pub(crate) fn health(&self, _verdict: HealthState) {}
    }
}
