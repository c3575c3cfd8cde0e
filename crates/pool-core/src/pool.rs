//! The public pool handle.
//!
//! [`Pool`] is a cheap `Arc` clone around the shared state. `build()`
//! validates the configuration, opens `min_size` connections in parallel and
//! fails fast with an actionable error. The checkout path lives in
//! `checkout.rs`.

use crate::sync::Arc;
use std::fmt;

use tokio::time::Instant;

use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::manager::Manager;
use crate::open::warm_up;
use crate::shared::Shared;
use crate::stats::Statistics;

/// An async connection pool over a [`Manager`]. Clones share one pool.
pub struct Pool<M: Manager> {
    pub(crate) shared: Arc<Shared<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Manager> Pool<M> {
    /// Validates `config`, opens and validates `min_size` connections in
    /// parallel (within one `create_timeout`), and returns the ready pool.
    ///
    /// Fails with [`PoolError::Config`] for a bad configuration and with
    /// [`PoolError::Init`] if the warm connections cannot be opened; either
    /// error says what to change.
    pub async fn build(manager: M, config: PoolConfig) -> Result<Self, PoolError<M::Error>> {
        config.validate()?;
        let started = Instant::now();
        tracing::info!(
            target: "pool_core::init",
            min_size = config.min_size,
            max_size = config.max_size,
            acquire_timeout_ms = config.acquire_timeout.as_millis() as u64,
            create_timeout_ms = config.create_timeout.as_millis() as u64,
            validation_timeout_ms = config.validation_timeout.as_millis() as u64,
            validation_skip_window_ms = config.validation_skip_window.as_millis() as u64,
            "initializing connection pool"
        );
        let shared = Arc::new(Shared::new(manager, config));
        if let Err(error) = warm_up(&shared).await {
            tracing::error!(target: "pool_core::init", error = %error, "connection pool initialization failed");
            shared.semaphore.close();
            return Err(error);
        }
        tracing::info!(
            target: "pool_core::init",
            min_size = shared.config.min_size,
            max_size = shared.config.max_size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Connection pool initialized: min_size={}, max_size={}",
            shared.config.min_size,
            shared.config.max_size,
        );
        Ok(Self { shared })
    }

    /// A snapshot of the pool's gauges and counters. Lock-free.
    pub fn statistics(&self) -> Statistics {
        self.shared.statistics()
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The manager the pool was built with.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Closes the pool: queued and future `acquire()` calls fail with
    /// [`PoolError::Closed`], idle connections close at once, and borrowed
    /// connections close when they are returned. Idempotent.
    pub fn close(&self) {
        let first = !self.shared.is_closed();
        self.shared.semaphore.close();
        let closed = self.shared.idle.drain();
        if first {
            tracing::info!(target: "pool_core::pool", idle_closed = closed, "connection pool closed");
        }
    }

    /// Whether [`close`](Pool::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.shared.config)
            .field("statistics", &self.statistics())
            .finish_non_exhaustive()
    }
}
