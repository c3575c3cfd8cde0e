//! Background maintenance: one task per pool that keeps it fresh.
//!
//! Every `maintenance_interval` (and at once when woken, e.g. by `close()`),
//! the task:
//!
//! 1. inspects each idle connection once (FIFO order is kept) and retires
//!    those past their lifetime, and those idle longer than `max_idle_time`
//!    while more than `min_size` are open;
//! 2. opens connections back up to `min_size`, at most
//!    [`REPLENISH_CONCURRENCY`] at a time, each under a permit so callers
//!    are never starved and the size invariant holds; it stops at the first
//!    failure (logged and counted) and tries again next round, so a database
//!    that is down is never stormed.
//!
//! The same task runs the leak scan (`leak.rs`) on its own ticker, every
//! `min(10 s, leak_detection_timeout)`.
//!
//! The task holds only a `Weak` reference: it exits when the pool is closed
//! or dropped. Every error it meets reaches `tracing` (target
//! `pool_core::maintenance`) and a counter.

use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures_util::future::join_all;
use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::clock;
use crate::health;
use crate::leak;
use crate::manager::Manager;
use crate::open::{connect, panic_message, validate};
use crate::reconnect;
use crate::recycle::on_maintenance;
use crate::retire::RetireReason;
use crate::running::Running;
use crate::shared::{Permit, Shared};
use crate::slot::Slot;
use crate::state::PoolState;
use crate::sync::{Arc, Ordering, Weak};

/// Most connections maintenance opens at the same time.
pub const REPLENISH_CONCURRENCY: usize = 2;

/// What woke the maintenance task.
enum Round {
    Maintenance,
    LeakScan,
}

/// Starts the maintenance task of `shared` (which also runs the leak scan).
/// The task's future owns `running` (`tasks.rs`).
pub(crate) fn spawn<M: Manager>(shared: &Arc<Shared<M>>, running: Running) -> JoinHandle<()> {
    let weak = Arc::downgrade(shared);
    let config = &shared.config;
    let leak_scan = config
        .leak_detection_active()
        .then(|| leak::scan_interval(config.leak_detection_timeout));
    let pool = config.name.clone();
    tokio::spawn(run(
        weak,
        pool,
        config.maintenance_interval,
        leak_scan,
        running,
    ))
}

async fn run<M: Manager>(
    weak: Weak<Shared<M>>,
    pool: String,
    interval: Duration,
    leak_scan: Option<Duration>,
    _running: Running,
) {
    let mut ticker = tokio::time::interval_at(clock::after(interval), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // With leak detection off this ticker never fires (a day is beyond any
    // test or shutdown; it is re-armed if it ever does).
    let leak_every = leak_scan.unwrap_or(Duration::from_secs(86_400));
    let mut leak_ticker = tokio::time::interval_at(clock::after(leak_every), leak_every);
    leak_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let wakeup = match weak.upgrade() {
            Some(shared) if !shared.is_closed() => Arc::clone(&shared.maintenance_wakeup),
            _ => break,
        };
        let round = tokio::select! {
            _ = ticker.tick() => Round::Maintenance,
            () = wakeup.notified() => Round::Maintenance,
            _ = leak_ticker.tick() => Round::LeakScan,
        };
        let Some(shared) = weak.upgrade() else { break };
        if shared.is_closed() {
            break;
        }
        match round {
            Round::Maintenance => run_guarded(&shared).await,
            Round::LeakScan if leak_scan.is_some() => leak::scan(&shared),
            Round::LeakScan => {}
        }
    }
    tracing::debug!(target: "pool_core::maintenance", pool = %pool, "maintenance task stopped");
}

/// One round, with a panic caught at the task's boundary: a panic (a bug,
/// in the pool or in a manager method it calls) ends the round, is logged
/// at ERROR and counted, and the task carries on with the next round.
/// Whatever the round held (permits, slots, connections) was given back by
/// their destructors as it unwound.
async fn run_guarded<M: Manager>(shared: &Arc<Shared<M>>) {
    if let Err(panic) = AssertUnwindSafe(run_once(shared)).catch_unwind().await {
        let message = panic_message(panic.as_ref());
        shared.ledger.stats.maintenance_errors.incr();
        shared.ledger.stats.manager_panics.incr();
        tracing::error!(
            target: "pool_core::maintenance",
            pool = %shared.config.name,
            panic = %message,
            "a maintenance round panicked: {message}; the next round runs as usual"
        );
    }
}

/// One maintenance round. Public to the crate so `Pool::run_maintenance`
/// (and tests) can drive it directly.
pub(crate) async fn run_once<M: Manager>(shared: &Arc<Shared<M>>) {
    shared.ledger.stats.maintenance_runs.incr();
    shared.publish_metrics(None);
    if shared.sweep_requested.swap(false, Ordering::AcqRel) {
        sweep(shared).await;
    }
    retire_stale(shared);
    if shared.state.get() != PoolState::Recovering {
        replenish(shared).await;
    }
    health::refresh_state(shared);
}

/// After a sign of a server restart: validates every idle connection at
/// once (each under a permit, so callers queue instead of spinning), and
/// closes the dead ones, rather than letting callers find them one by one.
async fn sweep<M: Manager>(shared: &Arc<Shared<M>>) {
    let mut batch = Vec::new();
    while shared.semaphore.try_acquire().is_ok() {
        let permit = Permit::taken(Arc::clone(shared));
        let Some(conn) = shared.idle.pop() else {
            drop(permit);
            break;
        };
        batch.push((conn, permit));
    }
    let checked = batch.len();
    let results = join_all(batch.into_iter().map(|(mut conn, permit)| async move {
        let alive = validate(shared, &mut conn).await.is_ok();
        (conn, permit, alive)
    }))
    .await;
    let mut dead = 0;
    for (mut conn, permit, alive) in results {
        if alive {
            conn.last_used_us = shared.now_us();
            shared.return_to_idle(conn);
        } else {
            dead += 1;
            conn.retire(RetireReason::ValidationFailed);
        }
        drop(permit);
    }
    if checked > 0 {
        tracing::info!(
            target: "pool_core::maintenance",
            pool = %shared.config.name,
            checked,
            dead,
            "validated idle connections after a sign of a server restart: {dead} of {checked} dead"
        );
    }
}

fn retire_stale<M: Manager>(shared: &Shared<M>) {
    let before = shared.ledger.gauges.read().open();
    let (mut by_lifetime, mut by_idle) = (0u64, 0u64);
    // Look at each connection that is idle now exactly once: what we put
    // back goes to the tail, behind the ones still to inspect.
    for _ in 0..shared.idle.len() {
        let Some(conn) = shared.idle.take_for_check() else {
            break;
        };
        let open = shared.ledger.gauges.read().open();
        let now_us = shared.now_us();
        match on_maintenance(&shared.config, &conn, now_us, open) {
            Some(reason) => {
                if reason == RetireReason::Lifetime {
                    by_lifetime += 1;
                } else {
                    by_idle += 1;
                }
                conn.retire(reason);
            }
            None => {
                if let Err(conn) = shared.idle.put_back(conn) {
                    tracing::error!(
                        target: "pool_core::maintenance",
                        pool = %shared.config.name,
                        connection_id = conn.id,
                        "idle queue full while putting a connection back; closing it (size invariant broken, please report)"
                    );
                    shared.ledger.stats.maintenance_errors.incr();
                }
            }
        }
    }
    // `close()` may have drained the queue while a connection was out for
    // its check: a closed pool never keeps an idle connection.
    if shared.is_closed() {
        shared.idle.drain(RetireReason::PoolClosed);
    }
    if by_idle > 0 {
        let after = before - by_idle;
        tracing::info!(
            target: "pool_core::maintenance",
            pool = %shared.config.name,
            from = before,
            to = after,
            closed = by_idle,
            min_size = shared.config.min_size,
            "Pool shrunk from {before} to {after} connections due to idle timeout"
        );
    }
    if by_lifetime > 0 {
        tracing::info!(
            target: "pool_core::maintenance",
            pool = %shared.config.name,
            closed = by_lifetime,
            max_lifetime_ms = shared.config.max_lifetime.as_millis() as u64,
            "Retired {by_lifetime} connections past their max lifetime"
        );
    }
}

async fn replenish<M: Manager>(shared: &Arc<Shared<M>>) {
    let min_size = u64::from(shared.config.min_size);
    let before = shared.ledger.gauges.read().open();
    while shared.ledger.gauges.read().open() < min_size && !shared.is_closed() {
        let missing = min_size.saturating_sub(shared.ledger.gauges.read().open());
        let mut batch = Vec::new();
        for _ in 0..missing.min(REPLENISH_CONCURRENCY as u64) {
            // A permit first: if every permit is taken, callers are busy and
            // will open what they need themselves.
            if shared.semaphore.try_acquire().is_err() {
                break;
            }
            let permit = Permit::taken(Arc::clone(shared));
            let Some(slot) = Slot::try_open(&shared.ledger) else {
                drop(permit);
                break;
            };
            batch.push(async move {
                let result = connect(shared, slot).await;
                (result, permit)
            });
        }
        if batch.is_empty() {
            break;
        }
        let mut failure = None;
        for (result, permit) in join_all(batch).await {
            match result {
                Ok(conn) => shared.return_to_idle(conn),
                // Already logged and counted by `connect`; try next round.
                Err(failed) => {
                    shared.ledger.stats.maintenance_errors.incr();
                    failure = Some(failed);
                }
            }
            drop(permit);
        }
        if let Some(failed) = failure {
            if reconnect::after_connect_failure(shared, failed.server_down, &failed.error) {
                return;
            }
            tracing::warn!(
                target: "pool_core::maintenance",
                pool = %shared.config.name,
                min_size,
                open = shared.ledger.gauges.read().open(),
                "could not replenish to min_size; retrying at the next maintenance run"
            );
            return;
        }
    }
    let after = shared.ledger.gauges.read().open();
    if after > before {
        tracing::info!(
            target: "pool_core::maintenance",
            pool = %shared.config.name,
            from = before,
            to = after,
            min_size,
            "Pool replenished from {before} to {after} connections"
        );
    }
}
