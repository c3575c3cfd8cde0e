//! The RAII connection guard.
//!
//! A [`PooledConnection`] owns a connection and the permit it was lent
//! under. It derefs to the backend connection. Dropping it returns the
//! connection to the idle queue (unless the manager's verdict or the
//! pool's rules retire it, see `recycle.rs`, or the pool is closed) and
//! only *then* releases the permit, so the next waiter finds the
//! connection already idle.
//! When the manager needs I/O before it can judge (`Verdict::Settle`), the
//! connection and its permit go to a settle task instead (`settle.rs`).
//! [`PooledConnection::discard`] closes a connection the caller knows is
//! bad instead of returning it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::idle::Conn;
use crate::leak;
use crate::manager::Manager;
use crate::recycle::{finish_return, on_return, Rejected};
use crate::retire::RetireReason;
use crate::seats::SlowWait;
use crate::settle;
use crate::shared::{Permit, Shared};
use crate::site::Site;
use crate::sync::Arc;

/// A connection lent by the pool. Gives it back when dropped.
#[must_use = "dropping the guard returns the connection at once"]
pub struct PooledConnection<M: Manager> {
    // Field order matters: the connection is returned in `Drop::drop`,
    // before the permit (dropped with the fields) wakes the next waiter.
    conn: Option<Conn<M::Connection>>,
    /// `None` only once a settling return took it along (see `settle.rs`).
    permit: Option<Permit<M>>,
    /// When it was lent, in µs since the pool was built.
    acquired_us: u64,
}

impl<M: Manager> PooledConnection<M> {
    /// Lends `conn` under `permit`, as of `now_us` (µs since build), after
    /// `wait` if it came through the slow path.
    pub(crate) fn new(
        conn: Conn<M::Connection>,
        permit: Permit<M>,
        now_us: u64,
        site: Option<Site>,
        wait: Option<SlowWait>,
    ) -> Self {
        let ledger = &permit.shared().ledger;
        ledger
            .stats
            .record_lent(now_us / 1000, wait, ledger.gauges.read().in_use);
        ledger
            .seats
            .lend(conn.slot.seat(), conn.id, now_us / 1000, site, wait);
        Self {
            conn: Some(conn),
            permit: Some(permit),
            acquired_us: now_us,
        }
    }

    fn shared(&self) -> &Arc<Shared<M>> {
        // Invariant: `permit` is `Some` until `Drop` hands it to a settle.
        match &self.permit {
            Some(permit) => permit.shared(),
            None => unreachable!("permit taken before the guard was dropped"),
        }
    }

    /// Records that `conn` comes back at `now_us`: the hold time's
    /// histogram bucket first, then the seat (its return count and hold-time
    /// sum, published with `Release`, and its leak flag). Returns the hold
    /// time.
    fn record_return(&self, conn: &Conn<M::Connection>, now_us: u64) -> Duration {
        let shared = self.shared();
        let stats = &shared.ledger.stats;
        let seats = &shared.ledger.seats;
        let held_us = now_us.saturating_sub(self.acquired_us);
        let held = Duration::from_micros(held_us);
        stats.hold_time.record_uncounted(held_us);
        if seats.unlend(conn.slot.seat(), held_us) {
            let site = seats.site(conn.slot.seat());
            leak::unleaked(&shared.config.name, conn.id, held, site.as_ref());
        }
        stats.metrics.released(held);
        held
    }

    /// How long it has been held until now.
    fn held_now(&self) -> Duration {
        Duration::from_micros(self.shared().now_us().saturating_sub(self.acquired_us))
    }

    fn conn(&self) -> &Conn<M::Connection> {
        // Invariant: `conn` is `Some` until `Drop` or `discard` consume it.
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("connection taken before the guard was dropped"),
        }
    }

    fn conn_mut(&mut self) -> &mut Conn<M::Connection> {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("connection taken before the guard was dropped"),
        }
    }

    /// The pool-unique id of this connection (as used in log lines).
    pub fn id(&self) -> u64 {
        self.conn().id
    }

    /// How long this guard has been held.
    pub fn held_for(&self) -> Duration {
        self.held_now()
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.conn().created_at.elapsed()
    }

    /// Exempts this lending from leak reports: use it for connections held
    /// for a long time on purpose (a `LISTEN` loop, a long migration).
    pub fn mark_long_held(&self) {
        let conn = self.conn();
        self.shared().ledger.seats.mark_long_held(conn.slot.seat());
    }

    /// Where this connection was acquired (`file:line`), when leak
    /// detection is on.
    pub fn acquired_at(&self) -> Option<String> {
        let seat = self.conn().slot.seat();
        self.shared()
            .ledger
            .seats
            .site(seat)
            .map(|site| site.to_string())
    }

    /// Closes the connection instead of returning it: use it when you know
    /// the connection is unusable (a protocol error, a session left in an
    /// unknown state). Its capacity is freed at once.
    pub fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            let now_us = self.shared().now_us();
            self.record_return(&conn, now_us);
            conn.retire(RetireReason::Discarded);
        }
    }
}

impl<M: Manager> Deref for PooledConnection<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self.conn().raw
    }
}

impl<M: Manager> DerefMut for PooledConnection<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self.conn_mut().raw
    }
}

impl<M: Manager> Drop for PooledConnection<M> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let shared = Arc::clone(self.shared());
        // The one clock read of the return path.
        let now_us = shared.now_us();
        self.record_return(&conn, now_us);
        let generation = shared.generation();
        match on_return(
            &shared.manager,
            &shared.config,
            &mut conn,
            now_us,
            generation,
        ) {
            Some(Rejected::Settle) => {
                // The manager needs I/O first: the connection keeps its
                // permit (its capacity) until the settle has decided.
                if let Some(permit) = self.permit.take() {
                    settle::spawn(shared, conn, permit);
                }
            }
            rejected => finish_return(&shared, conn, rejected, now_us, generation),
        }
        // `self.permit` is released after this body: the next waiter wakes
        // up with the connection already in the idle queue.
    }
}

impl<M: Manager> fmt::Debug for PooledConnection<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("id", &self.conn.as_ref().map(|c| c.id))
            .field("held_for", &self.held_now())
            .finish_non_exhaustive()
    }
}
