//! Where the examples get their pool: `DATABASE_URL`, or a throwaway
//! PostgreSQL.
//!
//! [`Database::start`] reads the configuration first and fails fast:
//!
//! * with `DATABASE_URL` set, [`PgConfig::from_env`] reads it and every
//!   `POOL_*` variable, and reports every problem at once;
//! * without it, the `POOL_*` variables are checked first, then a throwaway
//!   PostgreSQL is started ([`TempDb`], from the machine's binaries) so the
//!   example runs out of the box; it lives as long as the [`Database`].
//!
//! Then the pool is built (opening `POOL_MIN_SIZE` connections). Each
//! failure is a [`StartupError`] whose message says what to change and whose
//! [`exit_code`](StartupError::exit_code) tells a supervisor a configuration
//! error (2) from a failure to start (1). Only the redacted URL is logged.
//!
//! [`Database::shutdown`] drains the pool within a deadline, then stops the
//! throwaway server, if any.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use pg_tempdb::{TempDb, TempDbError};
use pool_pg::{ConfigError, PgConfig, PgPool, PoolConfig, ShutdownReport, DATABASE_URL};

/// How long shutdown waits for borrowed connections: 30 s.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The pool, and the throwaway server behind it if there is one.
pub struct Database {
    /// The pool; clone it freely.
    pub pool: PgPool,
    /// Where the pool connects, password redacted.
    pub redacted_url: String,
    server: Option<TempDb>,
}

/// Why the pool could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartupError {
    /// `DATABASE_URL` or a `POOL_*` variable is invalid.
    Config(ConfigError),
    /// No `DATABASE_URL`, and the throwaway PostgreSQL did not start.
    TempDb(TempDbError),
    /// The pool could not open its first connections.
    Pool(pool_pg::Error),
    /// Starting the throwaway PostgreSQL panicked.
    Panicked(String),
}

impl StartupError {
    /// 2 for invalid configuration (fix and rerun), 1 for anything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            StartupError::Config(_) => ExitCode::from(2),
            StartupError::Pool(error) if error.is_config() => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::Config(error) => write!(f, "{error}"),
            StartupError::TempDb(error) => write!(
                f,
                "DATABASE_URL is not set and no throwaway PostgreSQL could be started: {error}. \
                 Suggestion: set DATABASE_URL=postgres://user:password@host:5432/dbname, \
                 or install the PostgreSQL server binaries (apt-get install postgresql)"
            ),
            StartupError::Pool(error) => write!(f, "{error}"),
            StartupError::Panicked(why) => {
                write!(f, "starting the throwaway PostgreSQL panicked: {why}")
            }
        }
    }
}

impl std::error::Error for StartupError {}

impl Database {
    /// Reads the configuration, starts a throwaway server if needed, and
    /// builds the pool; see the module docs.
    pub async fn start() -> Result<Self, StartupError> {
        let (config, server) = if std::env::var_os(DATABASE_URL).is_some() {
            (PgConfig::from_env().map_err(StartupError::Config)?, None)
        } else {
            let pool = PoolConfig::from_env().map_err(StartupError::Config)?;
            tracing::info!(target: "examples::database", "DATABASE_URL is not set: starting a throwaway PostgreSQL");
            let server = tokio::task::spawn_blocking(TempDb::start)
                .await
                .map_err(|join| StartupError::Panicked(join.to_string()))?
                .map_err(StartupError::TempDb)?;
            let config = PgConfig::new(&server.url(), pool).map_err(StartupError::Config)?;
            (config, Some(server))
        };
        let redacted_url = config.redacted_url();
        tracing::info!(
            target: "examples::database",
            url = %redacted_url,
            throwaway = server.is_some(),
            min_size = config.pool.min_size,
            max_size = config.pool.max_size,
            "connecting to {redacted_url}"
        );
        let pool = config.build().await.map_err(StartupError::Pool)?;
        Ok(Self {
            pool,
            redacted_url,
            server,
        })
    }

    /// The throwaway server, when `DATABASE_URL` was not set.
    pub fn throwaway_server(&self) -> Option<&TempDb> {
        self.server.as_ref()
    }

    /// Shuts the pool down, waiting up to `timeout` for borrowed
    /// connections (the pool logs its report under `pool_core::shutdown`),
    /// then stops the throwaway server.
    pub async fn shutdown(self, timeout: Duration) -> ShutdownReport {
        let report = self.pool.shutdown(timeout).await;
        if let Some(server) = self.server {
            // Stopping PostgreSQL blocks (bounded by pg-tempdb's own deadline).
            if let Err(join) = tokio::task::spawn_blocking(move || drop(server)).await {
                tracing::warn!(target: "examples::database", error = %join, "stopping the throwaway PostgreSQL failed");
            }
        }
        report
    }
}
