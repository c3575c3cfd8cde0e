//! A production-grade PostgreSQL connection pool on tokio-postgres.
//!
//! `pool-pg` plugs tokio-postgres into the generic, FIFO-fair, cancel-safe
//! pool of `pool-core`, and re-exports everything a user needs from it: you
//! never import `pool-core` yourself.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use pool_pg::{PgPool, PoolConfig};
//!
//! # async fn demo() -> Result<(), pool_pg::Error> {
//! // Or `PgPool::from_env()`: DATABASE_URL plus the POOL_* variables.
//! let pool = PgPool::connect(
//!     "postgres://app:secret@localhost:5432/app",
//!     PoolConfig::default()
//!         .max_size(20)
//!         .acquire_timeout(Duration::from_secs(5)),
//! )
//! .await?;
//!
//! let conn = pool.acquire().await?; // reads like a tokio_postgres::Client
//! let row = conn.query_one("SELECT $1::int4 + 1", &[&41]).await?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//! drop(conn); // back to the pool
//!
//! // A per-call deadline, reported like the pool's own timeout.
//! let conn = pool.acquire_timeout(Duration::from_millis(200)).await?;
//! conn.execute("SELECT pg_sleep(0)", &[]).await?;
//! drop(conn);
//!
//! println!("{:?}", pool.statistics());
//! pool.shutdown(Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```
//!
//! # The API in brief
//!
//! * [`PgPool`] is the pool: `connect`, `from_env`, `from_vars`,
//!   [`PgConfig::build`] (the builder) to make one; `acquire`,
//!   `acquire_timeout`, `try_acquire`, `statistics`, `health_check`,
//!   `shutdown` to use it. A connection is a [`PgPooledConnection`].
//! * [`Error`] is the one error type: a pool failure ([`PoolError`]) or a
//!   database failure ([`tokio_postgres::Error`]), with `is_timeout()`,
//!   `is_retryable()`, `sqlstate()`; `?` converts both.
//! * [`defaults`] holds every named default, limit and tuning constant;
//!   [`backend`] the implementer's side (the [`Manager`](backend::Manager)
//!   and [`PgManager`](backend::PgManager), the core pool); [`detail`] the
//!   types inside errors, statistics and reports; [`metrics`] the metric
//!   names of the `metrics` feature.
//!
//! # Design
//!
//! * [`PgManager`](backend::PgManager) opens each connection's socket itself (the URL's hosts
//!   in order, `target_session_attrs` from the parameters the server
//!   reports), inside the pool's `create_timeout`, hands it to
//!   tokio-postgres (`Config::connect_raw`), spawns the connection's I/O
//!   future as a task, and hands out a [`PgConnection`] that owns client
//!   and task together (dropping it aborts the task). A task that ends with
//!   an error is logged (target `pool_pg::connection`) and counted, never
//!   dropped silently. Liveness is `SELECT 1`. Authentication failures and
//!   unknown databases are not retried.
//! * **The session is read from the wire.** The socket is wrapped (above
//!   TLS) in a reader of the protocol's message framing, so whatever path a
//!   request takes (the connection's methods, `Deref` to the `Client`,
//!   `GenericClient` code, transactions, row streams) the pool knows the
//!   statements the server finished (for `max_queries`), whether a request
//!   is still in flight, whether a transaction block is open, and whether
//!   the server stopped taking writes. A connection returned unclean is
//!   given a moment to finish what is queued (a dropped transaction's
//!   `ROLLBACK`), then reused or closed (an abandoned request is cancelled
//!   on the server); it is never handed to the next caller unclean.
//! * **Prepared statements are cached** per connection:
//!   `conn.query(sql, ..)` and friends prepare `sql` once and reuse it, one
//!   round trip per run instead of two (`POOL_STATEMENT_CACHE_SIZE`,
//!   default 256; 0 = off, e.g. behind PgBouncer in transaction mode).
//! * [`PgConfig`] checks the database URL and the `POOL_*` settings when it
//!   is built and reports every problem at once; connections get an
//!   `application_name`, TCP keepalives, a TCP connect timeout and a
//!   `tcp_user_timeout` (a request on a silent link fails in 30 s) unless
//!   the URL sets them.
//! * **TLS** follows libpq's `sslmode` (`disable`, `prefer`, `require`,
//!   `verify-ca`, `verify-full`) and `sslrootcert`, from `DATABASE_URL` or
//!   `PGSSLMODE` / `PGSSLROOTCERT`, over rustls with the `tls` feature: see
//!   [`PgConfig`](PgConfig#tls) and [`SslMode`].
//! * **Secrets.** The password never appears in an error, a log line, a
//!   `Debug` output or a statistic: URLs are shown through [`redact_url`]
//!   or rebuilt without it ([`PgManager::redacted_url`](backend::PgManager::redacted_url)).
//!
//! # Configuration from the environment
//!
//! [`PgConfig::from_env`] (and `PgPool::from_env()`) read `DATABASE_URL`,
//! `postgres://user:password@host:5432/dbname?option=value`, and every
//! `POOL_*` variable in [`POOL_VARIABLES`](defaults::POOL_VARIABLES): durations in milliseconds, an
//! unknown `POOL_*` name is an error. See [`PoolConfig`] for each setting's
//! range and reason, and [`PgConfig`] for the connection defaults.
//!
//! | Variable | Setting | Default |
//! |---|---|---|
//! | `POOL_NAME` | [`name`](PoolConfig::name) | [`default`](defaults::DEFAULT_NAME) |
//! | `POOL_MIN_SIZE` | [`min_size`](PoolConfig::min_size) | [2](defaults::DEFAULT_MIN_SIZE) |
//! | `POOL_MAX_SIZE` | [`max_size`](PoolConfig::max_size) | [10](defaults::DEFAULT_MAX_SIZE) |
//! | `POOL_ACQUIRE_TIMEOUT_MS` | [`acquire_timeout`](PoolConfig::acquire_timeout) | [30000](defaults::DEFAULT_ACQUIRE_TIMEOUT) (30 s) |
//! | `POOL_CREATE_TIMEOUT_MS` | [`create_timeout`](PoolConfig::create_timeout) | [10000](defaults::DEFAULT_CREATE_TIMEOUT) (10 s) |
//! | `POOL_VALIDATION_TIMEOUT_MS` | [`validation_timeout`](PoolConfig::validation_timeout) | [5000](defaults::DEFAULT_VALIDATION_TIMEOUT) (5 s) |
//! | `POOL_VALIDATION_SKIP_WINDOW_MS` | [`validation_skip_window`](PoolConfig::validation_skip_window) | [500](defaults::DEFAULT_VALIDATION_SKIP_WINDOW) |
//! | `POOL_MAX_CONNECTION_LIFETIME_MS` | [`max_lifetime`](PoolConfig::max_lifetime) | [1800000](defaults::DEFAULT_MAX_LIFETIME) (30 min) |
//! | `POOL_MAX_LIFETIME_JITTER_PERCENT` | [`max_lifetime_jitter_percent`](PoolConfig::max_lifetime_jitter_percent) | [10](defaults::DEFAULT_MAX_LIFETIME_JITTER_PERCENT) |
//! | `POOL_MAX_IDLE_TIME_MS` | [`max_idle_time`](PoolConfig::max_idle_time) | [600000](defaults::DEFAULT_MAX_IDLE_TIME) (10 min) |
//! | `POOL_MAX_QUERIES` | [`max_queries`](PoolConfig::max_queries) | [50000](defaults::DEFAULT_MAX_QUERIES); 0 = no limit |
//! | `POOL_MAINTENANCE_INTERVAL_MS` | [`maintenance_interval`](PoolConfig::maintenance_interval) | [60000](defaults::DEFAULT_MAINTENANCE_INTERVAL) (60 s) |
//! | `POOL_HEALTH_HEALTHY_PERCENT` | [`health_healthy_percent`](PoolConfig::health_healthy_percent) | [80](defaults::DEFAULT_HEALTH_HEALTHY_PERCENT) |
//! | `POOL_HEALTH_DEGRADED_PERCENT` | [`health_degraded_percent`](PoolConfig::health_degraded_percent) | [50](defaults::DEFAULT_HEALTH_DEGRADED_PERCENT) |
//! | `POOL_WAIT_FOR_RECOVERY` | [`wait_for_recovery`](PoolConfig::wait_for_recovery) | `false` |
//! | `POOL_RECONNECT_INITIAL_DELAY_MS` | [`reconnect_initial_delay`](PoolConfig::reconnect_initial_delay) | [1000](defaults::DEFAULT_RECONNECT_INITIAL_DELAY) (1 s) |
//! | `POOL_RECONNECT_MAX_DELAY_MS` | [`reconnect_max_delay`](PoolConfig::reconnect_max_delay) | [16000](defaults::DEFAULT_RECONNECT_MAX_DELAY) (16 s) |
//! | `POOL_ENABLE_LEAK_DETECTION` | [`enable_leak_detection`](PoolConfig::enable_leak_detection) | `true` |
//! | `POOL_LEAK_DETECTION_TIMEOUT_MS` | [`leak_detection_timeout`](PoolConfig::leak_detection_timeout) | [30000](defaults::DEFAULT_LEAK_DETECTION_TIMEOUT) (30 s); 0 = off |
//! | `POOL_LEAK_DETECTION_TIMEOUT` | the same, in whole seconds: an alias kept for configurations written for it; not with the `_MS` one | 30 |
//! | `POOL_LEAK_BACKTRACE` | [`leak_backtrace`](PoolConfig::leak_backtrace) | `false` |
//! | `POOL_STATEMENT_CACHE_SIZE` | [`statement_cache_size`](PgConfig::statement_cache_size) | [256](defaults::DEFAULT_STATEMENT_CACHE_SIZE); 0 = off |
//! | `POOL_RESET_QUERY` | [`reset_query`](PgConfig::reset_query) | none |

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
mod build;
mod cache;
mod config;
mod connect;
mod connection;
pub mod defaults;
pub mod detail;
mod error;
mod hooks;
mod manager;
mod pool;
mod query;
mod readme;
mod routing;
mod socket;
mod tls;
mod url;
mod user_error;
mod wire;

pub use config::PgConfig;
pub use connection::PgConnection;
pub use pool::{PgPool, PgPooledConnection, PoolError};
pub use routing::{ReadWritePools, ReadWriteStatistics, DATABASE_REPLICA_URL};
pub use tls::SslMode;
pub use url::{redact_url, DATABASE_URL};
pub use user_error::Error;

pub use pool_core::{
    ConfigError, HealthState, HealthStatus, Phase, PoolConfig, PoolState, ShutdownReport,
    Statistics,
};

/// Metric names of the `metrics` feature (see its module doc).
pub use pool_core::metrics;
#[doc(hidden)]
pub use pool_core::PAUSED_CLOCK;
pub use tokio_postgres;
pub use tokio_postgres::NoTls;
