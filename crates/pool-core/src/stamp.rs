//! An optional moment (or reading) in one atomic: `value + 1`, 0 = none.
//!
//! The pool keeps many "when did X last happen" facts (the last failure,
//! the last health check, when a seat was lent, when the database was
//! lost) and a few optional readings (the last liveness round trip). Each
//! is one `AtomicU64` holding `value + 1`, so that 0 can mean "never"
//! without a second word. This type owns that encoding, so no caller adds
//! or subtracts the 1 by hand.
//!
//! Loads and stores are `Relaxed`: a stamp is a fact in its own right and
//! orders nothing else; [`Stamp::swap`] is `AcqRel` for the one caller that
//! restores a previous value.

use crate::sync::{AtomicU64, Ordering};

/// `Some(value)` as `value + 1`, `None` as 0. `value` saturates at
/// `u64::MAX - 1`.
#[derive(Debug, Default)]
pub(crate) struct Stamp(AtomicU64);

impl Stamp {
    /// A stamp that says "never".
    pub(crate) fn none() -> Self {
        Self(AtomicU64::new(0))
    }

    #[inline]
    fn encode(value: Option<u64>) -> u64 {
        value.map_or(0, |value| value.saturating_add(1))
    }

    #[inline]
    fn decode(word: u64) -> Option<u64> {
        word.checked_sub(1)
    }

    /// Records `value`.
    #[inline]
    pub(crate) fn set(&self, value: u64) {
        self.0.store(Self::encode(Some(value)), Ordering::Relaxed);
    }

    /// Back to "never".
    #[inline]
    pub(crate) fn clear(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// The value recorded, if any.
    #[inline]
    pub(crate) fn get(&self) -> Option<u64> {
        Self::decode(self.0.load(Ordering::Relaxed))
    }

    /// Records `value` if it is later than the one recorded (or none is).
    #[inline]
    pub(crate) fn raise(&self, value: u64) {
        self.0
            .fetch_max(Self::encode(Some(value)), Ordering::Relaxed);
    }

    /// Replaces the value, returning the previous one (`AcqRel`).
    #[inline]
    pub(crate) fn swap(&self, value: Option<u64>) -> Option<u64> {
        Self::decode(self.0.swap(Self::encode(value), Ordering::AcqRel))
    }
}

#[cfg(all(test, not(pool_loom)))]
mod tests {
    use super::Stamp;

    #[test]
    fn a_stamp_tells_never_from_zero() {
        let stamp = Stamp::none();
        assert_eq!(stamp.get(), None);
        stamp.set(0);
        assert_eq!(stamp.get(), Some(0));
        stamp.raise(7);
        stamp.raise(3);
        assert_eq!(stamp.get(), Some(7));
        assert_eq!(stamp.swap(None), Some(7));
        assert_eq!(stamp.get(), None);
        stamp.set(u64::MAX);
        assert_eq!(
            stamp.get(),
            Some(u64::MAX - 1),
            "saturates, never wraps to none"
        );
        stamp.clear();
        assert_eq!(stamp.get(), None);
    }
}
