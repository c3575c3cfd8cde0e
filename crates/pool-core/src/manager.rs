//! The backend contract: how the pool opens, checks and judges connections.
//!
//! The pool is generic over a [`Manager`]. It never looks inside a
//! connection; everything it needs to know about the backend comes through
//! the methods of [`Manager`], and what to do with a returned connection
//! through one [`Verdict`]. The pool calls the async methods with its own
//! timeouts around them, so an implementation may block on I/O without
//! guarding against hangs itself (but it must be cancel-safe: a future
//! dropped mid-way must not leave shared state behind).

use std::future::Future;

/// What the pool does with a connection that comes back, as the manager's
/// [`verdict`](Manager::verdict) says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Fit for the next caller. `statements`: how many statements it has
    /// run so far, for `max_queries` (0 if the manager does not count).
    Reuse {
        /// Statements run on this connection since it was opened.
        statements: u64,
    },
    /// Closed or unusable (a closed socket): it is closed, and idle
    /// connections last used before now are validated before use (the
    /// server may have restarted). Counted in `closed_by_reason.broken`.
    Broken,
    /// Left in a state the next caller must not inherit (dropped in the
    /// middle of a request, left inside a transaction): it is closed.
    /// Counted in `closed_by_reason.dirty`.
    Dirty,
    /// What it saw concerns its whole server (shut down, demoted to
    /// read-only, failed over), given as the reason: it is closed, and every
    /// connection open now is evicted (idle ones at once, in-use ones when
    /// returned; see `Pool::evict_all`), so new connects go wherever the
    /// manager's configuration now leads. Counted in
    /// `closed_by_reason.evicted`.
    ServerLost(String),
    /// Fit, but not wanted back (a hook of the manager's user said so): it
    /// is closed. Counted in `closed_by_reason.discarded`, like a
    /// connection the caller discarded.
    Discard,
    /// Not decided yet: the manager needs I/O first (a request whose answer
    /// is still on the wire, a session reset to run). The pool runs
    /// [`Manager::settle`] in a task under `validation_timeout`, keeping the
    /// connection's capacity, and then acts on the verdict it returns. A
    /// settle that times out, panics or answers `Settle` again closes the
    /// connection as dirty. Only return it when needed: the fast path of a
    /// return is free, a settle costs a task and the manager's I/O.
    Settle,
}

/// Aborts one connection from outside, e.g. by aborting the task that
/// drives its socket. Must be quick and must not block.
pub type ForceClose = Box<dyn Fn() + Send + Sync>;

/// Creates, validates and judges the connections of a [`Pool`](crate::Pool).
///
/// # Contract
///
/// * [`create`](Manager::create) opens one fresh, ready-to-use connection.
///   The pool runs it inside a spawned task under `create_timeout`, so a
///   caller whose `acquire()` is cancelled never loses a connection that was
///   half open: it goes to the idle queue instead.
/// * [`validate`](Manager::validate) is the cheap liveness check (for
///   PostgreSQL: `SELECT 1`), run under `validation_timeout` on connections
///   that sat idle longer than `validation_skip_window`. If the future is
///   dropped (timeout or cancelled caller), the pool closes the connection:
///   its protocol state is unknown.
/// * [`is_broken`](Manager::is_broken) must be free: no I/O, no await, no
///   lock that can be contended. It runs on every checkout and every return.
/// * [`is_retryable`](Manager::is_retryable) tells whether retrying a failed
///   connect can help (a refused connection) or not (a wrong password).
/// * [`verdict`](Manager::verdict) is the free check on return: reuse
///   the connection, close it (broken, or dirty: dropped mid-request, left
///   inside a transaction), or close it and evict every connection because
///   its server is gone. One method, so a wrapping manager has one answer
///   to forward, not four.
pub trait Manager: Send + Sync + 'static {
    /// The pooled connection type. Dropping it must close it.
    type Connection: Send + 'static;
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection. Called from a spawned task under
    /// `create_timeout`; the whole connect (TCP, TLS, startup,
    /// authentication) must happen inside this future.
    fn create(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Checks that `conn` is alive with one cheap round trip. Called under
    /// `validation_timeout`. Returning an error closes the connection and the
    /// caller is given another one within its own acquire deadline.
    fn validate(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A free pre-check: `true` if the connection is known to be unusable
    /// (closed socket, dropped in the middle of a request). Must not do I/O.
    fn is_broken(&self, conn: &mut Self::Connection) -> bool;

    /// The one question on return: may this connection be reused? Must be
    /// free: no I/O, no await, no lock that can be contended (it runs on
    /// every return). The pool acts on the answer (see [`Verdict`]); it
    /// also retires a reused connection past its lifetime, from an evicted
    /// generation, or past `max_queries` statements.
    ///
    /// The default asks [`is_broken`](Manager::is_broken) and counts no
    /// statements.
    fn verdict(&self, conn: &mut Self::Connection) -> Verdict {
        if self.is_broken(conn) {
            Verdict::Broken
        } else {
            Verdict::Reuse { statements: 0 }
        }
    }

    /// The I/O a [`Verdict::Settle`] asked for, and the verdict after it.
    /// Runs in a task of its own under `validation_timeout` (a timeout or a
    /// panic closes the connection as dirty); must be cancel-safe. The
    /// default closes the connection.
    fn settle(&self, conn: &mut Self::Connection) -> impl Future<Output = Verdict> + Send {
        let _ = conn;
        std::future::ready(Verdict::Dirty)
    }

    /// Whether [`before_checkout`](Manager::before_checkout) is to run. Asked
    /// once, when the pool is built, so a manager without a hook costs the
    /// checkout nothing. The default says no.
    fn has_checkout_hook(&self) -> bool {
        false
    }

    /// The manager's own check of an idle connection about to be lent, after
    /// its liveness check if it had one: `true` lends it, `false` closes it
    /// (counted in `closed_by_reason.discarded`) and the caller is given
    /// another within its own deadline. Runs only if
    /// [`has_checkout_hook`](Manager::has_checkout_hook) says so, under
    /// `validation_timeout`; a timeout or a panic closes the connection as a
    /// failed validation. Not run on a connection opened for this very
    /// caller (it is fresh), nor by `try_acquire()` (which never does I/O).
    /// Must be cancel-safe like [`validate`](Manager::validate).
    fn before_checkout(&self, conn: &mut Self::Connection) -> impl Future<Output = bool> + Send {
        let _ = conn;
        std::future::ready(true)
    }

    /// A way to abort `conn` while a caller still holds it, used by
    /// `shutdown()` for connections not returned within its grace period.
    /// Called once, right after [`create`](Manager::create). The default
    /// (`None`) means such connections are left to close when returned.
    fn force_closer(&self, conn: &Self::Connection) -> Option<ForceClose> {
        let _ = conn;
        None
    }

    /// Whether a failed [`create`](Manager::create) may succeed if retried.
    ///
    /// `acquire()` keeps retrying retryable failures (with a capped backoff)
    /// until its deadline and then reports a timeout carrying the last error;
    /// a non-retryable failure (bad password, unknown database) is returned
    /// at once. The default treats every failure as retryable.
    fn is_retryable(&self, error: &Self::Error) -> bool {
        let _ = error;
        true
    }

    /// Whether a failed [`create`](Manager::create) is evidence that the
    /// server itself is down (for a network database: the TCP connect was
    /// refused), rather than a transient refusal (too many connections, a
    /// server starting up, a timeout).
    ///
    /// With no connection open, one such failure moves the pool to
    /// `RECOVERING` at once (callers fail fast with `Unavailable` and one
    /// supervisor probes). Other failures move it there only after
    /// [`RECOVERY_FAILURE_THRESHOLD`](crate::RECOVERY_FAILURE_THRESHOLD)
    /// consecutive failed connects, so one transient failure on an empty
    /// pool never shuts every caller out. The default says never.
    fn is_server_down(&self, error: &Self::Error) -> bool {
        let _ = error;
        false
    }
}
