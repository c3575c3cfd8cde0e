//! Latency histograms: lock-free, fixed memory, over all time and over a
//! recent window.
//!
//! # Design
//!
//! A [`LatencyHistogram`] is an array of [`BUCKETS`] (240) `AtomicU64`
//! bucket counters in a log-linear ("HDR") layout over whole microseconds,
//! plus a sample count, a sum and a maximum. Recording computes the bucket
//! index with `leading_zeros` arithmetic (no branch, no loop), adds one to
//! the bucket, raises the maximum if the sample is a new one, adds to the
//! sum and, last, adds one to the count with `Release`. It never locks,
//! allocates or loops over buckets. Two cheaper ways in serve the pool's
//! hot path: `record_zero` adds one to a separate `zeros` count (a summary
//! puts those samples in bucket 0), and `record_uncounted` moves only the
//! bucket and the maximum, for a caller that keeps the count and the sum
//! itself (the pool's hold times, counted per seat).
//! [`LatencyHistogram::summary`] loads the count first (`Acquire`), then
//! reads the buckets in one forward pass that stops at the bucket of the
//! last percentile it needs, and returns a public [`LatencySummary`]. An
//! empty histogram costs one load.
//!
//! Bucket layout, for a value of `v` microseconds:
//!
//! | values (µs)                  | buckets          | width          |
//! |------------------------------|------------------|----------------|
//! | `0 ..= 15`                   | `0 ..= 15`       | 1 µs (exact)   |
//! | `[2^k, 2^(k+1))`, k = 4..=31 | 8 per power of 2 | `2^(k-3)` µs   |
//! | `>= 15 * 2^28` (~67.1 min)   | `239` (open top) | unbounded      |
//!
//! # Invariant
//!
//! `bucket_index` is monotonic in the value and maps *every* `u64` to an
//! index `< BUCKETS`, so no input can index out of range. Below the top
//! bucket, a value `v` and the highest value `h` of its bucket satisfy
//! `v <= h < v * 9 / 8`. A percentile is reported as `h` of the bucket that
//! holds it, clamped to the recorded maximum, so a reported percentile is
//! **never below the true one and less than 12.5 % above it** (exact below
//! 16 µs, and exact whenever it is clamped to the maximum). In the open top
//! bucket a percentile reports the maximum. The maximum and the mean are
//! exact (the mean counts each sample as at most 2^40 µs, ~12.7 days, so the
//! sum cannot wrap in practice). Counters are only ever incremented or, in a
//! window slot being reused, stored to zero: no count is ever subtracted, so
//! none can go negative, and wrapping one would take 2^64 samples.
//!
//! Because a sample's count moves after its bucket and maximum, and a
//! summary reads the count before them, every sample a summary counts is
//! also in the buckets it scans: the percentiles, count and maximum of one
//! summary describe the same samples, give or take the samples recorded
//! during the scan.
//!
//! The upper bound of the bucket is reported rather than its midpoint (which
//! would halve the worst error to ±6.25 %) because a pool's latency figures
//! feed alerts and capacity decisions: "p99 below 50 ms" must never be
//! reported when the truth is above it.
//!
//! # Why 8 sub-buckets per power of two
//!
//! Sixteen would bring the bound down to 6.25 % but double the buckets to
//! 464 (3.7 KB) and roughly double the cost of every summary, which is one
//! load and add per bucket up to the one holding the p99. The pool's
//! `statistics()` summarises three all-time histograms and three windowed
//! ones (of four slots each) and must stay under 1 µs, so the summaries'
//! cost, not the memory, sets the resolution. A p99 within 12.5 % is enough
//! to tell 2 ms from 3 ms. (The figures behind this choice are in
//! `docs/performance.md`, "Figures behind the code".)
//!
//! # Memory
//!
//! A [`LatencyHistogram`] is 1,952 bytes: 240 buckets plus count, zeros,
//! sum and max, 8 bytes each. A [`WindowedHistogram`] is 7,848 bytes: four
//! slots of a histogram and an epoch tag, plus the slot width. Nothing is
//! allocated after construction.
//!
//! # The recent window
//!
//! A [`WindowedHistogram`] covering `N` splits time into epochs of
//! `N / WINDOW_SLOTS` milliseconds and keeps a ring of [`WINDOW_SLOTS`]
//! histograms, the slot for epoch `e` being `e % WINDOW_SLOTS`. Each slot
//! carries a tag: its epoch and a "being reset" bit. The module has no
//! clock: callers pass `now_ms`, milliseconds since some fixed start (the
//! pool's creation). A summary merges the slots whose epoch is one of the
//! last `WINDOW_SLOTS` epochs, so it **never includes a sample older than
//! `N` and always includes every sample younger than `N - N / WINDOW_SLOTS`**
//! (45 s of a 60 s window).
//!
//! The first recorder to reach a slot that still holds an older epoch claims
//! it with one compare-and-swap of the tag to "epoch `e`, being reset",
//! zeroes the slot (244 stores, once per slot per epoch), then publishes
//! "epoch `e`, ready" with `Release`. Readers skip a slot that is being
//! reset, and a reader that loads "ready" with `Acquire` sees the zeroes, so
//! a summary never mixes a stale epoch's counts into the current one.
//!
//! What the races can lose, and nothing more:
//!
//! - A sample recorded into a slot while it is being reset (it loaded the
//!   tag just after the claim) may be wiped by the reset, wholly or in part
//!   (bucket, count, sum or max separately). This is at most the few samples
//!   recorded during the reset's 244 stores, once per epoch.
//! - A sample whose `now_ms` lags another caller's by more than the whole
//!   window (a thread stalled for ~`N` between reading the clock and
//!   recording) is dropped, or in a narrower race counted in the newer
//!   epoch.
//! - A summary taken during a reset leaves out the slot being reset: the
//!   newest few samples, for that one summary. If the reset starts after
//!   the summary has read the slot's count, buckets it counted may vanish
//!   under the scan; a percentile whose rank the scan then cannot reach
//!   reports the maximum.
//!
//! Every index is computed from the value alone, so no race can produce an
//! out-of-range index, a panic or an overflow.

use std::fmt;
use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};

mod summary;
mod window;

pub use summary::LatencySummary;
use summary::{scan, Totals};
pub(crate) use window::WindowedHistogram;

/// Linear sub-buckets per power of two, as a bit count: `2^3 = 8`.
const SUB_BUCKET_BITS: u32 = 3;

/// Linear sub-buckets per power of two.
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;

/// Values of `2^TOP_BIT` µs (~71.6 min) and above share the last bucket.
const TOP_BIT: u32 = 32;

/// The largest value whose bucket index is computed rather than clamped.
const LARGEST_INDEXED: u64 = (1 << TOP_BIT) - 1;

/// Buckets per histogram: 16 exact ones, then 8 for each of the powers of
/// two `2^4 ..= 2^31`. `TOP_BIT - SUB_BUCKET_BITS + 1` is 30: widening it
/// to `usize` is exact.
const BUCKETS: usize = ((TOP_BIT - SUB_BUCKET_BITS + 1) as usize) << SUB_BUCKET_BITS;

/// A sample adds at most this much to the sum behind the mean (~12.7 days),
/// so that 2^24 absurd samples, not one, are needed to wrap it.
pub(crate) const MEAN_CAP_MICROS: u64 = 1 << 40;

/// Ring slots in a [`WindowedHistogram`]. Four slots make the window forget
/// in steps of a quarter (15 s of 60 s) while a summary merges at most four
/// histograms; more slots would sharpen the edge at a linear cost in memory
/// and summary time.
const WINDOW_SLOTS: usize = 4;

/// [`WINDOW_SLOTS`] as a `u64`, for epoch arithmetic (widening, exact).
const WINDOW_SLOTS_U64: u64 = WINDOW_SLOTS as u64;

/// The bucket holding a value of `micros` microseconds.
///
/// Monotonic, and `< BUCKETS` for every input.
#[inline]
fn bucket_index(micros: u64) -> usize {
    let clamped = micros.min(LARGEST_INDEXED);
    // OR-ing in SUB_BUCKETS puts the highest set bit at SUB_BUCKET_BITS or
    // above, so values below 16 get shift 0: one bucket per microsecond.
    let highest_bit = u64::BITS - 1 - (clamped | SUB_BUCKETS).leading_zeros();
    let shift = highest_bit - SUB_BUCKET_BITS;
    // `clamped >> shift` keeps the leading SUB_BUCKET_BITS + 1 bits: it lies
    // in 8..16 once shift > 0 (and in 0..16 when shift == 0).
    let index = (u64::from(shift) << SUB_BUCKET_BITS) + (clamped >> shift);
    // At most (28 << 3) + 15 = 239 < BUCKETS: the cast cannot truncate.
    index as usize
}

/// The highest value, in microseconds, that lands in bucket `index`;
/// `u64::MAX` for the open top bucket.
#[inline]
fn bucket_highest(index: usize) -> u64 {
    if index >= BUCKETS - 1 {
        return u64::MAX;
    }
    // index < 239: widening to u64 is exact.
    let index = index as u64;
    let shift = (index >> SUB_BUCKET_BITS).saturating_sub(1);
    let mantissa = index - (shift << SUB_BUCKET_BITS);
    ((mantissa + 1) << shift) - 1
}

/// Whole microseconds in `value`, saturating at `u64::MAX` (~584,000 years).
#[inline]
fn duration_micros(value: Duration) -> u64 {
    value
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(value.subsec_micros()))
}

/// Microseconds to milliseconds. Exact up to 2^53 µs (~285 years), beyond
/// which `f64` rounds to its 53-bit mantissa.
#[inline]
fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

/// The 1-based rank of the `percent`-th percentile among `count` samples
/// (nearest rank: the smallest rank with at least `percent`% of the samples
/// at or below it). `1 <= rank <= count` when `count > 0`.
#[inline]
fn percentile_rank(count: u64, percent: u64) -> u64 {
    match count.checked_mul(percent) {
        Some(product) => product.div_ceil(100),
        // Over 1.8e17 samples: widen rather than overflow. The rank is at
        // most `count` because percent <= 100, so it always fits back.
        None => {
            let rank = (u128::from(count) * u128::from(percent)).div_ceil(100);
            u64::try_from(rank).unwrap_or(count)
        }
    }
}

/// A lock-free, fixed-size histogram of latencies over all time.
///
/// See the module docs for the bucket layout and the error bound.
pub(crate) struct LatencyHistogram {
    /// Samples per bucket; see [`bucket_index`].
    buckets: [AtomicU64; BUCKETS],
    /// Samples recorded in the buckets. Lets a summary skip an empty
    /// histogram at once.
    count: AtomicU64,
    /// Samples of 0 µs recorded by [`Self::record_zero`], counted apart
    /// from `count` and the buckets: the pool's most common wait sample
    /// costs one read-modify-write instead of two.
    zeros: AtomicU64,
    /// Sum of the samples in µs, each capped at [`MEAN_CAP_MICROS`].
    sum_micros: AtomicU64,
    /// The largest sample in µs, uncapped.
    max_micros: AtomicU64,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub(crate) fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            zeros: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
        }
    }

    /// Records one sample of 0 µs: one uncontended add, no bucket, no
    /// maximum, no sum. A summary counts it in the first bucket.
    #[inline]
    pub(crate) fn record_zero(&self) {
        self.zeros.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a sample's bucket and maximum only; the caller keeps the
    /// sample count and sum itself (the pool keeps them per seat, where one
    /// writer at a time needs no locked instruction) and passes them to
    /// [`Self::summary_counted_by`]. One read-modify-write per sample.
    #[inline]
    pub(crate) fn record_uncounted(&self, micros: u64) {
        self.buckets[bucket_index(micros)].fetch_add(1, Ordering::Relaxed);
        if micros > self.max_micros.load(Ordering::Relaxed) {
            self.max_micros.fetch_max(micros, Ordering::Relaxed);
        }
    }

    /// Records one sample, truncated to whole microseconds.
    ///
    /// Values beyond ~67 min land in the open top bucket; the maximum still
    /// records them exactly. The count moves last, with `Release`: a summary
    /// that sees it counted sees the sample's bucket and maximum too.
    #[inline]
    pub(crate) fn record(&self, value: Duration) {
        let micros = duration_micros(value);
        self.buckets[bucket_index(micros)].fetch_add(1, Ordering::Relaxed);
        // A plain load first: most samples are not a new maximum, and a
        // fetch_max is a compare-and-swap loop on x86.
        if micros > self.max_micros.load(Ordering::Relaxed) {
            self.max_micros.fetch_max(micros, Ordering::Relaxed);
        }
        // Most samples of a busy pool's wait time are 0 (the lock-free fast
        // path): adding nothing is a read-modify-write saved.
        if micros > 0 {
            self.sum_micros
                .fetch_add(micros.min(MEAN_CAP_MICROS), Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Count, percentiles, maximum and mean of every sample recorded so far.
    ///
    /// Taken while other threads record, it misses the samples whose count
    /// it did not see; its fields stay consistent with each other (see
    /// [`LatencySummary`]). One load when empty.
    pub(crate) fn summary(&self) -> LatencySummary {
        self.summary_with_zeros(0)
    }

    /// Like [`Self::summary`], with `extra_zeros` more samples of 0 µs that
    /// were never recorded here (the pool derives how many acquisitions did
    /// not wait instead of recording each one).
    pub(crate) fn summary_with_zeros(&self, extra_zeros: u64) -> LatencySummary {
        let mut totals = self.totals().unwrap_or_default();
        totals.count = totals.count.saturating_add(extra_zeros);
        totals.zeros = totals.zeros.saturating_add(extra_zeros);
        if totals.count == 0 {
            return LatencySummary::default();
        }
        scan([self], totals)
    }

    /// The summary of a histogram fed by [`Self::record_uncounted`], whose
    /// `count` samples summing to `sum_micros` the caller kept; `zeros` of
    /// them are samples of 0 µs that were never recorded here (counted in
    /// `count`). The caller loads the counts (with `Acquire`, after each
    /// sample's bucket moved) before this scans the buckets.
    pub(crate) fn summary_counted_by(
        &self,
        count: u64,
        zeros: u64,
        sum_micros: u64,
    ) -> LatencySummary {
        if count == 0 {
            return LatencySummary::default();
        }
        let totals = Totals {
            count,
            zeros: zeros.min(count),
            sum_micros,
            max_micros: self.max_micros.load(Ordering::Relaxed),
        };
        scan([self], totals)
    }

    /// Samples recorded so far, zeros included.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.count
            .load(Ordering::Acquire)
            .saturating_add(self.zeros.load(Ordering::Relaxed))
    }

    /// The count (zeros included), sum and maximum, or `None` if the
    /// histogram is empty.
    ///
    /// The count is loaded first, with `Acquire`, so every sample it counts
    /// is already visible in the maximum and the buckets read afterwards.
    /// A zero sample has no bucket or maximum to publish.
    fn totals(&self) -> Option<Totals> {
        let counted = self.count.load(Ordering::Acquire);
        let zeros = self.zeros.load(Ordering::Relaxed);
        let count = counted.saturating_add(zeros);
        (count > 0).then(|| Totals {
            count,
            zeros,
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
            max_micros: self.max_micros.load(Ordering::Relaxed),
        })
    }

    /// Empties the histogram. Only a window slot's claimer calls this.
    fn reset(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.zeros.store(0, Ordering::Relaxed);
        self.sum_micros.store(0, Ordering::Relaxed);
        self.max_micros.store(0, Ordering::Relaxed);
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("summary", &self.summary())
            .finish()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cheap_record_tests;
