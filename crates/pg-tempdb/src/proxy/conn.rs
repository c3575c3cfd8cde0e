//! One proxied connection: its two sockets, the forwarding between them, and
//! how they are closed.
//!
//! A [`Conn`] is owned by its task. Dropping it, on every exit path (the task
//! returning, panicking, or being aborted by `reset_all`, `close_all` or the
//! proxy's `Drop`), first closes both sockets the way that was requested
//! ([`End`]; a plain close if nothing was), then removes the connection from
//! the registry: in that order, so that the registry never forgets a socket
//! that is still open. The order is the order of `Conn`'s fields.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{RecvFlags, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{Mode, Shared};

/// Bound for connecting upstream. On loopback a connect succeeds or is
/// refused at once; the bound is for a upstream that drops packets.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most one read takes from a socket: the unit [`Mode::Delay`] holds.
const CHUNK: usize = 16 * 1024;
/// How many 4 KiB reads a clean close spends discarding unread bytes.
const DRAIN_READS: usize = 64;

/// How a connection is ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// RST to the client (`SO_LINGER` zero, then close); upstream closed.
    Reset,
    /// FIN to both sides: write half shut down, unread bytes discarded,
    /// then close.
    Close,
}

/// The [`End`] requested for one connection, shared by its registry entry
/// and its [`Conn`]. The first request wins.
#[derive(Debug, Default)]
pub(crate) struct Ending(AtomicU8);

const NOT_REQUESTED: u8 = 0;
const RESET: u8 = 1;
const CLOSE: u8 = 2;

impl Ending {
    /// Requests `end`; false if an end was already requested.
    pub(crate) fn request(&self, end: End) -> bool {
        let code = match end {
            End::Reset => RESET,
            End::Close => CLOSE,
        };
        self.0
            .compare_exchange(NOT_REQUESTED, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The end requested so far, if any.
    pub(crate) fn requested(&self) -> Option<End> {
        match self.0.load(Ordering::Acquire) {
            RESET => Some(End::Reset),
            CLOSE => Some(End::Close),
            _ => None,
        }
    }
}

/// A proxied connection, owned by its task.
pub(crate) struct Conn {
    // Field order matters: the sockets are closed before the connection
    // leaves the registry.
    sockets: Sockets,
    registration: Registration,
}

struct Sockets {
    client: TcpStream,
    /// `None` until connected upstream, and for a silent connection.
    upstream: Option<TcpStream>,
    ending: Arc<Ending>,
}

/// Removes the connection from the registry when dropped.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Conn {
    pub(crate) fn new(
        client: TcpStream,
        ending: Arc<Ending>,
        shared: Arc<Shared>,
        id: u64,
    ) -> Self {
        Self {
            sockets: Sockets {
                client,
                upstream: None,
                ending,
            },
            registration: Registration { shared, id },
        }
    }

    /// Serves the connection until either side closes or fails, or the task
    /// is aborted (every `.await` here is cancellable: dropping the future
    /// drops `self`, which closes the sockets). A silent connection only
    /// reads and discards until the client closes.
    pub(crate) async fn serve(
        mut self,
        mode: watch::Receiver<Mode>,
        upstream: SocketAddr,
        silent: bool,
    ) {
        let id = self.registration.id;
        let sockets = &mut self.sockets;
        if silent {
            discard_until_closed(&mut sockets.client).await;
            return;
        }
        let failure = match tokio::time::timeout(
            UPSTREAM_CONNECT_TIMEOUT,
            TcpStream::connect(upstream),
        )
        .await
        {
            Ok(Ok(stream)) => {
                set_nodelay(&sockets.client);
                set_nodelay(&stream);
                sockets.upstream = Some(stream);
                None
            }
            Ok(Err(e)) => Some(e),
            Err(_elapsed) => Some(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {UPSTREAM_CONNECT_TIMEOUT:?}"),
            )),
        };
        let Some(upstream_stream) = sockets.upstream.as_mut() else {
            // The nearest a proxy gets to the refusal a direct connect would
            // have met: the client's connection is reset.
            sockets.ending.request(End::Reset);
            tracing::debug!(
                target: "pg_tempdb::proxy",
                id,
                %upstream,
                error = ?failure,
                "upstream connect failed; resetting the client connection"
            );
            return;
        };
        let (client_read, client_write) = sockets.client.split();
        let (upstream_read, upstream_write) = upstream_stream.split();
        let (direction, outcome) = tokio::select! {
            outcome = pump(client_read, upstream_write, mode.clone()) => ("client to upstream", outcome),
            outcome = pump(upstream_read, client_write, mode) => ("upstream to client", outcome),
        };
        tracing::debug!(
            target: "pg_tempdb::proxy",
            id,
            direction,
            outcome = ?outcome,
            "proxied connection ended"
        );
    }
}

/// Forwards `from` to `to` until `from` ends or either fails, applying
/// [`Mode::Delay`] and [`Mode::Stall`] to every chunk.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut mode: watch::Receiver<Mode>,
) -> io::Result<()> {
    let mut chunk = vec![0; CHUNK];
    loop {
        if !unstalled(&mut mode).await {
            return Ok(());
        }
        let read = from.read(&mut chunk).await?;
        if read == 0 {
            return Ok(()); // End of stream.
        }
        let delay = match *mode.borrow_and_update() {
            Mode::Delay(delay) => delay,
            _ => Duration::ZERO,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // A chunk read as a stall begins is held too.
        if !unstalled(&mut mode).await {
            return Ok(());
        }
        to.write_all(&chunk[..read]).await?;
    }
}

/// Waits while the mode is [`Mode::Stall`]; false if the proxy is gone.
async fn unstalled(mode: &mut watch::Receiver<Mode>) -> bool {
    mode.wait_for(|mode| *mode != Mode::Stall).await.is_ok()
}

/// Reads and discards until the client closes or fails.
async fn discard_until_closed(client: &mut TcpStream) {
    let mut sink = [0; 4096];
    while let Ok(1..) = client.read(&mut sink).await {}
}

fn set_nodelay(stream: &TcpStream) {
    // Small protocol messages must not wait for Nagle's algorithm.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(target: "pg_tempdb::proxy", error = %e, "could not set TCP_NODELAY");
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        match self.ending.requested() {
            None => {}
            Some(End::Reset) => {
                if let Err(e) = self.client.set_zero_linger() {
                    tracing::warn!(
                        target: "pg_tempdb::proxy",
                        error = %e,
                        "could not set SO_LINGER to zero; the client sees a close, not a reset"
                    );
                }
            }
            Some(End::Close) => {
                shut_down_cleanly(&self.client);
                if let Some(upstream) = &self.upstream {
                    shut_down_cleanly(upstream);
                }
            }
        }
        // The fields drop next: closing the sockets.
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

/// Sends a FIN now (write half shut down) and discards the bytes the peer
/// sent that nobody read, so that the close that follows stays a FIN: Linux
/// answers a socket closed with unread data with an RST. Bounded; bytes that
/// arrive after the drain still turn the close into an RST.
fn shut_down_cleanly(stream: &TcpStream) {
    if let Err(e) = rustix::net::shutdown(stream, Shutdown::Write) {
        // ENOTCONN: the peer is already gone; nothing to shut down.
        tracing::debug!(target: "pg_tempdb::proxy", error = %e, "shutdown(SHUT_WR) failed");
    }
    let mut sink = [0; 4096];
    for _ in 0..DRAIN_READS {
        // Stop at end of stream, at "nothing more now" (EAGAIN) and at any
        // error (the socket is broken; there is nothing left to drain).
        match rustix::net::recv(stream, &mut sink, RecvFlags::DONTWAIT) {
            Ok((_, 1..)) => {}
            Ok(_) | Err(_) => break,
        }
    }
}
