//! One description of a database failure, shared by the MCP and HTTP front
//! ends.
//!
//! Every failure of [`crate::query::run_read_only`] is either the caller's
//! input ([`Failure::Invalid`]: refused before the database saw it) or a
//! [`DatabaseError`]: the symbolic code `DATABASE_ERROR`, a `kind` a client
//! can branch on, the full message, a hint saying what to do, whether a retry
//! may help, and the pool's statistics (the snapshot the pool error carries,
//! or one taken at once). The MCP server sends it as the `data` of a JSON-RPC
//! error with code [`DATABASE_ERROR_CODE`]; the HTTP example as the body of
//! a 5xx response.
//!
//! | kind | from | retryable |
//! |---|---|---|
//! | `timeout` | `PoolError::Timeout`: no connection within `POOL_ACQUIRE_TIMEOUT_MS` (`phase`: `wait`, `connect` or `validate`) | yes |
//! | `unavailable` | `PoolError::Unavailable`: the pool lost the database and is reconnecting | yes |
//! | `closed` | `PoolError::Closed`: the pool is shutting down | no |
//! | `exhausted` | `PoolError::Exhausted`: `try_acquire()` found nothing idle | yes |
//! | `connection` | `PoolError::Connection`: a connect failed in a way retrying cannot fix (wrong password, unknown database) | no |
//! | `configuration` | `PoolError::Config` / `Init` (only at start-up) | no |
//! | `read_only` | SQLSTATE 25006: the statement tried to write | no |
//! | `statement_timeout` | SQLSTATE 57014, or no answer within the timeout plus a grace period | yes |
//! | `connection_lost` | the connection broke during the statement (restart, network, `pg_terminate_backend`) | yes |
//! | `query` | any other error of the statement (syntax, missing table, permissions), with its `sqlstate` | no |

use pool_pg::tokio_postgres;
use pool_pg::{PgPool, Phase, Statistics};
use serde::Serialize;

use crate::query::{postgres_message, QueryError};

/// The symbolic code of every database failure.
pub const DATABASE_ERROR: &str = "DATABASE_ERROR";

/// The JSON-RPC error code the MCP server uses for [`DATABASE_ERROR`]:
/// -31001, outside JSON-RPC's reserved range (-32768 ..= -32000) and the
/// codes MCP itself uses.
pub const DATABASE_ERROR_CODE: i32 = -31001;

/// What went wrong, in a word a client can branch on; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// No connection within the acquire timeout.
    Timeout,
    /// The database is down; the pool is reconnecting.
    Unavailable,
    /// The pool is shut down.
    Closed,
    /// `try_acquire()` found no idle connection.
    Exhausted,
    /// A connect failed for good (credentials, database name).
    Connection,
    /// Invalid configuration or failed start-up.
    Configuration,
    /// The statement tried to write.
    ReadOnly,
    /// The statement ran too long.
    StatementTimeout,
    /// The connection broke during the statement.
    ConnectionLost,
    /// Any other statement error.
    Query,
}

impl ErrorKind {
    /// The kind as it appears in JSON (`timeout`, `read_only`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Closed => "closed",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::Connection => "connection",
            ErrorKind::Configuration => "configuration",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::StatementTimeout => "statement_timeout",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::Query => "query",
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout
                | ErrorKind::Unavailable
                | ErrorKind::Exhausted
                | ErrorKind::StatementTimeout
                | ErrorKind::ConnectionLost
        )
    }

    /// Whether the pool (not the statement) failed: the service is
    /// temporarily unable to serve, HTTP 503.
    pub fn is_pool_side(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout
                | ErrorKind::Unavailable
                | ErrorKind::Closed
                | ErrorKind::Exhausted
                | ErrorKind::Connection
                | ErrorKind::ConnectionLost
        )
    }
}

/// A database failure as the front ends report it.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseError {
    /// Always [`DATABASE_ERROR`].
    pub code: &'static str,
    /// What went wrong.
    pub kind: ErrorKind,
    /// The whole error, as the pool or PostgreSQL said it (never a password).
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// The phase that timed out, for `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// PostgreSQL's error code, when the server sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// Whether a retry may succeed.
    pub retryable: bool,
    /// The pool's statistics when it failed.
    pub statistics: Statistics,
}

/// Why a request failed: its input, or the database.
#[derive(Debug)]
pub enum Failure {
    /// Refused before the database saw it; the message says what to fix.
    Invalid(String),
    /// The pool or PostgreSQL failed.
    Database(Box<DatabaseError>),
}

impl Failure {
    /// Classifies a failed query; `pool` supplies statistics when the error
    /// carries none.
    pub fn from_query(error: QueryError, pool: &PgPool) -> Self {
        match error {
            QueryError::Rejected(why) => Failure::Invalid(why),
            QueryError::Pool(error) => {
                Failure::Database(Box::new(DatabaseError::from_pool(&error, pool)))
            }
            QueryError::Postgres(error) => Failure::Database(Box::new(from_postgres(&error, pool))),
            QueryError::ClientTimeout(_) => Failure::Database(Box::new(DatabaseError::new(
                ErrorKind::StatementTimeout,
                error.to_string(),
                "the database stopped answering; check its health, then retry",
                pool.statistics(),
            ))),
        }
    }
}

impl DatabaseError {
    fn new(kind: ErrorKind, message: String, hint: &str, statistics: Statistics) -> Self {
        Self {
            code: DATABASE_ERROR,
            kind,
            message,
            hint: hint.to_owned(),
            phase: None,
            sqlstate: None,
            retryable: kind.is_retryable(),
            statistics,
        }
    }

    /// Describes a pool error (from `acquire()`, `try_acquire()` or `build()`).
    pub fn from_pool(error: &pool_pg::Error, pool: &PgPool) -> Self {
        let (kind, hint) = if let Some(phase) = error.timeout_phase() {
            (ErrorKind::Timeout, match phase {
                Phase::Wait => "every connection was busy: retry, return connections sooner, or raise POOL_MAX_SIZE / POOL_ACQUIRE_TIMEOUT_MS",
                Phase::Connect => "the database did not accept a connection in time: check that it is up and reachable, then retry",
                _ => "the database was slow to answer the liveness check: check its load, then retry",
            })
        } else if error.is_unavailable() {
            (ErrorKind::Unavailable, "the pool lost the database and is reconnecting in the background: retry in a few seconds")
        } else if error.is_closed() {
            (
                ErrorKind::Closed,
                "the server is shutting down: reconnect to a running instance",
            )
        } else if error.is_exhausted() {
            (
                ErrorKind::Exhausted,
                "no idle connection: retry, or raise POOL_MAX_SIZE",
            )
        } else if error.is_config() || error.is_init() {
            (
                ErrorKind::Configuration,
                "fix the configuration named in the message",
            )
        } else {
            (
                ErrorKind::Connection,
                "check the user, password and database name in DATABASE_URL",
            )
        };
        let statistics = error
            .statistics()
            .cloned()
            .unwrap_or_else(|| pool.statistics());
        let mut described = Self::new(kind, error.to_string(), hint, statistics);
        described.phase = error.timeout_phase();
        described
    }
}

fn from_postgres(error: &tokio_postgres::Error, pool: &PgPool) -> DatabaseError {
    let sqlstate = error.code().map(|code| code.code().to_owned());
    let (kind, hint) = match sqlstate.as_deref() {
        Some("25006") => (ErrorKind::ReadOnly, "only reads are allowed: every query runs in a READ ONLY transaction"),
        Some("57014") => (ErrorKind::StatementTimeout, "the statement ran longer than its timeout: add a LIMIT, a WHERE clause or an index, or raise timeout_ms"),
        Some(code) if code.starts_with("08") || code.starts_with("57P") => (ErrorKind::ConnectionLost, "the connection broke during the statement (database restart or network failure): retry"),
        None if error.is_closed() => (ErrorKind::ConnectionLost, "the connection broke during the statement (database restart or network failure): retry"),
        _ => (ErrorKind::Query, "fix the statement: see the message and its SQLSTATE"),
    };
    let mut described = DatabaseError::new(kind, postgres_message(error), hint, pool.statistics());
    described.sqlstate = sqlstate;
    described
}
