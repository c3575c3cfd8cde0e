//! The recent-window histogram: a ring of [`WINDOW_SLOTS`] histograms keyed
//! by epoch (see the parent module for the layout and the race analysis).

use std::fmt;
use std::time::Duration;

use super::{scan, LatencyHistogram, LatencySummary, Totals, WINDOW_SLOTS, WINDOW_SLOTS_U64};
use crate::sync::{AtomicU64, Ordering};

/// Tag bit: the slot's claimer is still zeroing it.
pub(super) const RESETTING: u64 = 1;

/// The largest epoch a tag can hold (one bit goes to [`RESETTING`]).
const MAX_EPOCH: u64 = u64::MAX >> 1;

/// The tag of a slot that holds `epoch` and may be read.
#[inline]
fn ready_tag(epoch: u64) -> u64 {
    epoch << 1
}

/// The tag of a slot claimed for `epoch` and still being zeroed.
#[inline]
pub(super) fn resetting_tag(epoch: u64) -> u64 {
    (epoch << 1) | RESETTING
}

/// The epoch a tag names.
#[inline]
fn tag_epoch(tag: u64) -> u64 {
    tag >> 1
}

/// One slot of the ring: a histogram and the epoch it currently holds.
pub(super) struct WindowSlot {
    /// The epoch held, shifted left by one, plus the [`RESETTING`] bit while
    /// its claimer zeroes the slot. Only ever grows.
    pub(super) tag: AtomicU64,
    /// The samples of that epoch.
    histogram: LatencyHistogram,
}

impl WindowSlot {
    /// Claims the slot, last seen with tag `seen`, for `epoch`; zeroes it;
    /// returns its new tag. Returns the current tag instead if another
    /// recorder moved it to `epoch` or later first.
    ///
    /// The retry loop is lock-free, not a wait: a failed exchange means the
    /// tag grew, and it can grow past `epoch` at most once.
    #[cold]
    fn claim(&self, mut seen: u64, epoch: u64) -> u64 {
        let claimed = resetting_tag(epoch);
        loop {
            // Acquire keeps the zeroing below after the claim.
            match self.tag.compare_exchange_weak(
                seen,
                claimed,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(current) if tag_epoch(current) < epoch => seen = current,
                Err(current) => return current,
            }
        }
        self.histogram.reset();
        // Release: whoever loads the ready tag with Acquire sees the zeroes.
        // If the exchange fails, a recorder with a clock a whole window
        // ahead claimed the slot meanwhile and publishes its own tag.
        match self.tag.compare_exchange(
            claimed,
            ready_tag(epoch),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => ready_tag(epoch),
            Err(current) => current,
        }
    }
}

/// A latency histogram over roughly the last `window` of time.
///
/// Lock-free and fixed-size: a ring of [`WINDOW_SLOTS`] histograms keyed by
/// epoch. A summary never includes a sample older than `window` and always
/// includes those younger than three quarters of it. The caller supplies
/// the time; see the module docs for the races at a rotation.
pub(crate) struct WindowedHistogram {
    pub(super) slots: [WindowSlot; WINDOW_SLOTS],
    /// Epoch length: `window / WINDOW_SLOTS` in ms, at least 1.
    slot_ms: u64,
}

impl WindowedHistogram {
    /// An empty histogram over `window`, rounded down to whole milliseconds
    /// and to a multiple of four; windows under 4 ms act as 4 ms.
    pub(crate) fn new(window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Self {
            slots: std::array::from_fn(|_| WindowSlot {
                tag: AtomicU64::new(ready_tag(0)),
                histogram: LatencyHistogram::new(),
            }),
            slot_ms: (window_ms / WINDOW_SLOTS_U64).max(1),
        }
    }

    /// The epoch of `now_ms`, clamped so that it fits in a tag.
    #[inline]
    fn epoch(&self, now_ms: u64) -> u64 {
        (now_ms / self.slot_ms).min(MAX_EPOCH)
    }

    /// Records one sample taken at `now_ms` (milliseconds since the caller's
    /// fixed start).
    ///
    /// The first sample of an epoch zeroes that epoch's slot (244 stores,
    /// once per slot per epoch); every other sample costs one tag load more
    /// than [`LatencyHistogram::record`]. A sample whose `now_ms` is a whole
    /// window behind a newer caller's is dropped.
    #[inline]
    pub(crate) fn record(&self, value: Duration, now_ms: u64) {
        if let Some(histogram) = self.current(now_ms) {
            histogram.record(value);
        }
    }

    /// Records one sample of 0 µs taken at `now_ms`: one tag load and one
    /// add (see [`LatencyHistogram::record_zero`]).
    #[inline]
    pub(crate) fn record_zero(&self, now_ms: u64) {
        if let Some(histogram) = self.current(now_ms) {
            histogram.record_zero();
        }
    }

    /// The histogram of `now_ms`'s epoch, claimed and zeroed first if it
    /// still holds an older one; `None` if `now_ms` is a whole window
    /// behind a newer caller's.
    #[inline]
    fn current(&self, now_ms: u64) -> Option<&LatencyHistogram> {
        let epoch = self.epoch(now_ms);
        // epoch % 4 < WINDOW_SLOTS: the cast cannot truncate.
        let slot = &self.slots[(epoch % WINDOW_SLOTS_U64) as usize];
        let mut tag = slot.tag.load(Ordering::Acquire);
        if tag_epoch(tag) < epoch {
            tag = slot.claim(tag, epoch);
        }
        // Equal epochs: ready, or being reset by the claimer (then the sample
        // may be wiped; see the module docs). A newer epoch: this caller's
        // clock is a whole window behind; drop the sample.
        (tag_epoch(tag) == epoch).then_some(&slot.histogram)
    }

    /// Count, percentiles, maximum and mean of the samples recorded in the
    /// last `WINDOW_SLOTS` epochs as of `now_ms`: none older than the
    /// window, all younger than three quarters of it.
    pub(crate) fn summary(&self, now_ms: u64) -> LatencySummary {
        let now_epoch = self.epoch(now_ms);
        let mut totals = Totals::default();
        // The live slots, packed at the front; the rest are placeholders.
        let mut live = [&self.slots[0].histogram; WINDOW_SLOTS];
        let mut live_count = 0;
        for slot in &self.slots {
            let tag = slot.tag.load(Ordering::Acquire);
            // A slot of a later epoch than `now_epoch` (a recorder whose
            // clock ran ahead of this caller's) is recent: keep it.
            let fresh = now_epoch.saturating_sub(tag_epoch(tag)) < WINDOW_SLOTS_U64;
            if !fresh || tag & RESETTING != 0 {
                continue;
            }
            if let (Some(slot_totals), Some(cell)) =
                (slot.histogram.totals(), live.get_mut(live_count))
            {
                totals = totals.merge(slot_totals);
                *cell = &slot.histogram;
                live_count += 1;
            }
        }
        // Scanning only the live slots keeps a quiet window as cheap as a
        // single histogram.
        match live_count {
            0 => LatencySummary::default(),
            1 => scan([live[0]], totals),
            2 => scan([live[0], live[1]], totals),
            3 => scan([live[0], live[1], live[2]], totals),
            _ => scan(live, totals),
        }
    }
}

impl fmt::Debug for WindowedHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowedHistogram")
            .field("slot_ms", &self.slot_ms)
            .field("slots", &WINDOW_SLOTS)
            .finish_non_exhaustive()
    }
}
