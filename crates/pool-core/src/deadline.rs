//! The deadline task: one timer per pool for every queued `acquire()`.
//!
//! # Design
//!
//! A caller queued in the semaphore arms no timer of its own: a timer per
//! waiter would be registered in tokio's timer wheel and removed again on
//! every queued acquisition, each time under a lock shared by the runtime's
//! workers. Instead this task sleeps until the earliest deadline among the
//! queued callers
//! ([`Semaphore::next_deadline`](crate::semaphore::Semaphore)), then
//! expires every caller whose deadline passed; each returns its `Timeout`
//! error at once. A caller queuing with an earlier deadline wakes the task.
//! All callers share one `acquire_timeout` and queue in arrival order, so
//! in steady state the task wakes about once per timeout.
//!
//! # Invariant
//!
//! While a caller is queued with deadline `d`, the task is asleep until a
//! time `<= d`, or is about to read `next_deadline <= d`: `enqueue` lowers
//! `next_deadline` under the semaphore's lock and notifies the task (a
//! `Notify` permit is never lost), and `expire_due` recomputes it from the
//! callers still waiting. So no caller waits past its deadline by more than
//! the task's scheduling delay.
//!
//! The task holds only a `Weak` to the pool and ends when the pool closes
//! (the semaphore's close notifies it) or is dropped (it is aborted). If
//! its runtime goes away first, queued callers are woken and keep their
//! deadlines with timers of their own, and the next caller starts the task
//! again on its runtime (`tasks.rs`).

use std::sync::Weak;

use tokio::task::JoinHandle;

use crate::manager::Manager;
use crate::running::Running;
use crate::shared::Shared;
use crate::sync::Arc;

/// Starts the deadline task of `shared` on the current runtime; the task's
/// future owns `running` (`tasks.rs`).
pub(crate) fn spawn<M: Manager>(shared: &Arc<Shared<M>>, running: Running) -> JoinHandle<()> {
    tokio::spawn(run(Arc::downgrade(shared), running))
}

async fn run<M: Manager>(weak: Weak<Shared<M>>, _running: Running) {
    loop {
        let (wake_at, changed) = {
            let Some(shared) = weak.upgrade() else { return };
            if shared.is_closed() {
                return;
            }
            let next = shared.semaphore.next_deadline();
            let wake_at = (next != u64::MAX).then(|| shared.clock.instant_at(next));
            (wake_at, shared.semaphore.deadline_changed())
        };
        // Only the `Notify` is held while asleep, not the pool.
        match wake_at {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = changed.notified() => continue,
                }
            }
            // Nobody queued with a deadline: sleep until someone is (or the
            // pool closes, which notifies too).
            None => {
                changed.notified().await;
                continue;
            }
        }
        let Some(shared) = weak.upgrade() else { return };
        shared.semaphore.expire_due(shared.now_us());
    }
}
