//! Background tasks that outlive the runtime they were started on.
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
//! So each task's future owns a [`Running`] token, created before the task
//! is spawned. The token's flag is `true` while a future that can still run
//! exists; dropping the future (the task ended, was aborted, or its runtime
//! went away, even before its first poll) clears it. A caller on the slow
//! path calls [`ensure_running`], which starts a lost task again on the
//! caller's own runtime (counted in `background_restarts`, logged at WARN).
//! Losing the deadline task also wakes every queued caller: each then arms
//! a timer of its own (`checkout.rs`), so no queued caller ever waits past
//! its deadline, whichever runtime goes away.
//!
//! # Invariant
//!
//! `flag == true` ⇔ a future holding the token exists (it is claimed with a
//! compare-and-swap before the spawn, so two callers never start the same
//! task twice). A closed pool starts nothing.

use crate::manager::Manager;
use crate::shared::Shared;
use crate::state::PoolState;
use crate::sync::{Arc, AtomicBool, Ordering, Weak};
use crate::{deadline, maintenance, reconnect};

/// Which background task a [`Running`] token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    /// Expires queued callers (`deadline.rs`).
    Deadline,
    /// Retires, replenishes, sweeps, scans for leaks (`maintenance.rs`).
    Maintenance,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Deadline => "deadline",
            Task::Maintenance => "maintenance",
        }
    }
}

/// Whether each background task is alive; one flag per task.
#[derive(Debug)]
pub(crate) struct TaskFlags {
    deadline: AtomicBool,
    maintenance: AtomicBool,
}

impl TaskFlags {
    /// No task running yet.
    pub(crate) fn new() -> Self {
        Self {
            deadline: AtomicBool::new(false),
            maintenance: AtomicBool::new(false),
        }
    }

    fn flag(&self, task: Task) -> &AtomicBool {
        match task {
            Task::Deadline => &self.deadline,
            Task::Maintenance => &self.maintenance,
        }
    }

    /// Whether `task` has a future that can still run.
    #[inline]
    pub(crate) fn is_running(&self, task: Task) -> bool {
        self.flag(task).load(Ordering::Acquire)
    }
}

/// Proof that this future is the one running `task`. Owned by the task's
/// future; dropping it (with the future) marks the task lost.
#[must_use = "the task counts as running only while its token is alive"]
pub(crate) struct Running<M: Manager> {
    shared: Weak<Shared<M>>,
    task: Task,
}

impl<M: Manager> Running<M> {
    /// Claims `task` for a future about to be spawned; `None` if a live one
    /// already has it.
    pub(crate) fn claim(shared: &Arc<Shared<M>>, task: Task) -> Option<Self> {
        shared
            .tasks
            .flag(task)
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(Self {
            shared: Arc::downgrade(shared),
            task,
        })
    }
}

impl<M: Manager> Drop for Running<M> {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        shared.tasks.flag(self.task).store(false, Ordering::Release);
        if self.task == Task::Deadline && !shared.is_closed() {
            // Queued callers relied on this task for their deadline: wake
            // them all, so each arms a timer of its own (and may start the
            // task again on its runtime). Ordered after the store above:
            // a caller queued before the wake-up is woken; one queued after
            // it reads the cleared flag.
            shared.semaphore.wake_waiters();
        }
    }
}

/// Starts every lost background task again on the current runtime, and the
/// reconnect supervisor if the pool is recovering without one. Cheap when
/// nothing is lost: three loads. Called on the slow
/// path of `acquire()`.
pub(crate) fn ensure_running<M: Manager>(shared: &Arc<Shared<M>>) {
    let all_running = shared.tasks.is_running(Task::Deadline)
        && shared.tasks.is_running(Task::Maintenance)
        && shared.state.get() != PoolState::Recovering;
    if all_running || shared.is_closed() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    for task in [Task::Deadline, Task::Maintenance] {
        if shared.tasks.is_running(task) {
            continue;
        }
        let Some(running) = Running::claim(shared, task) else {
            continue;
        };
        match task {
            Task::Deadline => drop(deadline::spawn(shared, running)),
            Task::Maintenance => drop(maintenance::spawn(shared, running)),
        }
        restarted(shared, task.name());
    }
    if reconnect::restart_lost_supervisor(shared) {
        restarted(shared, "reconnect supervisor");
    }
}

/// Counts and logs a task started again.
fn restarted<M: Manager>(shared: &Shared<M>, task: &str) {
    shared.stats.background_restarts.incr();
    tracing::warn!(
        target: "pool_core::tasks",
        pool = %shared.config.name,
        task,
        "the runtime that ran the pool's {task} task is gone; started it again on the caller's runtime"
    );
}
