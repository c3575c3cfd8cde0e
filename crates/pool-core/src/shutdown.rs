//! Graceful shutdown with a deadline.
//!
//! `shutdown(timeout)`:
//!
//! 1. moves the pool to `SHUTTING_DOWN`: queued and new `acquire()` calls
//!    fail at once with `PoolError::Closed`, idle connections close at once,
//!    and a connection that finishes opening from now on is closed at once;
//! 2. waits, up to `timeout`, for every lent (and opening) connection to
//!    come back — on state: every slot dropped while closing wakes it;
//! 3. force-closes what is still lent (through the manager's force-close
//!    handle), logging each with its connection id, how long it was held and
//!    where it was acquired, and aborts connects still in progress;
//! 4. stops and joins the maintenance task and the reconnect supervisor;
//! 5. moves to `TERMINATED` and returns a [`ShutdownReport`].
//!
//! Idempotent and safe to call concurrently: the first call does the work,
//! the others wait (bounded by their own `timeout` plus a second) for it and
//! get the same report with `first == false`.

use std::time::Duration;

use tokio::time::Instant;

use crate::manager::Manager;
use crate::pool::Pool;
use crate::report::{ForcedConnection, ShutdownReport};
use crate::retire::RetireReason;
use crate::state::PoolState;

impl<M: Manager> Pool<M> {
    /// Shuts the pool down gracefully, waiting up to `timeout` for lent
    /// connections (see the module documentation of `shutdown.rs`).
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`](crate::DEFAULT_SHUTDOWN_TIMEOUT) is
    /// 30 s.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let shared = self.shared();
        let started = Instant::now();
        if !shared
            .state
            .transition(PoolState::ShuttingDown, "shutdown requested")
        {
            return self
                .wait_for_other_shutdown(timeout + Duration::from_secs(1))
                .await;
        }
        let deadline = started + timeout;
        let busy = || {
            let gauges = shared.ledger.gauges.read();
            gauges.in_use + gauges.opening
        };
        let idle_closed = shared.close() as u64;
        let busy_at_start = busy();
        tracing::info!(
            target: "pool_core::shutdown",
            pool = %shared.config.name,
            idle_closed,
            lent = busy_at_start,
            timeout_ms = timeout.as_millis() as u64,
            "shutting down: waiting for {busy_at_start} lent connections"
        );
        // Wait on state: every slot dropped while closing notifies.
        loop {
            let notified = shared.ledger.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if busy() == 0 {
                break;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let busy_at_deadline = busy();
        let now_ms = shared.now_ms();
        let mut forced = Vec::new();
        for lent in shared.ledger.seats.lent() {
            let held_ms = now_ms.saturating_sub(lent.lent_at_ms);
            let acquired_at = shared
                .ledger
                .seats
                .site(lent.seat)
                .map(|site| site.to_string());
            let aborted = shared.ledger.seats.force_close(lent.seat);
            tracing::warn!(
                target: "pool_core::shutdown",
                pool = %shared.config.name,
                connection_id = lent.connection_id,
                held_ms,
                aborted,
                acquired_at = acquired_at.as_deref().unwrap_or("unknown"),
                "force-closing connection {} held for {:.1} s after the shutdown grace period",
                lent.connection_id,
                held_ms as f64 / 1000.0
            );
            forced.push(ForcedConnection {
                connection_id: lent.connection_id,
                held_ms,
                aborted,
                acquired_at,
            });
        }
        let aborted_in_progress = shared.ledger.seats.force_close_unlent();
        if aborted_in_progress > 0 {
            tracing::warn!(
                target: "pool_core::shutdown",
                pool = %shared.config.name,
                aborted_in_progress,
                "aborted {aborted_in_progress} connects or checks still in progress after the shutdown grace period"
            );
        }
        // Joining is bounded: every task is aborted first.
        for task in self.take_background_tasks() {
            task.abort();
            let _joined = task.await;
        }
        if let Some(task) = shared.recovery.stop() {
            let _joined = task.await;
        }
        // Anything that slipped into the idle queue meanwhile.
        shared.idle.drain(RetireReason::PoolClosed);
        let report = ShutdownReport {
            first: true,
            idle_closed,
            returned_in_time: busy_at_start.saturating_sub(busy_at_deadline),
            forced,
            aborted_in_progress,
            duration_ms: started.elapsed().as_micros() as f64 / 1000.0,
        };
        *shared.shutdown_report.lock() = Some(report.clone());
        shared
            .state
            .transition(PoolState::Terminated, "shutdown complete");
        tracing::info!(
            target: "pool_core::shutdown",
            pool = %shared.config.name,
            idle_closed = report.idle_closed,
            returned_in_time = report.returned_in_time,
            forced = report.forced.len(),
            duration_ms = report.duration_ms,
            "connection pool shut down"
        );
        report
    }

    async fn wait_for_other_shutdown(&self, bound: Duration) -> ShutdownReport {
        let shared = self.shared();
        let mut states = shared.state.subscribe();
        // Bounded: the first shutdown finishes within its own timeout.
        let _finished =
            tokio::time::timeout(bound, states.wait_for(|s| *s == PoolState::Terminated)).await;
        let report = shared.shutdown_report.lock().clone();
        match report {
            Some(report) => ShutdownReport {
                first: false,
                ..report
            },
            // Closed with `close()` (or dropped handles), or the first
            // shutdown is still running past our bound.
            None => ShutdownReport {
                first: false,
                idle_closed: 0,
                returned_in_time: 0,
                forced: Vec::new(),
                aborted_in_progress: 0,
                duration_ms: 0.0,
            },
        }
    }
}
