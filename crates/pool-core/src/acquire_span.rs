//! The `pool.acquire` tracing span: one per `acquire()`.
//!
//! Level `DEBUG`, target `pool_core::acquire`. Fields: `pool` (the pool's
//! name), and, recorded when the call ends, `outcome` (`acquired`,
//! `timeout`, `unavailable`, `closed`, `exhausted` or `error`), `waited_us`
//! (microseconds the call took; 0 on the lock-free fast path) and, on a
//! timeout, `phase` (`wait`, `connect` or `validate`).
//!
//! * The slow path (queueing, connecting, validating) runs inside the span:
//!   it is created when the fast path gives up and entered on every poll,
//!   so the events the checkout logs (a timeout, a connect failure) are
//!   inside it. A cancelled `acquire()` closes it without an outcome.
//! * The fast path (a free permit, a fresh idle connection: no I/O, no
//!   await) creates its span only once it has succeeded, and closes it at
//!   once with `outcome = acquired`, `waited_us = 0`: it logs nothing that
//!   could be inside, and a span held across the fast path would cost the
//!   checkout a few percent even when disabled (a `Span` kept in the
//!   acquire future's state).
//!
//! Cost: when no subscriber wants `DEBUG` events of this target, the fast
//! path pays one level check (an atomic load and a compare) and the slow
//! path one more `None` check per poll; figures in `docs/performance.md`.
//! `DEBUG`, not `INFO`, because it fires on every checkout: a service that
//! logs at `INFO` pays only that check.

use tracing::field::Empty;
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::{Level, Span};

use crate::error::PoolError;

/// The span of an `acquire()` that succeeded on the fast path, closed
/// at once.
#[inline]
pub(crate) fn fast_path(pool: &str) {
    // The level check of tracing's macros, inline; the rest out of line.
    if Level::DEBUG <= STATIC_MAX_LEVEL && Level::DEBUG <= LevelFilter::current() {
        fast_path_span(pool);
    }
}

#[cold]
#[inline(never)]
fn fast_path_span(pool: &str) {
    let span = new(pool);
    span.record("outcome", "acquired");
    span.record("waited_us", 0);
}

/// A new `pool.acquire` span for the pool named `pool`.
#[inline]
pub(crate) fn new(pool: &str) -> Span {
    tracing::debug_span!(
        target: "pool_core::acquire",
        "pool.acquire",
        pool = %pool,
        outcome = Empty,
        waited_us = Empty,
        phase = Empty,
    )
}

/// Records how the acquire ended, `waited_us()` after it started (the
/// clock is read only if the span is enabled).
#[inline]
pub(crate) fn record<T, E: std::error::Error>(
    span: &Span,
    result: &Result<T, PoolError<E>>,
    waited_us: impl FnOnce() -> u64,
) {
    if span.is_disabled() {
        return;
    }
    span.record("waited_us", waited_us());
    let outcome = match result {
        Ok(_) => "acquired",
        Err(PoolError::Timeout(timeout)) => {
            span.record("phase", tracing::field::display(timeout.phase));
            "timeout"
        }
        Err(PoolError::Unavailable(_)) => "unavailable",
        Err(PoolError::Closed) => "closed",
        Err(PoolError::Exhausted(_)) => "exhausted",
        Err(_) => "error",
    };
    span.record("outcome", outcome);
}
