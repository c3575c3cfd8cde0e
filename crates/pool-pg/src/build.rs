//! The ways to build a [`PgPool`].
//!
//! Design: [`PgConfig`] is the builder: it checks the database URL and the
//! `POOL_*` settings (every problem at once) and [`PgConfig::build`]
//! connects. The shortcuts on `PgPool` ([`connect`](PgPool::connect),
//! [`from_env`](PgPool::from_env), [`from_vars`](PgPool::from_vars)) make
//! the `PgConfig` and build it; [`PgPool::from_manager`] takes a
//! [`PgManager`] made by hand (a libpq `key=value` string, an
//! `after_connect` hook, another TLS connector).
//!
//! Invariant: every path goes through `start`, so every pool logs one
//! `pool_pg::init` event with the redacted target before pool-core's
//! warm-up (which logs its batches, `Connection pool initialized: ...`, or
//! the failure with the suggested action).

use std::future::Future;

use pool_core::{Manager, Pool, PoolConfig};

use crate::config::PgConfig;
use crate::connection::PgConnection;
use crate::error::PgError;
use crate::manager::PgManager;
use crate::pool::PgPool;
use crate::url::{endpoints, shown_name};
use crate::user_error::Error;

impl PgConfig {
    /// Connects: opens and validates `min_size` connections (over TLS as
    /// [`tls`](PgConfig::tls) says) and returns the ready pool, or an error
    /// saying what to change.
    pub async fn build(self) -> Result<PgPool, Error> {
        let tls = self.tls.to_string();
        let manager = self.manager();
        start(manager, self.pool, &tls).await
    }

    /// Like [`build`](PgConfig::build), connecting through `tls`, any
    /// tokio-postgres connector (see [`PgManager::with_tls`]).
    pub async fn build_with_tls<T>(self, tls: T) -> Result<PgPool<T>, Error>
    where
        PgManager<T>: Manager<Connection = PgConnection, Error = PgError>,
    {
        let manager = self.manager_with_tls(tls);
        let described = described::<T>(&manager);
        start(manager, self.pool, &described).await
    }
}

impl PgPool {
    /// Checks `database_url` and `config` (all problems at once), then
    /// builds the pool; see [`PgConfig::new`] and [`PgConfig::build`].
    /// The future does not borrow `database_url`.
    pub fn connect(
        database_url: &str,
        config: PoolConfig,
    ) -> impl Future<Output = Result<Self, Error>> + Send {
        let checked = PgConfig::new(database_url, config);
        async move { checked?.build().await }
    }

    /// Reads `DATABASE_URL` and `POOL_*` from the environment (all problems
    /// at once), then builds the pool; see [`PgConfig::from_env`].
    pub fn from_env() -> impl Future<Output = Result<Self, Error>> + Send {
        let checked = PgConfig::from_env();
        async move { checked?.build().await }
    }

    /// Like [`from_env`](PgPool::from_env) with key/value pairs in place of
    /// the environment; see [`PgConfig::from_vars`]. The pairs are read
    /// before the future is returned.
    pub fn from_vars<I, K, V>(vars: I) -> impl Future<Output = Result<Self, Error>> + Send
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let checked = PgConfig::from_vars(vars);
        async move { checked?.build().await }
    }
}

impl<T> PgPool<T>
where
    PgManager<T>: Manager<Connection = PgConnection, Error = PgError>,
{
    /// Builds the pool over a manager made by hand, with `config`:
    /// validates `config`, opens and validates `min_size` connections, and
    /// returns the ready pool.
    ///
    /// ```no_run
    /// use pool_pg::backend::PgManager;
    /// use pool_pg::{PgPool, PoolConfig};
    ///
    /// # async fn demo() -> Result<(), pool_pg::Error> {
    /// let config: pool_pg::tokio_postgres::Config =
    ///     "host=localhost user=app dbname=app".parse()?;
    /// let manager = PgManager::new(config).after_connect(|conn| {
    ///     Box::pin(async move { conn.batch_execute("SET search_path TO app").await })
    /// });
    /// let pool = PgPool::from_manager(manager, PoolConfig::default()).await?;
    /// # drop(pool); Ok(()) }
    /// ```
    pub async fn from_manager(manager: PgManager<T>, config: PoolConfig) -> Result<Self, Error> {
        let described = described::<T>(&manager);
        start(manager, config, &described).await
    }
}

/// The connector and `sslmode` of a manager, for the `pool_pg::init` event.
fn described<T>(manager: &PgManager<T>) -> String {
    format!(
        "{} (sslmode={:?})",
        std::any::type_name::<T>(),
        manager.pg_config().get_ssl_mode()
    )
}

/// Logs the `pool_pg::init` event, then builds the pool (pool-core's
/// warm-up).
async fn start<T>(manager: PgManager<T>, pool: PoolConfig, tls: &str) -> Result<PgPool<T>, Error>
where
    PgManager<T>: Manager<Connection = PgConnection, Error = PgError>,
{
    let database = manager.pg_config();
    let (hosts, ports): (Vec<String>, Vec<String>) = endpoints(database)
        .into_iter()
        .map(|(host, port)| (host, port.to_string()))
        .unzip();
    tracing::info!(
        target: "pool_pg::init",
        pool = %pool.name,
        url = %manager.redacted_url(),
        hosts = %hosts.join(","),
        ports = %ports.join(","),
        dbname = database.get_dbname().map(shown_name).unwrap_or_default(),
        user = database.get_user().map(shown_name).unwrap_or_default(),
        application_name = database.get_application_name().unwrap_or_default(),
        tls = tls,
        min_size = pool.min_size,
        max_size = pool.max_size,
        "starting PostgreSQL connection pool"
    );
    Ok(PgPool::from_core(Pool::build(manager, pool).await?))
}
