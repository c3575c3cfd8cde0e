//! The user's hooks on a connection's life: `after_connect` (set up a new
//! session), `before_acquire` and `after_release` (keep or discard a
//! connection on its way out of and back into the idle queue), and the
//! session reset on return.
//!
//! # Design
//!
//! Every hook is an `Arc`'d closure returning a boxed future, stored once in
//! [`Hooks`] and shared by every connection. pool-core bounds each run: the
//! connect's `create_timeout` for `after_connect`, `validation_timeout` for
//! the others (they run in `Manager::before_checkout` and
//! `Manager::settle`). A hook that fails is logged at `WARN` and counted
//! in [`Hooks::failures`] and its connection is closed; a hook that says
//! "discard" closes its connection quietly (counted by pool-core in
//! `closed_by_reason.discarded`).
//!
//! # Invariant
//!
//! A connection a hook has touched is lent or kept only if the wire says
//! it is clean afterwards: a hook that leaves a transaction open or a
//! request running gets its connection closed, like a caller would.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::connection::PgConnection;
use crate::manager::PgManager;

/// The future an [`AfterConnect`] hook returns.
pub type HookFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>>;

/// A hook run on every new connection before the pool uses it (e.g.
/// `SET search_path`); see [`PgManager::after_connect`](crate::backend::PgManager::after_connect).
pub type AfterConnect = Arc<dyn for<'a> Fn(&'a mut PgConnection) -> HookFuture<'a> + Send + Sync>;

/// The future a [`KeepHook`] returns: `Ok(true)` keeps the connection,
/// `Ok(false)` discards it, an error discards it and is counted.
pub type KeepFuture<'a> =
    Pin<Box<dyn Future<Output = Result<bool, tokio_postgres::Error>> + Send + 'a>>;

/// A hook that decides whether a connection is kept: see
/// [`PgManager::before_acquire`](crate::backend::PgManager::before_acquire) and
/// [`PgManager::after_release`](crate::backend::PgManager::after_release).
pub type KeepHook = Arc<dyn for<'a> Fn(&'a mut PgConnection) -> KeepFuture<'a> + Send + Sync>;

/// Setting the hooks.
impl<T> PgManager<T> {
    /// Runs `sql` (simple protocol, e.g. `DISCARD ALL`, or `RESET ALL;
    /// SELECT pg_advisory_unlock_all()`) on every returned connection
    /// before it goes idle, within `validation_timeout`, for services that
    /// change session state (`SET`, temporary tables, advisory locks). A
    /// connection whose reset fails or times out is closed (logged at
    /// `WARN`, counted in [`hook_failures`](Self::hook_failures)). It costs
    /// a round trip on every return; `DISCARD ALL` also empties the
    /// statement cache. From the environment, `POOL_RESET_QUERY`.
    pub fn reset_on_return(mut self, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        self.hooks.reset = (!sql.trim().is_empty()).then(|| Arc::from(sql));
        self
    }

    /// Runs `hook` on every new connection before the pool uses it, within
    /// `create_timeout` (the connect's own budget). Its statements are not
    /// counted toward `max_queries`. A failing hook fails the connect: it
    /// is logged, counted in [`hook_failures`](Self::hook_failures), and
    /// retried like any failed connect.
    ///
    /// ```
    /// # fn demo(manager: pool_pg::backend::PgManager) -> pool_pg::backend::PgManager {
    /// manager.after_connect(|conn| {
    ///     Box::pin(async move { conn.batch_execute("SET search_path TO app, public").await })
    /// })
    /// # }
    /// ```
    pub fn after_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConnection) -> HookFuture<'a> + Send + Sync + 'static,
    {
        self.hooks.after_connect = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` on every idle connection about to be lent, after its
    /// liveness check if it had one, within `validation_timeout`:
    /// `Ok(true)` lends it, `Ok(false)` closes it (counted in
    /// `closed_by_reason.discarded`) and the caller gets another one within
    /// its deadline. An error, a timeout, or a hook that leaves a
    /// transaction open closes the connection, logged at `WARN` and counted
    /// (in [`hook_failures`](Self::hook_failures), or as a failed
    /// validation for a timeout). Not run on a connection opened for the
    /// caller (it is fresh), nor by `try_acquire()`, which never does I/O.
    /// It costs the hook's own I/O on every checkout; its statements count
    /// toward `max_queries`.
    ///
    /// ```
    /// # fn demo(manager: pool_pg::backend::PgManager) -> pool_pg::backend::PgManager {
    /// // Never lend a session that still holds an advisory lock.
    /// manager.before_acquire(|conn| {
    ///     Box::pin(async move {
    ///         let row = conn
    ///             .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", &[])
    ///             .await?;
    ///         Ok(row.get::<_, i64>(0) == 0)
    ///     })
    /// })
    /// # }
    /// ```
    pub fn before_acquire<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConnection) -> KeepFuture<'a> + Send + Sync + 'static,
    {
        self.hooks.before_acquire = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` on every returned connection that is clean (not closed,
    /// no transaction open, nothing in flight) before it goes idle, in the
    /// pool's settle task (the caller is not kept waiting) within
    /// `validation_timeout`, before the session reset if one is set:
    /// `Ok(true)` keeps it, `Ok(false)` closes it (counted in
    /// `closed_by_reason.discarded`). An error or a hook that leaves the
    /// session unclean closes it, logged at `WARN` and counted in
    /// [`hook_failures`](Self::hook_failures). Its statements count toward
    /// `max_queries`.
    ///
    /// ```
    /// # fn demo(manager: pool_pg::backend::PgManager) -> pool_pg::backend::PgManager {
    /// // Keep no session that created temporary tables.
    /// manager.after_release(|conn| {
    ///     Box::pin(async move {
    ///         let row = conn
    ///             .query_one("SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND pg_table_is_visible(oid)", &[])
    ///             .await?;
    ///         Ok(row.get::<_, i64>(0) == 0)
    ///     })
    /// })
    /// # }
    /// ```
    pub fn after_release<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConnection) -> KeepFuture<'a> + Send + Sync + 'static,
    {
        self.hooks.after_release = Some(Arc::new(hook));
        self
    }
}

/// What a hook decided about its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Keep,
    /// The hook said no: close it, quietly.
    Discard,
    /// The hook failed or left the session unclean: close it (logged,
    /// counted).
    Failed,
}

/// The hooks of one manager, shared by all its connections.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) after_connect: Option<AfterConnect>,
    pub(crate) before_acquire: Option<KeepHook>,
    pub(crate) after_release: Option<KeepHook>,
    /// Run on every return before the connection goes idle.
    pub(crate) reset: Option<Arc<str>>,
    /// Failed hooks and session resets.
    pub(crate) failures: Arc<AtomicU64>,
}

impl Hooks {
    /// Whether a returned connection needs I/O before it can be judged.
    pub(crate) fn on_return(&self) -> bool {
        self.reset.is_some() || self.after_release.is_some()
    }

    /// Runs `hook` on `conn`: kept only if the hook says so and leaves the
    /// session clean.
    pub(crate) async fn keep(
        &self,
        which: &str,
        hook: &KeepHook,
        conn: &mut PgConnection,
        server: &str,
    ) -> Decision {
        match hook(conn).await {
            Ok(true) if conn.unclean().is_none() && !conn.is_closed() => Decision::Keep,
            Ok(true) => {
                self.failed(
                    server,
                    which,
                    &"it left the session unclean (a transaction open or a request running)",
                );
                Decision::Failed
            }
            Ok(false) => {
                tracing::debug!(
                    target: "pool_pg::connection",
                    server = %server,
                    "{which} discarded the connection"
                );
                Decision::Discard
            }
            Err(error) => {
                self.failed(server, which, &crate::error::describe(&error));
                Decision::Failed
            }
        }
    }

    /// Runs the session reset, if one is set; `false` if it failed.
    pub(crate) async fn reset(&self, conn: &mut PgConnection, server: &str) -> bool {
        let Some(reset) = &self.reset else {
            return true;
        };
        match conn.own_query(reset).await {
            Ok(_) => true,
            Err(error) => {
                self.failed(
                    server,
                    "the session reset (POOL_RESET_QUERY)",
                    &crate::error::describe(&error),
                );
                false
            }
        }
    }

    /// Logs and counts a failed hook.
    pub(crate) fn failed(&self, server: &str, what: &str, error: &dyn fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "pool_pg::connection",
            server = %server,
            error = %error,
            "{what} failed; closing the connection"
        );
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("after_connect", &self.after_connect.is_some())
            .field("before_acquire", &self.before_acquire.is_some())
            .field("after_release", &self.after_release.is_some())
            .field("reset_on_return", &self.reset)
            .finish()
    }
}
