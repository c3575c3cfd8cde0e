//! Settling a returned connection: the manager's I/O between a return and
//! the verdict.
//!
//! Most returns are judged on the spot by the free `Manager::verdict`. A
//! manager that cannot judge yet (a response still on the wire, a session
//! reset to run) answers `Verdict::Settle`, and the guard hands the
//! connection *and its permit* to [`spawn`]:
//!
//! * a task on the caller's runtime runs `Manager::settle` under
//!   `validation_timeout`, then applies the pool's rules to the verdict it
//!   returns (lifetime, generation, `max_queries`, server lost), exactly as
//!   a return judged on the spot;
//! * the permit is released only after that, so a settling connection
//!   counts as in use: a waiter woken by its permit finds it idle, and the
//!   pool never opens more than `max_size` connections meanwhile;
//! * a settle that times out, panics or asks to settle again closes the
//!   connection as dirty (logged, counted in `closed_by_reason.dirty`);
//!   without a runtime to run on (a guard dropped after its runtime shut
//!   down) the connection is closed as dirty at once.
//!
//! Invariant: every connection handed here ends idle or retired, within
//! `validation_timeout`, and its permit is released after that, once.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::idle::Conn;
use crate::manager::{Manager, Verdict};
use crate::open::panic_message;
use crate::recycle::{finish_return, judge};
use crate::retire::RetireReason;
use crate::shared::{Permit, Shared};
use crate::sync::Arc;

/// Settles `conn` in a task of its own, holding `permit` until decided.
pub(crate) fn spawn<M: Manager>(
    shared: Arc<Shared<M>>,
    conn: Conn<M::Connection>,
    permit: Permit<M>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!(
            target: "pool_core::pool",
            pool = %shared.config.name,
            connection_id = conn.id,
            "no runtime to settle a returned connection on; closing it"
        );
        conn.retire(RetireReason::Dirty);
        return;
    };
    // Detached on purpose: the task owns everything it needs, is bounded by
    // `validation_timeout`, and reports through the log and the counters.
    drop(runtime.spawn(async move {
        let _permit = permit;
        settle(&shared, conn).await;
    }));
}

async fn settle<M: Manager>(shared: &Shared<M>, mut conn: Conn<M::Connection>) {
    let timeout = shared.config.validation_timeout;
    let work = AssertUnwindSafe(shared.manager.settle(&mut conn.raw)).catch_unwind();
    let verdict = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(panic)) => {
            let message = panic_message(panic.as_ref());
            shared.ledger.stats.manager_panics.incr();
            tracing::error!(
                target: "pool_core::manager",
                pool = %shared.config.name,
                method = "settle",
                panic = %message,
                "the manager's settle panicked: {message}; closing the connection, the pool carries on"
            );
            Verdict::Dirty
        }
        Err(_) => {
            tracing::warn!(
                target: "pool_core::pool",
                pool = %shared.config.name,
                connection_id = conn.id,
                timeout_ms = timeout.as_millis() as u64,
                "a returned connection did not settle within validation_timeout; closing it (raise POOL_VALIDATION_TIMEOUT_MS if the server is slow to answer)"
            );
            Verdict::Dirty
        }
    };
    let now_us = shared.now_us();
    let generation = shared.generation();
    let rejected = judge(verdict, &shared.config, &conn, now_us, generation);
    finish_return(shared, conn, rejected, now_us, generation);
}
