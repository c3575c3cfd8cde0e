//! Capacity as an RAII token: every open (or opening) connection owns one
//! [`Slot`], and the pool's size gauges are nothing but the sum of slots.
//!
//! # Invariant
//!
//! `open == idle + in_use + opening <= max_size`, at every instant.
//!
//! The three terms live in one `AtomicU64` ([`Gauges`]), 21 bits each, so a
//! reader always sees a consistent triple and the invariant can be sampled
//! from any thread. Only a `Slot` changes them:
//!
//! * [`Slot::try_open`] is the only way to grow: a CAS that adds one
//!   `opening` only if the total is below `max_size`;
//! * [`Slot::set`] moves the slot between states with one `fetch_add` of a
//!   packed delta (its owner has `&mut`, so a slot's state and its
//!   contribution to the gauges never disagree and no field goes negative);
//! * `Drop` removes the slot's contribution: the connection is closed, and
//!   its capacity is back, whatever path dropped it (cancellation, panic,
//!   error, shutdown).

use crate::recycle::RetireReason;
use crate::stats::Stats;
use crate::sync::{Arc, AtomicU64, Ordering};

const FIELD_BITS: u32 = 21;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;

/// Where a connection is in its life. Each maps to one gauge field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Being opened by a connect task; not usable yet.
    Opening,
    /// In the idle queue (or moving into or out of it).
    Idle,
    /// Lent to a caller, or being validated for one.
    InUse,
}

impl SlotState {
    const fn unit(self) -> u64 {
        match self {
            SlotState::Idle => 1,
            SlotState::InUse => 1 << FIELD_BITS,
            SlotState::Opening => 1 << (2 * FIELD_BITS),
        }
    }
}

/// A consistent reading of the size gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GaugeReading {
    pub(crate) idle: u64,
    pub(crate) in_use: u64,
    pub(crate) opening: u64,
}

impl GaugeReading {
    fn unpack(word: u64) -> Self {
        Self {
            idle: word & FIELD_MASK,
            in_use: (word >> FIELD_BITS) & FIELD_MASK,
            opening: (word >> (2 * FIELD_BITS)) & FIELD_MASK,
        }
    }

    /// `idle + in_use + opening`.
    pub(crate) fn open(&self) -> u64 {
        self.idle + self.in_use + self.opening
    }
}

/// The packed `idle | in_use | opening` word. Changed only through [`Slot`].
#[derive(Debug, Default)]
pub(crate) struct Gauges(AtomicU64);

impl Gauges {
    /// A consistent snapshot of the three gauges.
    pub(crate) fn read(&self) -> GaugeReading {
        GaugeReading::unpack(self.0.load(Ordering::Acquire))
    }
}

/// One connection's share of the pool's capacity. Dropping it gives the
/// capacity back.
#[must_use = "dropping a Slot closes its connection's place in the pool"]
#[derive(Debug)]
pub(crate) struct Slot {
    stats: Arc<Stats>,
    state: SlotState,
    /// This connection's seat in the lent registry (`seats.rs`).
    seat: usize,
    /// Counted when the slot drops; `Dropped` unless someone said why.
    close_reason: RetireReason,
}

impl Slot {
    /// Reserves room for one more connection, in state `Opening`, if fewer
    /// than `max_size` are open or opening.
    pub(crate) fn try_open(stats: &Arc<Stats>, max_size: u64) -> Option<Slot> {
        let gauges = &stats.gauges.0;
        let mut word = gauges.load(Ordering::Acquire);
        if GaugeReading::unpack(word).open() >= max_size {
            return None;
        }
        // There is one seat per possible connection, so a seat is free
        // whenever there is room; take it first, give it back if the CAS
        // finds the pool full after all.
        let seat = stats.seats.take()?;
        loop {
            if GaugeReading::unpack(word).open() >= max_size {
                stats.seats.give_back(seat);
                return None;
            }
            match gauges.compare_exchange_weak(
                word,
                word + SlotState::Opening.unit(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    stats
                        .metrics
                        .connections(GaugeReading::unpack(word + SlotState::Opening.unit()));
                    return Some(Slot {
                        stats: Arc::clone(stats),
                        state: SlotState::Opening,
                        seat,
                        close_reason: RetireReason::Dropped,
                    });
                }
                Err(current) => word = current,
            }
        }
    }

    /// Moves this slot to `to`, updating the gauges in one atomic step.
    pub(crate) fn set(&mut self, to: SlotState) {
        if self.state != to {
            // Adding `to - from` as a wrapping u64 is exact: the `from` field
            // holds this slot, so it is >= 1 and nothing borrows across fields.
            let delta = to.unit().wrapping_sub(self.state.unit());
            let before = self.stats.gauges.0.fetch_add(delta, Ordering::AcqRel);
            self.stats
                .metrics
                .connections(GaugeReading::unpack(before.wrapping_add(delta)));
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
        &self.stats.pool
    }

    /// Records why this connection is being closed.
    pub(crate) fn set_close_reason(&mut self, reason: RetireReason) {
        self.close_reason = reason;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let unit = self.state.unit();
        let before = self.stats.gauges.0.fetch_sub(unit, Ordering::AcqRel);
        self.stats
            .metrics
            .connections(GaugeReading::unpack(before - unit));
        if self.state != SlotState::Opening {
            self.stats.closed_by_reason[self.close_reason.index()].incr();
            self.stats.metrics.closed(self.close_reason);
        }
        self.stats.seats.give_back(self.seat);
        if self.stats.closing.load(Ordering::Acquire) {
            self.stats.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_move_between_states_and_give_capacity_back_on_drop() {
        let stats = Arc::new(Stats::new("test", 0, 2));
        let mut a = Slot::try_open(&stats, 2).expect("room for one");
        let mut b = Slot::try_open(&stats, 2).expect("room for two");
        assert!(
            Slot::try_open(&stats, 2).is_none(),
            "max_size is a hard bound"
        );
        a.set(SlotState::Idle);
        b.set(SlotState::InUse);
        let reading = stats.gauges.read();
        assert_eq!((reading.idle, reading.in_use, reading.opening), (1, 1, 0));
        drop(a);
        let reading = stats.gauges.read();
        assert_eq!((reading.idle, reading.in_use, reading.opening), (0, 1, 0));
        assert_eq!(stats.closed_total(), 1);
        drop(b);
        assert_eq!(stats.gauges.read().open(), 0);
    }
}
