//! [`PgPool`] and the ways to build one.
//!
//! `PgPool` is pool-core's `Pool` over a [`PgManager`]; the PostgreSQL
//! specific constructors are [`PgConfig::build`] (configuration first, then
//! connect) and the [`PgPoolExt`] shortcuts `PgPool::connect`,
//! `PgPool::from_env` and `PgPool::from_vars`. Every path logs one
//! `pool_pg::init` event with the redacted target before pool-core's warm-up
//! (which logs its batches, `Connection pool initialized: ...`, or the
//! failure with the suggested action).

use std::future::Future;

use crate::socket::PgSocket as Socket;
use pool_core::{Pool, PoolConfig, PoolError, PooledConnection};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use crate::config::PgConfig;
use crate::error::PgError;
use crate::manager::PgManager;
use crate::tls::PgTls;
use crate::url::{endpoints, shown_name};

/// A pool of PostgreSQL connections, over TLS as `sslmode` says (see
/// [`PgConfig`](crate::PgConfig#tls)), or through another connector `T`.
pub type PgPool<T = PgTls> = Pool<PgManager<T>>;

/// A connection borrowed from a [`PgPool`]; derefs to
/// [`PgConnection`](crate::PgConnection) (which has the query methods of
/// [`tokio_postgres::Client`]) and goes back to the pool when dropped, or
/// is closed if it is [dirty](crate::PgConnection#dirty-connections).
pub type PgPooledConnection<T = PgTls> = PooledConnection<PgManager<T>>;

/// What the pool's operations return on failure.
pub type Error = PoolError<PgError>;

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
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let manager = self.manager_with_tls(tls);
        let described = format!(
            "{} (sslmode={:?})",
            std::any::type_name::<T>(),
            manager.pg_config().get_ssl_mode()
        );
        start(manager, self.pool, &described).await
    }
}

/// Logs the `pool_pg::init` event, then builds the pool (pool-core's
/// warm-up).
async fn start<T>(manager: PgManager<T>, pool: PoolConfig, tls: &str) -> Result<PgPool<T>, Error>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
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
    Pool::build(manager, pool).await
}

/// PostgreSQL constructors on [`PgPool`]. Bring it into scope to write
/// `PgPool::connect(..)`:
///
/// ```no_run
/// use pool_pg::{PgPool, PgPoolExt, PoolConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PgPool::connect(
///     "postgres://app:secret@localhost:5432/app",
///     PoolConfig::default().max_size(20),
/// )
/// .await?;
/// let conn = pool.acquire().await?;
/// let row = conn.query_one("SELECT 41 + 1", &[]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
/// # Ok(()) }
/// ```
pub trait PgPoolExt: Sized {
    /// Checks `database_url` and `config` (all problems at once), then
    /// builds the pool; see [`PgConfig::new`] and [`PgConfig::build`].
    fn connect(
        database_url: &str,
        config: PoolConfig,
    ) -> impl Future<Output = Result<Self, Error>> + Send;

    /// Reads `DATABASE_URL` and `POOL_*` from the environment (all problems
    /// at once), then builds the pool; see [`PgConfig::from_env`].
    fn from_env() -> impl Future<Output = Result<Self, Error>> + Send;

    /// Like [`from_env`](PgPoolExt::from_env) with key/value pairs in place
    /// of the environment; see [`PgConfig::from_vars`].
    fn from_vars<I, K, V>(vars: I) -> impl Future<Output = Result<Self, Error>> + Send
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>;
}

impl PgPoolExt for PgPool {
    fn connect(
        database_url: &str,
        config: PoolConfig,
    ) -> impl Future<Output = Result<Self, Error>> + Send {
        let checked = PgConfig::new(database_url, config);
        async move { checked?.build().await }
    }

    fn from_env() -> impl Future<Output = Result<Self, Error>> + Send {
        let checked = PgConfig::from_env();
        async move { checked?.build().await }
    }

    fn from_vars<I, K, V>(vars: I) -> impl Future<Output = Result<Self, Error>> + Send
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let checked = PgConfig::from_vars(vars);
        async move { checked?.build().await }
    }
}
