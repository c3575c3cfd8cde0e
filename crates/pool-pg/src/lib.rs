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
//! use pool_pg::{PgPool, PgPoolExt, PoolConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Or `PgPool::from_env()`: DATABASE_URL plus the POOL_* variables.
//! let pool = PgPool::connect(
//!     "postgres://app:secret@localhost:5432/app",
//!     PoolConfig::default()
//!         .max_size(20)
//!         .acquire_timeout(Duration::from_secs(5)),
//! )
//! .await?;
//!
//! let conn = pool.acquire().await?; // derefs to tokio_postgres::Client
//! let row = conn.query_one("SELECT $1::int4 + 1", &[&41]).await?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//! drop(conn); // back to the pool
//!
//! println!("{:?}", pool.statistics());
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! * [`PgManager`] opens a connection with `tokio_postgres::Config::connect`
//!   inside the pool's `create_timeout`, spawns the connection's I/O future
//!   as a task, and hands out a [`PgConnection`] that owns client and task
//!   together (dropping it aborts the task). A task that ends with an error
//!   is logged (target `pool_pg::connection`) and counted, never dropped
//!   silently. Liveness is `SELECT 1`; the free broken-check is
//!   `Client::is_closed`. Authentication failures and unknown databases are
//!   not retried.
//! * [`PgConfig`] checks the database URL and the `POOL_*` settings when it
//!   is built and reports every problem at once; connections get an
//!   `application_name`, TCP keepalives and a TCP connect timeout unless the
//!   URL sets them.
//! * **Secrets.** The password never appears in an error, a log line, a
//!   `Debug` output or a statistic: URLs are shown through [`redact_url`]
//!   or rebuilt without it ([`PgManager::redacted_url`]).
//!
//! # Configuration from the environment
//!
//! [`PgConfig::from_env`] (and `PgPool::from_env()`) read `DATABASE_URL`,
//! `postgres://user:password@host:5432/dbname?option=value`, and every
//! `POOL_*` variable in [`POOL_VARIABLES`] (durations in milliseconds, e.g.
//! `POOL_ACQUIRE_TIMEOUT_MS=5000`). See [`PoolConfig`] for each setting's
//! default, range and reason, and [`PgConfig`] for the connection defaults.

mod config;
mod connection;
mod error;
mod manager;
mod pool;
mod url;

pub use config::{
    PgConfig, DEFAULT_APPLICATION_NAME, DEFAULT_KEEPALIVES_IDLE, DEFAULT_KEEPALIVES_INTERVAL,
    DEFAULT_KEEPALIVES_RETRIES,
};
pub use connection::PgConnection;
pub use error::PgError;
pub use manager::PgManager;
pub use pool::{Error, PgPool, PgPoolExt, PgPooledConnection};
pub use url::{redact_url, DATABASE_URL};

pub use pool_core::{
    ConfigError, ConfigIssue, ConnectionError, InitError, Manager, Phase, Pool, PoolConfig,
    PoolError, PooledConnection, Statistics, TimeoutError, POOL_VARIABLES,
};
pub use tokio_postgres;
pub use tokio_postgres::NoTls;
