//! Opening and checking connections: the connect task, the liveness check,
//! and the parallel warm-up of `build()`.
//!
//! A connect for a caller runs in its own spawned task that owns the
//! caller's permit and the reserved slot. The caller only awaits a oneshot.
//! If the caller is cancelled or times out, the task still finishes (bounded
//! by `create_timeout`) and parks the new connection in the idle queue
//! before releasing the permit: a cancelled `acquire()` never loses a
//! connection that was being opened, and never leaves a phantom `opening`
//! slot behind.

use crate::sync::Arc;

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures_util::future::try_join_all;
use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{ConnectionError, InitError, PoolError};
use crate::idle::Conn;
use crate::manager::Manager;
use crate::recycle::jittered_lifetime;
use crate::retire::RetireReason;
use crate::shared::{Permit, Shared};
use crate::slot::{Slot, SlotState};
use crate::state::PoolState;

/// Most connections opened at the same time by `build()`.
pub const WARM_UP_BATCH: usize = 16;

/// A failed connect, as `connect` reports it.
pub(crate) struct Failed<E> {
    pub(crate) error: Arc<ConnectionError<E>>,
    /// Whether another attempt may succeed (`Manager::is_retryable`).
    pub(crate) retryable: bool,
    /// Whether the failure itself says the server is down
    /// (`Manager::is_server_down`).
    pub(crate) server_down: bool,
}

/// A failed connect for a caller, with the caller's permit back.
pub(crate) struct OpenFailure<M: Manager> {
    pub(crate) failed: Failed<M::Error>,
    pub(crate) permit: Permit<M>,
}

pub(crate) type OpenOutcome<M> =
    Result<(Conn<<M as Manager>::Connection>, Permit<M>), OpenFailure<M>>;

/// Opens a connection in a spawned task on behalf of the permit holder.
pub(crate) fn spawn_open<M: Manager>(
    permit: Permit<M>,
    slot: Slot,
) -> oneshot::Receiver<OpenOutcome<M>> {
    let (tx, rx) = oneshot::channel();
    let seat = slot.seat();
    let ledger = Arc::clone(&permit.shared().ledger);
    let task = tokio::spawn(async move {
        let shared = Arc::clone(permit.shared());
        let outcome = match connect(&shared, slot).await {
            Ok(conn) => Ok((conn, permit)),
            Err(failed) => Err(OpenFailure { failed, permit }),
        };
        match tx.send(outcome) {
            Ok(()) => {}
            Err(Ok((conn, permit))) => {
                tracing::debug!(
                    target: "pool_core::connect",
                    pool = %shared.config.name,
                    connection_id = conn.id,
                    "caller gave up while connecting; keeping the new connection idle"
                );
                shared.return_to_idle(conn);
                drop(permit);
            }
            // The failure was already logged and counted by `connect`; the
            // permit is released as it drops here.
            Err(Err(_failure)) => {}
        }
    });
    // Until the connection exists, a forced shutdown aborts the connect
    // itself. If the connect already finished, the seat holds the manager's
    // own force-close (or was given back) and this is a no-op.
    let abort = task.abort_handle();
    ledger
        .seats
        .set_force_close_if_absent(seat, Box::new(move || abort.abort()));
    rx
}

/// Opens one connection under `create_timeout`. On success the slot is
/// inside the returned connection, counted `in_use`; on failure it is
/// dropped and the failure is logged, counted and recorded as the pool's
/// last error.
pub(crate) async fn connect<M: Manager>(
    shared: &Shared<M>,
    mut slot: Slot,
) -> Result<Conn<M::Connection>, Failed<M::Error>> {
    let started = Instant::now();
    // Read before the connect: one that began before an eviction may have
    // reached the server being left, so it belongs to the old generation.
    let generation = shared.generation();
    let timeout = shared.config.create_timeout;
    // A panic in `create` is the manager's bug, not the pool's: it becomes
    // a failed connect here, so no task that connects (a caller's connect
    // task, maintenance, the reconnect supervisor) dies of it.
    let create = AssertUnwindSafe(shared.manager.create()).catch_unwind();
    let failure = match tokio::time::timeout(timeout, create).await {
        Ok(Ok(Ok(raw))) => {
            shared.recovery.connect_succeeded();
            if shared.state.get() == PoolState::Recovering {
                // A connect under way when the pool lost the database
                // (a caller's, maintenance's) got through: it is back.
                crate::health::recovered(shared, "a connect under way");
            }
            slot.set(SlotState::InUse);
            shared
                .ledger
                .seats
                .set_force_close(slot.seat(), shared.manager.force_closer(&raw));
            shared.ledger.stats.connections_created.incr();
            shared.ledger.stats.create_time.record(started.elapsed());
            shared.ledger.stats.metrics.created(started.elapsed());
            let id = shared.next_connection_id();
            tracing::debug!(
                target: "pool_core::connect",
                pool = %shared.config.name,
                connection_id = id,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "connection opened"
            );
            let now_us = shared.now_us();
            return Ok(Conn {
                raw,
                slot,
                id,
                created_at: Instant::now(),
                last_used_us: now_us,
                expires_us: now_us.saturating_add(
                    u64::try_from(jittered_lifetime(&shared.config).as_micros())
                        .unwrap_or(u64::MAX),
                ),
                generation,
            });
        }
        Ok(Ok(Err(error))) => {
            let retryable = shared.manager.is_retryable(&error);
            let server_down = shared.manager.is_server_down(&error);
            (ConnectionError::Connect(error), retryable, server_down)
        }
        Ok(Err(panic)) => {
            let message = panic_message(panic.as_ref());
            report_panic(shared, "create", &message);
            (ConnectionError::ConnectPanicked(message), true, false)
        }
        Err(_) => (ConnectionError::ConnectTimeout(timeout), true, false),
    };
    drop(slot);
    shared.ledger.stats.connection_failures.incr();
    shared.ledger.stats.metrics.create_failed();
    let consecutive = shared.recovery.connect_failed();
    let (error, retryable, server_down) = failure;
    tracing::warn!(
        target: "pool_core::connect",
        pool = %shared.config.name,
        error = %error,
        retryable,
        server_down,
        consecutive_failures = consecutive,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "could not open a connection"
    );
    Err(Failed {
        error: shared.record_error(error),
        retryable,
        server_down,
    })
}

/// Runs the liveness check under `validation_timeout`. On failure the caller
/// must close the connection; the failure is logged, counted and recorded.
pub(crate) async fn validate<M: Manager>(
    shared: &Shared<M>,
    conn: &mut Conn<M::Connection>,
) -> Result<(), Arc<ConnectionError<M::Error>>> {
    shared.ledger.stats.validations.incr();
    let timeout = shared.config.validation_timeout;
    let started = Instant::now();
    // A panic in `validate` closes the connection like any failed check.
    let check = AssertUnwindSafe(shared.manager.validate(&mut conn.raw)).catch_unwind();
    let error = match tokio::time::timeout(timeout, check).await {
        Ok(Ok(Ok(()))) => {
            shared.record_validation_latency(started.elapsed());
            return Ok(());
        }
        Ok(Ok(Err(error))) => ConnectionError::Validate(error),
        Ok(Err(panic)) => {
            let message = panic_message(panic.as_ref());
            report_panic(shared, "validate", &message);
            ConnectionError::ValidatePanicked(message)
        }
        Err(_) => ConnectionError::ValidateTimeout(timeout),
    };
    shared.ledger.stats.validation_failures.incr();
    tracing::warn!(
        target: "pool_core::validate",
        pool = %shared.config.name,
        connection_id = conn.id,
        error = %error,
        "connection failed validation; closing it"
    );
    Err(shared.record_error(error))
}

/// Runs the manager's [`before_checkout`](Manager::before_checkout) on an
/// idle connection about to be lent, under `validation_timeout`. `Err`
/// says why it must be closed instead: the hook said no (`Discarded`), or
/// it timed out or panicked (`ValidationFailed`, counted and logged as a
/// failed validation).
pub(crate) async fn before_checkout<M: Manager>(
    shared: &Shared<M>,
    conn: &mut Conn<M::Connection>,
) -> Result<(), RetireReason> {
    let timeout = shared.config.validation_timeout;
    let check = AssertUnwindSafe(shared.manager.before_checkout(&mut conn.raw)).catch_unwind();
    let why = match tokio::time::timeout(timeout, check).await {
        Ok(Ok(true)) => return Ok(()),
        Ok(Ok(false)) => return Err(RetireReason::Discarded),
        Ok(Err(panic)) => {
            let message = panic_message(panic.as_ref());
            report_panic(shared, "before_checkout", &message);
            format!("panicked: {message}")
        }
        Err(_) => format!(
            "did not finish within validation_timeout ({} ms; POOL_VALIDATION_TIMEOUT_MS)",
            timeout.as_millis()
        ),
    };
    shared.ledger.stats.validation_failures.incr();
    tracing::warn!(
        target: "pool_core::validate",
        pool = %shared.config.name,
        connection_id = conn.id,
        "the manager's check before checkout {why}; closing the connection"
    );
    Err(RetireReason::ValidationFailed)
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a
/// `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// A panic in the manager is an ERROR: it is a bug, and the pool carries on.
fn report_panic<M: Manager>(shared: &Shared<M>, method: &str, message: &str) {
    shared.ledger.stats.manager_panics.incr();
    tracing::error!(
        target: "pool_core::manager",
        pool = %shared.config.name,
        method,
        panic = message,
        "the manager's {method} panicked: {message}; counted as a failure, the pool carries on"
    );
}

/// Opens and validates `min_size` connections, in parallel batches of
/// [`WARM_UP_BATCH`], all within one `create_timeout`, and parks them idle.
/// Fails fast: the first failure cancels the rest and closes what opened.
pub(crate) async fn warm_up<M: Manager>(
    shared: &Arc<Shared<M>>,
) -> Result<(), PoolError<M::Error>> {
    let started = Instant::now();
    let min_size = shared.config.min_size as usize;
    let deadline = started + shared.config.create_timeout;
    let init_error = |cause| {
        PoolError::Init(Box::new(InitError {
            min_size: shared.config.min_size,
            elapsed: started.elapsed(),
            cause,
        }))
    };
    let mut opened = 0;
    let mut batch_number = 0;
    while opened < min_size {
        let size = WARM_UP_BATCH.min(min_size - opened);
        batch_number += 1;
        let batch = try_join_all((0..size).map(|_| open_validated(shared)));
        // Cancel-safe: dropping the batch drops its connections and slots.
        let conns = match tokio::time::timeout_at(deadline, batch).await {
            Ok(Ok(conns)) => conns,
            Ok(Err(cause)) => return Err(init_error(cause)),
            Err(_) => {
                let cause = shared.record_error(ConnectionError::ConnectTimeout(
                    shared.config.create_timeout,
                ));
                shared.ledger.stats.connection_failures.incr();
                shared.ledger.stats.metrics.create_failed();
                return Err(init_error(cause));
            }
        };
        for conn in conns {
            shared.return_to_idle(conn);
        }
        opened += size;
        tracing::info!(
            target: "pool_core::init",
            pool = %shared.config.name,
            batch = batch_number,
            batch_size = size,
            opened,
            min_size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "warm-up batch opened and validated"
        );
    }
    Ok(())
}

async fn open_validated<M: Manager>(
    shared: &Arc<Shared<M>>,
) -> Result<Conn<M::Connection>, Arc<ConnectionError<M::Error>>> {
    let Some(slot) = Slot::try_open(&shared.ledger) else {
        // min_size <= max_size is validated, and nothing else runs during
        // build(); report rather than panic if that ever changes.
        return Err(shared.record_error(ConnectionError::ConnectTimeout(
            shared.config.create_timeout,
        )));
    };
    let mut conn = connect(shared, slot).await.map_err(|failed| failed.error)?;
    if let Err(error) = validate(shared, &mut conn).await {
        conn.retire(RetireReason::ValidationFailed);
        return Err(error);
    }
    Ok(conn)
}
