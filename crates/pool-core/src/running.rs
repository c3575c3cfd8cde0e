//! The proof that a background task is alive: a token its future owns.
//!
//! Each background task's future (the deadline task, maintenance) owns a
//! [`Running`] token, claimed before the task is spawned. The token's flag
//! in [`TaskFlags`] is `true` while a future that can still run exists;
//! dropping the future (the task ended, was aborted, or its runtime went
//! away, even before its first poll) drops the token, which clears the flag
//! and tells the pool ([`TaskOwner::task_lost`]). `tasks.rs` starts lost
//! tasks again; the shared state decides what else a loss means (losing
//! the deadline task wakes every queued caller).
//!
//! # Invariant
//!
//! `flag == true` ⇔ a future holding the token exists. The flag is claimed
//! with a compare-and-swap before the spawn, so two callers never start the
//! same task twice.
//!
//! The token knows its owner only as a `Weak<dyn TaskOwner>`, so this file
//! depends on nothing of the pool and the pool's state can hold the flags.

use crate::sync::{AtomicBool, Ordering, Weak};

/// Which background task a [`Running`] token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    /// Expires queued callers (`deadline.rs`).
    Deadline,
    /// Retires, replenishes, sweeps, scans for leaks (`maintenance.rs`).
    Maintenance,
}

impl Task {
    /// Both tasks.
    pub(crate) const ALL: [Task; 2] = [Task::Deadline, Task::Maintenance];

    /// The task's name in log events.
    pub(crate) fn name(self) -> &'static str {
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

    /// Marks `task` lost; called by its owner's [`TaskOwner::task_lost`].
    pub(crate) fn clear(&self, task: Task) {
        self.flag(task).store(false, Ordering::Release);
    }
}

/// What owns the tasks: told when one is lost.
pub(crate) trait TaskOwner: Send + Sync {
    /// `task`'s future was dropped. Must clear its flag
    /// ([`TaskFlags::clear`]) before anything else.
    fn task_lost(&self, task: Task);
}

/// Proof that this future is the one running `task`. Owned by the task's
/// future; dropping it (with the future) marks the task lost.
#[must_use = "the task counts as running only while its token is alive"]
pub(crate) struct Running {
    owner: Weak<dyn TaskOwner>,
    task: Task,
}

impl Running {
    /// Claims `task` in `flags` for a future about to be spawned; `None` if
    /// a live one already has it.
    pub(crate) fn claim(flags: &TaskFlags, owner: Weak<dyn TaskOwner>, task: Task) -> Option<Self> {
        flags
            .flag(task)
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(Self { owner, task })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.task_lost(self.task);
        }
    }
}
