//! Reconnection: capped exponential backoff with jitter, and the one
//! supervisor that probes the database while the pool is `RECOVERING`.
//!
//! The pool enters `RECOVERING` when the database is lost: no connection is
//! idle or lent out, and a connect failed in a way that says the server is
//! down (a refused TCP connect, `Manager::is_server_down`), or
//! [`RECOVERY_FAILURE_THRESHOLD`] connects failed in a row. One transient
//! failure (too many connections, a server starting up) never shuts every
//! caller out: the callers' own connects retry it. Then:
//!
//! * callers stop connecting (they fail at once with `Unavailable`, or wait
//!   for the recovery if `wait_for_recovery` is set), so a dead database is
//!   never stormed by every waiting request;
//! * exactly one supervisor task probes with one connect per attempt, after
//!   `reconnect_initial_delay`, doubling (±10 % jitter) up to
//!   `reconnect_max_delay`, forever;
//! * a caller asking for a connection wakes the supervisor for an early
//!   probe, at most one per [`DEMAND_PROBE_INTERVAL`], so recovery under
//!   load takes well under a second after the database is back, while the
//!   connect rate stays bounded (at most 4 per second).
//!
//! A successful probe parks its connection idle, moves the pool to
//! `HEALTHY`, logs `Connection pool recovered`, and wakes maintenance to
//! refill to `min_size`. The supervisor holds only a `Weak` reference and
//! ends with the pool.

use std::time::Duration;

use tokio::time::Instant;

use crate::clock;
use crate::health;
use crate::manager::Manager;
use crate::open::connect;
use crate::shared::Shared;
use crate::slot::Slot;
use crate::state::PoolState;
use crate::sync::{Arc, Ordering, Weak};

/// Shortest time between two probes triggered by demand: 250 ms.
pub const DEMAND_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Consecutive failed connects (none succeeding in between) after which a
/// pool with no connection open is taken to have lost its database and
/// moves to `RECOVERING`: 3. One failure that says the server is down
/// (`Manager::is_server_down`, a refused TCP connect) is enough on its own.
pub const RECOVERY_FAILURE_THRESHOLD: u64 = 3;

/// Relative jitter of each backoff delay: ±10 %.
const JITTER: f64 = 0.10;

/// The delay before attempt `attempt` (1-based): `initial * 2^(attempt-1)`,
/// capped at `max`, then scaled by `1 + jitter` with `jitter` in
/// `[-0.1, 0.1]` (pass a value in `[-1, 1]` as `draw`).
pub(crate) fn backoff_delay(attempt: u32, initial: Duration, max: Duration, draw: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    // Saturating: `mul_f64` panics past `Duration::MAX`.
    Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + JITTER * draw.clamp(-1.0, 1.0)))
        .unwrap_or(Duration::MAX)
}

/// After a failed connect: moves the pool to `RECOVERING` if the database
/// looks lost, i.e. no connection is open (idle or lent out) and either the
/// failure says the server is down or [`RECOVERY_FAILURE_THRESHOLD`]
/// connects failed in a row. Returns whether the pool is now recovering.
/// The one place that rule lives: callers' connects and maintenance both
/// ask here.
pub(crate) fn after_connect_failure<M: Manager>(
    shared: &Arc<Shared<M>>,
    server_down: bool,
    error: &dyn std::fmt::Display,
) -> bool {
    let gauges = shared.ledger.gauges.read();
    if gauges.idle + gauges.in_use != 0 {
        return false;
    }
    let streak = shared.recovery.consecutive_failures.load(Ordering::Relaxed);
    if !server_down && streak < RECOVERY_FAILURE_THRESHOLD {
        return false;
    }
    let evidence = if server_down {
        "the server refused the connect".to_owned()
    } else {
        format!("{streak} connects failed in a row")
    };
    enter(
        shared,
        &format!("no connection is open and {evidence}: {error}"),
    );
    true
}

/// Moves the pool to `RECOVERING` (if the state machine allows it) and
/// starts the supervisor. Idempotent: a second call while recovering does
/// nothing but ask for an early probe.
pub(crate) fn enter<M: Manager>(shared: &Arc<Shared<M>>, reason: &str) {
    let recovery = &shared.recovery;
    let now_ms = shared.now_ms();
    // Set before the transition is visible, so an `Unavailable` error built
    // right after it never reports a stale "since".
    let previous_since = recovery.since.swap(Some(now_ms));
    if !shared.state.transition(PoolState::Recovering, reason) {
        recovery.since.swap(previous_since);
        recovery.demand();
        return;
    }
    tracing::warn!(
        target: "pool_core::reconnect",
        pool = %shared.config.name,
        reason,
        "Database connectivity lost, entering reconnection mode"
    );
    // The supervisor sets its own schedule; until it runs, the first
    // scheduled attempt is one initial delay away.
    let first_delay =
        u64::try_from(shared.config.reconnect_initial_delay.as_millis()).unwrap_or(u64::MAX);
    recovery
        .next_attempt_at
        .store(now_ms.saturating_add(first_delay), Ordering::Relaxed);
    recovery.attempts.store(0, Ordering::Relaxed);
    let weak = Arc::downgrade(shared);
    let task = tokio::spawn(supervise(weak));
    if let Some(old) = recovery.task.lock().replace(task) {
        old.abort();
    }
}

/// Starts the supervisor again on the current runtime if the pool is
/// recovering and its supervisor is gone (its runtime was shut down: see
/// `tasks.rs`). Returns whether it did. Three loads when nothing is lost.
pub(crate) fn restart_lost_supervisor<M: Manager>(shared: &Arc<Shared<M>>) -> bool {
    if shared.state.get() != PoolState::Recovering || shared.is_closed() {
        return false;
    }
    let mut task = shared.recovery.task.lock();
    if task.as_ref().is_some_and(|task| !task.is_finished()) {
        return false;
    }
    // Recovering, yet no supervisor: a normal exit leaves `RECOVERING`
    // first, so this one was dropped with its runtime.
    *task = Some(tokio::spawn(supervise(Arc::downgrade(shared))));
    true
}

async fn supervise<M: Manager>(weak: Weak<Shared<M>>) {
    let mut attempt: u32 = 0;
    let mut last_probe = Instant::now();
    loop {
        attempt = attempt.saturating_add(1);
        let (wake_at, demand) = {
            let Some(shared) = weak.upgrade() else { return };
            let config = &shared.config;
            let delay = backoff_delay(
                attempt,
                config.reconnect_initial_delay,
                config.reconnect_max_delay,
                fastrand::f64() * 2.0 - 1.0,
            );
            let wake_at = clock::after(delay);
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            shared
                .recovery
                .next_attempt_at
                .store(shared.now_ms().saturating_add(delay_ms), Ordering::Relaxed);
            (wake_at, Arc::clone(&shared.recovery.demand))
        };
        // Wait for the backoff, or for demand (rate-limited). Only the
        // `Notify` is held here, not the pool.
        let trigger = tokio::select! {
            () = tokio::time::sleep_until(wake_at) => "backoff",
            () = demand.notified() => {
                let earliest = last_probe + DEMAND_PROBE_INTERVAL;
                // Bounded: at most DEMAND_PROBE_INTERVAL.
                tokio::time::sleep_until(earliest.min(wake_at)).await;
                "demand"
            }
        };
        let Some(shared) = weak.upgrade() else { return };
        if shared.state.get() != PoolState::Recovering {
            return;
        }
        let waited = last_probe.elapsed();
        last_probe = Instant::now();
        let attempts = shared.recovery.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            target: "pool_core::reconnect",
            pool = %shared.config.name,
            attempt = attempts,
            delay_s = waited.as_secs_f64(),
            trigger,
            "Reconnection attempt {attempts} after {:.2} s delay ({trigger})",
            waited.as_secs_f64()
        );
        if probe(&shared).await {
            health::recovered(&shared, &format!("{attempts} attempts"));
            return;
        }
    }
}

/// One connect. `true` if the database answered (or the pool already has
/// connections again).
async fn probe<M: Manager>(shared: &Arc<Shared<M>>) -> bool {
    let Some(slot) = Slot::try_open(&shared.ledger) else {
        return true;
    };
    match connect(shared, slot).await {
        Ok(conn) => {
            shared.return_to_idle(conn);
            true
        }
        // Logged and counted by `connect`.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_one_second_to_sixteen_and_stays_there() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(16));
        let delays: Vec<u64> = (1..=8)
            .map(|n| backoff_delay(n, initial, max, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 16, 16, 16]);
    }

    #[test]
    fn the_jitter_stays_within_ten_percent() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(16));
        assert_eq!(
            backoff_delay(3, initial, max, 1.0),
            Duration::from_millis(4400)
        );
        assert_eq!(
            backoff_delay(3, initial, max, -1.0),
            Duration::from_millis(3600)
        );
        assert_eq!(
            backoff_delay(3, initial, max, 7.0),
            Duration::from_millis(4400)
        );
        assert_eq!(backoff_delay(u32::MAX, initial, max, 0.0), max);
    }

    #[test]
    fn a_huge_delay_saturates_instead_of_panicking() {
        assert_eq!(
            backoff_delay(40, Duration::MAX, Duration::MAX, 1.0),
            Duration::MAX
        );
        assert!(clock::after(Duration::MAX) > Instant::now());
    }
}
