//! [`PgConnection`]: a tokio-postgres client, the task that drives its
//! socket, what the wire says about its session, and its prepared
//! statements, owned together.
//!
//! tokio-postgres splits a connection in two: the `Client` that sends
//! queries and the `Connection` future that does the I/O. The connector
//! spawns the future as a task and keeps its handle next to the client, so
//! the pair lives and dies as one:
//!
//! * Dropping a `PgConnection` aborts the task, which closes the socket at
//!   once; nothing outlives the pooled connection. (The server sees the
//!   socket close without a `Terminate` message, which PostgreSQL treats as
//!   an ordinary disconnect, rolling back any open transaction.)
//! * If a request was still in flight (the wire saw no `ReadyForQuery` for
//!   it: see `wire.rs`), dropping the connection also sends the server a
//!   cancel request from a spawned task, bounded by the connect timeout.
//!   Without it the server would run the abandoned query to completion
//!   (PostgreSQL notices a closed socket only when it next writes to it). A
//!   failed cancel is logged at `WARN` with target `pool_pg::connection`.
//! * When the task ends on its own with an error (the server terminated the
//!   backend, the network failed), the error is logged at `WARN` with target
//!   `pool_pg::connection` and counted in
//!   [`PgManager::connection_errors`](crate::backend::PgManager::connection_errors):
//!   it never vanishes. The client then reports
//!   [`is_closed`](tokio_postgres::Client::is_closed), which the pool's free
//!   `is_broken` check reads on every checkout and return.
//! * The statements the pool runs itself (the liveness check, the session
//!   check at connect, the settle probe, the session reset) are not the
//!   caller's: they are subtracted from the wire's count for `max_queries`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_postgres::{CancelToken, Client, Connection, SimpleQueryMessage};

use crate::cache::StatementCache;
use crate::connect::Setup;
use crate::error::describe;
use crate::wire::{Status, Unclean, Wire};

/// A pooled PostgreSQL connection: tokio-postgres's [`Client`] (through
/// `Deref`), a prepared-statement cache, and what the wire says about its
/// session.
///
/// ```no_run
/// # async fn demo(pool: &pool_pg::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = pool.acquire().await?;
/// // Prepared once on this connection, then one round trip per run.
/// let row = conn.query_one("SELECT $1::int4 + 1", &[&41]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
///
/// let before = conn.statements();
/// let tx = conn.transaction().await?; // tokio-postgres's own Transaction
/// tx.execute("SELECT 1", &[]).await?;
/// tx.commit().await?;
/// assert_eq!(conn.statements() - before, 3); // BEGIN, SELECT 1, COMMIT
/// assert!(!conn.is_dirty());
/// # Ok(()) }
/// ```
///
/// # Everything is tracked
///
/// The pool reads the connection's protocol stream itself (see
/// [`PgManager`](crate::backend::PgManager)), so whatever path a request takes,
/// this type's methods, the [`Client`] behind `Deref`, code generic over
/// `tokio_postgres::GenericClient` (pass `&*conn` or
/// [`client`](Self::client)), transactions, row streams, `COPY`, the pool
/// knows:
///
/// * how many statements the server finished
///   ([`statements`](Self::statements), for `max_queries`);
/// * whether a request is still running (a future or stream dropped before
///   its end) or a transaction block is open when the connection comes
///   back: the pool then lets what is queued finish (briefly, bounded) or
///   closes it, and never hands it on unclean;
/// * whether the server stopped taking writes (a demoted primary, a
///   standby): the pool then evicts every connection.
///
/// # Prepared statements
///
/// [`query`](Self::query), [`query_one`](Self::query_one),
/// [`query_opt`](Self::query_opt), [`query_raw`](Self::query_raw),
/// [`execute`](Self::execute) and [`execute_raw`](Self::execute_raw), given
/// SQL text, prepare it once per connection and reuse the named statement
/// (`POOL_STATEMENT_CACHE_SIZE`, default 256 per connection, least recently
/// used out; 0 turns the cache off); [`prepare_cached`](Self::prepare_cached)
/// does so explicitly, for use inside a transaction. Given a prepared
/// [`Statement`](tokio_postgres::Statement), they run it as it is. The
/// other `Client` methods (`query_typed`, `simple_query`, ..) are reached
/// through `Deref` and cache nothing.
///
/// When a cached statement went stale (a table it reads was altered:
/// SQLSTATE 0A000 "cached plan must not change result type", or the
/// statement is gone: 26000), its entry is dropped, and the call is run
/// again once if the connection is outside a transaction block (inside
/// one, the transaction is aborted and the error is returned).
pub struct PgConnection {
    pub(crate) client: Client,
    /// What the wire says about the session; see `wire.rs`.
    pub(crate) wire: Arc<Wire>,
    pub(crate) cache: Mutex<StatementCache>,
    /// The cache is on (read without the lock).
    pub(crate) cache_on: bool,
    /// Statements the pool ran itself: not the caller's.
    own_statements: u64,
    /// The task driving the socket; aborted on drop.
    task: JoinHandle<()>,
    /// Sends a cancel request for a request left in flight; taken on drop.
    cancel: Option<Canceller>,
}

impl PgConnection {
    /// The client, also reachable through `Deref`: requests sent through it
    /// are tracked like any other, but cache nothing.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client, mutably, also reachable through `DerefMut`.
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// `true` once the connection is gone: its socket task ended (the error,
    /// if any, was logged). Free: no I/O.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// A handle that aborts the socket task from outside (for the pool's
    /// forced shutdown).
    pub(crate) fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }

    /// How many statements the server finished for the callers of this
    /// connection since it was opened, successfully or not (its
    /// `CommandComplete` and `ErrorResponse` messages). Preparing a
    /// statement is not one; the pool's own checks are not counted.
    pub fn statements(&self) -> u64 {
        self.wire.statements().saturating_sub(self.own_statements)
    }

    /// How many prepared statements this connection's cache holds.
    pub fn cached_statements(&self) -> usize {
        self.cache.lock().len()
    }

    /// Whether the connection is, right now, in a state the next caller
    /// must not inherit: a request in flight, a transaction block open, a
    /// read-only session default of the caller's, or a server that
    /// stopped taking writes. Free: no I/O.
    pub fn is_dirty(&self) -> bool {
        self.wire.unclean().is_some()
    }

    /// Why the connection may not be reused as it is, if it may not.
    pub(crate) fn unclean(&self) -> Option<Unclean> {
        if self.is_closed() {
            return None;
        }
        self.wire.unclean()
    }

    /// Runs one of the pool's own simple-protocol requests, not counted as
    /// the caller's.
    pub(crate) async fn own_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
        let before = self.wire.statements();
        let result = self.client.simple_query(sql).await;
        self.own_statements += self.wire.statements().saturating_sub(before);
        result
    }

    /// Asks the server whether the session is read-only (`SHOW
    /// transaction_read_only`), for servers that do not report it.
    pub(crate) async fn ask_read_only(&mut self) -> Result<bool, tokio_postgres::Error> {
        let messages = self.own_query("SHOW transaction_read_only").await?;
        Ok(messages.iter().any(
            |message| matches!(message, SimpleQueryMessage::Row(row) if row.get(0) == Some("on")),
        ))
    }

    /// From now on, what the server finishes is the caller's.
    pub(crate) fn start_counting(&mut self) {
        self.own_statements = self.wire.statements();
    }

    /// Lets everything queued on the connection finish (an empty query
    /// answers after all of it), so the wire tells the truth.
    pub(crate) async fn flush(&mut self) -> Result<(), tokio_postgres::Error> {
        self.own_query("").await.map(drop)
    }

    /// Whether the transaction status is idle (outside a block).
    pub(crate) fn is_idle(&self) -> bool {
        self.wire.status() == Status::Idle
    }
}

impl Deref for PgConnection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        if self.wire.in_flight() && !self.client.is_closed() {
            if let Some(cancel) = self.cancel.take() {
                cancel(self.client.cancel_token());
            }
        }
        self.task.abort();
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("closed", &self.is_closed())
            .field("statements", &self.statements())
            .field("unclean", &self.wire.unclean())
            .field("cached_statements", &self.cached_statements())
            .finish_non_exhaustive()
    }
}

/// Where a connection task reports how it ended.
#[derive(Clone)]
pub(crate) struct TaskReport {
    /// `host:port (database, user)`, for the log line.
    pub(crate) server: Arc<str>,
    /// Bumped once for every task that ended with an error.
    pub(crate) errors: Arc<AtomicU64>,
}

/// Sends a cancel request for the connection the token belongs to.
pub(crate) type Canceller = Box<dyn FnOnce(CancelToken) + Send + Sync>;

/// Spawns the task that drives `connection` and pairs it with `client`
/// and its `wire`; `cancel` is used if the connection is dropped with a
/// request in flight.
pub(crate) fn spawn<S, T>(
    client: Client,
    connection: Connection<S, T>,
    wire: Arc<Wire>,
    setup: &Setup,
    cancel: Canceller,
) -> PgConnection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let report = setup.report.clone();
    let task = tokio::spawn(async move {
        // Cancel-safe: aborting drops the connection, which closes the socket.
        match connection.await {
            Ok(()) => tracing::debug!(
                target: "pool_pg::connection",
                server = %report.server,
                "connection closed"
            ),
            Err(error) => {
                report.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "pool_pg::connection",
                    server = %report.server,
                    sqlstate = error.code().map(|code| code.code()),
                    error = %describe(&error),
                    "connection to PostgreSQL ended with an error; the pool will replace it"
                );
            }
        }
    });
    PgConnection {
        client,
        wire,
        cache: Mutex::new(StatementCache::new(setup.cache_size)),
        cache_on: setup.cache_size > 0,
        own_statements: 0,
        task,
        cancel: Some(cancel),
    }
}
