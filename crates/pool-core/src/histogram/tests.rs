//! Tests of the latency histogram.

use super::window::{resetting_tag, RESETTING};
use super::*;

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// The lowest value, in µs, that lands in bucket `index`.
fn bucket_lowest(index: usize) -> u64 {
    let index = index as u64;
    let shift = (index >> SUB_BUCKET_BITS).saturating_sub(1);
    let mantissa = index - (shift << SUB_BUCKET_BITS);
    mantissa << shift
}

/// Asserts that `reported` is the documented estimate of `truth` (both
/// in ms): never below it, less than 12.5 % above it.
fn assert_within_bucket_error(reported: f64, truth: f64) {
    assert!(
        reported >= truth && reported < truth * 1.125,
        "reported {reported} ms for a true {truth} ms"
    );
}

/// A small deterministic pseudo-random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn layout_constants_match_the_module_doc() {
    assert_eq!(BUCKETS, 240);
    assert_eq!(bucket_lowest(BUCKETS - 1), 15 << 28);
    // ~67.1 minutes: the start of the open top bucket.
    assert_eq!((15u64 << 28) / 60_000_000, 67);
}

#[test]
fn memory_per_histogram_matches_the_module_doc() {
    assert_eq!(std::mem::size_of::<LatencyHistogram>(), 1_952);
    assert_eq!(std::mem::size_of::<WindowedHistogram>(), 7_848);
}

#[test]
fn bucket_index_is_monotonic_in_range_and_brackets_the_value() {
    let mut values: Vec<u64> = (0..=100_000).collect();
    for bit in 0..u64::BITS {
        let power = 1u64 << bit;
        values.extend([power - 1, power, power + 1, power.saturating_mul(3) / 2]);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    values.extend((0..100_000).map(|_| rng.next() >> (rng.next() % 64)));
    values.push(u64::MAX);
    values.sort_unstable();
    let mut previous = 0;
    for &value in &values {
        let index = bucket_index(value);
        assert!(index < BUCKETS, "{value} µs -> index {index}");
        assert!(index >= previous, "index fell at {value} µs");
        previous = index;
        assert!(bucket_lowest(index) <= value, "{value} µs below its bucket");
        assert!(
            value <= bucket_highest(index),
            "{value} µs above its bucket"
        );
        if index < BUCKETS - 1 {
            // The documented bound: highest < value * 9 / 8, exact below 16.
            let error = bucket_highest(index) - value;
            assert!(error * 8 < value.max(1), "{value} µs: error {error}");
        }
    }
    assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
}

#[test]
fn bucket_bounds_tile_the_value_range_without_gaps() {
    for index in 1..BUCKETS {
        assert_eq!(bucket_lowest(index), bucket_highest(index - 1) + 1);
        assert_eq!(bucket_index(bucket_lowest(index)), index);
    }
}

#[test]
fn empty_histograms_summarise_to_zeros() {
    assert_eq!(LatencyHistogram::new().summary(), LatencySummary::default());
    let window = WindowedHistogram::new(Duration::from_secs(60));
    assert_eq!(window.summary(0), LatencySummary::default());
    assert_eq!(window.summary(u64::MAX), LatencySummary::default());
}

#[test]
fn uniform_one_to_a_thousand_ms_reports_percentiles_within_the_bucket_error() {
    let histogram = LatencyHistogram::new();
    for value in 1..=1_000 {
        histogram.record(ms(value));
    }
    let summary = histogram.summary();
    assert_eq!(summary.count, 1_000);
    assert_within_bucket_error(summary.p50_ms, 500.0);
    assert_within_bucket_error(summary.p95_ms, 950.0);
    assert_within_bucket_error(summary.p99_ms, 990.0);
    assert_eq!(summary.max_ms, 1_000.0);
    assert_eq!(summary.mean_ms, 500.5);
}

#[test]
fn a_rare_outlier_moves_the_max_but_not_the_percentiles() {
    let histogram = LatencyHistogram::new();
    for _ in 0..99 {
        histogram.record(ms(1));
    }
    histogram.record(ms(100));
    let summary = histogram.summary();
    assert_within_bucket_error(summary.p50_ms, 1.0);
    assert_within_bucket_error(summary.p95_ms, 1.0);
    assert_within_bucket_error(summary.p99_ms, 1.0);
    assert_eq!(summary.max_ms, 100.0);
    assert_eq!(summary.mean_ms, 1.99);
}

#[test]
fn a_p99_that_lands_in_the_tail_reports_the_tail() {
    let histogram = LatencyHistogram::new();
    for _ in 0..95 {
        histogram.record(ms(1));
    }
    for _ in 0..5 {
        histogram.record(ms(200));
    }
    let summary = histogram.summary();
    assert_within_bucket_error(summary.p50_ms, 1.0);
    assert_within_bucket_error(summary.p95_ms, 1.0);
    // The tail's bucket reaches past 200 ms; clamping to the max makes
    // the p99 exact.
    assert_eq!(summary.p99_ms, 200.0);
    assert_eq!(summary.max_ms, 200.0);
}

#[test]
fn sub_sixteen_microsecond_values_are_exact() {
    for micros in 0..16 {
        let histogram = LatencyHistogram::new();
        histogram.record(Duration::from_micros(micros));
        let summary = histogram.summary();
        let expected = micros as f64 / 1_000.0;
        assert_eq!(
            (summary.p50_ms, summary.p99_ms, summary.max_ms),
            (expected, expected, expected)
        );
    }
}

#[test]
fn zero_durations_count_and_report_zero() {
    let histogram = LatencyHistogram::new();
    histogram.record(Duration::ZERO);
    histogram.record(Duration::from_nanos(999));
    let summary = histogram.summary();
    assert_eq!(summary.count, 2);
    assert_eq!(
        (
            summary.p50_ms,
            summary.p99_ms,
            summary.max_ms,
            summary.mean_ms
        ),
        (0.0, 0.0, 0.0, 0.0)
    );
}

#[test]
fn values_beyond_the_top_land_in_the_last_bucket_and_the_max_stays_exact() {
    let histogram = LatencyHistogram::new();
    let two_hours = Duration::from_secs(2 * 3_600);
    let three_hours = Duration::from_secs(3 * 3_600);
    assert_eq!(bucket_index(duration_micros(two_hours)), BUCKETS - 1);
    histogram.record(two_hours);
    histogram.record(three_hours);
    let summary = histogram.summary();
    assert_eq!(summary.count, 2);
    assert_eq!(summary.max_ms, 3.0 * 3_600_000.0);
    assert_eq!(summary.mean_ms, 2.5 * 3_600_000.0);
    // In the open top bucket a percentile reports the max.
    assert_eq!(summary.p50_ms, summary.max_ms);

    histogram.record(Duration::MAX);
    let summary = histogram.summary();
    assert_eq!(summary.count, 3);
    assert_eq!(summary.max_ms, u64::MAX as f64 / 1_000.0);
    assert!(summary.mean_ms.is_finite() && summary.mean_ms <= summary.max_ms);
}

#[test]
fn max_and_mean_are_exact() {
    let histogram = LatencyHistogram::new();
    let samples = [1u64, 2_000, 3_500_000, 17, 123_457];
    for micros in samples {
        histogram.record(Duration::from_micros(micros));
    }
    let summary = histogram.summary();
    let sum: u64 = samples.iter().sum();
    assert_eq!(summary.max_ms, 3_500.0);
    assert_eq!(summary.mean_ms, sum as f64 / 5.0 / 1_000.0);
}

#[test]
fn percentiles_are_ordered_and_never_exceed_the_max() {
    let mut rng = Rng(42);
    for round in 0..200 {
        let histogram = LatencyHistogram::new();
        let samples = 1 + rng.next() % 500;
        for _ in 0..samples {
            // Spread over 0 µs .. ~70 min, log-uniformly.
            let micros = rng.next() >> (rng.next() % 64).max(32);
            histogram.record(Duration::from_micros(micros));
        }
        let s = histogram.summary();
        assert_eq!(s.count, samples, "round {round}");
        assert!(s.p50_ms <= s.p95_ms && s.p95_ms <= s.p99_ms, "{s:?}");
        assert!(s.p99_ms <= s.max_ms && s.mean_ms <= s.max_ms, "{s:?}");
    }
}

#[test]
fn percentiles_match_the_exact_nearest_rank_within_the_bucket_error() {
    let mut rng = Rng(7);
    for _ in 0..100 {
        let histogram = LatencyHistogram::new();
        let mut samples: Vec<u64> = (0..1 + rng.next() % 2_000)
            .map(|_| 16 + rng.next() % 50_000_000)
            .collect();
        for &micros in &samples {
            histogram.record(Duration::from_micros(micros));
        }
        samples.sort_unstable();
        let count = samples.len() as u64;
        let truth = |percent| {
            let rank = percentile_rank(count, percent);
            samples[(rank - 1) as usize] as f64 / 1_000.0
        };
        let s = histogram.summary();
        assert_within_bucket_error(s.p50_ms, truth(50));
        assert_within_bucket_error(s.p95_ms, truth(95));
        assert_within_bucket_error(s.p99_ms, truth(99));
    }
}

#[test]
fn a_count_ahead_of_the_buckets_reports_the_max_instead_of_panicking() {
    // What a summary sees when a slot's reset wipes buckets it counted.
    let histogram = LatencyHistogram::new();
    for _ in 0..10 {
        histogram.record(ms(1));
    }
    histogram.record(ms(7));
    histogram.count.store(40, Ordering::Relaxed);
    let summary = histogram.summary();
    assert_eq!(summary.count, 40);
    assert_eq!((summary.p95_ms, summary.p99_ms), (7.0, 7.0));
    assert!(summary.p50_ms <= summary.p95_ms && summary.mean_ms <= summary.max_ms);
}

#[test]
fn a_slot_being_reset_is_left_out_of_summaries() {
    let window = WindowedHistogram::new(Duration::from_secs(60));
    window.record(ms(1), 0);
    window.record(ms(2), 15_000);
    window.slots[1]
        .tag
        .store(resetting_tag(1), Ordering::Relaxed);
    let summary = window.summary(15_000);
    assert_eq!(summary.count, 1);
    assert_eq!(summary.max_ms, 1.0);
}

#[test]
fn the_window_forgets_samples_older_than_the_window_and_keeps_recent_ones() {
    // 60 s in four 15 s epochs.
    let window = WindowedHistogram::new(Duration::from_secs(60));
    window.record(ms(10), 0);
    window.record(ms(20), 50_000);

    let both = window.summary(50_000);
    assert_eq!(both.count, 2);
    assert_eq!(both.max_ms, 20.0);
    assert_eq!(window.summary(59_999).count, 2);

    // At 60 s the first sample is a whole window old: gone.
    let recent = window.summary(60_000);
    assert_eq!(recent.count, 1);
    assert_eq!(recent.max_ms, 20.0);
    assert_eq!(recent.mean_ms, 20.0);

    // The second sample (epoch 3) is kept while younger than 45 s and
    // gone once a whole window old.
    assert_eq!(window.summary(50_000 + 45_000 - 1).count, 1);
    assert_eq!(window.summary(50_000 + 60_000).count, 0);
}

#[test]
fn a_reused_slot_starts_empty() {
    let window = WindowedHistogram::new(Duration::from_secs(60));
    for value in 1..=1_000 {
        window.record(ms(value), 1_000);
    }
    // Epoch 4 reuses the slot of epoch 0.
    window.record(ms(3), 60_000);
    let summary = window.summary(60_000);
    assert_eq!(summary.count, 1);
    assert_eq!(summary.max_ms, 3.0);
    assert_eq!(summary.p99_ms, 3.0);
}

#[test]
fn a_sample_a_whole_window_late_is_dropped() {
    let window = WindowedHistogram::new(Duration::from_secs(60));
    window.record(ms(5), 60_000);
    // Same slot, epoch 0 < 4: this caller's clock is a window behind.
    window.record(ms(7), 0);
    let summary = window.summary(60_000);
    assert_eq!(summary.count, 1);
    assert_eq!(summary.max_ms, 5.0);
}

#[test]
fn a_recorder_slightly_ahead_of_the_reader_is_still_counted() {
    let window = WindowedHistogram::new(Duration::from_secs(60));
    window.record(ms(4), 15_000);
    assert_eq!(window.summary(14_999).count, 1);
}

#[test]
fn the_window_merges_its_slots() {
    let window = WindowedHistogram::new(Duration::from_secs(60));
    for (epoch, value) in [(0u64, 1u64), (1, 2), (2, 3), (3, 4)] {
        for _ in 0..25 {
            window.record(ms(value), epoch * 15_000);
        }
    }
    let summary = window.summary(59_999);
    assert_eq!(summary.count, 100);
    assert_within_bucket_error(summary.p50_ms, 2.0);
    assert_eq!(summary.p99_ms, 4.0);
    assert_eq!(summary.mean_ms, 2.5);
}

#[test]
fn tiny_and_huge_windows_neither_panic_nor_misbehave() {
    let tiny = WindowedHistogram::new(Duration::ZERO);
    tiny.record(ms(1), 0);
    assert_eq!(tiny.summary(3).count, 1);
    assert_eq!(tiny.summary(4).count, 0);

    // Epochs of u64::MAX / 4 ms: now = u64::MAX is epoch 4.
    let huge = WindowedHistogram::new(Duration::MAX);
    huge.record(ms(2), 0);
    huge.record(ms(1), u64::MAX / 2);
    assert_eq!(huge.summary(u64::MAX / 2).count, 2);
    assert_eq!(huge.summary(u64::MAX).count, 1);

    let one_ms_epochs = WindowedHistogram::new(ms(4));
    one_ms_epochs.record(ms(1), u64::MAX);
    assert_eq!(one_ms_epochs.summary(u64::MAX).count, 1);
}

#[test]
fn concurrent_recording_loses_no_sample_without_a_rotation() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 100_000;
    let all_time = LatencyHistogram::new();
    let window = WindowedHistogram::new(Duration::from_secs(60));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (all_time, window) = (&all_time, &window);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let value = Duration::from_micros(1 + (i * 7 + thread) % 100_000);
                    all_time.record(value);
                    window.record(value, 5_000);
                }
            });
        }
    });
    let expected_sum: u64 = (0..THREADS)
        .flat_map(|thread| (0..PER_THREAD).map(move |i| 1 + (i * 7 + thread) % 100_000))
        .sum();
    for summary in [all_time.summary(), window.summary(5_000)] {
        assert_eq!(summary.count, THREADS * PER_THREAD);
        assert_eq!(summary.max_ms, 100.0);
        let expected_mean = expected_sum as f64 / (THREADS * PER_THREAD) as f64 / 1_000.0;
        // The mean is reported to the whole microsecond.
        assert!(
            (summary.mean_ms - expected_mean).abs() <= 0.000_5 + 1e-9,
            "{summary:?}"
        );
    }
    assert_eq!(all_time.count.load(Ordering::Relaxed), THREADS * PER_THREAD);
}

#[test]
fn concurrent_recording_across_rotations_stays_consistent() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 50_000;
    // 4 ms window: 1 ms epochs, so the slots rotate constantly.
    let window = WindowedHistogram::new(ms(4));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let window = &window;
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    // Threads' clocks drift apart by up to a few epochs.
                    let now_ms = i / 100 + thread;
                    window.record(Duration::from_micros(i % 5_000), now_ms);
                    if i % 1_000 == 0 {
                        let s = window.summary(now_ms);
                        assert!(s.count <= THREADS * PER_THREAD, "{s:?}");
                        assert!(s.p50_ms <= s.p99_ms && s.p99_ms <= s.max_ms, "{s:?}");
                    }
                }
            });
        }
    });
    // Thread 3 alone reaches epoch 502 and records 100 samples there.
    let summary = window.summary(502);
    assert!(summary.count >= 100, "{summary:?}");
    assert!(summary.count <= THREADS * PER_THREAD, "{summary:?}");
    for slot in &window.slots {
        assert_eq!(slot.tag.load(Ordering::Relaxed) & RESETTING, 0);
    }
}

#[test]
fn a_summary_serializes_as_milliseconds() {
    let histogram = LatencyHistogram::new();
    histogram.record(Duration::from_micros(1_500));
    let json = serde_json::to_value(histogram.summary()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "count": 1,
            "p50_ms": 1.5,
            "p95_ms": 1.5,
            "p99_ms": 1.5,
            "max_ms": 1.5,
            "mean_ms": 1.5,
        })
    );
}
