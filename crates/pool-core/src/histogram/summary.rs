//! Summaries: one forward scan over a histogram's buckets (or several
//! histograms' at once) for the count, percentiles, maximum and mean, and
//! the public [`LatencySummary`] it returns. See the parent module for the
//! bucket layout, the error bound and the ordering that makes a summary's
//! fields describe the same samples.

use serde::Serialize;

use super::{
    bucket_highest, bucket_index, micros_to_ms, percentile_rank, LatencyHistogram, BUCKETS,
};
use crate::sync::Ordering;

/// What a summary needs besides the buckets, loaded before them.
#[derive(Clone, Copy, Default)]
pub(super) struct Totals {
    /// All samples, `zeros` included.
    pub(super) count: u64,
    /// Samples of 0 µs kept outside the buckets; they belong to bucket 0.
    pub(super) zeros: u64,
    pub(super) sum_micros: u64,
    pub(super) max_micros: u64,
}

impl Totals {
    /// The totals of two histograms summarised as one.
    pub(super) fn merge(self, other: Self) -> Self {
        Self {
            count: self.count.saturating_add(other.count),
            zeros: self.zeros.saturating_add(other.zeros),
            sum_micros: self.sum_micros.saturating_add(other.sum_micros),
            max_micros: self.max_micros.max(other.max_micros),
        }
    }
}

/// Summarises non-empty `histograms` with merged `totals` as if they were
/// one histogram, in a single pass over their buckets up to the one holding
/// the maximum. `N` is a constant so the per-bucket sum is unrolled.
///
/// The totals were loaded before the buckets (see
/// [`LatencyHistogram::totals`]), so the scan reaches every percentile's
/// rank. Should a concurrent reset wipe buckets after that load (a window
/// slot's rotation), an unreached percentile reports the maximum.
pub(super) fn scan<const N: usize>(
    histograms: [&LatencyHistogram; N],
    totals: Totals,
) -> LatencySummary {
    let Totals {
        count,
        zeros,
        sum_micros,
        max_micros,
    } = totals;
    let ranks = [
        percentile_rank(count, 50),
        percentile_rank(count, 95),
        percentile_rank(count, 99),
    ];
    // `min` restates `bucket_index`'s bound so the compiler drops the
    // bounds checks in the loop below.
    let last = bucket_index(max_micros).min(BUCKETS - 1);
    // Samples in bucket `index` across the histograms.
    let in_bucket = |index: usize| {
        histograms.iter().fold(0u64, |total, histogram| {
            // Wrapping needs 2^64 samples; unlike `+` it cannot panic.
            total.wrapping_add(histogram.buckets[index].load(Ordering::Relaxed))
        })
    };
    // One forward scan in three phases, one per percentile: each phase is a
    // tight loop that advances until the samples seen reach its rank.
    let mut found = [0; 3];
    let mut index = 0;
    let mut seen = in_bucket(0).wrapping_add(zeros);
    for (rank, found) in ranks.into_iter().zip(&mut found) {
        while seen < rank && index < last {
            index += 1;
            seen = seen.wrapping_add(in_bucket(index));
        }
        *found = index;
    }
    finish(count, found, sum_micros, max_micros)
}

/// Builds the summary from the buckets holding the p50, p95 and p99.
fn finish(count: u64, found: [usize; 3], sum_micros: u64, max_micros: u64) -> LatencySummary {
    let at = |index: usize| micros_to_ms(bucket_highest(index).min(max_micros));
    let max_ms = micros_to_ms(max_micros);
    // Both operands are exact below 2^53; the clamp keeps `mean <= max` when
    // a concurrent sample is in the sum but not yet in the count.
    // Rounded to whole microseconds, like every other field.
    let mean_ms = ((sum_micros as f64 / count as f64).round() / 1_000.0).min(max_ms);
    LatencySummary {
        count,
        p50_ms: at(found[0]),
        p95_ms: at(found[1]),
        p99_ms: at(found[2]),
        max_ms,
        mean_ms,
    }
}

/// A summary of recorded latencies: how many, typical, tail and worst.
///
/// A snapshot computed on demand; none of its fields moves on its own, and
/// samples recorded while it is computed may or may not be in it. All times
/// are milliseconds with microsecond resolution (samples are truncated to
/// whole microseconds when recorded).
///
/// Percentiles come from a log-linear histogram with 8 buckets per power of
/// two: each is reported as the highest value of its bucket, clamped to
/// `max_ms`, so it is **never below the true percentile and less than
/// 12.5 % above it** (exact below 0.016 ms). Beyond ~67 minutes percentiles
/// report `max_ms`. Within one summary, `p50_ms <= p95_ms <= p99_ms <=
/// max_ms` and `mean_ms <= max_ms`. An empty summary is all zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Samples summarised: every sample recorded, or for a recent window
    /// those recorded within it. Grows by one per sample; a window's count
    /// also falls as old samples leave it.
    pub count: u64,
    /// The median, in ms: at least half of the samples took at most this
    /// long. 0 when `count` is 0.
    pub p50_ms: f64,
    /// The 95th percentile, in ms: at least 95 % of the samples took at most
    /// this long. 0 when `count` is 0.
    pub p95_ms: f64,
    /// The 99th percentile, in ms: at least 99 % of the samples took at most
    /// this long. With fewer than 100 samples it is the slowest sample, so
    /// it equals `max_ms`. 0 when `count` is 0.
    pub p99_ms: f64,
    /// The slowest sample, in ms, exact. 0 when `count` is 0.
    pub max_ms: f64,
    /// The arithmetic mean, in ms, exact for samples under ~12.7 days (each
    /// sample counts as at most that much). 0 when `count` is 0.
    pub mean_ms: f64,
}
