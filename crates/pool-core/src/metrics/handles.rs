//! One set of metric handles, registered with one recorder.
//!
//! A set is registered with whichever recorder the facade says is current
//! on the registering thread ([`RecorderId::current`] names it), describes
//! the series to it, and sets the series that only move on rare occasions
//! (the sizes, the state, the health verdict) so a recorder that arrives
//! late shows them at once.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, SharedString, Unit};

use super::*;
use crate::retire::RetireReason;
use crate::state::{HealthState, PoolState};

/// Which recorder the facade hands out on this thread now: the address of
/// the thread's local recorder, else of the global one, else of the
/// facade's no-op recorder. Comparing two is how a set of handles knows it
/// belongs to the current recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecorderId(usize);

impl RecorderId {
    /// The current recorder: one thread-local read and one atomic load.
    #[inline]
    pub(super) fn current() -> Self {
        metrics::with_recorder(|recorder| Self(std::ptr::from_ref(recorder).cast::<()>() as usize))
    }
}

/// What a set of handles needs to register and to replay.
#[derive(Debug)]
pub(super) struct Replay {
    pub(super) pool: SharedString,
    pub(super) min_size: u32,
    pub(super) max_size: u32,
    pub(super) state: Option<PoolState>,
    pub(super) health: Option<HealthState>,
}

/// The pool's handles with one recorder.
#[derive(Debug)]
pub(super) struct Handles {
    pub(super) recorder: RecorderId,
    pub(super) idle: Gauge,
    pub(super) used: Gauge,
    pub(super) opening: Gauge,
    pub(super) pending: Gauge,
    pub(super) wait_time: Histogram,
    pub(super) use_time: Histogram,
    pub(super) create_time: Histogram,
    pub(super) timeouts: Counter,
    pub(super) created: Counter,
    pub(super) create_failures: Counter,
    pub(super) closed: [Counter; RetireReason::ALL.len()],
    pub(super) state: [Gauge; PoolState::ALL.len()],
    pub(super) health: [Gauge; HealthState::ALL.len()],
    pub(super) leaks_reported: Counter,
    pub(super) leaks_suspected: Gauge,
    pub(super) acquire_errors: Counter,
    pub(super) manager_panics: Counter,
    pub(super) background_restarts: Counter,
}

impl Handles {
    /// Registers every handle with the current recorder (named `recorder`),
    /// describes the series and replays the rare ones.
    pub(super) fn register(recorder: RecorderId, replay: &Replay) -> Self {
        describe();
        let pool = || replay.pool.clone();
        let count = |state: &'static str| gauge!(CONNECTION_COUNT, ATTR_POOL_NAME => pool(), ATTR_STATE => state);
        let handles = Self {
            recorder,
            idle: count("idle"),
            used: count("used"),
            opening: gauge!(CONNECTION_OPENING, ATTR_POOL_NAME => pool()),
            pending: gauge!(PENDING_REQUESTS, ATTR_POOL_NAME => pool()),
            wait_time: histogram!(WAIT_TIME, ATTR_POOL_NAME => pool()),
            use_time: histogram!(USE_TIME, ATTR_POOL_NAME => pool()),
            create_time: histogram!(CREATE_TIME, ATTR_POOL_NAME => pool()),
            timeouts: counter!(TIMEOUTS, ATTR_POOL_NAME => pool()),
            created: counter!(CREATED, ATTR_POOL_NAME => pool()),
            create_failures: counter!(CREATE_FAILURES, ATTR_POOL_NAME => pool()),
            closed: RetireReason::ALL
                .map(|r| counter!(CLOSED, ATTR_POOL_NAME => pool(), "reason" => r.as_str())),
            state: PoolState::ALL
                .map(|s| gauge!(POOL_STATE, ATTR_POOL_NAME => pool(), "state" => s.as_str())),
            health: HealthState::ALL
                .map(|h| gauge!(POOL_HEALTH, ATTR_POOL_NAME => pool(), "status" => h.as_str())),
            leaks_reported: counter!(LEAKS_REPORTED, ATTR_POOL_NAME => pool()),
            leaks_suspected: gauge!(LEAKS_SUSPECTED, ATTR_POOL_NAME => pool()),
            acquire_errors: counter!(ACQUIRE_ERRORS, ATTR_POOL_NAME => pool()),
            manager_panics: counter!(MANAGER_PANICS, ATTR_POOL_NAME => pool()),
            background_restarts: counter!(BACKGROUND_RESTARTS, ATTR_POOL_NAME => pool()),
        };
        gauge!(CONNECTION_MAX, ATTR_POOL_NAME => pool()).set(f64::from(replay.max_size));
        gauge!(CONNECTION_IDLE_MAX, ATTR_POOL_NAME => pool()).set(f64::from(replay.max_size));
        gauge!(CONNECTION_IDLE_MIN, ATTR_POOL_NAME => pool()).set(f64::from(replay.min_size));
        if let Some(state) = replay.state {
            handles.state(state);
        }
        if let Some(verdict) = replay.health {
            handles.health(verdict);
        }
        handles
    }

    /// 1 for `to`, 0 for every other state.
    pub(super) fn state(&self, to: PoolState) {
        for (state, gauge) in PoolState::ALL.iter().zip(&self.state) {
            gauge.set(if *state == to { 1.0 } else { 0.0 });
        }
    }

    /// 1 for `verdict`, 0 for the others.
    pub(super) fn health(&self, verdict: HealthState) {
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
        "The number of connections that are currently in the state described by the state attribute (idle, used)."
    );
    describe_gauge!(
        CONNECTION_IDLE_MAX,
        connections,
        "The maximum number of idle open connections allowed (the pool's max_size)."
    );
    describe_gauge!(
        CONNECTION_IDLE_MIN,
        connections,
        "The minimum number of idle open connections allowed (the pool's min_size)."
    );
    describe_gauge!(
        CONNECTION_MAX,
        connections,
        "The maximum number of open connections allowed (the pool's max_size)."
    );
    describe_gauge!(
        PENDING_REQUESTS,
        Unit::Count,
        "The number of current pending requests for an open connection (callers queued in acquire())."
    );
    describe_counter!(
        TIMEOUTS,
        Unit::Count,
        "The number of connection timeouts that have occurred trying to obtain a connection from the pool."
    );
    describe_histogram!(
        CREATE_TIME,
        Unit::Seconds,
        "The time it took to create a new connection."
    );
    describe_histogram!(
        WAIT_TIME,
        Unit::Seconds,
        "The time it took to obtain an open connection from the pool."
    );
    describe_histogram!(
        USE_TIME,
        Unit::Seconds,
        "The time between borrowing a connection and returning it to the pool."
    );
    describe_gauge!(
        CONNECTION_OPENING,
        connections,
        "Connections being opened (capacity reserved, not yet idle or used)."
    );
    describe_counter!(CREATED, Unit::Count, "Connections opened.");
    describe_counter!(
        CREATE_FAILURES,
        Unit::Count,
        "Connects that failed or timed out."
    );
    describe_counter!(CLOSED, Unit::Count, "Connections closed, by reason.");
    describe_gauge!(POOL_STATE, Unit::Count, "1 for the pool's current state.");
    describe_gauge!(POOL_HEALTH, Unit::Count, "1 for the last health verdict.");
    describe_counter!(
        LEAKS_REPORTED,
        Unit::Count,
        "Potential connection leaks reported."
    );
    describe_gauge!(
        LEAKS_SUSPECTED,
        connections,
        "Connections lent out longer than the leak detection timeout right now."
    );
    describe_counter!(
        ACQUIRE_ERRORS,
        Unit::Count,
        "acquire() calls that failed other than by timeout (unavailable, closed, fatal connect)."
    );
    describe_counter!(
        MANAGER_PANICS,
        Unit::Count,
        "Panics caught in the manager's methods."
    );
    describe_counter!(
        BACKGROUND_RESTARTS,
        Unit::Count,
        "Background tasks started again after their runtime was lost."
    );
}
