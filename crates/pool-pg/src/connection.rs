//! [`PgConnection`]: a tokio-postgres client, the task that drives its
//! socket, and what the pool knows about its session, owned together.
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
//! * If a request was still in flight (its future was dropped: see
//!   `session.rs`), dropping the connection also sends the server a cancel
//!   request from a spawned task, bounded by the connect timeout. Without
//!   it the server would run the abandoned query to completion (PostgreSQL
//!   notices a closed socket only when it next writes to it). A failed
//!   cancel is logged at `WARN` with target `pool_pg::connection`.
//! * When the task ends on its own with an error (the server terminated the
//!   backend, the network failed), the error is logged at `WARN` with target
//!   `pool_pg::connection` and counted in
//!   [`PgManager::connection_errors`](crate::PgManager::connection_errors):
//!   it never vanishes. The client then reports
//!   [`is_closed`](tokio_postgres::Client::is_closed), which the pool's free
//!   `is_broken` check reads on every checkout and return.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{CancelToken, Client, Connection, Socket};

use crate::error::describe;
use crate::session::Session;

/// A pooled PostgreSQL connection: tokio-postgres's [`Client`] plus
/// statement counting and dirty tracking.
///
/// ```no_run
/// # async fn demo(pool: &pool_pg::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = pool.acquire().await?;
/// let row = conn.query_one("SELECT $1::int4 + 1", &[&41]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
///
/// let before = conn.statements();
/// let tx = conn.transaction().await?; // a counting `PgTransaction`
/// tx.execute("SELECT 1", &[]).await?;
/// tx.commit().await?;
/// assert_eq!(conn.statements() - before, 3); // BEGIN, SELECT 1, COMMIT
/// assert!(!conn.is_dirty());
/// # Ok(()) }
/// ```
///
/// # What counts
///
/// The methods of this type that send SQL have the names and parameters of
/// [`Client`]'s and count what they send ([`statements`](Self::statements)),
/// which the pool compares with `max_queries` when the connection comes
/// back: `prepare`, `prepare_typed`, `query`, `query_one`, `query_opt`,
/// `query_raw`, `query_scalar`, `query_one_scalar`, `query_opt_scalar`,
/// `query_typed`, `query_typed_one`, `query_typed_opt`, `query_typed_raw`,
/// `execute`, `execute_typed`, `execute_raw` (one statement each),
/// `simple_query`, `simple_query_raw`,
/// `batch_execute` (one per non-empty `;`-separated statement; semicolons in
/// quotes, dollar quotes, comments and `BEGIN ATOMIC` bodies do not count),
/// and [`transaction`](Self::transaction) /
/// [`build_transaction`](Self::build_transaction), which return a
/// [`PgTransaction`](crate::PgTransaction) that counts the same way (its
/// `BEGIN`, its statements, its `COMMIT` or `ROLLBACK`). The pool's own
/// liveness check (`SELECT 1`) does not count.
///
/// Statement methods accept a [`TrackedStatement`](crate::TrackedStatement):
/// a `&str`, `&String` or prepared `Statement`, as with tokio-postgres.
///
/// Everything else of `Client` (`cancel_token`, `is_closed`,
/// `check_connection`, `copy_in`, `copy_out`, ...) is reachable through
/// `Deref` and is neither counted nor tracked; so are requests sent through
/// [`client`](Self::client) explicitly (`conn.client().query(..)`). The pool
/// cannot protect the next caller from those: a `copy_in` abandoned
/// mid-way, say, is not noticed.
///
/// # Dirty connections
///
/// A connection is [dirty](Self::is_dirty) when the next caller must not
/// inherit it, and the pool closes it on return
/// (`closed_by_reason.dirty`) instead of reusing it:
///
/// * a request is still in flight: its future was dropped before it
///   completed (a `tokio::time::timeout`, a cancelled task); the server is
///   sent a cancel request when the connection closes;
/// * a transaction block is open: `BEGIN` / `START TRANSACTION` ran as SQL
///   without a matching `COMMIT`, `ROLLBACK`, `END`, `ABORT` or
///   `PREPARE TRANSACTION` (a [`PgTransaction`](crate::PgTransaction) that is
///   dropped uncommitted is *not* dirty: tokio-postgres sends `ROLLBACK`
///   ahead of anything the next caller runs);
/// * a call containing transaction control failed, so whether a block is
///   open is unknown (until a later `ROLLBACK` or `COMMIT` succeeds);
/// * a transaction-control statement was prepared, so its later runs cannot
///   be followed.
///
/// Closing is always safe: the server rolls back what the session left
/// open. Session settings (`SET`, temporary tables, `LISTEN`, advisory
/// locks) are not tracked and do carry over to the next caller.
pub struct PgConnection {
    pub(crate) client: Client,
    /// What the pool knows about the session; see `session.rs`.
    pub(crate) session: Session,
    /// The task driving the socket; aborted on drop.
    task: JoinHandle<()>,
    /// Sends a cancel request for a request left in flight; taken on drop.
    cancel: Option<Canceller>,
}

impl PgConnection {
    /// The client, also reachable through `Deref`. Requests sent through it
    /// directly are neither counted nor tracked.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client, mutably, also reachable through `DerefMut`. Transactions
    /// started on it directly are neither counted nor tracked: prefer
    /// [`transaction`](Self::transaction).
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

    /// How many statements this connection has sent through its counting
    /// methods since it was opened (see [What counts](#what-counts)).
    pub fn statements(&self) -> u64 {
        self.session.statements()
    }

    /// Whether the pool will close this connection on return instead of
    /// reusing it (see [Dirty connections](#dirty-connections)). Free: no
    /// I/O.
    pub fn is_dirty(&self) -> bool {
        self.session.dirt().is_some()
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
        if self.session.in_flight() {
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
            .field("dirty", &self.session.dirt())
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

/// Spawns the task that drives `connection` and pairs it with `client`;
/// `cancel` is used if the connection is dropped with a request in flight.
pub(crate) fn spawn<S, T>(
    client: Client,
    connection: Connection<S, T>,
    report: TaskReport,
    cancel: Canceller,
) -> PgConnection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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
        session: Session::default(),
        task,
        cancel: Some(cancel),
    }
}

/// A [`Canceller`] that connects through `tls` and gives up after `timeout`.
/// It spawns on the current tokio runtime; without one (a connection
/// dropped after its runtime shut down) there is nothing to send from, and
/// the server finishes the abandoned request on its own.
pub(crate) fn canceller<T>(tls: T, server: Arc<str>, timeout: Duration) -> Canceller
where
    T: MakeTlsConnect<Socket> + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    Box::new(move |token: CancelToken| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                target: "pool_pg::connection",
                server = %server,
                "no tokio runtime to send a cancel request from; the server finishes the abandoned request on its own"
            );
            return;
        };
        // Detached on purpose: the outcome is logged, and the timeout
        // bounds it.
        drop(runtime.spawn(async move {
            match tokio::time::timeout(timeout, token.cancel_query(tls)).await {
                Ok(Ok(())) => tracing::debug!(
                    target: "pool_pg::connection",
                    server = %server,
                    "sent a cancel request for a request abandoned mid-way"
                ),
                Ok(Err(error)) => tracing::warn!(
                    target: "pool_pg::connection",
                    server = %server,
                    error = %describe(&error),
                    "could not cancel a request abandoned mid-way; the server finishes it on its own"
                ),
                Err(_elapsed) => tracing::warn!(
                    target: "pool_pg::connection",
                    server = %server,
                    timeout_ms = timeout.as_millis() as u64,
                    "the cancel request for a request abandoned mid-way timed out; the server finishes it on its own"
                ),
            }
        }));
    })
}
