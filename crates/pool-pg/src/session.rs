//! What the pool knows about a connection's session: statements run,
//! requests in flight, and the transaction block.
//!
//! Every request the pooled connection sends through its counting methods
//! (see `client.rs` and `transaction.rs`) goes through [`Session::run`], so
//! the three facts stay true together:
//!
//! * **Statements** count what the server was asked to run: one per
//!   extended-protocol call (`query`, `execute`, `prepare`, ...), one per
//!   non-empty statement of a simple-protocol string (`batch_execute`,
//!   `simple_query`), one per transaction start, commit, rollback or
//!   savepoint. They are counted when the request is sent, whatever its
//!   outcome. The pool retires a connection that reached `max_queries`.
//! * **In flight** is raised before a request is sent and lowered only after
//!   its future completed. A future dropped mid-way (a caller's timeout, a
//!   cancelled task) never lowers it: the server may still be running the
//!   request and its answer is still on the wire.
//! * **The transaction block** is followed from the statements the
//!   connection sees (`sql.rs` reads their leading keywords) and from the
//!   wrapped transactions: open while a `PgTransaction` lives; over when it
//!   commits, rolls back or is dropped (tokio-postgres then queues a
//!   `ROLLBACK` ahead of anything the next caller sends, so the next caller
//!   starts clean). A failed call that contained transaction control leaves
//!   the state *unknown* (in `BEGIN; bad; COMMIT` the server skipped the
//!   `COMMIT`), until a later transaction control succeeds. Preparing a
//!   transaction-control statement makes the state *untracked* for good:
//!   running a prepared `Statement` does not show its text.
//!
//! # Dirty connections are discarded, not cleaned
//!
//! A connection is *dirty* when a request is in flight or the transaction
//! block is open, unknown or untracked. The pool closes a dirty connection
//! on return (`closed_by_reason.dirty`) instead of rolling it back, because
//! the return path runs in `Drop`, synchronously: cleaning would need a
//! spawned task and a round trip (`ROLLBACK`, or waiting out a running
//! query) and would then hand out a connection whose state we only *believe*
//! is clean. Closing costs one reconnect and is always right: the server
//! rolls back whatever the session left open. When a request was in flight,
//! closing also sends the server a cancel request (see `connection.rs`), so
//! the abandoned query stops instead of running to completion unobserved.
//!
//! The connection belongs to one caller at a time, so the counters are
//! plain atomics with `Relaxed` ordering: they only need interior
//! mutability for `&self` methods (which tokio-postgres lets run
//! concurrently, pipelined, hence a count rather than a flag for requests
//! in flight). The guard's `Drop` reads them after every request future is
//! gone.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};

use tokio_postgres::error::SqlState;
use tokio_postgres::Error;

use crate::sql::Control;

/// The transaction-block states kept in [`Session::transaction`].
const IDLE: u8 = 0;
const OPEN: u8 = 1;
const UNKNOWN: u8 = 2;

/// What a request may do to the transaction block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing (no transaction control, or handled by the caller).
    None,
    /// Transaction control whose outcome the call's result tells.
    Control(Control),
    /// Transaction control that runs after the call returns (a raw
    /// simple-query stream): its outcome is never seen.
    Unseen,
    /// Prepares transaction control: its runs will not be seen.
    Prepare,
}

impl Effect {
    /// The effect of a statement with the given control.
    pub(crate) fn of(control: Option<Control>) -> Self {
        control.map_or(Effect::None, Effect::Control)
    }
}

/// Why a connection may not be handed to the next caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dirt {
    /// A request's future was dropped before it completed.
    InFlight,
    /// A transaction block is open (`BEGIN` without `COMMIT`/`ROLLBACK`).
    InTransaction,
    /// A call with transaction control failed part-way.
    UnknownTransaction,
    /// A transaction-control statement was prepared.
    UntrackedTransaction,
    /// The server refused a write as read-only (SQLSTATE 25006): it may be a
    /// demoted primary, so this session must not serve the next caller.
    ReadOnlyServer,
    /// The server is shutting this session down (SQLSTATE 57P01, 57P02,
    /// 57P03); the socket may not have closed yet when the caller returns it.
    ServerShutdown,
}

impl Dirt {
    /// For log lines: what happened and what to change.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Dirt::InFlight => {
                "it was returned with a request still running (its future was dropped: a timeout or a cancelled task)"
            }
            Dirt::InTransaction => {
                "it was returned inside a transaction: COMMIT or ROLLBACK it before dropping the connection, or use conn.transaction()"
            }
            Dirt::UnknownTransaction => {
                "it was returned after a failed statement that controlled a transaction, so whether one is open is unknown; run ROLLBACK after such a failure"
            }
            Dirt::UntrackedTransaction => {
                "a transaction-control statement was prepared on it, so the transaction state cannot be followed; send BEGIN/COMMIT as text or use conn.transaction()"
            }
            Dirt::ServerShutdown => {
                "the server terminated the session (SQLSTATE 57P0x: shutdown, crash or pg_terminate_backend)"
            }
            Dirt::ReadOnlyServer => {
                "the server refused a write as read-only (SQLSTATE 25006, e.g. a demoted primary); the connection is retired so the next one can reach a writable server"
            }
        }
    }

    /// Whether the caller's code should change (worth a warning), rather
    /// than an ordinary cancellation.
    pub(crate) fn is_misuse(self) -> bool {
        matches!(
            self,
            Dirt::InTransaction | Dirt::UntrackedTransaction | Dirt::ReadOnlyServer
        )
    }
}

/// The session facts of one connection; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Session {
    statements: AtomicU64,
    in_flight: AtomicU64,
    /// [`IDLE`], [`OPEN`] or [`UNKNOWN`].
    transaction: AtomicU8,
    /// Set once a transaction-control statement was prepared; never reset.
    untracked: AtomicBool,
    /// Set once the server answered 25006 (read-only); never reset.
    read_only: AtomicBool,
    /// Set once the server answered 57P0x (session terminated); never reset.
    shut_down: AtomicBool,
}

impl Session {
    /// Statements sent so far.
    pub(crate) fn statements(&self) -> u64 {
        self.statements.load(Relaxed)
    }

    /// Whether a request's future was dropped before it completed (or one
    /// is running right now).
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight.load(Relaxed) > 0
    }

    /// Why the connection may not be reused, if it may not.
    pub(crate) fn dirt(&self) -> Option<Dirt> {
        if self.in_flight() {
            Some(Dirt::InFlight)
        } else if self.shut_down.load(Relaxed) {
            Some(Dirt::ServerShutdown)
        } else if self.read_only.load(Relaxed) {
            Some(Dirt::ReadOnlyServer)
        } else if self.untracked.load(Relaxed) {
            Some(Dirt::UntrackedTransaction)
        } else {
            match self.transaction.load(Relaxed) {
                IDLE => None,
                OPEN => Some(Dirt::InTransaction),
                _ => Some(Dirt::UnknownTransaction),
            }
        }
    }

    /// Counts `statements` that were sent outside [`run`](Session::run)
    /// (the `ROLLBACK` tokio-postgres queues for a dropped transaction).
    pub(crate) fn count(&self, statements: u64) {
        self.statements.fetch_add(statements, Relaxed);
    }

    /// A transaction block was opened.
    pub(crate) fn begin_transaction(&self) {
        self.transaction.store(OPEN, Relaxed);
    }

    /// The transaction block is over (committed, rolled back, or a
    /// `ROLLBACK` is queued ahead of any later request).
    pub(crate) fn end_transaction(&self) {
        self.transaction.store(IDLE, Relaxed);
    }

    /// Sends one request: counts its `statements`, keeps the in-flight
    /// marker raised while `request` runs, and applies its `effect` on the
    /// transaction block once it completed.
    pub(crate) async fn run<R>(
        &self,
        statements: u64,
        effect: Effect,
        request: impl Future<Output = Result<R, Error>>,
    ) -> Result<R, Error> {
        self.count(statements);
        self.in_flight.fetch_add(1, Relaxed);
        // Cancel-safe by design: dropped here, the marker stays raised and
        // the pool discards the connection on return.
        let result = request.await;
        self.in_flight.fetch_sub(1, Relaxed);
        self.apply(effect, result.is_ok());
        if let Err(error) = &result {
            match error.code() {
                Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => {
                    self.read_only.store(true, Relaxed);
                }
                Some(code)
                    if *code == SqlState::ADMIN_SHUTDOWN
                        || *code == SqlState::CRASH_SHUTDOWN
                        || *code == SqlState::CANNOT_CONNECT_NOW =>
                {
                    self.shut_down.store(true, Relaxed);
                }
                _ => {}
            }
        }
        result
    }

    fn apply(&self, effect: Effect, succeeded: bool) {
        match (effect, succeeded) {
            (Effect::None, _) | (Effect::Prepare, false) => {}
            (Effect::Control(Control::Begin), true) => self.begin_transaction(),
            (Effect::Control(Control::End), true) => self.end_transaction(),
            (Effect::Control(_), false) | (Effect::Unseen, _) => {
                self.transaction.store(UNKNOWN, Relaxed);
            }
            (Effect::Prepare, true) => self.untracked.store(true, Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready};
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    /// A waker that does nothing (`Waker::noop` is newer than our MSRV).
    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(&Waker::from(Arc::new(Noop))))
    }

    fn ok() -> impl Future<Output = Result<(), Error>> {
        ready(Ok(()))
    }

    fn run_now(session: &Session, statements: u64, effect: Effect) {
        let mut request = pin!(session.run(statements, effect, ok()));
        assert!(matches!(poll_once(request.as_mut()), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_completed_request_is_counted_and_leaves_the_session_clean() {
        let session = Session::default();
        run_now(&session, 2, Effect::None);
        assert_eq!(session.statements(), 2);
        assert_eq!(session.dirt(), None);
    }

    #[test]
    fn a_request_dropped_mid_way_leaves_the_marker_raised() {
        let session = Session::default();
        {
            let mut request = pin!(session.run(1, Effect::None, pending::<Result<(), Error>>()));
            assert!(poll_once(request.as_mut()).is_pending());
        }
        assert_eq!(session.dirt(), Some(Dirt::InFlight));
        assert_eq!(session.statements(), 1);
    }

    #[test]
    fn a_request_never_polled_is_neither_counted_nor_in_flight() {
        let session = Session::default();
        drop(session.run(1, Effect::None, ok()));
        assert_eq!(session.statements(), 0);
        assert_eq!(session.dirt(), None);
    }

    #[test]
    fn transaction_control_moves_the_block_state() {
        let session = Session::default();
        run_now(&session, 1, Effect::Control(Control::Begin));
        assert_eq!(session.dirt(), Some(Dirt::InTransaction));
        run_now(&session, 1, Effect::Control(Control::End));
        assert_eq!(session.dirt(), None);
        run_now(&session, 1, Effect::Unseen);
        assert_eq!(session.dirt(), Some(Dirt::UnknownTransaction));
        run_now(&session, 1, Effect::Control(Control::End));
        assert_eq!(session.dirt(), None);
    }

    #[test]
    fn a_prepared_transaction_control_is_untracked_for_good() {
        let session = Session::default();
        run_now(&session, 1, Effect::Prepare);
        run_now(&session, 1, Effect::Control(Control::End));
        assert_eq!(session.dirt(), Some(Dirt::UntrackedTransaction));
    }
}
