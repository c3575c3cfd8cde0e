//! How one operation of the soak ended, and which endings are allowed.
//!
//! Every `acquire()` call ends in exactly one [`AcquireEnd`], the same four
//! ways the pool's counters count it (`total_acquisitions`,
//! `total_timeouts`, `acquire_errors`, `acquires_cancelled`), so the two
//! tallies can be compared at the end. Every error is *classified*: a typed
//! error the faults explain gets a stable label for the report
//! (`acquire: timeout (connect)`, `query: 57P01 admin_shutdown`, ...);
//! anything else is a *problem* that fails the soak with its details.

use std::error::Error as _;
use std::io;
use std::time::Duration;

use pool_pg::tokio_postgres;
use tokio::time::Instant;

/// How one `acquire()` call ended, in the pool's own terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcquireEnd {
    /// Not called (never happens in a finished record).
    NotCalled,
    /// Got a connection.
    Ok,
    /// `PoolError::Timeout`: counted in `total_timeouts`.
    Timeout,
    /// Any other `PoolError`: counted in `acquire_errors`.
    Error,
    /// The caller dropped the future first: counted in `acquires_cancelled`
    /// (or, if it was dropped after the fast path had already lent a
    /// connection, in `total_acquisitions`).
    Dropped,
}

/// What a worker did in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum OpKind {
    /// `SELECT $1::int4`, result checked.
    Short,
    /// `BEGIN; INSERT INTO soak_ledger ...; COMMIT`.
    Write,
    /// A connection held across a sleep of 50–300 ms, a query either side.
    Hold,
    /// `pg_sleep` dropped by a short client timeout mid-query.
    CancelledQuery,
    /// `acquire()` dropped by a 0–5 ms client timeout.
    DroppedAcquire,
}

impl OpKind {
    /// Picks one, weighted (percent): 40 short, 25 write, 12 hold,
    /// 8 cancelled query, 15 dropped acquire.
    pub(crate) fn pick(roll: u64) -> Self {
        match roll % 100 {
            0..=39 => OpKind::Short,
            40..=64 => OpKind::Write,
            65..=76 => OpKind::Hold,
            77..=84 => OpKind::CancelledQuery,
            _ => OpKind::DroppedAcquire,
        }
    }

    /// Whether its success proves the database answers (for recovery times).
    pub(crate) fn is_query(self) -> bool {
        matches!(self, OpKind::Short | OpKind::Write | OpKind::Hold)
    }
}

/// What became of one attempted write (see `ledger.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// `COMMIT` returned Ok: the row must be in the table.
    Committed,
    /// Failed before `COMMIT` was sent: the row must not be in the table.
    NotWritten,
    /// Failed or timed out during `COMMIT`: either is allowed.
    Unknown,
}

/// One step of one worker.
#[derive(Debug)]
pub(crate) struct OpRecord {
    pub(crate) kind: OpKind,
    pub(crate) started: Instant,
    pub(crate) ended: Instant,
    pub(crate) acquire: AcquireEnd,
    pub(crate) acquire_took: Duration,
    /// `ok`, or the label of the error it met.
    pub(crate) label: String,
    /// Every query of the step succeeded.
    pub(crate) succeeded: bool,
    /// What failed the soak in this step, if anything.
    pub(crate) problem: Option<String>,
    /// The write's id, task and fate, for `Write` steps that got a connection.
    pub(crate) write: Option<(i64, i32, Fate)>,
}

impl OpRecord {
    pub(crate) fn new(kind: OpKind) -> Self {
        let now = Instant::now();
        Self {
            kind,
            started: now,
            ended: now,
            acquire: AcquireEnd::NotCalled,
            acquire_took: Duration::ZERO,
            label: "ok".to_owned(),
            succeeded: false,
            problem: None,
            write: None,
        }
    }

    /// Records an expected failure (`Ok(label)`) or a problem (`Err`).
    pub(crate) fn fail(&mut self, class: Result<String, String>) {
        self.succeeded = false;
        match class {
            Ok(label) => self.label = label,
            Err(problem) => {
                self.label = "PROBLEM".to_owned();
                self.problem.get_or_insert(problem);
            }
        }
    }
}

/// Classifies a failed `acquire()`: its [`AcquireEnd`] and its label, or a
/// problem when the faults cannot explain it.
pub(crate) fn classify_acquire(error: &pool_pg::Error) -> (AcquireEnd, Result<String, String>) {
    if let Some(phase) = error.timeout_phase() {
        return (
            AcquireEnd::Timeout,
            Ok(format!("acquire: timeout ({phase})")),
        );
    }
    if error.is_unavailable() {
        return (AcquireEnd::Error, Ok("acquire: unavailable".to_owned()));
    }
    // A closed pool, a non-retryable connect failure, or a variant added
    // later: nothing the soak's faults should cause.
    (
        AcquireEnd::Error,
        Err(format!(
            "acquire failed with an unexpected error: {error} ({error:?})"
        )),
    )
}

/// Classifies a failed query: the label of an error the faults explain
/// (the connection was closed, terminated, reset or cut), or a problem.
pub(crate) fn classify_query(what: &str, error: &tokio_postgres::Error) -> Result<String, String> {
    if error.is_closed() {
        return Ok("query: connection closed".to_owned());
    }
    if let Some(code) = error.code() {
        let name = match code.code() {
            "57P01" => "admin_shutdown",
            "57P02" => "crash_shutdown",
            "57P03" => "cannot_connect_now",
            "08000" | "08003" | "08006" => "connection_exception",
            other => {
                return Err(format!(
                    "{what} failed with SQLSTATE {other}, which no fault explains: {error:?}"
                ))
            }
        };
        return Ok(format!("query: {} {name}", code.code()));
    }
    if let Some(io) = error.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        return match io.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Ok(format!("query: io {:?}", io.kind())),
            kind => Err(format!("{what} failed with I/O error {kind:?}: {error:?}")),
        };
    }
    Err(format!(
        "{what} failed with an unclassified error: {error} ({error:?})"
    ))
}
