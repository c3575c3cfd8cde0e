//! The pool's metrics with the `metrics` feature: one set of handles for
//! the recorder that was current when the pool was built, and one for the
//! recorder seen last if that is another (see the module docs above).
//!
//! Invariant: a recording goes to the handles registered with the recorder
//! the facade reports as current on the recording thread at that moment.

use std::time::Duration;

use arc_swap::ArcSwapOption;
use metrics::SharedString;

use super::handles::{Handles, RecorderId, Replay};
use super::Totals;
use crate::gauges::GaugeReading;
use crate::retire::RetireReason;
use crate::state::{HealthState, PoolState};
use crate::sync::{Arc, AtomicU8, Ordering};

/// The pool's metric handles.
#[derive(Debug)]
pub(crate) struct Metrics {
    pool: SharedString,
    min_size: u32,
    max_size: u32,
    /// Registered in `new`, with the recorder current while the pool was
    /// built (the facade's no-op recorder if none was installed yet).
    built: Handles,
    /// Registered with the first other recorder a recording met; replaced
    /// if yet another one turns up.
    later: ArcSwapOption<Handles>,
    /// The last state published (`PoolState::ALL` index + 1; 0 = none),
    /// replayed onto a later recorder.
    state: AtomicU8,
    /// The last health verdict published, the same way.
    health: AtomicU8,
}

impl Metrics {
    pub(crate) fn new(pool: &str, min_size: u32, max_size: u32) -> Self {
        let pool = SharedString::from_owned(pool.to_owned());
        let replay = Replay {
            pool: pool.clone(),
            min_size,
            max_size,
            state: None,
            health: None,
        };
        Self {
            built: Handles::register(RecorderId::current(), &replay),
            pool,
            min_size,
            max_size,
            later: ArcSwapOption::empty(),
            state: AtomicU8::new(0),
            health: AtomicU8::new(0),
        }
    }

    /// Runs `record` on the handles of the current recorder.
    #[inline]
    fn with(&self, record: impl FnOnce(&Handles)) {
        let current = RecorderId::current();
        if self.built.recorder == current {
            record(&self.built);
        } else {
            self.with_later(current, record);
        }
    }

    /// [`with`](Self::with) when the current recorder is not the one the
    /// pool was built with: the later set, registered on first use.
    #[inline(never)]
    fn with_later(&self, current: RecorderId, record: impl FnOnce(&Handles)) {
        let later = self.later.load();
        if let Some(handles) = later.as_deref().filter(|h| h.recorder == current) {
            record(handles);
            return;
        }
        drop(later);
        let handles = Arc::new(Handles::register(current, &self.replay()));
        record(&handles);
        self.later.store(Some(handles));
    }

    /// What a new set of handles replays.
    fn replay(&self) -> Replay {
        let decode = |code: u8| usize::from(code).checked_sub(1);
        Replay {
            pool: self.pool.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
            state: decode(self.state.load(Ordering::Acquire))
                .and_then(|i| PoolState::ALL.get(i).copied()),
            health: decode(self.health.load(Ordering::Acquire))
                .and_then(|i| HealthState::ALL.get(i).copied()),
        }
    }

    #[inline]
    pub(crate) fn connections(&self, gauges: GaugeReading) {
        self.with(|h| {
            h.idle.set(gauges.idle as f64);
            h.used.set(gauges.in_use as f64);
            h.opening.set(gauges.opening as f64);
        });
    }

    /// `waiting` is called only with the feature on: without it, the
    /// queue length (a load of a line the releasers write) is not read.
    #[inline]
    pub(crate) fn pending(&self, waiting: impl FnOnce() -> u64) {
        self.with(|h| h.pending.set(waiting() as f64));
    }

    #[inline]
    pub(crate) fn acquired(&self, wait: Duration) {
        self.with(|h| h.wait_time.record(wait.as_secs_f64()));
    }

    #[inline]
    pub(crate) fn released(&self, held: Duration) {
        self.with(|h| h.use_time.record(held.as_secs_f64()));
    }

    pub(crate) fn created(&self, took: Duration) {
        self.with(|h| {
            h.created.increment(1);
            h.create_time.record(took.as_secs_f64());
        });
    }

    pub(crate) fn create_failed(&self) {
        self.with(|h| h.create_failures.increment(1));
    }

    pub(crate) fn timed_out(&self) {
        self.with(|h| h.timeouts.increment(1));
    }

    #[inline]
    pub(crate) fn closed(&self, reason: RetireReason) {
        self.with(|h| h.closed[reason.index()].increment(1));
    }

    pub(crate) fn state(&self, to: PoolState) {
        self.state
            .store(code(&PoolState::ALL, to), Ordering::Release);
        self.with(|h| h.state(to));
    }

    pub(crate) fn health(&self, verdict: HealthState) {
        self.health
            .store(code(&HealthState::ALL, verdict), Ordering::Release);
        self.with(|h| h.health(verdict));
    }

    /// Publishes the rare events' totals (`absolute`: a counter never goes
    /// back) and the suspected leaks.
    pub(crate) fn totals(&self, totals: impl FnOnce() -> Totals) {
        let totals = totals();
        self.with(|h| {
            h.leaks_reported.absolute(totals.leaks_reported);
            h.leaks_suspected.set(totals.leaks_suspected as f64);
            h.acquire_errors.absolute(totals.acquire_errors);
            h.manager_panics.absolute(totals.manager_panics);
            h.background_restarts.absolute(totals.background_restarts);
        });
    }
}

/// `value`'s index in `all`, plus one.
fn code<T: PartialEq>(all: &[T], value: T) -> u8 {
    all.iter()
        .position(|v| *v == value)
        .and_then(|i| u8::try_from(i + 1).ok())
        .unwrap_or(0)
}
