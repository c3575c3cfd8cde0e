//! Read-only SQL through the pool, with a row limit and a statement timeout,
//! as JSON rows.
//!
//! [`run_read_only`] is what the MCP `query` tool calls. For one query it:
//!
//! 1. rejects empty input and transaction control (`BEGIN`, `COMMIT`,
//!    `ROLLBACK`, ...) before touching the pool;
//! 2. acquires a connection (the pool's `acquire_timeout` bounds the wait);
//! 3. opens a `READ ONLY` transaction and sets `SET LOCAL statement_timeout`,
//!    so the server refuses every write (SQLSTATE 25006) and cancels a
//!    statement that runs too long (57014);
//! 4. prepares the statement with the extended protocol, which accepts
//!    exactly **one** statement: `SELECT 1; COMMIT; DROP ...` is a syntax
//!    error, never three statements;
//! 5. if a result column has a type [`pgjson`] does not decode
//!    itself, re-prepares the query as
//!    `SELECT q.c1::text AS "name", ... FROM (<query>) AS q(c1, ...)` (inside
//!    a savepoint, so a query that cannot be wrapped — `SHOW`, `EXPLAIN` —
//!    simply keeps its own columns and the `unsupported_type` marker);
//! 6. binds a portal and fetches at most `max_rows + 1` rows, so a huge
//!    result is never transferred; one more row than asked means
//!    `truncated: true`;
//! 7. rolls the transaction back and returns the connection.
//!
//! The client side is bounded too: everything after the acquisition runs
//! under `statement_timeout` plus [`CLIENT_GRACE`]. If that expires (a server
//! that stopped answering), the request future is dropped; pool-pg then
//! closes that connection as dirty and cancels the request on the server.
//!
//! A refused write costs one reconnect: pool-pg closes a connection whose
//! server answered 25006 on return, because it cannot tell a `READ ONLY`
//! transaction from a server that became read-only (a demoted primary).
//!
//! A read-only transaction is a guard rail, not a sandbox: session-level
//! side effects such as advisory locks (`pg_advisory_lock`) outlive the
//! rollback. Point `DATABASE_URL` at a role that may only read.
//!
//! Duplicate column names get a suffix (`a`, `a_2`) so every row is a JSON
//! object with distinct keys.

mod statement;

use std::time::{Duration, Instant};

use pool_pg::tokio_postgres::Transaction;
use pool_pg::tokio_postgres::{self, Statement};
use pool_pg::PgPool;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::pgjson::{self, Cell};

/// Rows returned when the caller does not say.
pub const DEFAULT_MAX_ROWS: u32 = 100;
/// The most rows one query may return.
pub const MAX_ROWS_LIMIT: u32 = 1000;
/// The statement timeout when the caller does not say: 5 s.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest statement timeout a caller may ask for: 30 s.
pub const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than `statement_timeout` the client waits for the server
/// before it gives up on the connection.
pub const CLIENT_GRACE: Duration = Duration::from_secs(2);

/// The limits of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many rows are returned (1 ..= [`MAX_ROWS_LIMIT`]).
    pub max_rows: u32,
    /// The server cancels the statement after this long
    /// (1 ms ..= [`MAX_STATEMENT_TIMEOUT`]).
    pub statement_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_MAX_ROWS,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

impl Limits {
    /// Limits from optional caller input, or a message saying what to fix.
    pub fn from_input(max_rows: Option<u64>, timeout_ms: Option<u64>) -> Result<Self, String> {
        let max_rows = match max_rows {
            None => DEFAULT_MAX_ROWS,
            Some(n) if (1..=u64::from(MAX_ROWS_LIMIT)).contains(&n) => n as u32,
            Some(n) => {
                return Err(format!(
                    "max_rows must be between 1 and {MAX_ROWS_LIMIT}, got {n}"
                ))
            }
        };
        let max_ms = MAX_STATEMENT_TIMEOUT.as_millis() as u64;
        let statement_timeout = match timeout_ms {
            None => DEFAULT_STATEMENT_TIMEOUT,
            Some(ms) if (1..=max_ms).contains(&ms) => Duration::from_millis(ms),
            Some(ms) => {
                return Err(format!(
                    "timeout_ms must be between 1 and {max_ms}, got {ms}"
                ))
            }
        };
        Ok(Self {
            max_rows,
            statement_timeout,
        })
    }
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The key of this column in every row.
    pub name: String,
    /// The PostgreSQL type name as the server sent it (`int4`, `text`, or
    /// `text` for a column cast by the fallback).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// The rows of one query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryOutput {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// Each row as an object keyed by column name.
    pub rows: Vec<Map<String, Value>>,
    /// `rows.len()`.
    pub row_count: usize,
    /// Whether the query had more rows than `max_rows`.
    pub truncated: bool,
    /// Whether some columns were cast to text by the fallback.
    pub cast_to_text: bool,
    /// Time from acquisition to rollback, in milliseconds.
    pub elapsed_ms: f64,
}

/// Why a query failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueryError {
    /// The input was refused before the database saw it.
    Rejected(String),
    /// The pool gave no connection (timeout, unavailable, closed, ...).
    Pool(pool_pg::Error),
    /// PostgreSQL refused or failed the statement, or the connection broke.
    Postgres(tokio_postgres::Error),
    /// The server did not answer within `statement_timeout` +
    /// [`CLIENT_GRACE`].
    ClientTimeout(Duration),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Rejected(why) => f.write_str(why),
            QueryError::Pool(error) => write!(f, "{error}"),
            QueryError::Postgres(error) => f.write_str(&postgres_message(error)),
            QueryError::ClientTimeout(after) => write!(
                f,
                "the database did not answer within {} ms; the connection was closed",
                after.as_millis()
            ),
        }
    }
}

impl std::error::Error for QueryError {}

/// The server's message and SQLSTATE, or the client's error with its causes.
pub fn postgres_message(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs `sql` read-only under `limits`; see the module docs.
pub async fn run_read_only(
    pool: &PgPool,
    sql: &str,
    limits: Limits,
) -> Result<QueryOutput, QueryError> {
    let sql = statement::check(sql).map_err(QueryError::Rejected)?;
    let mut conn = pool.acquire().await.map_err(QueryError::Pool)?;
    let started = Instant::now();
    let budget = limits.statement_timeout + CLIENT_GRACE;
    // Cancel-safe: if the deadline drops this future mid-request, the
    // connection is returned dirty and pool-pg closes it.
    let fetched = tokio::time::timeout(budget, async {
        let mut tx = conn.build_transaction().read_only(true).start().await?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            limits.statement_timeout.as_millis()
        ))
        .await?;
        let (statement, cast_to_text) = prepare(&mut tx, sql).await?;
        let portal = tx.bind(&statement, &[]).await?;
        let rows = tx.query_portal(&portal, limits.max_rows as i32 + 1).await?;
        tx.rollback().await?;
        Ok::<_, tokio_postgres::Error>((statement, rows, cast_to_text))
    })
    .await;
    let (statement, mut rows, cast_to_text) = match fetched {
        Ok(Ok(fetched)) => fetched,
        Ok(Err(error)) => return Err(QueryError::Postgres(error)),
        Err(_elapsed) => return Err(QueryError::ClientTimeout(budget)),
    };
    let elapsed_ms = started.elapsed().as_micros() as f64 / 1000.0;
    drop(conn);

    let truncated = rows.len() > limits.max_rows as usize;
    rows.truncate(limits.max_rows as usize);
    let columns = columns_of(&statement);
    let rows = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let value = row.try_get::<_, Cell>(i).map_or_else(
                        |error| serde_json::json!({ "decode_error": error.to_string() }),
                        |cell| cell.0,
                    );
                    (column.name.clone(), value)
                })
                .collect()
        })
        .collect::<Vec<_>>();
    Ok(QueryOutput {
        row_count: rows.len(),
        columns,
        rows,
        truncated,
        cast_to_text,
        elapsed_ms,
    })
}

/// Prepares `sql`; re-prepares it with text casts when a column has a type
/// [`pgjson`] does not decode and the query can be wrapped.
async fn prepare(
    tx: &mut Transaction<'_>,
    sql: &str,
) -> Result<(Statement, bool), tokio_postgres::Error> {
    let statement = tx.prepare(sql).await?;
    let columns: Vec<(&str, bool)> = statement
        .columns()
        .iter()
        .map(|c| (c.name(), !pgjson::is_supported(c.type_())))
        .collect();
    if columns.iter().all(|&(_, cast)| !cast) {
        return Ok((statement, false));
    }
    let wrapped = statement::text_cast(sql, &columns);
    // A savepoint, because a failed prepare aborts the transaction.
    let savepoint = tx.transaction().await?;
    match savepoint.prepare(&wrapped).await {
        Ok(cast) => {
            savepoint.commit().await?;
            Ok((cast, true))
        }
        Err(_not_wrappable) => {
            savepoint.rollback().await?;
            Ok((statement, false))
        }
    }
}

fn columns_of(prepared: &Statement) -> Vec<Column> {
    let names = statement::unique_names(prepared.columns().iter().map(|c| c.name()));
    prepared
        .columns()
        .iter()
        .zip(names)
        .map(|(column, name)| Column {
            name,
            type_name: column.type_().name().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_input_within_their_ranges() {
        assert_eq!(Limits::from_input(None, None).unwrap(), Limits::default());
        assert_eq!(
            Limits::from_input(Some(1000), Some(30_000))
                .unwrap()
                .max_rows,
            1000
        );
        assert!(Limits::from_input(Some(0), None)
            .unwrap_err()
            .contains("max_rows"));
        assert!(Limits::from_input(None, Some(30_001))
            .unwrap_err()
            .contains("timeout_ms"));
    }
}
