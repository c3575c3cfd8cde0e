//! Starting the background tasks, and starting them again when the runtime
//! they ran on is gone.
//!
//! # Design
//!
//! A pool's background tasks (the deadline task of queued callers,
//! maintenance, and the reconnect supervisor of `reconnect.rs`) are spawned
//! on the runtime that is current when they start. That runtime may end
//! while the pool lives on: a pool in a `static` shared by
//! `#[tokio::test]`s (each test has a runtime of its own), or a service that
//! shuts one runtime down while another still uses the pool. A runtime that
//! ends drops its tasks without running them again, so without a fallback
//! queued callers would wait forever for a deadline nobody keeps, and
//! maintenance (or recovery) would stop for good.
//!
//! Each task's future owns a `Running` token (`running.rs`) that notices
//! the loss. A caller on the slow path calls [`ensure_running`], which
//! starts a lost task again on the caller's own runtime (counted in
//! `background_restarts`, logged at WARN). Losing the deadline task also
//! wakes every queued caller: each then arms a timer of its own
//! (`checkout.rs`), so no queued caller ever waits past its deadline,
//! whichever runtime goes away. A closed pool starts nothing.

use tokio::task::JoinHandle;

use crate::manager::Manager;
use crate::running::{Running, Task};
use crate::shared::Shared;
use crate::state::PoolState;
use crate::sync::Arc;
use crate::{deadline, maintenance, reconnect};

/// Spawns `task` on the current runtime unless a live one has it.
fn spawn<M: Manager>(shared: &Arc<Shared<M>>, task: Task) -> Option<JoinHandle<()>> {
    let running = Running::claim(&shared.tasks, shared.task_owner(), task)?;
    Some(match task {
        Task::Deadline => deadline::spawn(shared, running),
        Task::Maintenance => maintenance::spawn(shared, running),
    })
}

/// Starts every background task of a new pool (`build()`), for the pool
/// handle to abort and join at close.
pub(crate) fn start<M: Manager>(shared: &Arc<Shared<M>>) -> Vec<JoinHandle<()>> {
    Task::ALL
        .into_iter()
        .filter_map(|task| spawn(shared, task))
        .collect()
}

/// Starts every lost background task again on the current runtime, and the
/// reconnect supervisor if the pool is recovering without one. Cheap when
/// nothing is lost: three loads. Called on the slow path of `acquire()`.
pub(crate) fn ensure_running<M: Manager>(shared: &Arc<Shared<M>>) {
    let all_running = shared.tasks.is_running(Task::Deadline)
        && shared.tasks.is_running(Task::Maintenance)
        && shared.state.get() != PoolState::Recovering;
    if all_running || shared.is_closed() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    for task in Task::ALL {
        if !shared.tasks.is_running(task) && spawn(shared, task).is_some() {
            restarted(shared, task.name());
        }
    }
    if reconnect::restart_lost_supervisor(shared) {
        restarted(shared, "reconnect supervisor");
    }
}

/// Counts and logs a task started again.
fn restarted<M: Manager>(shared: &Shared<M>, task: &str) {
    shared.ledger.stats.background_restarts.incr();
    tracing::warn!(
        target: "pool_core::tasks",
        pool = %shared.config.name,
        task,
        "the runtime that ran the pool's {task} task is gone; started it again on the caller's runtime"
    );
}
