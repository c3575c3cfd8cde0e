//! Capacity as an RAII token: every open (or opening) connection owns one
//! [`Slot`], and the pool's size gauges are nothing but the sum of slots.
//!
//! # Design
//!
//! A slot *is* a row of the ledger's seat table (`seats.rs`): the table has
//! `max_size` rows, a lock-free free list hands them out, and the row's
//! index is the slot's identity. Taking a free row is the reservation of
//! capacity; there is no second counter to check. So one connection has one
//! capacity token (its slot) and one row (the slot's index); the only other
//! token is the semaphore's permit, the right to hold a connection that is
//! not idle.
//!
//! # Invariant
//!
//! `open == idle + in_use + opening <= max_size`, at every instant.
//!
//! The three terms live in one `AtomicU64` (`Gauges`, `gauges.rs`), 21 bits
//! each, so a reader always sees a consistent triple and the invariant can
//! be sampled from any thread. Only a `Slot` changes them:
//!
//! * [`Slot::try_open`] is the only way to grow: it takes a free row (none
//!   left: the pool is full), *then* counts itself `opening`;
//! * [`Slot::set`] moves the slot between states with one `fetch_add` of a
//!   packed delta (its owner has `&mut`, so a slot's state and its
//!   contribution to the gauges never disagree and no field goes negative);
//! * `Drop` removes the slot's contribution *before* it frees its row: the
//!   connection is closed, and its capacity is back, whatever path dropped
//!   it (cancellation, panic, error, shutdown).
//!
//! Counted only while holding a row, and rows number `max_size`, so `open`
//! never exceeds `max_size`.

pub(crate) use crate::gauges::SlotState;
use crate::ledger::Ledger;
use crate::retire::RetireReason;
use crate::sync::{Arc, Ordering};

/// One connection's share of the pool's capacity. Dropping it gives the
/// capacity back.
#[must_use = "dropping a Slot closes its connection's place in the pool"]
#[derive(Debug)]
pub(crate) struct Slot {
    ledger: Arc<Ledger>,
    state: SlotState,
    /// This slot's row in the ledger's seat table (`seats.rs`): its
    /// identity and its share of the capacity.
    seat: usize,
    /// Counted when the slot drops; `Dropped` unless someone said why.
    close_reason: RetireReason,
}

impl Slot {
    /// Reserves room for one more connection, in state `Opening`: a free
    /// row of the ledger's table, or `None` if all `max_size` are taken.
    pub(crate) fn try_open(ledger: &Arc<Ledger>) -> Option<Slot> {
        let seat = ledger.seats.take()?;
        let after = ledger.gauges.add(SlotState::Opening);
        ledger.stats.metrics.connections(after);
        Some(Slot {
            ledger: Arc::clone(ledger),
            state: SlotState::Opening,
            seat,
            close_reason: RetireReason::Dropped,
        })
    }

    /// Moves this slot to `to`, updating the gauges in one atomic step.
    #[inline]
    pub(crate) fn set(&mut self, to: SlotState) {
        if self.state != to {
            // Adding `to - from` as a wrapping u64 is exact: the `from` field
            // holds this slot, so it is >= 1 and nothing borrows across fields.
            let after = self.ledger.gauges.move_one(self.state, to);
            self.ledger.stats.metrics.connections(after);
            self.state = to;
        }
    }
}

impl Slot {
    /// This connection's seat in the lent registry.
    pub(crate) fn seat(&self) -> usize {
        self.seat
    }

    /// The name of the pool this slot belongs to, for log events.
    pub(crate) fn pool(&self) -> &str {
        &self.ledger.pool
    }

    /// Records why this connection is being closed.
    pub(crate) fn set_close_reason(&mut self, reason: RetireReason) {
        self.close_reason = reason;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let after = self.ledger.gauges.remove_one(self.state);
        self.ledger.stats.metrics.connections(after);
        if self.state != SlotState::Opening {
            self.ledger.stats.closed_by_reason[self.close_reason.index()].incr();
            self.ledger.stats.metrics.closed(self.close_reason);
        }
        self.ledger.seats.give_back(self.seat);
        if self.ledger.closing.load(Ordering::Acquire) {
            self.ledger.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_move_between_states_and_give_capacity_back_on_drop() {
        let ledger = Arc::new(Ledger::new("test", 0, 2));
        let mut a = Slot::try_open(&ledger).expect("room for one");
        let mut b = Slot::try_open(&ledger).expect("room for two");
        assert!(
            Slot::try_open(&ledger).is_none(),
            "max_size is a hard bound"
        );
        a.set(SlotState::Idle);
        b.set(SlotState::InUse);
        let reading = ledger.gauges.read();
        assert_eq!((reading.idle, reading.in_use, reading.opening), (1, 1, 0));
        drop(a);
        let reading = ledger.gauges.read();
        assert_eq!((reading.idle, reading.in_use, reading.opening), (0, 1, 0));
        assert_eq!(ledger.stats.closed_total(), 1);
        drop(b);
        assert_eq!(ledger.gauges.read().open(), 0);
    }
}
