//! What the pool knows about a connection's session, read from the wire.
//!
//! The pool owns each connection's socket and wraps it (above TLS, when TLS
//! is on) in a [`Tap`](tap::Tap) that reads the PostgreSQL message framing
//! of both directions as the bytes pass (`framing.rs`). Whatever path a
//! request takes (the pooled connection's methods, `Deref` to the
//! `Client`, a `GenericClient`, a transaction, a raw stream, `COPY`), it
//! crosses the socket, so the facts below hold for all of them:
//!
//! * **In flight.** Every frontend `Sync`, `Query` and `FunctionCall` asks
//!   for exactly one backend `ReadyForQuery`, except the `Sync` that
//!   follows an extended-protocol `COPY FROM STDIN`'s `Execute`, which the
//!   server ignores in copy-in mode (counted back at `CopyInResponse`).
//!   Requests written minus `ReadyForQuery` read is the number of requests
//!   whose answer is still on the wire.
//! * **Transaction status** is the byte of the last `ReadyForQuery`: idle,
//!   in a transaction block, or in a failed one.
//! * **Statements** are the server's `CommandComplete` and `ErrorResponse`
//!   messages: every statement it finished, whether it succeeded or not,
//!   for `max_queries`.
//! * **Prepared statements dropped by the user**: a `DISCARD ALL` or
//!   `DEALLOCATE ALL` command tag bumps an epoch that empties the
//!   connection's statement cache.
//! * **A server that stopped taking writes.** PostgreSQL 14 and later
//!   report `default_transaction_read_only` and `in_hot_standby` as they
//!   change. `in_hot_standby` turning on, or `default_transaction_read_only`
//!   turning on in an exchange that ran no `SET` command (a reload of the
//!   server's configuration, a demotion, a `set_config()` behind the
//!   caller's back), means the server is lost for writes. Turned on by a
//!   `SET` of the caller's, it is the caller's own read-only session: the
//!   connection is closed on return so the next caller does not inherit it,
//!   and its refusals are the caller's. A server that does not report
//!   `default_transaction_read_only` (before 14) is judged by its refusals:
//!   a write refused (SQLSTATE 25006) outside a transaction block.
//! * **A session the server ended**: SQLSTATE 57P01, 57P02 or 57P03.
//!
//! The tap is armed once the startup exchange is over (startup messages
//! have no type byte), at a message boundary in both directions. It is
//! written only by the connection's I/O task and read by the client side,
//! through relaxed atomics: a response reaches the caller through
//! tokio-postgres's channel after the tap has read it, which orders the
//! reads after the writes.
//!
//! Invariant: a connection is *clean* (reusable) only when nothing is in
//! flight, the status is idle, the framing was never lost, and nothing
//! above marks it. Anything the tap cannot follow leaves the connection
//! unclean, never clean.

mod framing;
pub(crate) mod tap;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use framing::{c_str, sqlstate, Framer};

/// The transaction status of the last `ReadyForQuery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block.
    InTransaction,
    /// In a failed transaction block (only `ROLLBACK` will be accepted).
    Failed,
}

/// Flags of [`Wire::flags`].
const LOST_SYNC: u8 = 1;
const SHUT_DOWN: u8 = 1 << 1;
const CALLER_READ_ONLY: u8 = 1 << 2;
const SERVER_READ_ONLY: u8 = 1 << 3;
const HOT_STANDBY: u8 = 1 << 4;
const REFUSED_WRITE: u8 = 1 << 5;
/// Opened for a read-only session (`target_session_attrs=read-only`) on a
/// hot standby: a promotion takes the server away from what it is for.
const WANTS_STANDBY: u8 = 1 << 6;
const PROMOTED: u8 = 1 << 7;

/// Why a connection may not be handed to the next caller, from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unclean {
    /// The framing was lost: nothing the tap says can be trusted.
    LostSync,
    /// Requests whose answers are still on the wire.
    InFlight,
    /// Inside a transaction block (or a failed one).
    InTransaction,
    /// The server ended the session (57P0x).
    ShutDown,
    /// The caller set a read-only session default.
    CallerReadOnly,
    /// The server stopped taking writes (how, in the text).
    ServerLost(&'static str),
}

impl Unclean {
    /// For log lines: what happened and what to change.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Unclean::LostSync => {
                "its protocol stream could not be followed (please report this)"
            }
            Unclean::InFlight => {
                "it was returned with a request still running (its future or stream was dropped: a timeout or a cancelled task)"
            }
            Unclean::InTransaction => {
                "it was returned inside a transaction: COMMIT or ROLLBACK it before dropping the connection, or use conn.transaction()"
            }
            Unclean::ShutDown => {
                "the server terminated the session (SQLSTATE 57P0x: shutdown, crash or pg_terminate_backend)"
            }
            Unclean::CallerReadOnly => {
                "it was returned with a read-only session default set by the caller (SET default_transaction_read_only or SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY); use BEGIN READ ONLY or build_transaction().read_only(true) instead, or RESET it before returning"
            }
            Unclean::ServerLost(why) => why,
        }
    }

    /// Whether the caller's code should change (worth a warning), rather
    /// than an ordinary cancellation or server event.
    pub(crate) fn is_misuse(self) -> bool {
        matches!(self, Unclean::InTransaction | Unclean::CallerReadOnly)
    }
}

/// The facts of one connection, shared by its I/O task (the only writer)
/// and its client side.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    armed: AtomicBool,
    /// Requests written minus `ReadyForQuery` read.
    outstanding: AtomicI64,
    /// The last `ReadyForQuery`'s status byte (`I` before the first).
    status: AtomicU8,
    statements: AtomicU64,
    /// Bumped by `DISCARD ALL` and `DEALLOCATE ALL`.
    epoch: AtomicU64,
    flags: AtomicU8,
    /// The server reports `default_transaction_read_only` (14 and later).
    reports_read_only: AtomicBool,
}

impl Wire {
    /// Starts reading: the startup exchange is over, and the server
    /// reported `default_transaction_read_only` in it or not.
    pub(crate) fn arm(&self, reports_read_only: bool) {
        self.status.store(b'I', Relaxed);
        self.reports_read_only.store(reports_read_only, Relaxed);
        self.armed.store(true, Relaxed);
    }

    /// Marks a connection opened for read-only sessions on a hot standby:
    /// `in_hot_standby` turning off (a promotion) then makes it
    /// [`Unclean::ServerLost`].
    pub(crate) fn wants_standby(&self) {
        self.set(WANTS_STANDBY);
    }

    fn is_armed(&self) -> bool {
        self.armed.load(Relaxed)
    }

    /// Statements the server finished on this connection.
    pub(crate) fn statements(&self) -> u64 {
        self.statements.load(Relaxed)
    }

    /// Changes whenever the server's prepared statements were all dropped.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    /// The transaction status as of the last `ReadyForQuery`.
    pub(crate) fn status(&self) -> Status {
        match self.status.load(Relaxed) {
            b'I' => Status::Idle,
            b'T' => Status::InTransaction,
            _ => Status::Failed,
        }
    }

    /// Whether requests are waiting for their answers.
    pub(crate) fn in_flight(&self) -> bool {
        self.outstanding.load(Relaxed) != 0
    }

    /// Why the connection may not be reused, if it may not; the most
    /// serious reason first.
    pub(crate) fn unclean(&self) -> Option<Unclean> {
        let flags = self.flags.load(Relaxed);
        if flags & LOST_SYNC != 0 {
            Some(Unclean::LostSync)
        } else if flags & HOT_STANDBY != 0 {
            Some(Unclean::ServerLost(
                "the server reported in_hot_standby = on: it is a standby now",
            ))
        } else if flags & SERVER_READ_ONLY != 0 {
            Some(Unclean::ServerLost(
                "the server turned default_transaction_read_only on without a SET of the caller's: demoted, failed over or reconfigured read-only",
            ))
        } else if flags & PROMOTED != 0 {
            Some(Unclean::ServerLost(
                "the standby was promoted (in_hot_standby = off): it takes writes now, and this pool is for read-only sessions (target_session_attrs=read-only)",
            ))
        } else if flags & REFUSED_WRITE != 0 {
            Some(Unclean::ServerLost(
                "the server refused a write as read-only (SQLSTATE 25006) outside a transaction: demoted or failed over",
            ))
        } else if flags & SHUT_DOWN != 0 {
            Some(Unclean::ShutDown)
        } else if self.in_flight() {
            Some(Unclean::InFlight)
        } else if self.status() != Status::Idle {
            Some(Unclean::InTransaction)
        } else if flags & CALLER_READ_ONLY != 0 {
            Some(Unclean::CallerReadOnly)
        } else {
            None
        }
    }

    fn set(&self, flag: u8) {
        self.flags.fetch_or(flag, Relaxed);
    }

    fn clear(&self, flag: u8) {
        self.flags.fetch_and(!flag, Relaxed);
    }
}

/// What the current exchange (up to its `ReadyForQuery`) showed.
#[derive(Debug, Default)]
struct Exchange {
    /// A `SET` command completed.
    set: bool,
    /// `default_transaction_read_only` was reported, on or off.
    read_only: Option<bool>,
    /// A write was refused as read-only (25006).
    refused: bool,
}

/// The reading side of a [`Wire`]: framing and per-exchange state, owned
/// by the connection's I/O task.
#[derive(Debug)]
pub(crate) struct Watch {
    wire: Arc<Wire>,
    backend: Framer,
    frontend: Framer,
    exchange: Exchange,
    /// The last request written began with `Execute` (extended protocol).
    extended: bool,
    // Mirrors of the wire's counters: this side is their only writer.
    outstanding: i64,
    statements: u64,
}

impl Watch {
    pub(crate) fn new(wire: Arc<Wire>) -> Self {
        Self {
            wire,
            backend: Framer::default(),
            frontend: Framer::default(),
            exchange: Exchange::default(),
            extended: false,
            outstanding: 0,
            statements: 0,
        }
    }

    /// Bytes read from the server.
    pub(crate) fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || !self.wire.is_armed() {
            return;
        }
        let Self {
            wire,
            backend,
            exchange,
            extended,
            outstanding,
            statements,
            ..
        } = self;
        backend.feed(
            bytes,
            |kind| matches!(kind, b'Z' | b'C' | b'E' | b'S'),
            |kind, body| match kind {
                b'Z' => {
                    *outstanding -= 1;
                    wire.outstanding.store(*outstanding, Relaxed);
                    let status = body.first().copied().unwrap_or(b'E');
                    wire.status.store(status, Relaxed);
                    end_exchange(wire, std::mem::take(exchange), status);
                }
                b'C' => {
                    *statements += 1;
                    wire.statements.store(*statements, Relaxed);
                    let (tag, _) = c_str(body);
                    if tag == b"SET" {
                        exchange.set = true;
                    } else if tag == b"DISCARD ALL" || tag == b"DEALLOCATE ALL" {
                        wire.epoch.fetch_add(1, Relaxed);
                    }
                }
                b'E' => {
                    *statements += 1;
                    wire.statements.store(*statements, Relaxed);
                    match sqlstate(body) {
                        Some(b"25006") => exchange.refused = true,
                        Some(b"57P01" | b"57P02" | b"57P03") => wire.set(SHUT_DOWN),
                        _ => {}
                    }
                }
                b'S' => {
                    let (name, rest) = c_str(body);
                    let (value, _) = c_str(rest);
                    let on = value == b"on";
                    if name == b"default_transaction_read_only" {
                        exchange.read_only = Some(on);
                    } else if name == b"in_hot_standby" && on {
                        wire.set(HOT_STANDBY);
                    } else if name == b"in_hot_standby"
                        && wire.flags.load(Relaxed) & WANTS_STANDBY != 0
                    {
                        wire.set(PROMOTED);
                    }
                }
                // CopyInResponse: a COPY started by `Execute` makes the
                // server skip the `Sync` written with it.
                b'G' if *extended => {
                    *outstanding -= 1;
                    wire.outstanding.store(*outstanding, Relaxed);
                }
                _ => {}
            },
        );
        if backend.is_lost() {
            wire.set(LOST_SYNC);
        }
    }

    /// Bytes written to the server.
    pub(crate) fn wrote(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || !self.wire.is_armed() {
            return;
        }
        let Self {
            wire,
            frontend,
            extended,
            outstanding,
            ..
        } = self;
        let mut asked = 0;
        frontend.feed(
            bytes,
            |_| false,
            |kind, _| match kind {
                b'S' | b'F' => asked += 1,
                b'Q' => {
                    asked += 1;
                    *extended = false;
                }
                b'E' => *extended = true,
                _ => {}
            },
        );
        if asked > 0 {
            *outstanding += asked;
            wire.outstanding.store(*outstanding, Relaxed);
        }
        if frontend.is_lost() {
            wire.set(LOST_SYNC);
        }
    }
}

/// Applies what an exchange showed, at its `ReadyForQuery` (`status`).
fn end_exchange(wire: &Wire, exchange: Exchange, status: u8) {
    match exchange.read_only {
        Some(true) if exchange.set => wire.set(CALLER_READ_ONLY),
        Some(true) => wire.set(SERVER_READ_ONLY),
        Some(false) => {
            wire.clear(CALLER_READ_ONLY);
        }
        None => {}
    }
    let callers_own = wire.flags.load(Relaxed) & CALLER_READ_ONLY != 0;
    if exchange.refused && status == b'I' && !callers_own && !wire.reports_read_only.load(Relaxed) {
        wire.set(REFUSED_WRITE);
    }
}

#[cfg(test)]
mod tests;
