//! The one seam that names synchronisation primitives.
//!
//! Every other module imports atomics and locks from here, so that the
//! model checker [loom](https://docs.rs/loom) can be swapped in at this
//! single place: built with `RUSTFLAGS="--cfg pool_loom"`, the atomics and
//! the mutex are loom's, and the models in `loom_models.rs` explore every
//! interleaving of the semaphore and the slot gauges (`just loom`). `Arc`
//! and `Weak` stay std's (loom has no `Weak`); the pool's concurrency lives
//! in the atomics and the waitlist mutex, which is what the models check.

pub(crate) use std::sync::{Arc, Weak};

#[cfg(not(pool_loom))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(pool_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

#[cfg(pool_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// loom's mutex behind parking_lot's interface (`lock()` returns the guard).
#[cfg(pool_loom)]
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(pool_loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        // A loom model panics on a poisoned lock anyway.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
