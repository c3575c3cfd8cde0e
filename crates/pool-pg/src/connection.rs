//! [`PgConnection`]: a tokio-postgres client and the task that drives its
//! socket, owned together.
//!
//! tokio-postgres splits a connection in two: the `Client` that sends
//! queries and the `Connection` future that does the I/O. The connector
//! spawns the future as a task and keeps its handle next to the client, so
//! the pair lives and dies as one:
//!
//! * Dropping a `PgConnection` aborts the task, which closes the socket at
//!   once; nothing outlives the pooled connection. (The server sees the
//!   socket close without a `Terminate` message, which PostgreSQL treats as
//!   an ordinary disconnect outside a transaction.)
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

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Connection};

use crate::error::describe;

/// A pooled PostgreSQL connection: derefs to [`tokio_postgres::Client`].
///
/// ```no_run
/// # async fn demo(pool: &pool_pg::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = pool.acquire().await?;
/// let row = conn.query_one("SELECT $1::int4 + 1", &[&41]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
///
/// let tx = conn.transaction().await?; // `&mut Client` through DerefMut
/// tx.execute("SELECT 1", &[]).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct PgConnection {
    client: Client,
    /// The task driving the socket; aborted on drop.
    task: JoinHandle<()>,
}

impl PgConnection {
    /// The client, also reachable through `Deref`.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client, mutably (for transactions), also reachable through
    /// `DerefMut`.
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// `true` once the connection is gone: its socket task ended (the error,
    /// if any, was logged). Free: no I/O.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
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
        self.task.abort();
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("closed", &self.is_closed())
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

/// Spawns the task that drives `connection` and pairs it with `client`.
pub(crate) fn spawn<S, T>(
    client: Client,
    connection: Connection<S, T>,
    report: TaskReport,
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
    PgConnection { client, task }
}
