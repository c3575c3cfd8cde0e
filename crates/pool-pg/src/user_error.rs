//! [`Error`]: the one error type a user of `pool-pg` handles.
//!
//! Design: a function that acquires a connection and runs queries on it
//! meets two sources of failure, the pool (no connection within the
//! deadline, the database unavailable, the pool closed, a bad
//! configuration) and the database (a query failed). `Error` carries
//! either, unchanged, so `?` works on [`PgPool::acquire`](crate::PgPool::acquire)
//! and on every `tokio_postgres` call in one function returning
//! `Result<_, pool_pg::Error>`.
//!
//! Invariants:
//!
//! * `Display` of a pool failure is the pool's own message, verbatim (the
//!   phase, the values, the `POOL_*` variable to change); `source()` is the
//!   pool error's own source chain. A database failure is shown with the
//!   server's message and SQLSTATE (tokio-postgres' own `Display` is a bare
//!   `db error`); its `source()` is the `tokio_postgres::Error`.
//! * No part of it contains the password: the pool's messages describe a
//!   server by host, port, database and user, and PostgreSQL never echoes
//!   a password.

use std::error::Error as _;
use std::io;

use tokio_postgres::error::SqlState;

use crate::error::{describe, PgError};
use crate::pool::PoolError;
use pool_core::{ConfigError, ConnectionError, Phase, Statistics};

/// What `pool-pg` returns on failure: a pool error or a database error.
///
/// ```no_run
/// use std::time::Duration;
/// use pool_pg::{PgPool, PoolConfig};
///
/// // Both `?`s convert into `pool_pg::Error`.
/// async fn count(pool: &PgPool) -> Result<i64, pool_pg::Error> {
///     let conn = pool.acquire_timeout(Duration::from_millis(200)).await?;
///     let row = conn.query_one("SELECT count(*) FROM pg_class", &[]).await?;
///     Ok(row.get(0))
/// }
///
/// # async fn demo(pool: PgPool) {
/// match count(&pool).await {
///     Ok(n) => println!("{n} relations"),
///     Err(error) if error.is_retryable() => eprintln!("try again: {error}"),
///     Err(error) => eprintln!("failed: {error}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool failed: a timeout (with its phase, a statistics snapshot
    /// and the last connection error), the database unavailable, the pool
    /// closed, nothing idle for `try_acquire()`, a connect that retrying
    /// cannot fix, a failed start or an invalid configuration. Its message
    /// says what to change.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The database (or the connection to it) failed a request.
    #[error("{}", describe(.0))]
    Database(#[from] tokio_postgres::Error),
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Error::Pool(PoolError::Config(error))
    }
}

impl Error {
    /// The pool's error, if the pool failed.
    pub fn pool(&self) -> Option<&PoolError> {
        match self {
            Error::Pool(error) => Some(error),
            Error::Database(_) => None,
        }
    }

    /// The pool's error, by value, if the pool failed.
    pub fn into_pool(self) -> Option<PoolError> {
        match self {
            Error::Pool(error) => Some(error),
            Error::Database(_) => None,
        }
    }

    /// The database error, if a request failed.
    pub fn database(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Error::Database(error) => Some(error),
            Error::Pool(_) => None,
        }
    }

    /// The database error, by value, if a request failed.
    pub fn into_database(self) -> Option<tokio_postgres::Error> {
        match self {
            Error::Database(error) => Some(error),
            Error::Pool(_) => None,
        }
    }

    /// True when no connection came within the deadline (any phase: see
    /// [`timeout_phase`](Self::timeout_phase)).
    pub fn is_timeout(&self) -> bool {
        self.pool().is_some_and(PoolError::is_timeout)
    }

    /// The phase that ran out of time, for a timeout.
    pub fn timeout_phase(&self) -> Option<Phase> {
        self.pool().and_then(PoolError::timeout_phase)
    }

    /// True when the pool lost the database and is reconnecting.
    pub fn is_unavailable(&self) -> bool {
        self.pool().is_some_and(PoolError::is_unavailable)
    }

    /// True when the pool is closed (shut down or dropped).
    pub fn is_closed(&self) -> bool {
        self.pool().is_some_and(PoolError::is_closed)
    }

    /// True when `try_acquire()` found nothing idle.
    pub fn is_exhausted(&self) -> bool {
        self.pool().is_some_and(PoolError::is_exhausted)
    }

    /// True for an invalid configuration (never retryable).
    pub fn is_config(&self) -> bool {
        self.pool().is_some_and(PoolError::is_config)
    }

    /// True when the pool could not open its first `min_size` connections.
    pub fn is_init(&self) -> bool {
        self.pool().is_some_and(PoolError::is_init)
    }

    /// The connect or liveness-check failure behind a pool error (the last
    /// one, for a timeout); its [`backend`](ConnectionError::backend) is
    /// the [`PgError`] with the server's answer.
    pub fn connection_error(&self) -> Option<&ConnectionError<PgError>> {
        self.pool().and_then(PoolError::connection_error)
    }

    /// The pool's statistics snapshot the error carries (timeouts,
    /// unavailable, exhausted).
    pub fn statistics(&self) -> Option<&Statistics> {
        self.pool().and_then(PoolError::statistics)
    }

    /// The SQLSTATE the server sent: for a failed request, or for the
    /// connect or liveness check behind a pool error (e.g. `28P01` for a
    /// wrong password). `None` when the server said nothing (a timeout, a
    /// refused TCP connect, a lost connection).
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            Error::Database(error) => error.code(),
            Error::Pool(_) => self
                .connection_error()
                .and_then(ConnectionError::backend)
                .and_then(PgError::code),
        }
    }

    /// Whether the same work, tried again (on a connection acquired
    /// anew), may succeed. True for:
    ///
    /// * pool errors that pass: a timeout of any phase, the database
    ///   unavailable while the pool reconnects, nothing idle for
    ///   `try_acquire()`;
    /// * these SQLSTATEs: `40001` serialization_failure, `40P01`
    ///   deadlock_detected, class `08` connection exceptions, `57P01`
    ///   admin_shutdown, `57P02` crash_shutdown, `57P03` cannot_connect_now,
    ///   `25006` read_only_sql_transaction (a write that reached a primary
    ///   demoted by a failover);
    /// * a request whose connection was lost without a SQLSTATE (the
    ///   connection closed, or an I/O error on its socket).
    ///
    /// False for everything else: a closed pool, an invalid configuration,
    /// a failed start, a connect that retrying cannot fix (wrong password,
    /// unknown database), and every other SQLSTATE (a syntax error, a
    /// constraint violation...). Retrying a statement whose connection was
    /// lost may run it twice if it had committed: that call is the
    /// caller's.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Pool(error) => {
                error.is_timeout() || error.is_unavailable() || error.is_exhausted()
            }
            Error::Database(error) => match error.code() {
                Some(code) => is_retryable_sqlstate(code),
                None => error.is_closed() || has_io_source(error),
            },
        }
    }
}

/// The SQLSTATEs after which a new attempt may succeed (see
/// [`Error::is_retryable`]).
fn is_retryable_sqlstate(code: &SqlState) -> bool {
    let code = code.code();
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "25006"
        )
}

/// Whether the socket under the request failed.
fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pool_is_not_retryable_and_says_so() {
        let error = Error::from(PoolError::Closed);
        assert!(error.is_closed());
        assert!(!error.is_retryable());
        assert_eq!(error.to_string(), PoolError::Closed.to_string());
        assert!(error.sqlstate().is_none());
    }

    #[test]
    fn a_configuration_error_keeps_its_message_and_is_not_retryable() {
        let config = pool_core::PoolConfig::default().max_size(0);
        let Err(issue) = config.validate() else {
            panic!("max_size 0 is invalid");
        };
        let expected = issue.to_string();
        let error = Error::from(issue);
        assert!(error.is_config());
        assert!(!error.is_retryable());
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn the_retryable_sqlstates_are_the_transient_ones() {
        for code in [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ] {
            assert!(is_retryable_sqlstate(&code), "{}", code.code());
        }
        for code in [
            SqlState::SYNTAX_ERROR,
            SqlState::UNIQUE_VIOLATION,
            SqlState::INVALID_PASSWORD,
        ] {
            assert!(!is_retryable_sqlstate(&code), "{}", code.code());
        }
    }

    #[test]
    fn a_client_side_database_error_is_not_retryable() {
        let parse = "postgres://app@db:notaport/x"
            .parse::<tokio_postgres::Config>()
            .unwrap_err();
        let error = Error::from(parse);
        assert!(error.database().is_some());
        assert!(!error.is_retryable());
        assert!(
            error.to_string().starts_with("invalid connection string"),
            "{error}"
        );
        assert!(error.source().is_some());
    }
}
