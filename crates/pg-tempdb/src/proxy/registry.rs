//! The state the proxy handle, the accept loop and the connection tasks
//! share ([`Shared`]), and the accept loop.
//!
//! One std mutex guards the registry ([`State`]): the listening socket and,
//! per connection, how it should end and its task's abort handle. The mutex
//! is never held across an `.await`, nor while spawning or aborting a task
//! (either may drop a connection, whose guard takes the mutex), and only
//! briefly by the accept loop's `poll_accept`.
//!
//! **Invariant:** the number of registry entries is the number of proxied
//! connections whose sockets may be open. An entry is inserted before its
//! task is spawned ([`Shared::admit`]) and removed by the task's
//! [`Conn`](super::conn::Conn) guard after both sockets are closed, on every
//! exit path (either side closing, `reset_all`, `close_all`, the proxy's
//! `Drop`, a panic). So zero entries means every proxied socket is closed.
//!
//! The listening socket is `None` exactly while the mode is `Refuse` (and
//! after `Drop`). `set_mode` replaces it before it publishes the new mode,
//! and the accept loop re-polls on every mode change, so the loop never
//! waits on a socket that is gone.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::conn::{Conn, End, Ending};
use super::Mode;

/// How long leaving [`Mode::Refuse`] keeps trying to bind the port again
/// while another socket holds it (e.g. another test probing for a free
/// port, which holds it for microseconds).
const REBIND_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two attempts to bind the port again.
const REBIND_PAUSE: Duration = Duration::from_millis(10);
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop
/// does not spin on an error that persists.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Backlog of the listening socket.
const BACKLOG: u32 = 1024;

/// What the proxy handle, the accept loop and the connection tasks share.
pub(crate) struct Shared {
    /// The proxy's address: `127.0.0.1` and a port fixed at start.
    pub(crate) addr: SocketAddr,
    pub(crate) upstream: SocketAddr,
    /// To register a socket bound again outside any task (in `set_mode`).
    runtime: Handle,
    pub(crate) mode: watch::Sender<Mode>,
    /// Every TCP connection accepted since start, in every mode.
    pub(crate) accepted: AtomicU64,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// Serializes `set_mode`, whose rebinding runs outside `state`.
    switching: Mutex<()>,
}

/// The registry: everything that changes under [`Shared::state`].
struct State {
    /// `None` while refusing and after the proxy is dropped.
    listener: Option<TcpListener>,
    connections: HashMap<u64, Entry>,
    /// Set by `Drop`: admit no more connections.
    closed: bool,
}

/// A registered connection.
struct Entry {
    ending: Arc<Ending>,
    /// `None` only while the task is being spawned (see [`Shared::admit`]).
    task: Option<AbortHandle>,
}

impl Shared {
    /// Binds `127.0.0.1` on a free port and spawns the accept loop on
    /// `runtime`.
    pub(crate) fn start(
        upstream: SocketAddr,
        runtime: Handle,
    ) -> io::Result<(Arc<Self>, AbortHandle)> {
        let _runtime = runtime.enter();
        let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let shared = Arc::new(Self {
            addr: listener.local_addr()?,
            upstream,
            runtime: runtime.clone(),
            mode: watch::Sender::new(Mode::PassThrough),
            accepted: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            state: Mutex::new(State {
                listener: Some(listener),
                connections: HashMap::new(),
                closed: false,
            }),
            switching: Mutex::new(()),
        });
        let accept_task = runtime.spawn(accept_loop(Arc::clone(&shared)));
        Ok((shared, accept_task.abort_handle()))
    }

    /// See [`FaultProxy::set_mode`](super::FaultProxy::set_mode).
    pub(crate) fn set_mode(&self, mode: Mode) -> io::Result<()> {
        let _switching = lock(&self.switching);
        if mode == Mode::Refuse {
            let listener = lock(&self.state).listener.take();
            drop(listener); // Closed before `set_mode` returns: refusals start now.
        } else if lock(&self.state).listener.is_none() {
            let listener = self.bind_again()?;
            lock(&self.state).listener = Some(listener);
        }
        // After the listening socket is in place: the accept loop re-polls on this.
        self.mode.send_replace(mode);
        Ok(())
    }

    /// Requests `end` for every open connection not already ending and
    /// aborts their tasks; returns how many it hit.
    pub(crate) fn end_all(&self, end: End) -> usize {
        let (hit, tasks) = {
            let state = lock(&self.state);
            let mut hit = 0;
            let mut tasks = Vec::new();
            for entry in state.connections.values() {
                if entry.ending.request(end) {
                    hit += 1;
                    tasks.extend(entry.task.clone());
                }
            }
            (hit, tasks)
        };
        // Outside the lock: a task dropped by `abort` takes it.
        tasks.iter().for_each(AbortHandle::abort);
        hit
    }

    /// For the proxy's `Drop`: admits no more connections, closes the
    /// listening socket and cleanly closes every connection (those already
    /// being reset stay reset).
    pub(crate) fn close(&self) {
        let (listener, tasks) = {
            let mut state = lock(&self.state);
            state.closed = true;
            let tasks: Vec<AbortHandle> = state
                .connections
                .values()
                .filter_map(|entry| {
                    entry.ending.request(End::Close);
                    entry.task.clone()
                })
                .collect();
            (state.listener.take(), tasks)
        };
        drop(listener);
        tasks.iter().for_each(AbortHandle::abort);
    }

    /// Open connections (registry entries).
    pub(crate) fn connections(&self) -> usize {
        lock(&self.state).connections.len()
    }

    /// Open connections, or `None` if the registry is locked right now (for
    /// `Debug`, which must never wait).
    pub(crate) fn try_connections(&self) -> Option<usize> {
        Some(self.state.try_lock().ok()?.connections.len())
    }

    /// Removes a connection from the registry; its sockets are closed.
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.state).connections.remove(&id);
    }

    /// The current listening socket's `poll_accept`; pending while refusing
    /// (the accept loop is woken by the mode change instead).
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match &lock(&self.state).listener {
            Some(listener) => listener.poll_accept(cx),
            None => Poll::Pending,
        }
    }

    /// Registers `client` and spawns its task. Two steps, so that the lock
    /// is not held while spawning (a runtime that is shutting down drops the
    /// task, and so its guard, right inside `spawn`).
    fn admit(self: &Arc<Self>, client: TcpStream, silent: bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ending = Arc::new(Ending::default());
        {
            let mut state = lock(&self.state);
            if state.closed {
                return; // Dropping `client` closes it.
            }
            let entry = Entry {
                ending: Arc::clone(&ending),
                task: None,
            };
            state.connections.insert(id, entry);
        }
        let conn = Conn::new(client, Arc::clone(&ending), Arc::clone(self), id);
        let task = tokio::spawn(conn.serve(self.mode.subscribe(), self.upstream, silent));
        let task = task.abort_handle();
        let mut state = lock(&self.state);
        if let Some(entry) = state.connections.get_mut(&id) {
            entry.task = Some(task.clone());
            // Ended (by `reset_all`, `close_all` or `Drop`) while spawning.
            if ending.requested().is_some() {
                drop(state);
                task.abort();
            }
        } // Else the connection is already over.
    }

    /// Binds the proxy's port again after [`Mode::Refuse`], retrying while
    /// the port is taken, for up to [`REBIND_TIMEOUT`].
    fn bind_again(&self) -> io::Result<TcpListener> {
        let deadline = Instant::now() + REBIND_TIMEOUT;
        // Registering the socket needs the runtime; `set_mode` may run outside.
        let _runtime = self.runtime.enter();
        loop {
            match listen(self.addr) {
                Ok(listener) => return Ok(listener),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    std::thread::sleep(REBIND_PAUSE);
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "leaving Mode::Refuse: could not bind the proxy's address {} again \
                             ({e}; tried for up to {REBIND_TIMEOUT:?}); another socket took the \
                             port while the proxy refused. The proxy stays in Refuse: start a \
                             new FaultProxy",
                            self.addr
                        ),
                    ));
                }
            }
        }
    }
}

/// Accepts connections until the proxy is dropped (which aborts this task).
async fn accept_loop(shared: Arc<Shared>) {
    let mut mode = shared.mode.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = poll_fn(|cx| shared.poll_accept(cx)) => accepted,
            // The listening socket may have been closed or replaced: poll again.
            changed = mode.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return, // The proxy is gone.
            },
        };
        match accepted {
            Ok((client, _peer)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let silent = *mode.borrow() == Mode::AcceptThenSilence;
                shared.admit(client, silent);
            }
            Err(e) => {
                tracing::warn!(
                    target: "pg_tempdb::proxy",
                    error = %e,
                    addr = %shared.addr,
                    "the fault proxy could not accept a connection"
                );
                // Cancellable (the task is aborted on drop) and bounded.
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// A listening socket on `addr`, with `SO_REUSEADDR` so that connections of
/// an earlier socket on the port (in `TIME_WAIT`) do not block binding it.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Locks `mutex`; a panic elsewhere while it was held does not matter here
/// (every critical section leaves the registry consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
