//! The slow path of `acquire()`: everything after the fast path
//! (`checkout.rs`) could not finish with what it got.
//!
//! One loop under the caller's deadline: take a permit (at once, or in FIFO
//! order in the semaphore's queue, phase `wait`); pop an idle connection and
//! retire, validate and run the manager's checkout hook on it as needed
//! (phase `validate`); or reserve a slot and connect in a spawned task
//! (phase `connect`), retrying a retryable failure with a capped, growing
//! pause. While the pool is `RECOVERING` no caller connects: it fails at
//! once, or waits for the recovery if `wait_for_recovery` is set.
//!
//! Invariant: the caller holds at most one permit at a time (a second,
//! taken for a connection returned while its own connect was under way,
//! replaces the first, which goes on with the connect task), and
//! cancellation at any `.await` loses nothing: see the comment at each one.

use crate::sync::Arc;
use std::time::Duration;

use crate::error::{Phase, PoolError, UnavailableError};

use tokio::sync::oneshot;

use crate::guard::PooledConnection;
use crate::health;
use crate::idle::Conn;
use crate::manager::Manager;
use crate::open::{before_checkout, spawn_open, validate, OpenFailure, OpenOutcome};
use crate::phase::{timeout_error, PhaseCell};
use crate::reconnect;
use crate::recycle::on_checkout;
use crate::retire::RetireReason;
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
pub(crate) struct Times {
    /// On the pool's clock, for the wait-time statistics.
    pub(crate) started_us: u64,
    /// On the pool's clock, for the semaphore's deadline task.
    pub(crate) deadline_us: u64,
    /// This call's whole budget (`acquire_timeout`, or the caller's own).
    pub(crate) timeout: Duration,
}

/// What the fast path got, for the slow path to go on from.
pub(crate) struct HeadStart<M: Manager> {
    pub(crate) permit: Option<Permit<M>>,
    pub(crate) conn: Option<Conn<M::Connection>>,
}

/// Whether `conn` must pass the liveness check before it is lent at `now`:
/// idle longer than the skip window, or suspect after a sign of a restart.
#[inline]
pub(crate) fn needs_validation<M: Manager>(
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

pub(crate) async fn checkout<M: Manager>(
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
