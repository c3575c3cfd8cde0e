//! [`ReadWritePools`]: writes to the primary, reads to the standbys, and
//! reads back on the primary when no standby can serve them.
//!
//! Two ordinary pools, nothing more: `primary` connects with
//! `target_session_attrs=read-write`, `replicas` (optional) with
//! `read-only`, and each keeps its own outage handling (backoff, fast
//! recovery, eviction on a demoted server). The routing is one rule:
//!
//! * [`write`](ReadWritePools::write) is the primary pool's `acquire()`;
//! * [`read`](ReadWritePools::read) asks the replica pool, and falls back
//!   to the primary when the replica pool is `RECOVERING` (no standby
//!   reachable: at once, without waiting), or cannot lend a connection
//!   within the *read fallback window* ([`DEFAULT_READ_FALLBACK`], 500 ms;
//!   a connect error, an exhausted pool, a standby that stopped). Every
//!   fallback is counted and logged at `DEBUG` (target `pool_pg::routing`).
//!   Once a standby is back, the replica pool's reconnect supervisor
//!   notices (its probes are driven by the reads that asked it), and reads
//!   go to it again.
//!
//! Invariant: a connection from `read()` may be the primary's; one from
//! `write()` never a standby's (the primary pool only keeps read-write
//! sessions). Reads that must see the latest write should use `write()`:
//! a standby lags.
//!
//! Configuration: [`from_env`](ReadWritePools::from_env) reads
//! `DATABASE_URL` (the primary, or every host), the optional
//! [`DATABASE_REPLICA_URL`], and `POOL_*` (both pools get the same
//! settings, but their names: `<POOL_NAME>.primary` and
//! `<POOL_NAME>.replica`, so their metrics, statistics and log events stay
//! apart; the name with its suffix must still fit the 64 characters of a
//! pool name). A `DATABASE_URL` that lists several hosts with
//! `target_session_attrs=prefer-standby` (which tokio-postgres 0.7 does not
//! accept by itself) needs no second URL: the same hosts are used by both
//! pools, `read-write` for writes and `read-only` for reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pool_core::{ConfigError, Manager, PoolConfig, Statistics};
use tokio_postgres::config::TargetSessionAttrs;

use crate::config::PgConfig;
use crate::connection::PgConnection;
use crate::error::PgError;
use crate::manager::PgManager;
use crate::pool::{PgPool, PgPooledConnection};
use crate::tls::PgTls;
use crate::user_error::Error;

/// The variable holding the standbys' URL for [`ReadWritePools::from_env`].
pub const DATABASE_REPLICA_URL: &str = "DATABASE_REPLICA_URL";
/// How long [`ReadWritePools::read`] waits for the replica pool before it
/// reads on the primary: 500 ms. Long enough for a connect to a healthy
/// standby on the same network, short enough that a lost standby costs a
/// read little more than that once (the pool then turns reads away at
/// once while it is `RECOVERING`).
pub const DEFAULT_READ_FALLBACK: Duration = Duration::from_millis(500);

/// The suffix of the primary pool's name (`<name>.primary`).
pub(crate) const PRIMARY_SUFFIX: &str = "primary";
/// The suffix of the replica pool's name (`<name>.replica`).
pub(crate) const REPLICA_SUFFIX: &str = "replica";

/// The `target_session_attrs` value that asks for both pools at once.
pub(crate) const PREFER_STANDBY: &str = "target_session_attrs=prefer-standby";

/// A primary pool for writes and an optional replica pool for reads; see
/// the module docs. Generic over the TLS connector like [`PgPool`]: the
/// URL constructors build `ReadWritePools<PgTls>` (TLS as `sslmode` says),
/// [`new`](Self::new) routes over any two pools of one connector.
///
/// ```no_run
/// use pool_pg::{PoolConfig, ReadWritePools};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pools = ReadWritePools::connect(
///     "postgres://app:secret@db1:5432,db2:5432/app?target_session_attrs=read-write",
///     Some("postgres://app:secret@db1:5432,db2:5432/app?target_session_attrs=read-only"),
///     PoolConfig::default(),
/// )
/// .await?;
/// pools.write().await?.execute("INSERT INTO t VALUES (1)", &[]).await?;
/// let n: i64 = pools.read().await?.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
/// # let _ = n; Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReadWritePools<T = PgTls>
where
    PgManager<T>: Manager,
{
    primary: PgPool<T>,
    replicas: Option<PgPool<T>>,
    read_fallback: Duration,
    /// Reads served by the primary because the replica pool could not.
    reads_on_primary: AtomicU64,
}

/// The statistics of both pools.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReadWriteStatistics {
    /// The primary pool's.
    pub primary: Statistics,
    /// The replica pool's, if there is one.
    pub replicas: Option<Statistics>,
    /// Reads the primary served because the replica pool could not (moves
    /// once per fallback in [`ReadWritePools::read`]).
    pub reads_on_primary: u64,
}

impl<T> ReadWritePools<T>
where
    PgManager<T>: Manager<Connection = PgConnection, Error = PgError>,
{
    /// Routes over two pools you built yourself (e.g. with another TLS
    /// connector, through [`PgConfig::build_with_tls`]).
    pub fn new(primary: PgPool<T>, replicas: Option<PgPool<T>>) -> Self {
        Self {
            primary,
            replicas,
            read_fallback: DEFAULT_READ_FALLBACK,
            reads_on_primary: AtomicU64::new(0),
        }
    }

    /// Sets the read fallback window (default [`DEFAULT_READ_FALLBACK`]).
    pub fn read_fallback(mut self, window: Duration) -> Self {
        self.read_fallback = window;
        self
    }

    /// A connection to the primary, for writes (and reads that must see
    /// the latest write).
    #[track_caller]
    pub fn write(
        &self,
    ) -> impl std::future::Future<Output = Result<PgPooledConnection<T>, Error>> + Send + '_ {
        self.primary.acquire()
    }

    /// A connection for reads: a standby's, or the primary's when no
    /// standby can lend one within the read fallback window.
    pub async fn read(&self) -> Result<PgPooledConnection<T>, Error> {
        let Some(replicas) = &self.replicas else {
            return self.primary.acquire().await;
        };
        // A RECOVERING replica pool turns the caller away at once (and
        // counts it as demand for an early probe, so a standby that is back
        // is found quickly). Cancel-safe: a dropped acquire gives its
        // permit back.
        let why = match tokio::time::timeout(self.read_fallback, replicas.acquire()).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(error)) if error.is_closed() => return Err(error),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no standby connection within {:?}", self.read_fallback),
        };
        self.reads_on_primary.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "pool_pg::routing", reason = %why, "reading on the primary");
        self.primary.acquire().await
    }

    /// The primary pool.
    pub fn primary(&self) -> &PgPool<T> {
        &self.primary
    }

    /// The replica pool, if there is one.
    pub fn replicas(&self) -> Option<&PgPool<T>> {
        self.replicas.as_ref()
    }

    /// Both pools' statistics and the fallback count.
    pub fn statistics(&self) -> ReadWriteStatistics {
        ReadWriteStatistics {
            primary: self.primary.statistics(),
            replicas: self.replicas.as_ref().map(|pool| pool.statistics()),
            reads_on_primary: self.reads_on_primary.load(Ordering::Relaxed),
        }
    }

    /// Closes both pools.
    pub fn close(&self) {
        self.primary.close();
        if let Some(replicas) = &self.replicas {
            replicas.close();
        }
    }
}

impl ReadWritePools {
    /// Builds the primary pool from `primary_url` and, if given, the
    /// replica pool from `replica_url`, both with `config`, named
    /// `<name>.primary` and `<name>.replica` after `config.name`. A
    /// `prefer-standby` URL without a replica URL builds both from it (see
    /// the module docs). A replica pool whose warm-up fails (no standby up
    /// now) is built empty instead, so it connects once a standby is up.
    pub async fn connect(
        primary_url: &str,
        replica_url: Option<&str>,
        config: PoolConfig,
    ) -> Result<Self, Error> {
        let (primary, replicas) = configs(primary_url, replica_url, config)?;
        Self::build(primary, replicas).await
    }

    /// Like [`connect`](Self::connect), from `DATABASE_URL`,
    /// [`DATABASE_REPLICA_URL`] (optional) and the `POOL_*` variables.
    pub async fn from_env() -> Result<Self, Error> {
        // Lossy, never a panic: a value that is not UTF-8 is reported by
        // the checks as malformed.
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(key, value)| {
                let key = key.into_string().ok()?;
                let wanted = key == crate::DATABASE_URL
                    || key == DATABASE_REPLICA_URL
                    || key.starts_with("POOL_");
                wanted.then(|| (key, value.to_string_lossy().into_owned()))
            })
            .collect();
        Self::from_vars(vars).await
    }

    /// Like [`from_env`](Self::from_env) with key/value pairs in place of
    /// the environment.
    pub async fn from_vars<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut rest = Vec::new();
        let mut primary_url = None;
        let mut replica_url = None;
        for (key, value) in vars {
            let (key, value) = (key.as_ref().to_owned(), value.as_ref().to_owned());
            match key.as_str() {
                DATABASE_REPLICA_URL => replica_url = Some(value),
                crate::DATABASE_URL => primary_url = Some(value.clone()),
                _ => rest.push((key, value)),
            }
        }
        // PgConfig reports a missing or bad DATABASE_URL and every bad
        // POOL_* at once; the prefer-standby form is taken apart first.
        let shown_url = primary_url
            .as_deref()
            .map(|url| without_prefer_standby(url).unwrap_or_else(|| url.to_owned()));
        rest.extend(shown_url.map(|url| (crate::DATABASE_URL.to_owned(), url)));
        let pool = PgConfig::from_vars(rest)?.pool;
        let primary_url = primary_url.unwrap_or_default();
        Self::connect(&primary_url, replica_url.as_deref(), pool).await
    }

    async fn build(primary: PgConfig, replicas: Option<PgConfig>) -> Result<Self, Error> {
        let primary = primary.build().await?;
        let replicas = match replicas {
            None => None,
            Some(config) => Some(match config.clone().build().await {
                Ok(pool) => pool,
                Err(error) if error.is_init() => {
                    tracing::warn!(
                        target: "pool_pg::routing",
                        %error,
                        "no standby answered; reads go to the primary until one does"
                    );
                    let mut empty = config;
                    empty.pool = empty.pool.min_size(0);
                    empty.build().await?
                }
                Err(error) => return Err(error),
            }),
        };
        Ok(Self::new(primary, replicas))
    }
}

/// `pool`, named `<name>.<role>`.
fn named(pool: &PoolConfig, role: &str) -> PoolConfig {
    let name = format!("{}.{role}", pool.name);
    pool.clone().name(name)
}

/// The two configurations for `connect`, named `<name>.primary` and
/// `<name>.replica`.
fn configs(
    primary_url: &str,
    replica_url: Option<&str>,
    pool: PoolConfig,
) -> Result<(PgConfig, Option<PgConfig>), ConfigError> {
    let (primary_pool, replica_pool) = (named(&pool, PRIMARY_SUFFIX), named(&pool, REPLICA_SUFFIX));
    match (without_prefer_standby(primary_url), replica_url) {
        (Some(url), None) => {
            let mut primary = PgConfig::new(&url, primary_pool)?;
            let mut replicas = primary.clone();
            replicas.pool = replica_pool;
            primary
                .database
                .target_session_attrs(TargetSessionAttrs::ReadWrite);
            replicas
                .database
                .target_session_attrs(TargetSessionAttrs::ReadOnly);
            Ok((primary, Some(replicas)))
        }
        (Some(url), Some(replica_url)) => Ok((
            PgConfig::new(&url, primary_pool)?,
            Some(PgConfig::new(replica_url, replica_pool)?),
        )),
        (None, replica_url) => Ok((
            PgConfig::new(primary_url, primary_pool)?,
            replica_url
                .map(|url| PgConfig::new(url, replica_pool))
                .transpose()?,
        )),
    }
}

/// `url` without its `target_session_attrs=prefer-standby`, if it has one.
fn without_prefer_standby(url: &str) -> Option<String> {
    let (base, query) = url.split_once('?')?;
    let mut found = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let is = *pair == PREFER_STANDBY;
            found |= is;
            !is
        })
        .collect();
    found.then(|| {
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_standby_is_taken_out_of_the_url() {
        assert_eq!(
            without_prefer_standby("postgres://a@h1,h2/db?target_session_attrs=prefer-standby"),
            Some("postgres://a@h1,h2/db".to_owned())
        );
        assert_eq!(
            without_prefer_standby(
                "postgres://a@h/db?application_name=x&target_session_attrs=prefer-standby&connect_timeout=2"
            ),
            Some("postgres://a@h/db?application_name=x&connect_timeout=2".to_owned())
        );
        assert_eq!(
            without_prefer_standby("postgres://a@h/db?target_session_attrs=read-write"),
            None
        );
    }

    #[test]
    fn one_prefer_standby_url_makes_a_read_write_and_a_read_only_pool() {
        let (primary, replicas) = configs(
            "postgres://app:pw@h1:5432,h2:5433/db?target_session_attrs=prefer-standby",
            None,
            PoolConfig::default(),
        )
        .unwrap();
        let replicas = replicas.unwrap();
        assert_eq!(
            primary.database.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(
            replicas.database.get_target_session_attrs(),
            TargetSessionAttrs::ReadOnly
        );
        assert_eq!(replicas.database.get_hosts().len(), 2);
    }

    #[test]
    fn the_two_pools_are_named_apart_so_their_metrics_do_not_collide() {
        let config = PoolConfig::default().name("orders");
        for (primary_url, replica_url) in [
            (
                "postgres://app@h1,h2/db?target_session_attrs=prefer-standby",
                None,
            ),
            ("postgres://app@h1/db", Some("postgres://app@h2/db")),
            (
                "postgres://app@h1,h2/db?target_session_attrs=prefer-standby",
                Some("postgres://app@h3/db"),
            ),
        ] {
            let (primary, replicas) = configs(primary_url, replica_url, config.clone()).unwrap();
            assert_eq!(primary.pool.name, "orders.primary", "{primary_url}");
            assert_eq!(
                replicas.unwrap().pool.name,
                "orders.replica",
                "{primary_url}"
            );
        }
        let (primary, _) = configs("postgres://app@h1/db", None, config).unwrap();
        assert_eq!(primary.pool.name, "orders.primary");
    }

    #[test]
    fn a_name_too_long_for_its_suffix_is_a_configuration_error() {
        let name = "n".repeat(pool_core::MAX_NAME_LEN);
        let config = PoolConfig::default().name(name);
        let Err(err) = configs("postgres://app@h1/db", None, config) else {
            panic!(
                "a name of {} characters fits .primary",
                pool_core::MAX_NAME_LEN
            );
        };
        assert!(err.to_string().contains("POOL_NAME"), "{err}");
    }

    #[test]
    fn without_a_replica_url_there_is_no_replica_pool() {
        let (_, replicas) = configs("postgres://app@h1/db", None, PoolConfig::default()).unwrap();
        assert!(replicas.is_none());
    }
}
