//! Tests of the hot path's cheaper ways into a histogram: zeros counted
//! apart, zeros derived at summary time, and a count and sum kept by the
//! caller.

use std::time::Duration;

use super::{LatencyHistogram, WindowedHistogram};

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[test]
fn recorded_zeros_summarise_exactly_like_zero_samples() {
    let counted_apart = LatencyHistogram::new();
    let recorded = LatencyHistogram::new();
    for _ in 0..98 {
        counted_apart.record_zero();
        recorded.record(Duration::ZERO);
    }
    for sample in [ms(3), ms(40)] {
        counted_apart.record(sample);
        recorded.record(sample);
    }
    assert_eq!(counted_apart.summary(), recorded.summary());
    assert_eq!(counted_apart.count(), 100);
    let summary = counted_apart.summary();
    assert_eq!((summary.p50_ms, summary.p95_ms), (0.0, 0.0));
    assert!(summary.p99_ms > 2.9, "{summary:?}");
    assert_eq!(summary.max_ms, 40.0);
}

#[test]
fn derived_zeros_pull_the_percentiles_and_the_mean_down() {
    let histogram = LatencyHistogram::new();
    histogram.record(ms(10));
    histogram.record(ms(10));
    let alone = histogram.summary();
    assert_eq!((alone.count, alone.p50_ms, alone.mean_ms), (2, 10.0, 10.0));
    // 98 acquisitions that never waited, derived rather than recorded.
    let with_zeros = histogram.summary_with_zeros(98);
    assert_eq!(with_zeros.count, 100);
    assert_eq!(with_zeros.p50_ms, 0.0);
    assert_eq!(with_zeros.p95_ms, 0.0);
    assert_eq!(with_zeros.p99_ms, 10.0);
    assert_eq!(with_zeros.max_ms, 10.0);
    assert!((with_zeros.mean_ms - 0.2).abs() < 1e-9, "{with_zeros:?}");
}

#[test]
fn only_derived_zeros_summarise_to_zeros_with_a_count() {
    let histogram = LatencyHistogram::new();
    assert_eq!(histogram.summary_with_zeros(0).count, 0);
    let summary = histogram.summary_with_zeros(5);
    assert_eq!(summary.count, 5);
    assert_eq!(
        (summary.p99_ms, summary.max_ms, summary.mean_ms),
        (0.0, 0.0, 0.0)
    );
}

#[test]
fn an_uncounted_histogram_reports_the_count_and_sum_its_caller_kept() {
    let histogram = LatencyHistogram::new();
    let mut count = 0;
    let mut sum = 0;
    for micros in [1_000, 2_000, 3_000, 50_000] {
        histogram.record_uncounted(micros);
        count += 1;
        sum += micros;
    }
    // The histogram itself counted nothing.
    assert_eq!(histogram.count(), 0);
    let summary = histogram.summary_counted_by(count, 0, sum);
    assert_eq!(summary.count, 4);
    assert_eq!(summary.max_ms, 50.0);
    assert!((summary.mean_ms - 14.0).abs() < 1e-9, "{summary:?}");
    assert!(
        summary.p50_ms >= 2.0 && summary.p50_ms < 2.25,
        "{summary:?}"
    );
    assert_eq!(summary.p99_ms, 50.0);
    assert_eq!(histogram.summary_counted_by(0, 0, 0).count, 0);
}

#[test]
fn a_caller_count_ahead_of_the_buckets_reports_the_max_instead_of_panicking() {
    let histogram = LatencyHistogram::new();
    histogram.record_uncounted(7_000);
    // A return counted whose bucket this scan cannot see (a race).
    let summary = histogram.summary_counted_by(3, 0, 21_000);
    assert_eq!(summary.count, 3);
    assert_eq!(
        (summary.p50_ms, summary.p99_ms, summary.max_ms),
        (7.0, 7.0, 7.0)
    );
}

#[test]
fn window_zeros_count_in_their_epoch_and_leave_with_it() {
    let window = WindowedHistogram::new(Duration::from_secs(60));
    for _ in 0..9 {
        window.record_zero(1_000);
    }
    window.record(ms(8), 1_000);
    let summary = window.summary(1_000);
    assert_eq!(summary.count, 10);
    assert_eq!(summary.p50_ms, 0.0);
    assert_eq!(summary.max_ms, 8.0);
    // A whole window later the slot is reused: its zeros are gone too.
    window.record_zero(61_000);
    let later = window.summary(61_000);
    assert_eq!((later.count, later.max_ms), (1, 0.0));
}

#[test]
fn an_uncounted_histogram_with_zeros_kept_by_its_caller_puts_them_first() {
    let histogram = LatencyHistogram::new();
    histogram.record_uncounted(20_000);
    // 99 acquisitions that did not wait, one that waited 20 ms.
    let summary = histogram.summary_counted_by(100, 99, 20_000);
    assert_eq!(summary.count, 100);
    assert_eq!((summary.p50_ms, summary.p95_ms), (0.0, 0.0));
    assert_eq!((summary.p99_ms, summary.max_ms), (0.0, 20.0));
    assert!((summary.mean_ms - 0.2).abs() < 1e-9, "{summary:?}");
    // More zeros claimed than samples: clamped, never a panic.
    assert_eq!(histogram.summary_counted_by(2, 5, 0).count, 2);
}
