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
//! on to the slow path with what it already holds.
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

use crate::error::{Phase, PoolError, UnavailableError};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use std::panic::Location;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::acquire_span;
use crate::guard::PooledConnection;
use crate::health;
use crate::idle::Conn;
use crate::manager::Manager;
use crate::open::{before_checkout, spawn_open, validate, OpenFailure, OpenOutcome};
use crate::phase::{timeout_error, CancelTracker, PhaseCell};
use crate::pool::Pool;
use crate::reconnect;
use crate::recycle::on_checkout;
use crate::retire::RetireReason;
use crate::running::Task;
use crate::seats::SlowWait;
use crate::semaphore::{AcquireError, TryAcquireError};
use crate::shared::{Permit, Shared};
use crate::site::Site;
use crate::slot::Slot;
use crate::state::PoolState;
use crate::tasks;

/// First pause before retrying a failed connect within one `acquire()`.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(25);
/// Longest pause between connect retries within one `acquire()`.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

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

/// The error for a caller turned away while the pool is recovering.
fn unavailable<M: Manager>(shared: &Shared<M>) -> PoolError<M::Error> {
    let view = shared.recovery.view(shared.now_ms());
    PoolError::Unavailable(Box::new(UnavailableError {
        down_for: view.down_for,
        attempts: view.attempts,
        next_attempt_in: view.next_attempt_in,
        last_error: shared.last_error.load_full(),
        statistics: shared.statistics(),
    }))
}

/// When an `acquire()` that left the fast path started, and its deadline.
#[derive(Clone, Copy)]
struct Times {
    /// On the pool's clock, for the wait-time statistics.
    started_us: u64,
    /// On the pool's clock, for the semaphore's deadline task.
    deadline_us: u64,
    /// This call's whole budget (`acquire_timeout`, or the caller's own).
    timeout: Duration,
}

/// What the fast path got, for the slow path to go on from.
struct HeadStart<M: Manager> {
    permit: Option<Permit<M>>,
    conn: Option<Conn<M::Connection>>,
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

/// Whether `conn` must pass the liveness check before it is lent at `now`:
/// idle longer than the skip window, or suspect after a sign of a restart.
#[inline]
fn needs_validation<M: Manager>(
    shared: &Shared<M>,
    conn: &Conn<M::Connection>,
    now_us: u64,
) -> bool {
    now_us.saturating_sub(conn.last_used_us) >= shared.skip_window_us
        || shared.is_suspect(conn.last_used_us)
}

/// How waiting for a caller's own connect ended.
enum Connecting<M: Manager> {
    /// The connect task finished (or died).
    Opened(Result<OpenOutcome<M>, oneshot::error::RecvError>),
    /// The pool is closing.
    Closed,
    /// Another connection was returned to the idle queue meanwhile; taken
    /// with a second permit, also freed by that return.
    Returned(Conn<M::Connection>, Permit<M>),
}

/// Waits for the connect task, for the pool to close, or for a connection
/// returned to the idle queue, whichever comes first.
///
/// A return gives its permit back after pushing its connection; with the
/// semaphore's idle watch set (`Semaphore::permit_returned`), that release
/// wakes this caller, which takes the permit and the connection, so it
/// never times out in the Connect phase next to an idle connection. Queued
/// callers come first: the permit reaches the count only while nobody is
/// queued, and they are served by the semaphore itself.
async fn wait_for_connect<M: Manager>(
    shared: &Arc<Shared<M>>,
    mut opened: oneshot::Receiver<OpenOutcome<M>>,
) -> Connecting<M> {
    let mut states = shared.state.subscribe();
    loop {
        // Cancel-safe: the connect task owns the permit and the slot; if
        // this caller is gone (cancelled, or released because the pool is
        // closing) it parks the connection, or closes it if the pool closed.
        // The watch holds nothing.
        tokio::select! {
            opened = &mut opened => return Connecting::Opened(opened),
            _ = states.wait_for(|state| state.is_closing()) => return Connecting::Closed,
            () = shared.semaphore.permit_returned(|| !shared.idle.is_empty()) => {}
        }
        match shared.semaphore.try_acquire() {
            Ok(()) => {}
            // `permit_returned` resolves at once on a closed semaphore:
            // leave rather than spin until the state channel says so.
            Err(TryAcquireError::Closed) => return Connecting::Closed,
            Err(TryAcquireError::NoPermits) => continue,
        }
        let second = Permit::taken(Arc::clone(shared));
        match shared.idle.pop() {
            Some(conn) => return Connecting::Returned(conn, second),
            // Someone else took it; the permit goes back (and wakes
            // nobody else but the watchers).
            None => drop(second),
        }
    }
}

/// Takes a permit: at once if one is free, else in FIFO order. Returns
/// whether the caller had to queue.
async fn take_permit<M: Manager>(
    shared: &Arc<Shared<M>>,
    phase: &PhaseCell,
    times: Times,
) -> Result<(Permit<M>, bool), PoolError<M::Error>> {
    match shared.semaphore.try_acquire() {
        Ok(()) => return Ok((Permit::taken(Arc::clone(shared)), false)),
        Err(TryAcquireError::Closed) => return Err(PoolError::Closed),
        Err(TryAcquireError::NoPermits) => {}
    }
    let metrics = &shared.ledger.stats.metrics;
    metrics.pending(|| shared.semaphore.waiting() + 1);
    let result = {
        let acquire = shared.semaphore.acquire_until(times.deadline_us);
        tokio::pin!(acquire);
        phase.set_queued();
        // Cancel-safe: a dropped `Acquire` unlinks itself, or passes on a
        // permit it was granted but never took.
        match (&mut acquire).await {
            Ok(()) => Ok((Permit::taken(Arc::clone(shared)), true)),
            Err(AcquireError::Closed) => Err(PoolError::Closed),
            // Still queued until `acquire` drops at the end of this block:
            // the snapshot counts this caller.
            Err(AcquireError::TimedOut) => Err(timeout_error(
                shared,
                Phase::Wait,
                times.started_us,
                times.timeout,
            )),
        }
    };
    phase.set(Phase::Wait);
    metrics.pending(|| shared.semaphore.waiting());
    result
}

async fn checkout<M: Manager>(
    shared: &Arc<Shared<M>>,
    phase: &PhaseCell,
    times: Times,
    head_start: HeadStart<M>,
    site: Option<Site>,
) -> Result<PooledConnection<M>, PoolError<M::Error>> {
    // Three loads unless a background task was lost with its runtime.
    tasks::ensure_running(shared);
    let (mut permit, waited) = match head_start.permit {
        Some(permit) => (permit, false),
        None => take_permit(shared, phase, times).await?,
    };
    // Lends `conn`, unless the pool closed while it was being opened or
    // validated: then it is closed at once and the caller gets `Closed`.
    let lend = |conn: Conn<M::Connection>, permit: Permit<M>| {
        if shared.is_closed() {
            conn.retire(RetireReason::PoolClosed);
            drop(permit);
            return Err(PoolError::Closed);
        }
        let now_us = shared.now_us();
        let wait = SlowWait {
            queued: waited,
            micros: now_us.saturating_sub(times.started_us),
        };
        Ok(PooledConnection::new(
            conn,
            permit,
            now_us,
            site.clone(),
            Some(wait),
        ))
    };
    let mut candidate = head_start.conn;
    let mut retry_delay = FIRST_RETRY_DELAY;
    loop {
        if shared.is_closed() {
            if let Some(conn) = candidate.take() {
                conn.retire(RetireReason::PoolClosed);
            }
            return Err(PoolError::Closed);
        }
        if let Some(mut conn) = candidate.take().or_else(|| shared.idle.pop()) {
            let now_us = shared.now_us();
            if let Some(reason) =
                on_checkout(&shared.manager, &mut conn, now_us, shared.generation())
            {
                if reason == RetireReason::Broken {
                    shared.suspect_idle_connections();
                }
                conn.retire(reason);
                continue;
            }
            if needs_validation(shared, &conn, now_us) {
                phase.set(Phase::Validate);
                // Cancel-safe: if dropped mid-check, `conn` closes (its
                // protocol state is unknown) and its slot frees capacity.
                if validate(shared, &mut conn).await.is_err() {
                    conn.retire(RetireReason::ValidationFailed);
                    shared.suspect_idle_connections();
                    phase.set(Phase::Wait);
                    continue;
                }
            }
            if shared.checkout_hook {
                phase.set(Phase::Validate);
                // Cancel-safe like the validation above.
                if let Err(reason) = before_checkout(shared, &mut conn).await {
                    conn.retire(reason);
                    phase.set(Phase::Wait);
                    continue;
                }
                phase.set(Phase::Wait);
            }
            return lend(conn, permit);
        }
        if shared.state.get() == PoolState::Recovering {
            // No usable idle connection and the database is lost: do not
            // connect (the supervisor probes for everyone), ask it for an
            // early probe, and fail at once or wait for the recovery.
            shared.recovery.demand();
            if !shared.config.wait_for_recovery {
                return Err(unavailable(shared));
            }
            let mut states = shared.state.subscribe();
            // Cancel-safe and bounded by the caller's deadline; only the
            // permit is held.
            let _changed = states
                .wait_for(|state| *state != PoolState::Recovering)
                .await;
            continue;
        }
        let Some(slot) = Slot::try_open(&shared.ledger) else {
            // Full, yet nothing idle to pop: a connection is moving into the
            // idle queue (or out of it to be closed) this very instant.
            tokio::task::yield_now().await;
            continue;
        };
        phase.set(Phase::Connect);
        let opened = spawn_open(permit, slot);
        let opened = match wait_for_connect(shared, opened).await {
            Connecting::Opened(opened) => opened,
            Connecting::Closed => return Err(PoolError::Closed),
            // A connection came back while ours was still connecting: take
            // it now. Ours goes on and is parked idle when it opens.
            Connecting::Returned(conn, second) => {
                permit = second;
                candidate = Some(conn);
                phase.set(Phase::Wait);
                continue;
            }
        };
        match opened {
            Ok(Ok((conn, permit))) => return lend(conn, permit),
            Ok(Err(OpenFailure {
                failed,
                permit: back,
            })) => {
                if !failed.retryable {
                    health::refresh_state(shared);
                    return Err(PoolError::Connection(failed.error));
                }
                permit = back;
                if reconnect::after_connect_failure(shared, failed.server_down, &failed.error) {
                    continue;
                }
                health::refresh_state(shared);
                let left_us = times.deadline_us.saturating_sub(shared.now_us());
                let pause = retry_delay.min(Duration::from_micros(left_us));
                // Cancel-safe: only the permit is held; dropping it releases it.
                tokio::time::sleep(pause).await;
                retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(_task_gone) if shared.is_closed() => return Err(PoolError::Closed),
            Err(_task_died) => {
                // The connect task panicked (a bug in the manager); its permit
                // was released when it unwound. Queue again for a new one.
                tracing::error!(target: "pool_core::connect", pool = %shared.config.name, "connect task panicked; retrying");
                phase.set(Phase::Wait);
                permit = take_permit(shared, phase, times).await?.0;
            }
        }
    }
}
