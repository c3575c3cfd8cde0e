//! Health status: a cheap, honest verdict from the pool's own state.
//!
//! `health_check()` runs no query and takes no lock: it reads the gauges and
//! a few atomics, so it can be called on every request (a load balancer's
//! probe, a `/health` endpoint). The rules, in order:
//!
//! 1. A pool that is `RECOVERING` (the database was lost), shutting down or
//!    terminated is `unhealthy`.
//! 2. No open connection while a connection failed in the last
//!    [`RECENT_ERROR_WINDOW`] (the database cannot be reached) is
//!    `unhealthy`.
//! 3. The **available capacity** is `idle + (max_size - total)` over
//!    `max_size`: the share of `max_size` a new caller could still get
//!    without waiting. Measuring it against `max_size`, and counting room to
//!    grow, means a lightly used pool that simply has not grown is not
//!    called unhealthy. Under `health_degraded_percent` (default 50) it is
//!    `unhealthy`; under `health_healthy_percent` (default 80) `degraded`.
//! 4. Any connection failure, or any potential connection leak reported, in
//!    the last [`RECENT_ERROR_WINDOW`] makes an otherwise healthy pool
//!    `degraded`.
//!
//! Every non-healthy verdict lists its reasons in plain words.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::clock::rfc3339;
use crate::manager::Manager;
use crate::recovery::RecoveryView;
use crate::shared::Shared;
use crate::state::{HealthState, PoolState};

/// How long a connection failure keeps the pool `degraded`: 60 s.
pub const RECENT_ERROR_WINDOW: Duration = Duration::from_secs(60);

/// Connection counts as seen by the health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PoolHealth {
    /// Open connections, including opening ones.
    pub total: u64,
    /// Idle connections.
    pub idle: u64,
    /// Connections lent out.
    pub active: u64,
    /// Callers queued for a connection.
    pub waiting: u64,
    /// The configured `max_size`.
    pub max: u64,
    /// Available capacity in percent: `(idle + max - total) * 100 / max`.
    pub available_percent: u64,
}

/// What the health check knows about the database.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DatabaseHealth {
    /// `up` (a connection is open), `down` (none open and connecting failed
    /// recently) or `unknown` (none open, nothing tried recently).
    pub status: &'static str,
    /// The pool's connection counts.
    pub pool: PoolHealth,
    /// The round trip of the most recent liveness check, if any ran.
    pub latency_ms: Option<f64>,
    /// The most recent connection failure, if any.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_time: Option<String>,
}

/// The result of [`Pool::health_check`](crate::Pool::health_check).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthStatus {
    /// The verdict.
    pub status: HealthState,
    /// The pool's state machine (`RECOVERING`, `SHUTTING_DOWN`, ...).
    pub pool_state: PoolState,
    /// When the check ran (RFC 3339, UTC).
    pub timestamp: String,
    /// The database side of the verdict.
    pub database: DatabaseHealth,
    /// Seconds since the pool was built.
    pub uptime_seconds: u64,
    /// Why the verdict is not `healthy` (empty when it is).
    pub reasons: Vec<String>,
}

/// Inputs of the verdict, read from the pool's atomics.
pub(crate) struct HealthInputs {
    pub(crate) total: u64,
    pub(crate) idle: u64,
    pub(crate) active: u64,
    pub(crate) waiting: u64,
    pub(crate) max: u64,
    pub(crate) state: PoolState,
    pub(crate) recovery: Option<RecoveryView>,
    /// Connections reported as potential leaks in the last
    /// [`RECENT_ERROR_WINDOW`].
    pub(crate) recent_leaks: u64,
    pub(crate) healthy_percent: u32,
    pub(crate) degraded_percent: u32,
    /// Time since the last connection failure, if any.
    pub(crate) since_last_error: Option<Duration>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_time: Option<SystemTime>,
    pub(crate) latency: Option<Duration>,
    pub(crate) uptime: Duration,
}

/// Applies the rules of the module documentation.
pub(crate) fn assess(inputs: HealthInputs) -> HealthStatus {
    let max = inputs.max.max(1);
    let room = inputs.max.saturating_sub(inputs.total);
    let available_percent = (inputs.idle + room) * 100 / max;
    let recent_error = inputs
        .since_last_error
        .is_some_and(|since| since < RECENT_ERROR_WINDOW);
    let unreachable = inputs.total == 0 && recent_error;

    let mut unhealthy = Vec::new();
    let mut degraded = Vec::new();
    if inputs.state.is_closing() {
        unhealthy.push(format!(
            "the pool is {}",
            inputs.state.as_str().to_lowercase().replace('_', " ")
        ));
    }
    if let Some(recovery) = inputs.recovery {
        unhealthy.push(format!(
            "the database was lost {:.1} s ago; reconnecting ({} attempts, next in {} ms)",
            recovery.down_for.as_secs_f64(),
            recovery.attempts,
            recovery.next_attempt_in.as_millis()
        ));
    } else if unreachable {
        unhealthy.push(format!(
            "no open connection and connecting failed in the last {} s: {}",
            RECENT_ERROR_WINDOW.as_secs(),
            inputs.last_error.as_deref().unwrap_or("unknown error")
        ));
    }
    let capacity = format!(
        "available capacity {available_percent}% ({} idle + {room} room of max {})",
        inputs.idle, inputs.max
    );
    if available_percent < u64::from(inputs.degraded_percent) {
        unhealthy.push(format!("{capacity} is under {}%", inputs.degraded_percent));
    } else if available_percent < u64::from(inputs.healthy_percent) {
        degraded.push(format!("{capacity} is under {}%", inputs.healthy_percent));
    }
    if inputs.recent_leaks > 0 {
        degraded.push(format!(
            "Connection pool health degraded: {} potential leaks detected in last {}s",
            inputs.recent_leaks,
            RECENT_ERROR_WINDOW.as_secs()
        ));
    }
    if recent_error && !unreachable {
        degraded.push(format!(
            "a connection failed in the last {} s: {}",
            RECENT_ERROR_WINDOW.as_secs(),
            inputs.last_error.as_deref().unwrap_or("unknown error")
        ));
    }
    let (status, reasons) = if !unhealthy.is_empty() {
        unhealthy.extend(degraded);
        (HealthState::Unhealthy, unhealthy)
    } else if !degraded.is_empty() {
        (HealthState::Degraded, degraded)
    } else {
        (HealthState::Healthy, Vec::new())
    };
    let db_status = if inputs.recovery.is_some() {
        "down"
    } else if inputs.total > 0 {
        "up"
    } else if recent_error {
        "down"
    } else {
        "unknown"
    };
    HealthStatus {
        status,
        pool_state: inputs.state,
        timestamp: rfc3339(SystemTime::now()),
        database: DatabaseHealth {
            status: db_status,
            pool: PoolHealth {
                total: inputs.total,
                idle: inputs.idle,
                active: inputs.active,
                waiting: inputs.waiting,
                max: inputs.max,
                available_percent,
            },
            latency_ms: inputs.latency.map(|l| l.as_micros() as f64 / 1000.0),
            last_error: inputs.last_error,
            last_error_time: inputs.last_error_time.map(rfc3339),
        },
        uptime_seconds: inputs.uptime.as_secs(),
        reasons,
    }
}

/// Re-evaluates `HEALTHY`/`DEGRADED`/`UNHEALTHY` from the health verdict.
/// Does nothing in the other states. Called on events (connect and
/// validation results, maintenance rounds), never on the hot path.
pub(crate) fn refresh_state<M: Manager>(shared: &Shared<M>) {
    if shared.state.get().follows_health() {
        let verdict = assess_pool(shared, false);
        follow_verdict(shared, &verdict);
    }
}

/// The health verdict from the gauges and a few atomics: no snapshot, no
/// histogram, no lock. Also moves the state machine if the verdict changed.
pub(crate) fn check<M: Manager>(shared: &Shared<M>) -> HealthStatus {
    let verdict = assess_pool(shared, true);
    follow_verdict(shared, &verdict);
    verdict
}

/// Moves `HEALTHY`/`DEGRADED`/`UNHEALTHY` to match `verdict`.
fn follow_verdict<M: Manager>(shared: &Shared<M>, verdict: &HealthStatus) {
    shared.publish_metrics(Some(verdict.status));
    let current = shared.state.get();
    if !current.follows_health() {
        return;
    }
    let to = match verdict.status {
        HealthState::Healthy => PoolState::Healthy,
        HealthState::Degraded => PoolState::Degraded,
        HealthState::Unhealthy => PoolState::Unhealthy,
    };
    if to != current {
        let reason = if verdict.reasons.is_empty() {
            "capacity available and no recent failure".to_owned()
        } else {
            verdict.reasons.join("; ")
        };
        shared.state.transition(to, &reason);
    }
}

/// The inputs of [`assess`] read from a live pool; `record` marks this as a
/// health check (`last_health_check`).
fn assess_pool<M: Manager>(shared: &Shared<M>, record: bool) -> HealthStatus {
    let now_ms = shared.now_ms();
    if record {
        shared.last_health_check_at.set(now_ms);
    }
    let gauges = shared.ledger.gauges.read();
    let last_error_at = shared.last_error_at.get();
    let latency = shared.last_validation_us.get();
    let state = shared.state.get();
    assess(HealthInputs {
        total: gauges.open(),
        idle: gauges.idle,
        active: gauges.in_use,
        waiting: shared.semaphore.waiting(),
        max: u64::from(shared.config.max_size),
        state,
        recovery: (state == PoolState::Recovering).then(|| shared.recovery.view(now_ms)),
        recent_leaks: shared.ledger.seats.reported_within(
            now_ms,
            u64::try_from(RECENT_ERROR_WINDOW.as_millis()).unwrap_or(u64::MAX),
        ),
        healthy_percent: shared.config.health_healthy_percent,
        degraded_percent: shared.config.health_degraded_percent,
        since_last_error: last_error_at.map(|at| Duration::from_millis(now_ms.saturating_sub(at))),
        last_error: shared.last_error.load().as_deref().map(ToString::to_string),
        last_error_time: shared.wall_time(last_error_at),
        latency: latency.map(Duration::from_micros),
        uptime: Duration::from_millis(now_ms),
    })
}

/// Leaves `RECOVERING`: a connect succeeded, the supervisor's probe
/// (`how`: "3 attempts") or any other that was already under way when the
/// pool lost the database (`how`: "a connect under way"); either proves the
/// database answers, so callers are served from now on instead of being
/// turned away until the next probe. The supervisor sees the state and
/// ends. Idempotent: only the call that makes the transition logs.
pub(crate) fn recovered<M: Manager>(shared: &Shared<M>, how: &str) {
    let down_for = shared.recovery.view(shared.now_ms()).down_for;
    let attempts = shared
        .recovery
        .attempts
        .load(crate::sync::Ordering::Relaxed);
    // Cleared before the transition is visible, as `enter` sets it before.
    shared.recovery.since.clear();
    if !shared.state.transition(
        PoolState::Healthy,
        &format!(
            "reconnected after {how}, {:.1} s down",
            down_for.as_secs_f64()
        ),
    ) {
        return;
    }
    let gauges = shared.ledger.gauges.read();
    tracing::info!(
        target: "pool_core::reconnect",
        pool = %shared.config.name,
        idle = gauges.idle,
        total = gauges.open(),
        attempts,
        recovery_ms = down_for.as_millis() as u64,
        "Connection pool recovered: {}/{} connections available",
        gauges.idle,
        gauges.open()
    );
    shared.maintenance_wakeup.notify_one();
}
