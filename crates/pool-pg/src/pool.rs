//! [`PgPool`]: the PostgreSQL pool a user holds.
//!
//! Design: a newtype over pool-core's [`Pool`] of [`PgManager`]s, with the
//! pool's operations as inherent methods (no trait to import) and every
//! failure as the crate's one [`Error`]. Each method forwards to the core
//! pool and converts its error; nothing else. The constructors live in
//! `build.rs`.
//!
//! Invariant: a `PgPool` adds no state to the core pool: clones share one
//! pool, and dropping the last clone closes it, exactly as pool-core
//! documents. `acquire()` and friends are `#[track_caller]` functions that
//! call the core's `#[track_caller]` functions directly (not from inside an
//! `async` block), so leak detection records the user's file and line.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use pool_core::{
    HealthStatus, Manager, Pool, PoolConfig, PoolState, PooledConnection, ShutdownReport,
    Statistics,
};
use tokio::sync::watch;

use crate::connection::PgConnection;
use crate::error::PgError;
use crate::manager::PgManager;
use crate::tls::PgTls;
use crate::user_error::Error;

/// The pool-side failure inside an [`Error`]: pool-core's `PoolError` over
/// this crate's connect and liveness-check error, [`PgError`]. Match on its
/// variants through [`Error::pool`].
pub type PoolError = pool_core::PoolError<PgError>;

/// A connection borrowed from a [`PgPool`]; derefs to
/// [`PgConnection`] (which has the query methods of
/// [`tokio_postgres::Client`]) and goes back to the pool when dropped, or
/// is closed if it is [dirty](crate::PgConnection#dirty-connections).
pub type PgPooledConnection<T = PgTls> = PooledConnection<PgManager<T>>;

/// A pool of PostgreSQL connections, over TLS as `sslmode` says (see
/// [`PgConfig`](crate::PgConfig#tls)), or through another connector `T`.
///
/// Build one with [`PgPool::connect`], [`PgPool::from_env`],
/// [`PgPool::from_vars`] or, configuration first, [`PgConfig::build`](crate::PgConfig::build)
/// (the builder). Clones share one pool; dropping the last clone closes it.
///
/// ```no_run
/// use std::time::Duration;
/// use pool_pg::{PgPool, PoolConfig};
///
/// # async fn demo() -> Result<(), pool_pg::Error> {
/// let pool = PgPool::connect(
///     "postgres://app:secret@localhost:5432/app",
///     PoolConfig::default().max_size(20),
/// )
/// .await?;
/// let conn = pool.acquire().await?;
/// let row = conn.query_one("SELECT 41 + 1", &[]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
/// drop(conn);
/// pool.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct PgPool<T = PgTls>
where
    PgManager<T>: Manager,
{
    core: Pool<PgManager<T>>,
}

impl<T> PgPool<T>
where
    PgManager<T>: Manager<Connection = PgConnection, Error = PgError>,
{
    /// Wraps a core pool (for `build.rs`).
    pub(crate) fn from_core(core: Pool<PgManager<T>>) -> Self {
        Self { core }
    }

    /// Gets a connection, waiting up to the pool's `acquire_timeout` in
    /// all. Waiters are served in arrival order; dropping the future at any
    /// point is safe. The caller's file and line are recorded for leak
    /// detection. A timeout says which phase stalled (waiting, connecting,
    /// validating) and carries a statistics snapshot and the last
    /// connection error.
    #[track_caller]
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<PgPooledConnection<T>, Error>> + Send + '_ {
        let acquiring = self.core.acquire();
        async move { acquiring.await.map_err(Error::from) }
    }

    /// Gets a connection, waiting up to `timeout` in all: a per-call
    /// deadline in place of the pool's `acquire_timeout`. It reports
    /// exactly like [`acquire`](Self::acquire) (a timeout with its phase,
    /// counted in `total_timeouts`), which wrapping `acquire()` in
    /// `tokio::time::timeout` would not. A zero `timeout` still takes an
    /// idle connection or a free slot; it never queues.
    #[track_caller]
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<PgPooledConnection<T>, Error>> + Send + '_ {
        let acquiring = self.core.acquire_timeout(timeout);
        async move { acquiring.await.map_err(Error::from) }
    }

    /// Gets an idle connection without waiting, or fails at once (nothing
    /// idle, or callers already queued: [`Error::pool`] is
    /// `PoolError::Exhausted`). Never opens a connection, never does I/O.
    #[track_caller]
    pub fn try_acquire(&self) -> Result<PgPooledConnection<T>, Error> {
        Ok(self.core.try_acquire()?)
    }

    /// A snapshot of the pool's gauges, counters and latency percentiles.
    /// Lock-free.
    pub fn statistics(&self) -> Statistics {
        self.core.statistics()
    }

    /// The pool's health verdict, from its own state: no query, no lock.
    pub fn health_check(&self) -> HealthStatus {
        self.core.health_check()
    }

    /// Shuts the pool down gracefully: new and queued `acquire()` calls
    /// fail at once, idle connections close, lent connections get up to
    /// `timeout` to come back and are then force-closed (each logged with
    /// where it was acquired). Idempotent. The report says what happened;
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`](crate::defaults::DEFAULT_SHUTDOWN_TIMEOUT)
    /// is the usual `timeout`.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.core.shutdown(timeout).await
    }

    /// Closes the pool at once, without waiting for lent connections (they
    /// close when returned). Prefer [`shutdown`](Self::shutdown).
    pub fn close(&self) {
        self.core.close();
    }

    /// Whether the pool is closed (by `close()`, `shutdown()` or a failed
    /// start).
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The pool's current state.
    pub fn state(&self) -> PoolState {
        self.core.state()
    }

    /// A receiver that sees every state transition (the latest state is
    /// always readable with `borrow()`).
    pub fn subscribe_state(&self) -> watch::Receiver<PoolState> {
        self.core.subscribe_state()
    }

    /// Retires every connection open now, gracefully (idle ones at once,
    /// lent ones when returned); new connections replace them on demand.
    /// Use it after a failover or a credential rotation. Returns how many
    /// idle connections were closed at once.
    pub fn evict_all(&self) -> u64 {
        self.core.evict_all()
    }

    /// Runs one maintenance round now (retire stale connections, replenish
    /// to `min_size`) instead of waiting for `maintenance_interval`.
    pub async fn run_maintenance(&self) {
        self.core.run_maintenance().await;
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        self.core.config()
    }

    /// The manager that opens and checks the connections (its redacted
    /// URL, its connection-error and hook-failure counters).
    pub fn manager(&self) -> &PgManager<T> {
        self.core.manager()
    }
}

impl<T> Clone for PgPool<T>
where
    PgManager<T>: Manager,
{
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
        }
    }
}

impl<T> fmt::Debug for PgPool<T>
where
    PgManager<T>: Manager,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.core, f)
    }
}
