//! The pool's size gauges: `idle | in_use | opening`, packed into one
//! `AtomicU64`, 21 bits each, so a reader always sees a consistent triple
//! and `open == idle + in_use + opening <= max_size` can be sampled from any
//! thread.
//!
//! A leaf of the accounting layer: the statistics hold the word, the
//! metrics publish readings, and only `Slot` (`slot.rs`) changes it, one
//! connection at a time, through [`Gauges::add`],
//! [`Gauges::move_one`] and [`Gauges::remove_one`].

use crate::sync::{AtomicU64, Ordering};

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
    #[inline]
    fn unpack(word: u64) -> Self {
        Self {
            idle: word & FIELD_MASK,
            in_use: (word >> FIELD_BITS) & FIELD_MASK,
            opening: (word >> (2 * FIELD_BITS)) & FIELD_MASK,
        }
    }

    /// `idle + in_use + opening`.
    #[inline]
    pub(crate) fn open(&self) -> u64 {
        self.idle + self.in_use + self.opening
    }
}

/// The packed `idle | in_use | opening` word. Changed only by `Slot`
/// (`slot.rs`), through the three methods below.
#[derive(Debug, Default)]
pub(crate) struct Gauges(AtomicU64);

impl Gauges {
    /// A consistent snapshot of the three gauges.
    #[inline]
    pub(crate) fn read(&self) -> GaugeReading {
        GaugeReading::unpack(self.0.load(Ordering::Acquire))
    }

    /// Counts one more connection in `state` (one `fetch_add`); the
    /// reading after. For `Slot::try_open` only, which holds a free row of
    /// the seat table, so the total stays within `max_size`.
    #[inline]
    pub(crate) fn add(&self, state: SlotState) -> GaugeReading {
        let unit = state.unit();
        let before = self.0.fetch_add(unit, Ordering::AcqRel);
        GaugeReading::unpack(before + unit)
    }

    /// Moves one connection from `from` to `to` with one `fetch_add` of the
    /// packed delta; the reading after. For `Slot::set` only: its owner has
    /// `&mut`, and the `from` field holds it, so the field is >= 1 and
    /// adding `to - from` as a wrapping `u64` borrows across no field.
    #[inline]
    pub(crate) fn move_one(&self, from: SlotState, to: SlotState) -> GaugeReading {
        let delta = to.unit().wrapping_sub(from.unit());
        let before = self.0.fetch_add(delta, Ordering::AcqRel);
        GaugeReading::unpack(before.wrapping_add(delta))
    }

    /// Removes one connection in `state`; the reading after. For `Slot`'s
    /// `Drop` only.
    #[inline]
    pub(crate) fn remove_one(&self, state: SlotState) -> GaugeReading {
        let unit = state.unit();
        let before = self.0.fetch_sub(unit, Ordering::AcqRel);
        GaugeReading::unpack(before - unit)
    }
}
