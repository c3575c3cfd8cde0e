//! The pool's state machine.
//!
//! ```text
//! INITIALIZING ──► HEALTHY ⇄ DEGRADED ⇄ UNHEALTHY
//!                     ▲                     │
//!                     └──── RECOVERING ◄────┘ (and from HEALTHY/DEGRADED)
//! any state ──► SHUTTING_DOWN ──► TERMINATED
//! ```
//!
//! * `HEALTHY`, `DEGRADED` and `UNHEALTHY` follow the health verdict
//!   (`health.rs`), re-evaluated on events (a connect or validation result,
//!   a maintenance round, a health check), never on the hot path.
//! * `RECOVERING` is entered when the database is lost: a connect failed
//!   with a transient error while no connection is idle or lent out. One
//!   supervisor (`reconnect.rs`) then probes with backoff; only its success
//!   leads back to `HEALTHY`.
//! * `SHUTTING_DOWN` and `TERMINATED` are terminal: nothing leaves them.
//!
//! The current state is one atomic byte (read on every `acquire()` that
//! misses the fast path) mirrored into a `tokio::sync::watch` channel so
//! callers can subscribe. Every transition is logged (target
//! `pool_core::state`) with its reason; transitions happen under the
//! channel's lock, so concurrent ones are serialised and none is lost.

use serde::Serialize;
use tokio::sync::watch;

use crate::sync::{AtomicU8, Ordering};

/// Where the pool is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum PoolState {
    /// `build()` is opening the warm connections.
    Initializing,
    /// Serving, with enough capacity and no recent failures.
    Healthy,
    /// Serving, but short of capacity or recently failing.
    Degraded,
    /// Serving what it can; out of capacity.
    Unhealthy,
    /// The database was lost; a supervisor is reconnecting with backoff.
    Recovering,
    /// `shutdown()` is draining the pool.
    ShuttingDown,
    /// Shut down; every connection is closed.
    Terminated,
}

impl PoolState {
    /// Every state, in lifecycle order.
    pub const ALL: [PoolState; 7] = [
        PoolState::Initializing,
        PoolState::Healthy,
        PoolState::Degraded,
        PoolState::Unhealthy,
        PoolState::Recovering,
        PoolState::ShuttingDown,
        PoolState::Terminated,
    ];

    /// The stable upper-case name used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolState::Initializing => "INITIALIZING",
            PoolState::Healthy => "HEALTHY",
            PoolState::Degraded => "DEGRADED",
            PoolState::Unhealthy => "UNHEALTHY",
            PoolState::Recovering => "RECOVERING",
            PoolState::ShuttingDown => "SHUTTING_DOWN",
            PoolState::Terminated => "TERMINATED",
        }
    }

    /// Whether the pool is shutting down or shut down.
    pub fn is_closing(self) -> bool {
        matches!(self, PoolState::ShuttingDown | PoolState::Terminated)
    }

    /// Whether the state follows the health verdict (`INITIALIZING`, which
    /// becomes one of them, and `HEALTHY`/`DEGRADED`/`UNHEALTHY`).
    pub(crate) fn follows_health(self) -> bool {
        matches!(
            self,
            PoolState::Initializing
                | PoolState::Healthy
                | PoolState::Degraded
                | PoolState::Unhealthy
        )
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> PoolState {
        PoolState::ALL
            .get(usize::from(code))
            .copied()
            .unwrap_or(PoolState::Terminated)
    }

    /// Whether the machine allows `self → to`.
    fn allows(self, to: PoolState) -> bool {
        use PoolState::*;
        match (self, to) {
            (from, to) if from == to => false,
            (Terminated, _) => false,
            (ShuttingDown, to) => to == Terminated,
            (_, ShuttingDown) => true,
            (_, Terminated) => false,
            (Initializing, Healthy | Degraded | Unhealthy) => true,
            (Healthy | Degraded | Unhealthy, Healthy | Degraded | Unhealthy | Recovering) => true,
            (Recovering, Healthy) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current state: an atomic for cheap reads, a watch channel for
/// subscribers.
pub(crate) struct StateCell {
    current: AtomicU8,
    channel: watch::Sender<PoolState>,
    /// The pool's name, for the transition log lines.
    pool: String,
    /// Told of every state entered (the `pool_state` metric), under the
    /// channel's lock, so it sees the transitions in order.
    observer: StateObserver,
}

/// What [`StateCell`] tells of every state it enters.
pub(crate) type StateObserver = Box<dyn Fn(PoolState) + Send + Sync>;

impl std::fmt::Debug for StateCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCell")
            .field("current", &self.get())
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl StateCell {
    pub(crate) fn new(pool: &str, observer: StateObserver) -> Self {
        let (channel, _) = watch::channel(PoolState::Initializing);
        observer(PoolState::Initializing);
        Self {
            current: AtomicU8::new(PoolState::Initializing.code()),
            channel,
            pool: pool.to_owned(),
            observer,
        }
    }

    pub(crate) fn get(&self) -> PoolState {
        PoolState::from_code(self.current.load(Ordering::Acquire))
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<PoolState> {
        self.channel.subscribe()
    }

    /// Moves to `to` if the machine allows it from the current state, and
    /// logs the transition with `reason`. Returns whether it moved.
    pub(crate) fn transition(&self, to: PoolState, reason: &str) -> bool {
        let mut moved = None;
        self.channel.send_if_modified(|state| {
            if state.allows(to) {
                moved = Some(*state);
                *state = to;
                self.current.store(to.code(), Ordering::Release);
                (self.observer)(to);
                true
            } else {
                false
            }
        });
        match moved {
            Some(from) => {
                let level_warn = matches!(to, PoolState::Recovering | PoolState::Unhealthy);
                if level_warn {
                    tracing::warn!(target: "pool_core::state", pool = %self.pool, from = from.as_str(), to = to.as_str(), reason, "pool state {from} -> {to}: {reason}");
                } else {
                    tracing::info!(target: "pool_core::state", pool = %self.pool, from = from.as_str(), to = to.as_str(), reason, "pool state {from} -> {to}: {reason}");
                }
                true
            }
            None => false,
        }
    }
}

/// The health verdict (`health.rs` decides it; the metrics publish it).
/// Beside [`PoolState`], whose `HEALTHY`/`DEGRADED`/`UNHEALTHY` follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthState {
    /// Enough capacity and no recent failures.
    Healthy,
    /// Serving, but short of capacity or recently failing.
    Degraded,
    /// Closed, out of capacity, or unable to reach the database.
    Unhealthy,
}

impl HealthState {
    /// Every verdict, best first.
    pub const ALL: [HealthState; 3] = [
        HealthState::Healthy,
        HealthState::Degraded,
        HealthState::Unhealthy,
    ];

    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Unhealthy => "unhealthy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PoolState::*;
    use super::*;

    #[test]
    fn the_machine_allows_exactly_the_documented_transitions() {
        assert!(Initializing.allows(Healthy));
        assert!(
            Healthy.allows(Degraded) && Degraded.allows(Unhealthy) && Unhealthy.allows(Degraded)
        );
        assert!(Unhealthy.allows(Recovering) && Recovering.allows(Healthy));
        assert!(
            !Recovering.allows(Degraded),
            "only a successful probe ends recovery"
        );
        assert!(!Initializing.allows(Recovering));
        for state in PoolState::ALL {
            assert_eq!(state.allows(ShuttingDown), !state.is_closing(), "{state}");
            assert!(!Terminated.allows(state));
        }
        assert!(ShuttingDown.allows(Terminated));
        assert!(
            !Healthy.allows(Terminated),
            "termination goes through shutdown"
        );
    }

    #[test]
    fn transitions_are_published_to_subscribers() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let observed = std::sync::Arc::clone(&seen);
        let cell = StateCell::new(
            "test",
            Box::new(move |to| observed.lock().unwrap().push(to)),
        );
        let mut rx = cell.subscribe();
        assert!(cell.transition(Healthy, "warm-up done"));
        assert!(!cell.transition(Healthy, "no-op"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Healthy);
        assert!(!cell.transition(Terminated, "skipping shutdown is refused"));
        assert_eq!(cell.get(), Healthy);
        assert_eq!(*seen.lock().unwrap(), [Initializing, Healthy]);
    }
}
