//! The public pool handle.
//!
//! [`Pool`] is a cheap `Arc` clone. All clones share one `Handle`, which owns
//! the maintenance task: when the last clone is dropped, the handle closes
//! the pool (waiters fail, idle connections close, maintenance stops, and
//! connections still lent out close when they come back). `build()`
//! validates the configuration, opens `min_size` connections in parallel
//! and fails fast with an actionable error. The checkout path lives in
//! `checkout.rs`.

use std::fmt;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::health::{self, HealthStatus};
use crate::maintenance;
use crate::manager::Manager;
use crate::open::warm_up;
use crate::shared::Shared;
use crate::state::PoolState;
use crate::stats::Statistics;
use crate::sync::{Arc, Mutex};
use crate::tasks;

/// An async connection pool over a [`Manager`]. Clones share one pool;
/// dropping the last clone closes it.
pub struct Pool<M: Manager> {
    handle: Arc<Handle<M>>,
}

/// What all clones of one [`Pool`] share.
struct Handle<M: Manager> {
    shared: Arc<Shared<M>>,
    /// The maintenance task and the deadline task (`deadline.rs`).
    maintenance: Mutex<Vec<JoinHandle<()>>>,
}

impl<M: Manager> Drop for Handle<M> {
    fn drop(&mut self) {
        close_now(&self.shared, "the last pool handle was dropped");
        // The task also sees the closed pool and stops by itself; aborting
        // makes that immediate even if it is in the middle of a connect.
        for task in self.maintenance.lock().drain(..) {
            task.abort();
        }
    }
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<M: Manager> Pool<M> {
    /// Validates `config`, opens and validates `min_size` connections in
    /// parallel (within one `create_timeout`), starts background
    /// maintenance, and returns the ready pool.
    ///
    /// Fails with [`PoolError::Config`] for a bad configuration and with
    /// [`PoolError::Init`] if the warm connections cannot be opened; either
    /// error says what to change.
    pub async fn build(manager: M, config: PoolConfig) -> Result<Self, PoolError<M::Error>> {
        config.validate()?;
        let started = Instant::now();
        tracing::info!(
            target: "pool_core::init",
            pool = %config.name,
            min_size = config.min_size,
            max_size = config.max_size,
            acquire_timeout_ms = config.acquire_timeout.as_millis() as u64,
            create_timeout_ms = config.create_timeout.as_millis() as u64,
            validation_timeout_ms = config.validation_timeout.as_millis() as u64,
            validation_skip_window_ms = config.validation_skip_window.as_millis() as u64,
            max_lifetime_ms = config.max_lifetime.as_millis() as u64,
            max_idle_time_ms = config.max_idle_time.as_millis() as u64,
            max_queries = config.max_queries,
            maintenance_interval_ms = config.maintenance_interval.as_millis() as u64,
            "initializing connection pool"
        );
        let shared = Arc::new(Shared::new(manager, config));
        if let Err(error) = warm_up(&shared).await {
            tracing::error!(target: "pool_core::init", pool = %shared.config.name, error = %error, "connection pool initialization failed");
            close_now(&shared, "initialization failed");
            return Err(error);
        }
        health::refresh_state(&shared);
        let tasks = tasks::start(&shared);
        tracing::info!(
            target: "pool_core::init",
            pool = %shared.config.name,
            min_size = shared.config.min_size,
            max_size = shared.config.max_size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Connection pool initialized: min_size={}, max_size={}",
            shared.config.min_size,
            shared.config.max_size,
        );
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                maintenance: Mutex::new(tasks),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<M>> {
        &self.handle.shared
    }

    /// The background tasks (maintenance, deadlines), for `close` and
    /// `shutdown` to abort and join.
    pub(crate) fn take_background_tasks(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.handle.maintenance.lock())
    }

    /// The pool's current state.
    pub fn state(&self) -> PoolState {
        self.shared().state.get()
    }

    /// A receiver that sees every state transition (the latest state is
    /// always readable with `borrow()`).
    pub fn subscribe_state(&self) -> watch::Receiver<PoolState> {
        self.shared().state.subscribe()
    }

    /// A snapshot of the pool's gauges, counters and latency percentiles.
    /// Lock-free.
    pub fn statistics(&self) -> Statistics {
        self.shared().statistics()
    }

    /// The pool's health verdict, from its own state: no query, no lock.
    /// See the rules in `docs/health.md`.
    pub fn health_check(&self) -> HealthStatus {
        health::check(self.shared())
    }

    /// Retires every connection open now, gracefully: idle ones are closed
    /// at once, connections in use are closed when returned (their callers
    /// are not interrupted), and connects already under way are closed at
    /// their first checkout or return. New connections replace them on
    /// demand and maintenance refills `min_size`. Use it after a failover
    /// or a credential rotation; HikariCP calls this a soft eviction.
    /// Returns how many idle connections were closed at once. Counted in
    /// `closed_by_reason.evicted`.
    pub fn evict_all(&self) -> u64 {
        self.shared().evict("requested by evict_all()")
    }

    /// Runs one maintenance round now (retire stale connections, replenish
    /// to `min_size`) instead of waiting for `maintenance_interval`.
    pub async fn run_maintenance(&self) {
        maintenance::run_once(self.shared()).await;
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared().config
    }

    /// The manager the pool was built with.
    pub fn manager(&self) -> &M {
        &self.shared().manager
    }

    /// Closes the pool at once, without waiting: queued and future
    /// `acquire()` calls fail with [`PoolError::Closed`], idle connections
    /// close, background tasks stop, borrowed connections close when they
    /// are returned, and the state becomes `TERMINATED`. Idempotent. Prefer
    /// [`shutdown`](Pool::shutdown), which waits for borrowed connections.
    pub fn close(&self) {
        close_now(self.shared(), "close() called");
        for task in self.take_background_tasks() {
            task.abort();
        }
    }

    /// Whether [`close`](Pool::close) was called (or the pool failed to
    /// build).
    pub fn is_closed(&self) -> bool {
        self.shared().is_closed()
    }
}

/// Closes without waiting and moves the state to `TERMINATED`.
fn close_now<M: Manager>(shared: &Shared<M>, reason: &str) {
    let first = shared.state.transition(PoolState::ShuttingDown, reason);
    let idle_closed = shared.close();
    if first {
        shared.state.transition(PoolState::Terminated, reason);
        tracing::info!(target: "pool_core::pool", pool = %shared.config.name, idle_closed, reason, "connection pool closed");
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.shared().config)
            .field("statistics", &self.statistics())
            .finish_non_exhaustive()
    }
}
