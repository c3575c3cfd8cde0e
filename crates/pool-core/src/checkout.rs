//! The checkout path: `acquire()` and `try_acquire()`.
//!
//! 1. **Wait** for a permit: one CAS when one is free, else a FIFO place in
//!    the semaphore's queue.
//! 2. Pop an idle connection. Retire it if the manager's free `is_broken`
//!    says so or it outlived its lifetime. If it sat idle longer than
//!    `validation_skip_window`, **validate** it under `validation_timeout`;
//!    a failure closes it and the loop goes on with the next one.
//! 3. If nothing is idle, reserve a slot and **connect** in a spawned task.
//!    A retryable failure is retried with a capped, growing pause; a
//!    non-retryable one is returned at once.
//!
//! The fast path (a free permit, an idle connection used within the skip
//! window) does no I/O, takes no lock and arms no timer; anything else goes
//! on to the slow path (`slow_path.rs`) with what it already holds.
//!
//! The whole of it runs under one deadline, `acquire_timeout`; on expiry the
//! error names the phase that was in progress and carries a statistics
//! snapshot and the pool's last connection error. While the caller is
//! queued in the semaphore the pool's deadline task keeps that deadline
//! (`deadline.rs`); a timer of the caller's own is armed only outside the
//! queue (connecting, validating, waiting for a recovery).
//!
//! Cancellation at any `.await` loses nothing: see the comment at each one.

use crate::sync::Arc;
use std::time::Duration;

use crate::error::PoolError;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use std::panic::Location;
use tokio::time::Sleep;

use crate::acquire_span;
use crate::guard::PooledConnection;
use crate::manager::Manager;
use crate::phase::{timeout_error, CancelTracker, PhaseCell};
use crate::pool::Pool;
use crate::recycle::on_checkout;
use crate::running::Task;
use crate::semaphore::TryAcquireError;
use crate::shared::{Permit, Shared};
use crate::site::Site;
use crate::slow_path::{checkout, needs_validation, HeadStart, Times};
use crate::tasks;

impl<M: Manager> Pool<M> {
    /// Gets a connection, waiting up to `acquire_timeout` in all.
    ///
    /// Waiters are served in arrival order. Dropping the returned future at
    /// any point is safe: a queued place is given up, a permit granted in the
    /// meantime goes to the next waiter, and a connection being opened goes
    /// to the idle queue.
    ///
    /// The caller's file and line are recorded for leak detection
    /// (`#[track_caller]`), at no measurable cost.
    #[track_caller]
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<PooledConnection<M>, PoolError<M::Error>>> + Send + '_ {
        let site = self.acquisition_site(Location::caller());
        self.acquire_at(site, self.shared().config.acquire_timeout)
    }

    /// Gets a connection, waiting up to `timeout` in all: a per-call
    /// deadline in place of the pool's `acquire_timeout`, shorter or longer.
    ///
    /// It behaves and reports exactly like [`acquire`](Self::acquire): when
    /// time runs out the error is [`PoolError::Timeout`] with the phase, the
    /// waited time, this call's `timeout`, a statistics snapshot and the last
    /// connection error, and it is counted in `total_timeouts`, not as a
    /// cancellation (which is what wrapping `acquire()` in
    /// `tokio::time::timeout` would count). A zero `timeout` still takes an
    /// idle connection or a free permit; it never queues.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # async fn demo<M: pool_core::Manager>(pool: &pool_core::Pool<M>) -> Result<(), pool_core::PoolError<M::Error>> {
    /// // This request has 50 ms left of its own budget.
    /// let conn = pool.acquire_timeout(Duration::from_millis(50)).await?;
    /// # drop(conn);
    /// # Ok(())
    /// # }
    /// ```
    #[track_caller]
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<PooledConnection<M>, PoolError<M::Error>>> + Send + '_ {
        let site = self.acquisition_site(Location::caller());
        self.acquire_at(site, timeout)
    }

    /// The site to record for an acquisition at `location`, if leak
    /// detection is on.
    fn acquisition_site(&self, location: &'static Location<'static>) -> Option<Site> {
        let config = &self.shared().config;
        config
            .leak_detection_active()
            .then(|| Site::capture(location, config.leak_backtrace))
    }

    async fn acquire_at(
        &self,
        site: Option<Site>,
        timeout: Duration,
    ) -> Result<PooledConnection<M>, PoolError<M::Error>> {
        let shared = self.shared();
        // Cooperative scheduling, like tokio's own primitives: spend a unit
        // of the task's budget, so a task looping on a free pool cannot
        // starve its neighbours. *Before* taking anything: a task whose
        // budget ran out yields holding no permit and no connection, so the
        // others do not queue behind a connection parked in a yielded task
        // (a convoy; figures in docs/performance.md).
        // Cancel-safe: nothing is held yet.
        tokio::task::consume_budget().await;
        let (head_start, site) = match fast_path(shared, site) {
            FastPath::Done(guard) => return Ok(guard),
            FastPath::Continue(head_start, site) => (head_start, site),
        };
        // Costs one check unless a subscriber wants it (`acquire_span.rs`).
        let span = acquire_span::new(&shared.config.name);
        // One reading of the pool's clock; tokio's is read only if this
        // caller ever needs a timer of its own.
        let started_us = shared.now_us();
        let deadline_us =
            started_us.saturating_add(u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX));
        let phase = PhaseCell::new();
        let mut cancelled = CancelTracker::armed(shared);
        let times = Times {
            started_us,
            deadline_us,
            timeout,
        };
        let checkout = checkout(shared, &phase, times, head_start, site);
        tokio::pin!(checkout);
        // Cancel-safe: see `checkout`. While queued in the semaphore the
        // deadline task bounds the wait (and the queued caller builds its own
        // `Timeout`, still counted as waiting); anywhere else this caller's
        // own timer does, armed the first time it is needed.
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        let result = std::future::poll_fn(|cx| {
            let _in_span = span.enter();
            if let Poll::Ready(result) = checkout.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if timer.is_none() && phase.is_queued() {
                if shared.tasks.is_running(Task::Deadline) {
                    return Poll::Pending;
                }
                // The deadline task is gone with its runtime: keep this
                // caller's deadline with a timer of its own, and start the
                // task again here for the callers to come.
                tasks::ensure_running(shared);
            }
            let timer = timer.get_or_insert_with(|| {
                Box::pin(tokio::time::sleep_until(
                    shared.clock.instant_at(deadline_us),
                ))
            });
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(timeout_error(
                    shared,
                    phase.get(),
                    times.started_us,
                    times.timeout,
                ))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        cancelled.disarm();
        acquire_span::record(&span, &result, || {
            shared.now_us().saturating_sub(started_us)
        });
        let _in_span = span.enter();
        match result {
            Ok(guard) => Ok(guard),
            Err(PoolError::Timeout(error)) => {
                shared.ledger.stats.timeouts.incr();
                shared.ledger.stats.metrics.timed_out();
                tracing::warn!(
                    target: "pool_core::acquire",
                    pool = %shared.config.name,
                    phase = %error.phase,
                    waited_ms = error.waited.as_millis() as u64,
                    "acquire timed out"
                );
                Err(PoolError::Timeout(error))
            }
            Err(error) => {
                shared.ledger.stats.acquire_errors.incr();
                Err(error)
            }
        }
    }

    /// Gets an idle connection without waiting, or fails at once.
    ///
    /// Never waits, never opens a connection and never does I/O: the
    /// connection is checked only with the manager's free `is_broken` and
    /// its lifetime, not validated. Fails with [`PoolError::Exhausted`] when
    /// nothing is idle (or waiters are queued: they come first).
    #[track_caller]
    pub fn try_acquire(&self) -> Result<PooledConnection<M>, PoolError<M::Error>> {
        let site = self.acquisition_site(Location::caller());
        let shared = self.shared();
        match shared.semaphore.try_acquire() {
            Ok(()) => {}
            Err(TryAcquireError::Closed) => return Err(PoolError::Closed),
            Err(TryAcquireError::NoPermits) => {
                return Err(PoolError::Exhausted(Box::new(shared.statistics())))
            }
        }
        let permit = Permit::taken(Arc::clone(shared));
        while let Some(mut conn) = shared.idle.pop() {
            let now_us = shared.now_us();
            if let Some(reason) =
                on_checkout(&shared.manager, &mut conn, now_us, shared.generation())
            {
                conn.retire(reason);
                continue;
            }
            return Ok(PooledConnection::new(conn, permit, now_us, site, None));
        }
        drop(permit);
        Err(PoolError::Exhausted(Box::new(shared.statistics())))
    }
}

enum FastPath<M: Manager> {
    Done(PooledConnection<M>),
    Continue(HeadStart<M>, Option<Site>),
}

/// A free permit and a fresh idle connection: one CAS, one pop, one clock
/// read. Whatever it got but could not finish with is handed on.
fn fast_path<M: Manager>(shared: &Arc<Shared<M>>, site: Option<Site>) -> FastPath<M> {
    let mut head_start = HeadStart {
        permit: None,
        conn: None,
    };
    if shared.semaphore.try_acquire().is_err() {
        return FastPath::Continue(head_start, site);
    }
    let permit = Permit::taken(Arc::clone(shared));
    if let Some(mut conn) = shared.idle.pop() {
        let now_us = shared.now_us();
        if on_checkout(&shared.manager, &mut conn, now_us, shared.generation()).is_none()
            && !needs_validation(shared, &conn, now_us)
            && !shared.checkout_hook
        {
            acquire_span::fast_path(&shared.config.name);
            return FastPath::Done(PooledConnection::new(conn, permit, now_us, site, None));
        }
        head_start.conn = Some(conn);
    }
    head_start.permit = Some(permit);
    FastPath::Continue(head_start, site)
}
