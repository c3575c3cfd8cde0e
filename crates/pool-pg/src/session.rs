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
//! # A refused write: the caller's own read-only access, or the server's
//!
//! SQLSTATE 25006 (`read_only_sql_transaction`) means either that the
//! caller asked for read-only access, or that the server became a standby
//! or a demoted primary. Only the second is the server's fault, and it
//! makes the pool evict every connection (`PgManager::server_lost`), so the
//! session follows the caller's read-only access from the statements it
//! sees (`sql.rs`) and from the transaction builder:
//!
//! * a transaction opened or made read-only (`BEGIN READ ONLY`, `SET
//!   TRANSACTION READ ONLY`, `build_transaction().read_only(true)`): a
//!   25006 inside it is the caller's, the connection stays clean and is
//!   reused once the transaction ends;
//! * a read-only session default set by the caller (`SET SESSION
//!   CHARACTERISTICS AS TRANSACTION READ ONLY`, `SET
//!   default_transaction_read_only = on`): a 25006 is the caller's, and the
//!   connection is closed on return (`Dirt::ReadOnlySession`), because the
//!   next caller would otherwise inherit a read-only session and its writes
//!   would look like a demoted server;
//! * a call whose own statements ask for read-only access (`BEGIN READ
//!   ONLY; INSERT ..` in one batch) fails with the caller's 25006 too.
//!
//! Any other 25006 marks the session `Dirt::ReadOnlyServer`. Statements
//! sent through a wrapped transaction's methods that take a prepared
//! `Statement` or a generic statement are not read for read-only access
//! (only the `&str` ones are); send `SET TRANSACTION READ ONLY` as text, or
//! use the builder.
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

use crate::sql::{control_of, Block, Control};

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

    /// The read-only access `sql` asks for, without its block control: for
    /// statements sent inside a wrapped transaction, whose block the
    /// wrapper follows itself.
    pub(crate) fn read_only_of(sql: &str) -> Self {
        Effect::of(control_of(sql).and_then(Control::read_only_part))
    }

    /// Whether the request itself asks for read-only access.
    fn asks_read_only(self) -> bool {
        matches!(self, Effect::Control(control) if control.asks_read_only())
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
    /// The caller made the session read-only by default; the next caller
    /// must not inherit that.
    ReadOnlySession,
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
            Dirt::ReadOnlySession => {
                "it was returned with a read-only session default set by the caller (SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY or default_transaction_read_only = on); use BEGIN READ ONLY or build_transaction().read_only(true) instead, or RESET it before returning"
            }
        }
    }

    /// Whether the caller's code should change (worth a warning), rather
    /// than an ordinary cancellation.
    pub(crate) fn is_misuse(self) -> bool {
        matches!(
            self,
            Dirt::InTransaction
                | Dirt::UntrackedTransaction
                | Dirt::ReadOnlyServer
                | Dirt::ReadOnlySession
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
    /// Set once the server answered 25006 (read-only) to a request that did
    /// not ask for read-only access; never reset.
    read_only: AtomicBool,
    /// The open transaction block is read-only by the caller's choice.
    read_only_transaction: AtomicBool,
    /// The caller set a read-only session default.
    read_only_session: AtomicBool,
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
        } else if self.read_only_session.load(Relaxed) {
            Some(Dirt::ReadOnlySession)
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

    /// A transaction block was opened, `read_only` by the caller's choice
    /// or not.
    pub(crate) fn begin_transaction(&self, read_only: bool) {
        self.transaction.store(OPEN, Relaxed);
        self.read_only_transaction.store(read_only, Relaxed);
    }

    /// The transaction block is over (committed, rolled back, or a
    /// `ROLLBACK` is queued ahead of any later request).
    pub(crate) fn end_transaction(&self) {
        self.transaction.store(IDLE, Relaxed);
        self.read_only_transaction.store(false, Relaxed);
    }

    /// Whether the caller asked for read-only access in this session: its
    /// transaction or its session default.
    fn read_only_by_caller(&self) -> bool {
        self.read_only_transaction.load(Relaxed) || self.read_only_session.load(Relaxed)
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
        // Judged before `apply`: a failed `BEGIN READ ONLY; INSERT ..`
        // leaves the block unknown, but the refusal was still asked for.
        let callers_own = self.read_only_by_caller() || effect.asks_read_only();
        self.apply(effect, result.is_ok());
        if let Err(error) = &result {
            match error.code() {
                Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION && !callers_own => {
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
            (Effect::Control(control), true) => self.apply_control(control),
            // A failed SET changes nothing; failed block control leaves the
            // block unknown.
            (Effect::Control(control), false) if control.block.is_none() => {}
            (Effect::Control(_), false) | (Effect::Unseen, _) => {
                self.transaction.store(UNKNOWN, Relaxed);
            }
            (Effect::Prepare, true) => self.untracked.store(true, Relaxed),
        }
    }

    fn apply_control(&self, control: Control) {
        match control.block {
            Some(Block::Begin) => self.begin_transaction(control.read_only.transaction),
            Some(Block::End) => self.end_transaction(),
            None if control.read_only.transaction && self.transaction.load(Relaxed) == OPEN => {
                self.read_only_transaction.store(true, Relaxed);
            }
            None => {}
        }
        if let Some(read_only) = control.read_only.session {
            self.read_only_session.store(read_only, Relaxed);
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

    fn sql(text: &str) -> Effect {
        Effect::of(control_of(text))
    }

    #[test]
    fn transaction_control_moves_the_block_state() {
        let session = Session::default();
        run_now(&session, 1, sql("BEGIN"));
        assert_eq!(session.dirt(), Some(Dirt::InTransaction));
        run_now(&session, 1, sql("COMMIT"));
        assert_eq!(session.dirt(), None);
        run_now(&session, 1, Effect::Unseen);
        assert_eq!(session.dirt(), Some(Dirt::UnknownTransaction));
        run_now(&session, 1, sql("ROLLBACK"));
        assert_eq!(session.dirt(), None);
    }

    #[test]
    fn a_prepared_transaction_control_is_untracked_for_good() {
        let session = Session::default();
        run_now(&session, 1, Effect::Prepare);
        run_now(&session, 1, sql("COMMIT"));
        assert_eq!(session.dirt(), Some(Dirt::UntrackedTransaction));
    }

    // A server's 25006 cannot be built here (tokio-postgres has no public
    // constructor for it); `tests/failover.rs` checks the refusals against
    // real servers. These check the tracking the judgement rests on.

    #[test]
    fn a_refusal_inside_the_callers_read_only_transaction_is_the_callers_own() {
        let session = Session::default();
        run_now(&session, 1, sql("BEGIN READ ONLY"));
        assert!(session.read_only_by_caller());
        run_now(&session, 1, sql("ROLLBACK"));
        assert!(!session.read_only_by_caller());
        run_now(&session, 1, sql("BEGIN"));
        run_now(
            &session,
            1,
            Effect::read_only_of("SET TRANSACTION READ ONLY"),
        );
        assert!(session.read_only_by_caller());
        run_now(&session, 1, sql("COMMIT"));
        assert_eq!(session.dirt(), None);
    }

    #[test]
    fn a_read_only_session_default_is_the_callers_and_closes_the_connection() {
        let session = Session::default();
        run_now(&session, 1, sql("SET default_transaction_read_only = on"));
        assert!(session.read_only_by_caller());
        assert_eq!(session.dirt(), Some(Dirt::ReadOnlySession));
        run_now(&session, 1, sql("RESET ALL"));
        assert_eq!(session.dirt(), None);
        assert!(sql("BEGIN READ ONLY; INSERT INTO t VALUES (1)").asks_read_only());
    }
}
