//! The one shared state of a pool, and the capacity permit.
//!
//! # Invariants
//!
//! * Size: `open == idle + in_use + opening <= max_size` (see `slot.rs`;
//!   only slots change these terms).
//! * Permits: every connection that is not idle (`in_use` or `opening`) is
//!   owned by exactly one holder of a [`Permit`] (a caller's guard, an
//!   `acquire()` in progress, a connect task, or maintenance replenishing).
//!   A permit holder that finds the idle queue empty may therefore always
//!   open a connection, except for the instant another connection is moving
//!   into or out of the queue.
//! * Ownership: `Shared` is owned by `Arc`s held by pool handles, guards,
//!   permits and connect tasks; maintenance holds only a `Weak`. Nothing
//!   inside it points back to it, so dropping the last `Arc` frees
//!   everything.

use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::PoolConfig;
use crate::error::ConnectionError;
use crate::idle::{Conn, IdleQueue};
use crate::ledger::Ledger;
use crate::manager::Manager;
use crate::metrics::Totals;
use crate::recovery::Recovery;
use crate::report::ShutdownReport;
use crate::retire::RetireReason;
use crate::running::{Task, TaskFlags, TaskOwner};
use crate::semaphore::Semaphore;
use crate::stamp::Stamp;
use crate::state::{HealthState, StateCell};
use crate::stats::{SnapshotContext, Statistics};
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, Ordering, Weak};

/// Everything a pool's handles, guards and tasks share.
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    pub(crate) semaphore: Semaphore,
    pub(crate) idle: IdleQueue<M::Connection>,
    /// Gauges, seats and the close signal (`ledger.rs`), shared with every
    /// slot.
    pub(crate) ledger: Arc<Ledger>,
    /// The most recent connect or validation failure, for timeout errors.
    pub(crate) last_error: ArcSwapOption<ConnectionError<M::Error>>,
    /// Wakes the maintenance task (on close, or on demand).
    pub(crate) maintenance_wakeup: Arc<Notify>,
    /// The state machine (`state.rs`).
    pub(crate) state: StateCell,
    /// The ongoing recovery, if any (`reconnect.rs`).
    pub(crate) recovery: Recovery,
    /// Which background tasks are alive (`tasks.rs`).
    pub(crate) tasks: TaskFlags,
    /// The report of the shutdown, once done.
    pub(crate) shutdown_report: Mutex<Option<ShutdownReport>>,
    /// ms since start of the last sign that the server restarted:
    /// idle connections last used at or before it are validated first.
    suspect_before: Stamp,
    /// Asks maintenance to validate every idle connection now.
    pub(crate) sweep_requested: AtomicBool,
    /// `config.validation_skip_window` in µs, for the hot path.
    pub(crate) skip_window_us: u64,
    /// `manager.has_checkout_hook()`, asked once at build, for the hot path.
    pub(crate) checkout_hook: bool,
    /// The eviction generation: bumped by `evict`. A connection remembers
    /// the generation its connect began in and is retired once it differs.
    generation: AtomicU64,
    next_connection_id: AtomicU64,
    /// ms since start of the last failure.
    pub(crate) last_error_at: Stamp,
    /// ms since start of the last health check.
    pub(crate) last_health_check_at: Stamp,
    /// Round trip of the last successful liveness check, in µs.
    pub(crate) last_validation_us: Stamp,
    /// Microseconds since build: every timestamp the pool keeps.
    pub(crate) clock: Clock,
    /// The wall clock at build, for timestamps.
    created_at: SystemTime,
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, config: PoolConfig) -> Self {
        let max_size = config.max_size as usize;
        let ledger = Arc::new(Ledger::new(&config.name, config.min_size, config.max_size));
        let observed = Arc::clone(&ledger);
        let state = StateCell::new(
            &config.name,
            Box::new(move |to| observed.stats.metrics.state(to)),
        );
        let checkout_hook = manager.has_checkout_hook();
        Self {
            manager,
            semaphore: Semaphore::new(max_size),
            idle: IdleQueue::new(max_size),
            ledger,
            last_error: ArcSwapOption::empty(),
            maintenance_wakeup: Arc::new(Notify::new()),
            state,
            recovery: Recovery::default(),
            tasks: TaskFlags::new(),
            shutdown_report: Mutex::new(None),
            suspect_before: Stamp::none(),
            sweep_requested: AtomicBool::new(false),
            skip_window_us: u64::try_from(config.validation_skip_window.as_micros())
                .unwrap_or(u64::MAX),
            checkout_hook,
            generation: AtomicU64::new(0),
            next_connection_id: AtomicU64::new(1),
            last_error_at: Stamp::none(),
            last_health_check_at: Stamp::none(),
            last_validation_us: Stamp::none(),
            clock: Clock::start(),
            created_at: SystemTime::now(),
            config,
        }
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.semaphore.is_closed()
    }

    /// A sign that the server may have restarted (a connection found
    /// closed, a failed liveness check): every idle connection last used
    /// before now is validated before it is handed out, and maintenance is
    /// asked to validate them all at once.
    pub(crate) fn suspect_idle_connections(&self) {
        let now_ms = self.now_ms();
        self.suspect_before.raise(now_ms);
        if !self.sweep_requested.swap(true, Ordering::AcqRel) {
            self.maintenance_wakeup.notify_one();
        }
    }

    /// The current eviction generation (see `evict`).
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Retires every connection open now: idle ones at once, those in use
    /// when they are returned, and those being opened at their first
    /// checkout or return (their connect may have reached the old server).
    /// New connects belong to the new generation. Returns how many idle
    /// connections were closed at once.
    pub(crate) fn evict(&self, why: &str) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut closed = 0;
        // Bounded: the queue holds at most `max_size`; connections of the
        // new generation pushed meanwhile are put back.
        let mut keep = Vec::new();
        for _ in 0..self.config.max_size {
            let Some(conn) = self.idle.pop() else { break };
            if conn.generation == generation {
                keep.push(conn);
            } else {
                conn.retire(RetireReason::Evicted);
                closed += 1;
            }
        }
        for conn in keep {
            self.return_to_idle(conn);
        }
        let gauges = self.ledger.gauges.read();
        tracing::warn!(
            target: "pool_core::recycle",
            pool = %self.config.name,
            generation,
            idle_closed = closed,
            in_use = gauges.in_use,
            opening = gauges.opening,
            reason = why,
            "Evicting every connection ({why}): {closed} idle closed now, {} in use closed when returned",
            gauges.in_use
        );
        self.maintenance_wakeup.notify_one();
        closed
    }

    /// Whether a connection last used at `last_used_us` must be validated
    /// because of a suspected restart.
    #[inline]
    pub(crate) fn is_suspect(&self, last_used_us: u64) -> bool {
        self.suspect_before
            .get()
            .is_some_and(|suspect_at| last_used_us / 1000 <= suspect_at)
    }

    /// Republishes the metric gauges from fresh readings, and the rare
    /// events' totals (see `metrics.rs` on why): on every health verdict,
    /// snapshot and maintenance round.
    pub(crate) fn publish_metrics(&self, health: Option<HealthState>) {
        let stats = &self.ledger.stats;
        let metrics = &stats.metrics;
        metrics.connections(self.ledger.gauges.read());
        metrics.pending(|| self.semaphore.waiting());
        if let Some(verdict) = health {
            metrics.health(verdict);
        }
        metrics.totals(|| Totals {
            leaks_reported: stats.leaks_reported.get(),
            leaks_suspected: self.ledger.seats.totals().suspected,
            acquire_errors: stats.acquire_errors.get(),
            manager_panics: stats.manager_panics.get(),
            background_restarts: stats.background_restarts.get(),
        });
    }

    /// Microseconds since build (`clock.rs`): the hot path reads the clock
    /// once per checkout and once per return and does all its arithmetic on
    /// this integer.
    #[inline]
    pub(crate) fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// Milliseconds since build.
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn record_error(
        &self,
        error: ConnectionError<M::Error>,
    ) -> Arc<ConnectionError<M::Error>> {
        let error = Arc::new(error);
        self.last_error.store(Some(Arc::clone(&error)));
        self.last_error_at.set(self.now_ms());
        error
    }

    pub(crate) fn record_validation_latency(&self, latency: Duration) {
        self.last_validation_us
            .set(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// The wall-clock time of an event at `ms` since start.
    pub(crate) fn wall_time(&self, ms: Option<u64>) -> Option<SystemTime> {
        ms.map(|ms| self.created_at + Duration::from_millis(ms))
    }

    pub(crate) fn statistics(&self) -> Statistics {
        self.publish_metrics(None);
        let now_ms = self.now_ms();
        self.ledger.stats.snapshot(SnapshotContext {
            pool: self.config.name.clone(),
            gauges: self.ledger.gauges.read(),
            seats: self.ledger.seats.totals(),
            min_size: self.config.min_size,
            max_size: self.config.max_size,
            waiting: self.semaphore.waiting(),
            free_permits: self.semaphore.available() as u64,
            peak_waiting: self.semaphore.peak_waiting(),
            state: self.state.get(),
            now_ms,
            created_at: self.created_at,
            last_health_check: self.wall_time(self.last_health_check_at.get()),
            last_error: self.last_error.load().as_deref().map(ToString::to_string),
            last_error_time: self.wall_time(self.last_error_at.get()),
        })
    }

    /// Puts a healthy connection back for the next caller, or closes it if
    /// the pool is closed. Must be called before the caller's permit is
    /// released, so the permit invariant holds.
    pub(crate) fn return_to_idle(&self, conn: Conn<M::Connection>) {
        if self.is_closed() {
            conn.retire(RetireReason::PoolClosed);
            return;
        }
        if let Err(conn) = self.idle.push(conn) {
            tracing::error!(
                target: "pool_core::pool",
                pool = %self.config.name,
                connection_id = conn.id,
                "idle queue full; closing connection (size invariant broken, please report)"
            );
            return;
        }
        // `close()` may have drained the queue between the check and the
        // push; drain again so a closed pool never keeps an idle connection.
        if self.is_closed() {
            self.idle.drain(RetireReason::PoolClosed);
        }
    }

    /// The mechanics of closing, shared by `close()`, `shutdown()` and a
    /// dropped pool: fails waiters and future acquires, closes idle
    /// connections, stops maintenance and the reconnect supervisor. Returns
    /// how many idle connections it closed. The caller moves the state.
    pub(crate) fn close(&self) -> usize {
        self.ledger.closing.store(true, Ordering::Release);
        self.semaphore.close();
        let closed = self.idle.drain(RetireReason::PoolClosed);
        self.maintenance_wakeup.notify_one();
        if let Some(task) = self.recovery.stop() {
            drop(task);
        }
        closed
    }
}

impl<M: Manager> Shared<M> {
    /// This pool as the owner of its background tasks (`running.rs`).
    pub(crate) fn task_owner(self: &Arc<Self>) -> Weak<dyn TaskOwner> {
        let weak: Weak<Self> = Arc::downgrade(self);
        weak
    }
}

impl<M: Manager> TaskOwner for Shared<M> {
    fn task_lost(&self, task: Task) {
        self.tasks.clear(task);
        if task == Task::Deadline && !self.is_closed() {
            // Queued callers relied on this task for their deadline: wake
            // them all, so each arms a timer of its own (and may start the
            // task again on its runtime). Ordered after the clear above: a
            // caller queued before the wake-up is woken; one queued after it
            // reads the cleared flag.
            self.semaphore.wake_waiters();
        }
    }
}

/// The right to hold one non-idle connection. Minted only after the
/// semaphore granted a permit; dropping it gives the permit back (to the
/// first waiter, if any).
#[must_use = "dropping a Permit gives its capacity back at once"]
pub(crate) struct Permit<M: Manager> {
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Permit<M> {
    /// Wraps a permit the caller just took from `shared.semaphore`.
    pub(crate) fn taken(shared: Arc<Shared<M>>) -> Self {
        Self { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<M>> {
        &self.shared
    }
}

impl<M: Manager> Drop for Permit<M> {
    fn drop(&mut self) {
        self.shared.semaphore.release();
    }
}
