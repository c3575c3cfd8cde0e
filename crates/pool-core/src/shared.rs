//! The one shared state of a pool, and the capacity permit.
//!
//! # Invariants
//!
//! * Size: `open == idle + in_use + opening <= max_size` (see `slot.rs`;
//!   only slots change these terms).
//! * Permits: every connection that is not idle (`in_use` or `opening`) is
//!   owned by exactly one holder of a [`Permit`] (a caller's guard, an
//!   `acquire()` in progress, or a connect task). A permit holder that finds
//!   the idle queue empty may therefore always open a connection, except
//!   for the instant another connection is moving into the queue.
//! * Ownership: `Shared` is owned by `Arc`s held by pool handles, guards,
//!   permits and connect tasks. Nothing inside it points back to it, so
//!   dropping the last of those frees everything.

use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use crate::config::PoolConfig;
use crate::error::ConnectionError;
use crate::idle::{Conn, IdleQueue};
use crate::manager::Manager;
use crate::semaphore::Semaphore;
use crate::stats::{SnapshotContext, Statistics, Stats};
use crate::sync::{Arc, AtomicU64, Ordering};

/// Everything a pool's handles, guards and tasks share.
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    pub(crate) semaphore: Semaphore,
    pub(crate) idle: IdleQueue<M::Connection>,
    pub(crate) stats: Arc<Stats>,
    /// The most recent connect or validation failure, for timeout errors.
    pub(crate) last_error: ArcSwapOption<ConnectionError<M::Error>>,
    next_connection_id: AtomicU64,
    created_at: SystemTime,
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, config: PoolConfig) -> Self {
        let max_size = config.max_size as usize;
        Self {
            manager,
            semaphore: Semaphore::new(max_size),
            idle: IdleQueue::new(max_size),
            stats: Arc::new(Stats::default()),
            last_error: ArcSwapOption::empty(),
            next_connection_id: AtomicU64::new(1),
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

    pub(crate) fn record_error(
        &self,
        error: ConnectionError<M::Error>,
    ) -> Arc<ConnectionError<M::Error>> {
        let error = Arc::new(error);
        self.last_error.store(Some(Arc::clone(&error)));
        error
    }

    pub(crate) fn statistics(&self) -> Statistics {
        self.stats.snapshot(SnapshotContext {
            min_size: self.config.min_size,
            max_size: self.config.max_size,
            waiting: self.semaphore.waiting(),
            closed: self.is_closed(),
            created_at: self.created_at,
        })
    }

    /// Puts a healthy connection back for the next caller, or closes it if
    /// the pool is closed. Must be called before the caller's permit is
    /// released, so the permit invariant holds.
    pub(crate) fn return_to_idle(&self, conn: Conn<M::Connection>) {
        if self.is_closed() {
            return;
        }
        if let Err(conn) = self.idle.push(conn) {
            tracing::error!(
                target: "pool_core::pool",
                connection_id = conn.id,
                "idle queue full; closing connection (size invariant broken, please report)"
            );
            return;
        }
        // `close()` may have drained the queue between the check and the
        // push; drain again so a closed pool never keeps an idle connection.
        if self.is_closed() {
            self.idle.drain();
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
