//! The soak's randomness: `SOAK_SEED`, `SOAK_SECS`, and a small xorshift.
//!
//! One master seed (from `SOAK_SEED`, or the clock when unset) is printed
//! at the start; every task derives its own stream from it with splitmix64,
//! so the *choices* of a run (operation kinds, hold times, fault kinds and
//! gaps) are replayed by setting `SOAK_SEED` again. The interleaving with
//! the server and the scheduler is not: a replay is a strong hint, not a
//! guarantee.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `SOAK_SECS` when unset: short, because the soak also runs in every
/// `cargo test --workspace`. CI runs a separate step with `SOAK_SECS=60`.
pub(crate) const DEFAULT_SOAK_SECS: u64 = 20;

/// The soak's length in seconds, from `SOAK_SECS`.
pub(crate) fn soak_secs() -> u64 {
    match std::env::var("SOAK_SECS") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            panic!("SOAK_SECS={text:?} is not a whole number of seconds; set e.g. SOAK_SECS=60")
        }),
        Err(_) => DEFAULT_SOAK_SECS,
    }
}

/// The master seed, from `SOAK_SEED` or the clock.
pub(crate) fn master_seed() -> u64 {
    match std::env::var("SOAK_SEED") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            panic!("SOAK_SEED={text:?} is not an unsigned 64-bit number; copy it from a run's first line")
        }),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0x5eed),
    }
}

/// xorshift64*: tiny, fast, and good enough to pick workloads.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream number `stream` of `seed` (splitmix64 of both, never 0).
    pub(crate) fn derive(seed: u64, stream: u64) -> Self {
        let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self(if z == 0 { 0x5eed } else { z })
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A duration between `lo_ms` and `hi_ms` milliseconds, both included.
    pub(crate) fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.below(hi_ms - lo_ms + 1))
    }

    /// Any `i32`.
    pub(crate) fn int(&mut self) -> i32 {
        self.next_u64() as i32
    }
}
