//! What an `acquire()` is doing, for its deadline and its errors.
//!
//! * [`PhaseCell`]: the phase in progress (`Wait`, `Connect`, `Validate`),
//!   readable after the checkout future is dropped by its timeout, plus
//!   whether the caller is queued in the semaphore right now. A queued
//!   caller's deadline is kept by the pool's deadline task (`deadline.rs`),
//!   so `acquire()` arms a timer of its own only outside the queue.
//! * [`timeout_error`]: the `Timeout` error, built while the caller is
//!   still counted where it waited (its snapshot counts it).
//! * [`CancelTracker`]: counts an `acquire()` dropped before it finished.

use crate::error::{Phase, PoolError, TimeoutError};
use crate::manager::Manager;
use crate::shared::Shared;
use crate::sync::{AtomicU8, Ordering};

const WAIT: u8 = 0;
const CONNECT: u8 = 1;
const VALIDATE: u8 = 2;
/// `Wait`, queued in the semaphore: the deadline task keeps the deadline.
const QUEUED: u8 = 3;

/// The phase in progress.
pub(crate) struct PhaseCell(AtomicU8);

impl PhaseCell {
    pub(crate) fn new() -> Self {
        Self(AtomicU8::new(WAIT))
    }

    pub(crate) fn set(&self, phase: Phase) {
        let code = match phase {
            Phase::Connect => CONNECT,
            Phase::Validate => VALIDATE,
            _ => WAIT,
        };
        self.0.store(code, Ordering::Relaxed);
    }

    /// Waiting in the semaphore's queue, under the deadline task's watch.
    pub(crate) fn set_queued(&self) {
        self.0.store(QUEUED, Ordering::Relaxed);
    }

    pub(crate) fn is_queued(&self) -> bool {
        self.0.load(Ordering::Relaxed) == QUEUED
    }

    pub(crate) fn get(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            CONNECT => Phase::Connect,
            VALIDATE => Phase::Validate,
            _ => Phase::Wait,
        }
    }
}

/// The error of an `acquire()` that started at `started_us` (the pool's
/// clock) with `timeout` to spend and ran out of time in `phase`, with a
/// statistics snapshot taken now and the pool's last connection error.
pub(crate) fn timeout_error<M: Manager>(
    shared: &Shared<M>,
    phase: Phase,
    started_us: u64,
    timeout: std::time::Duration,
) -> PoolError<M::Error> {
    PoolError::Timeout(Box::new(TimeoutError {
        phase,
        waited: std::time::Duration::from_micros(shared.now_us().saturating_sub(started_us)),
        timeout,
        statistics: shared.statistics(),
        last_error: shared.last_error.load_full(),
    }))
}

/// Counts an `acquire()` whose future is dropped before it finished.
pub(crate) struct CancelTracker<'a, M: Manager> {
    shared: &'a Shared<M>,
    armed: bool,
}

impl<'a, M: Manager> CancelTracker<'a, M> {
    pub(crate) fn armed(shared: &'a Shared<M>) -> Self {
        Self {
            shared,
            armed: true,
        }
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl<M: Manager> Drop for CancelTracker<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.ledger.stats.acquires_cancelled.incr();
        }
    }
}
