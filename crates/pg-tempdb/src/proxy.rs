//! [`FaultProxy`]: an in-process TCP proxy between a client (the pool under
//! test) and a server, with network faults a test switches on and off.
//!
//! # Design
//!
//! One accept-loop task, and one task per proxied connection that owns both
//! of its sockets (client side and upstream side) and forwards in both
//! directions (two pumps in one `select!`, so the connection ends when either
//! direction ends: a close, an error, or a reset on either side; see
//! `conn.rs`). The [`Mode`] lives in a `watch` channel: `set_mode` writes it,
//! every task reads it. A registry under one mutex (`registry.rs`, which
//! states the invariant) holds the listening socket and, per connection, how
//! it should end and its task's abort handle, so the one-shot faults can
//! reach every connection.
//!
//! **Invariant:** [`FaultProxy::connections`] counts the connections whose
//! sockets may still be open; it drops only after a connection's sockets are
//! closed, so `connections() == 0` means every proxied socket is closed.
//!
//! Ending connections from outside (`reset_all`, `close_all`, `Drop`) marks
//! each connection with how it ends and aborts its task. An aborted task is
//! never polled again, so no byte is forwarded after the call returns
//! (unless the task was being polled at that instant on another thread); its
//! sockets are closed the requested way when the runtime drops the task,
//! normally within a millisecond. Tests wait for that state with
//! `connections()`.
//!
//! `Refuse` is the one mode the kernel enforces: the listening socket is
//! closed, and bound again on the same port when the mode leaves `Refuse`
//! (see [`FaultProxy::set_mode`] for the race this has and how it is
//! bounded).

mod conn;
mod registry;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use crate::server::TempDb;
use conn::End;
use registry::Shared;

/// What the proxy does with traffic. Switch it at any time with
/// [`FaultProxy::set_mode`]; the default is [`Mode::PassThrough`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Forward everything as it arrives.
    #[default]
    PassThrough,
    /// Hold every chunk (one read from a socket, up to 16 KiB), in either
    /// direction, for this long before forwarding it; order is kept. The
    /// chunks of one direction are held one after another, so this is a
    /// slow link as well as a long one: a request/response round trip gains
    /// at least twice the delay. Applies to open connections from their next
    /// chunk; a chunk already held keeps the delay it started with.
    Delay(Duration),
    /// Forward nothing, in either direction, and keep every socket open,
    /// like a network that silently stops carrying packets. Bytes sent
    /// meanwhile wait in the proxy and in the kernel's socket buffers and
    /// are **delivered, in order, when the mode leaves `Stall`**; nothing is
    /// dropped. Applies to open connections at once. New connections are
    /// still accepted and connected upstream, and stall too. A side that
    /// closes during the stall may go unnoticed until forwarding resumes.
    Stall,
    /// Refuse new connections: the listening socket is closed, so a client's
    /// connect fails at once with `ECONNREFUSED`, exactly as with a server
    /// that is down. Open connections keep flowing. Leaving `Refuse` binds
    /// the same port again. Refusals happen in the kernel, so the proxy
    /// cannot count them (there is no `refused()`). A connect the kernel had
    /// completed but the proxy had not accepted yet when `Refuse` began is
    /// reset.
    Refuse,
    /// Accept new connections but never connect upstream and never answer:
    /// their bytes are read and discarded until the client closes, and they
    /// stay silent after the mode changes. Counted by `accepted()` and, while
    /// open, by `connections()`; `reset_all`/`close_all` end them. Open
    /// connections keep flowing.
    AcceptThenSilence,
}

/// An in-process TCP proxy on `127.0.0.1` in front of a server, injecting
/// faults between a client and it: delays, stalls, refused connects, silent
/// accepts, resets and clean closes. See [`Mode`] for the faults that stay
/// on and [`reset_all`](Self::reset_all) and [`close_all`](Self::close_all)
/// for one-shot ones.
///
/// Each accepted connection gets its own upstream connection (bounded by
/// 5 s). If that fails, e.g. because the server is down, the client's
/// connection is reset right after it was accepted: the nearest a proxy gets
/// to the refusal a direct connect would meet. It still counts in
/// [`accepted`](Self::accepted), which is how outage tests measure a pool's
/// reconnect rate.
///
/// Dropping it closes the port and every proxied connection (their clients
/// see the connection closed); it never panics. It is `Send + Sync`: share
/// it between tasks behind an `Arc`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pg_tempdb::{FaultProxy, Mode, TempDb};
///
/// let db = TempDb::start()?;
/// let proxy = FaultProxy::for_db(&db).await?;
/// let (client, connection) = proxy.config_for(&db).connect(tokio_postgres::NoTls).await?;
/// tokio::spawn(connection);
///
/// proxy.set_mode(Mode::Refuse)?; // new connects fail, `client` still works
/// client.simple_query("SELECT 1").await?;
/// assert_eq!(proxy.reset_all(), 1); // `client` sees "connection reset"
/// # Ok(()) }
/// ```
pub struct FaultProxy {
    shared: Arc<Shared>,
    accept_task: AbortHandle,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on `127.0.0.1` and a free port, in
    /// [`Mode::PassThrough`]. Must be called inside a tokio runtime; the
    /// proxy's tasks run on it.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let runtime = Handle::try_current().map_err(|_| {
            io::Error::other(
                "FaultProxy::start must be called inside a tokio runtime (e.g. in a \
                 #[tokio::test]): the proxy's tasks run on it",
            )
        })?;
        let (shared, accept_task) = Shared::start(upstream, runtime)?;
        Ok(Self {
            shared,
            accept_task,
        })
    }

    /// Starts a proxy in front of `db` (upstream `127.0.0.1:db.port()`).
    pub async fn for_db(db: &TempDb) -> io::Result<Self> {
        Self::start(SocketAddr::from((Ipv4Addr::LOCALHOST, db.port()))).await
    }

    /// The proxy's address; connect here instead of to the server.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The proxy's port. It stays the same for the proxy's lifetime, also
    /// across [`Mode::Refuse`].
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// [`TempDb::url`] with the proxy's port: same user, password and
    /// database. (`db` should be the proxy's upstream; this is not checked.)
    pub fn url_for(&self, db: &TempDb) -> String {
        db.url_at(self.port())
    }

    /// [`TempDb::config`] with the proxy's port: same user, password and
    /// database. (`db` should be the proxy's upstream; this is not checked.)
    pub fn config_for(&self, db: &TempDb) -> tokio_postgres::Config {
        db.config_at(self.port())
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Switches the mode; it holds for new connections, and for open ones
    /// as [`Mode`] describes, from the moment this returns.
    ///
    /// Only leaving [`Mode::Refuse`] can fail: it binds the proxy's port
    /// again, and between closing and binding another socket may take it.
    /// A socket that holds the port briefly is waited out: this retries for
    /// up to 1 s (blocking the calling thread meanwhile, only in that case).
    /// If the port is still taken, the error says so and the proxy stays in
    /// `Refuse`; start a new proxy.
    pub fn set_mode(&self, mode: Mode) -> io::Result<()> {
        self.shared.set_mode(mode)
    }

    /// Resets every open proxied connection, as a crashed server or a
    /// firewall would: the client side gets an RST (`SO_LINGER` zero, then
    /// close), so the client sees "connection reset"; the upstream side is
    /// closed. Returns how many connections it hit (those not already being
    /// ended). New connections are unaffected.
    pub fn reset_all(&self) -> usize {
        self.shared.end_all(End::Reset)
    }

    /// Closes every open proxied connection cleanly, as a server shutting
    /// down would: both sides get a FIN (write half shut down, unread bytes
    /// discarded, then close), so the client sees end of stream. Returns how
    /// many connections it hit (those not already being ended). New
    /// connections are unaffected.
    pub fn close_all(&self) -> usize {
        self.shared.end_all(End::Close)
    }

    /// Proxied connections currently open: accepted and not yet closed on
    /// the proxy's side, including silent ones and ones still connecting
    /// upstream. Drops when a connection's sockets are closed.
    pub fn connections(&self) -> usize {
        self.shared.connections()
    }

    /// TCP connections accepted since start, in every mode (including
    /// [`Mode::AcceptThenSilence`] and connections whose upstream connect
    /// then failed). Connects refused in [`Mode::Refuse`] are not accepted,
    /// so not counted.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.close();
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .field("accepted", &self.accepted())
            .field("connections", &self.shared.try_connections())
            .finish()
    }
}
