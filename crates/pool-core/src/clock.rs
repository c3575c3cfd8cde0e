//! The pool's clock: whole microseconds since the pool was built.
//!
//! # Design
//!
//! Every timestamp the pool keeps (a connection's `last_used_us` and
//! `expires_us`, a guard's `acquired_us`, a seat's lend time, a queued
//! caller's deadline, the recent window's epoch, the recovery schedule) is a
//! `u64` reading of this one clock, so comparing two of them is integer
//! arithmetic and never mixes clocks. The checkout fast path reads it once
//! and the return path once.
//!
//! By default it reads the CPU's time-stamp counter through `quanta`,
//! calibrated against the system's monotonic clock once per process (at the
//! first pool built); where the counter is not invariant, `quanta` falls
//! back to the monotonic clock itself. A counter reading costs a fraction
//! of `Instant::now()` and its `Timespec` subtraction.
//!
//! With the `paused-clock` feature it reads `tokio::time::Instant` instead,
//! so tests can drive lifetimes, idle and leak timeouts and the statistics
//! with `tokio::time::pause()` and `advance()`. This crate's own tests turn
//! it on.
//!
//! # Invariant
//!
//! A reading never goes below zero, and a difference of two readings is
//! taken with `saturating_sub` everywhere, so a counter read on another core
//! that lags by a few cycles yields a zero duration, never a wrapped one.
//! Timers stay on tokio's clock: [`Clock::instant_at`] converts a reading
//! into a `tokio::time::Instant` *relative to now*, so a drift between the
//! two clocks shifts a deadline by the drift since the reading, not since
//! the pool was built.

use std::time::Duration;

use tokio::time::Instant;

/// Where the readings come from.
enum Source {
    /// The calibrated time-stamp counter; `start` is the raw reading at
    /// build.
    Counter { clock: quanta::Clock, start: u64 },
    /// tokio's clock, which follows `tokio::time::pause()`.
    Tokio { start: Instant },
}

/// Microseconds since the pool was built; see the module docs.
pub(crate) struct Clock {
    source: Source,
}

impl Clock {
    /// A clock starting now: the counter, or tokio's clock with the
    /// `paused-clock` feature.
    pub(crate) fn start() -> Self {
        if cfg!(feature = "paused-clock") {
            Self::tokio()
        } else {
            Self::counter()
        }
    }

    /// A clock reading the calibrated time-stamp counter.
    pub(crate) fn counter() -> Self {
        let clock = quanta::Clock::new();
        let start = clock.raw();
        Self {
            source: Source::Counter { clock, start },
        }
    }

    /// A clock reading `tokio::time::Instant`.
    pub(crate) fn tokio() -> Self {
        Self {
            source: Source::Tokio {
                start: Instant::now(),
            },
        }
    }

    /// Microseconds since the clock started.
    #[inline]
    pub(crate) fn now_us(&self) -> u64 {
        match &self.source {
            Source::Counter { clock, start } => clock.delta_as_nanos(*start, clock.raw()) / 1_000,
            Source::Tokio { start } => {
                u64::try_from(Instant::now().saturating_duration_since(*start).as_micros())
                    .unwrap_or(u64::MAX)
            }
        }
    }

    /// Milliseconds since the clock started.
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_us() / 1_000
    }

    /// The `tokio::time::Instant` at which this clock will read `micros`
    /// (now, if it already has), for a timer.
    pub(crate) fn instant_at(&self, micros: u64) -> Instant {
        match &self.source {
            Source::Counter { .. } => {
                let now = Instant::now();
                let ahead = micros.saturating_sub(self.now_us());
                now.checked_add(Duration::from_micros(ahead))
                    .unwrap_or_else(far_future)
            }
            Source::Tokio { start } => start
                .checked_add(Duration::from_micros(micros))
                .unwrap_or_else(far_future),
        }
    }
}

/// `delay` from now on tokio's clock, saturating: a delay past what
/// `Instant` can represent is a deadline that never comes in practice,
/// never a panic.
pub(crate) fn after(delay: Duration) -> Instant {
    Instant::now().checked_add(delay).unwrap_or_else(far_future)
}

/// A deadline that never comes in practice (~30 years), for readings past
/// what `Instant` can represent.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match self.source {
            Source::Counter { .. } => "counter",
            Source::Tokio { .. } => "tokio",
        };
        f.debug_struct("Clock")
            .field("source", &source)
            .field("now_us", &self.now_us())
            .finish()
    }
}

/// An RFC 3339 UTC timestamp with millisecond precision.
pub(crate) fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_clock_advances_with_real_time_and_agrees_with_it() {
        let clock = Clock::counter();
        let started = std::time::Instant::now();
        let first = clock.now_us();
        // Spin (bounded) until the real clock has moved 20 ms.
        while started.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let second = clock.now_us();
        let real = u64::try_from(started.elapsed().as_micros()).expect("fits");
        assert!(second > first, "{first} then {second}");
        // Within 5 % of the real clock (calibration is far better).
        assert!(
            second.abs_diff(real) < real / 20 + 50,
            "counter {second} µs, real {real} µs"
        );
    }

    #[test]
    fn readings_on_other_threads_never_run_backwards_past_zero() {
        let clock = std::sync::Arc::new(Clock::counter());
        let before = clock.now_us();
        let other = std::thread::spawn({
            let clock = std::sync::Arc::clone(&clock);
            move || clock.now_us()
        })
        .join()
        .expect("the thread reads the clock");
        assert!(other.saturating_sub(before) < 10_000_000);
        assert!(clock.now_us() >= before);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_the_paused_clock() {
        let clock = Clock::tokio();
        assert_eq!(clock.now_us(), 0);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now_us(), 1_500_000);
        assert_eq!(clock.now_ms(), 1_500);
        let at = clock.instant_at(2_000_000);
        assert_eq!(at - Instant::now(), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_counter_deadline_becomes_a_timer_relative_to_now() {
        let clock = Clock::counter();
        let before = Instant::now();
        let at = clock.instant_at(clock.now_us() + 250_000);
        let after = Instant::now();
        // Between the two real readings, 250 ms on; 10 ms of slack for the
        // counter's calibration and the reading in between.
        assert!(
            at >= before + Duration::from_millis(240),
            "{:?}",
            at - before
        );
        assert!(at <= after + Duration::from_millis(251), "{:?}", at - after);
        // A reading in the past is due now.
        assert!(clock.instant_at(0) <= Instant::now());
    }
}
