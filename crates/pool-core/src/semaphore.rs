//! The FIFO-fair, cancel-safe waiter semaphore.
//!
//! # Design
//!
//! One `AtomicUsize` holds `permits << 3 | IDLE_WATCH | WAITERS | CLOSED`. A
//! waitlist behind a `parking_lot` mutex holds the queued callers in arrival
//! order (a deque sorted by ticket, `semaphore/queue.rs`). `granted_below` is
//! one past the last ticket handed a permit: the queue is served strictly
//! from its front, in ticket order, so a caller whose ticket is below it and
//! who did not leave the queue itself was granted a permit, and a woken
//! caller learns that from one load, without taking the lock.
//!
//! * Uncontended acquire and release are one CAS each and never lock.
//! * A caller that finds no permit takes the lock, sets `WAITERS` (only
//!   possible while the permit count is zero) and enqueues at the back.
//! * While `WAITERS` is set, a release cannot add to the count: it takes the
//!   lock and hands its permit to the waiter at the front.
//!
//! # Guarantees
//!
//! * **Fair:** a permit is only ever in the shared count when nobody is
//!   queued, so a newcomer can never overtake a waiter; waiters are served
//!   strictly in arrival order.
//! * **Cancel-safe:** dropping an [`Acquire`] while queued unlinks it;
//!   dropping it after it was granted a permit (woken, not yet polled)
//!   passes that permit on to the next waiter. Capacity is never lost.
//! * **No lost wake-up:** wakers are collected under the lock and woken after
//!   it is released; the flag and the queue change together under the lock.
//! * [`Semaphore::close`] fails every queued and future acquire with
//!   [`AcquireError::Closed`]; permits already granted stay valid.
//!
//! # Watching for returned permits
//!
//! A caller whose own connect is slow wants to know when a connection comes
//! back to the idle queue ([`Semaphore::permit_returned`]). A return pushes
//! its connection and *then* releases its permit, so it is enough to learn
//! of a release that puts a permit back in the count (one handed to a queued
//! waiter is that waiter's). The watcher sets `IDLE_WATCH`; the release's
//! CAS, which reads the state anyway, sees the flag, clears it and wakes
//! the watchers. An unwatched release pays nothing for the watch: the same
//! CAS, with one more bit in its test.
//!
//! # Deadlines without a timer per waiter
//!
//! [`Semaphore::acquire_until`] gives a waiter a deadline. The waiter arms
//! no timer of its own: the pool's one deadline task sleeps until
//! [`Semaphore::next_deadline`] and calls [`Semaphore::expire_due`], which
//! marks the waiters whose deadline passed and wakes them; each then
//! returns [`AcquireError::TimedOut`] while still queued (so a statistics
//! snapshot taken for its error counts it) and unlinks itself when dropped.
//! A waiter that is handed a permit before it observed its expiry takes the
//! permit. Queuing a deadline earlier than the one the task sleeps for
//! wakes the task ([`Semaphore::deadline_changed`]). All waiters of a pool
//! share one timeout and queue in order, so the task fires about once per
//! timeout, not once per waiter.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Waker};

use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

mod queue;

use queue::WaitQueue;

const CLOSED: usize = 1;
const WAITERS: usize = 2;
const IDLE_WATCH: usize = 4;
const PERMIT: usize = 8;

/// Why [`Acquire`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcquireError {
    /// The semaphore was closed.
    Closed,
    /// The waiter's deadline passed before a permit came.
    TimedOut,
}

/// Why [`Semaphore::try_acquire`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TryAcquireError {
    Closed,
    NoPermits,
}

#[derive(Debug, Default)]
struct Waitlist {
    next_id: u64,
    /// Queued callers in arrival order, with their latest waker.
    queue: WaitQueue,
}

/// A flag on a cache line of its own: written once (on close), read on
/// every return of a connection. Reading the state word instead would pull
/// the line every acquire and release writes into the reader's cache.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ColdFlag(AtomicBool);

/// A counting semaphore with a FIFO queue of waiters.
#[derive(Debug)]
pub(crate) struct Semaphore {
    state: AtomicUsize,
    /// `CLOSED`, mirrored away from `state` for cheap reads; set under the
    /// lock together with it.
    closed: ColdFlag,
    waitlist: Mutex<Waitlist>,
    /// One past the ticket of the last waiter handed a permit (0: none).
    /// Written under the lock with `Release` when the front waiter is
    /// served; only grows, because tickets are served in increasing order.
    granted_below: AtomicU64,
    /// Mirror of `queue.len()`, written under the lock, read lock-free.
    waiting: AtomicU64,
    /// The highest `waiting` ever seen.
    peak_waiting: AtomicU64,
    /// The earliest deadline the deadline task must wake for (`u64::MAX`:
    /// none). Written under the lock.
    next_deadline: AtomicU64,
    /// Wakes the deadline task when a waiter queues with a deadline earlier
    /// than `next_deadline`, and when the semaphore closes.
    deadline_changed: StdArc<tokio::sync::Notify>,
    /// Wakes the callers in [`Semaphore::permit_returned`].
    returned: tokio::sync::Notify,
}

impl Semaphore {
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            state: AtomicUsize::new(permits * PERMIT),
            closed: ColdFlag::default(),
            waitlist: Mutex::new(Waitlist::default()),
            granted_below: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            peak_waiting: AtomicU64::new(0),
            next_deadline: AtomicU64::new(u64::MAX),
            deadline_changed: StdArc::new(tokio::sync::Notify::new()),
            returned: tokio::sync::Notify::new(),
        }
    }

    /// The earliest deadline of a queued waiter not yet expired, in µs
    /// (`u64::MAX`: none).
    pub(crate) fn next_deadline(&self) -> u64 {
        self.next_deadline.load(Ordering::Acquire)
    }

    /// Notified when `next_deadline` moves earlier, and on close.
    pub(crate) fn deadline_changed(&self) -> StdArc<tokio::sync::Notify> {
        StdArc::clone(&self.deadline_changed)
    }

    /// Expires every waiter whose deadline is at or before `now_us` (they
    /// return [`AcquireError::TimedOut`] at their next poll) and wakes
    /// them. Returns the next deadline to wake for.
    pub(crate) fn expire_due(&self, now_us: u64) -> u64 {
        let mut wake = Vec::new();
        let mut list = self.waitlist.lock();
        let next = list.queue.expire_due(now_us, &mut wake);
        self.next_deadline.store(next, Ordering::Release);
        drop(list);
        for waker in wake {
            waker.wake();
        }
        next
    }

    /// Resolves at the first release after this call that puts a permit
    /// back in the count, or at once if a permit is free now and `ready()`
    /// holds once the watch is set (or the semaphore is closed).
    ///
    /// No lost wake-up: the watcher registers, then sets `IDLE_WATCH` with
    /// a read-modify-write, then checks `ready()`. A release ordered before
    /// that RMW made its effects (a connection pushed before the release)
    /// visible to the check; one ordered after it sees the flag and wakes
    /// the watcher. Cancel-safe: it holds nothing (a flag left set costs the
    /// next release one `notify_waiters`).
    pub(crate) async fn permit_returned(&self, ready: impl Fn() -> bool) {
        let notified = self.returned.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let before = self.state.fetch_or(IDLE_WATCH, Ordering::AcqRel);
        if before & CLOSED != 0 || (before >= PERMIT && ready()) {
            return;
        }
        notified.await;
    }

    /// Wakes every queued caller without changing its place or its
    /// deadline: each is polled again and re-reads the pool's state (used
    /// when the deadline task is lost, so each caller arms its own timer).
    pub(crate) fn wake_waiters(&self) {
        let list = self.waitlist.lock();
        let wakers = list.queue.wakers();
        drop(list);
        for waker in wakers {
            waker.wake();
        }
    }

    /// Callers queued right now.
    pub(crate) fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The most callers ever queued at once.
    pub(crate) fn peak_waiting(&self) -> u64 {
        self.peak_waiting.load(Ordering::Relaxed)
    }

    /// Permits free right now (zero while anyone is queued).
    pub(crate) fn available(&self) -> usize {
        self.state.load(Ordering::Acquire) / PERMIT
    }

    /// Whether [`Self::close`] was called. `SeqCst`, with the store in
    /// `close`: a caller that published something (a connection pushed to
    /// the idle queue) and then reads `false` is ordered before the close,
    /// whose drain then sees what it published.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.0.load(Ordering::SeqCst)
    }

    /// Takes a permit if one is free and nobody is queued. Never waits.
    pub(crate) fn try_acquire(&self) -> Result<(), TryAcquireError> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & CLOSED != 0 {
                return Err(TryAcquireError::Closed);
            }
            if state < PERMIT {
                return Err(TryAcquireError::NoPermits);
            }
            match self.state.compare_exchange_weak(
                state,
                state - PERMIT,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => state = current,
            }
        }
    }

    /// Waits for a permit, in arrival order, for as long as it takes.
    /// See [`Acquire`].
    #[cfg(any(test, pool_loom))]
    pub(crate) fn acquire(&self) -> Acquire<'_> {
        self.acquire_until(u64::MAX)
    }

    /// Waits for a permit, in arrival order, until `deadline_us` (the
    /// pool's µs; enforced by the deadline task, see the module docs).
    pub(crate) fn acquire_until(&self, deadline_us: u64) -> Acquire<'_> {
        Acquire {
            semaphore: self,
            id: None,
            deadline_us,
        }
    }

    /// Gives one permit back: to the first waiter if any, else to the count
    /// (waking the callers in [`Self::permit_returned`], if any).
    pub(crate) fn release(&self) {
        let mut state = self.state.load(Ordering::Acquire);
        while state & WAITERS == 0 {
            match self.state.compare_exchange_weak(
                state,
                (state + PERMIT) & !IDLE_WATCH,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if state & IDLE_WATCH != 0 {
                        self.returned.notify_waiters();
                    }
                    return;
                }
                Err(current) => state = current,
            }
        }
        let mut list = self.waitlist.lock();
        let waker = self.release_locked(&mut list);
        drop(list);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Hands one permit to the front waiter, or to the count if nobody is
    /// queued. Returns the waker to wake once the lock is released.
    fn release_locked(&self, list: &mut Waitlist) -> Option<Waker> {
        match list.queue.pop_front() {
            Some(waiter) => {
                self.granted_below
                    .store(waiter.ticket + 1, Ordering::Release);
                self.after_queue_change(list);
                waiter.waker
            }
            None => {
                let before = self.state.fetch_add(PERMIT, Ordering::AcqRel);
                if before & IDLE_WATCH != 0 {
                    self.state.fetch_and(!IDLE_WATCH, Ordering::AcqRel);
                    self.returned.notify_waiters();
                }
                None
            }
        }
    }

    /// Whether the queued caller with ticket `ticket` was handed a permit.
    /// Exact for a caller that has not left the queue by itself: tickets
    /// are served front first, in increasing order, so one below
    /// `granted_below` cannot still be queued. `Acquire` pairs with the
    /// hand-off's `Release`.
    #[inline]
    fn was_granted(&self, ticket: u64) -> bool {
        ticket < self.granted_below.load(Ordering::Acquire)
    }

    /// Keeps `WAITERS` and the `waiting` gauge in step with the queue.
    /// Called with the lock held after every queue change.
    fn after_queue_change(&self, list: &Waitlist) {
        if list.queue.is_empty() {
            self.state.fetch_and(!WAITERS, Ordering::AcqRel);
        }
        let waiting = list.queue.len() as u64;
        self.waiting.store(waiting, Ordering::Relaxed);
        // Under the lock, so a plain load-then-store cannot lose a peak.
        if waiting > self.peak_waiting.load(Ordering::Relaxed) {
            self.peak_waiting.store(waiting, Ordering::Relaxed);
        }
    }

    /// Fails every queued and future acquire. Idempotent.
    pub(crate) fn close(&self) {
        let mut list = self.waitlist.lock();
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        self.closed.0.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = list.queue.take_wakers();
        self.after_queue_change(&list);
        drop(list);
        for waker in wakers {
            waker.wake();
        }
        // The deadline task ends with the semaphore.
        self.deadline_changed.notify_one();
    }
}

/// The future returned by [`Semaphore::acquire_until`] (and, in tests,
/// `Semaphore::acquire`). Cancel-safe: see the module documentation.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub(crate) struct Acquire<'a> {
    semaphore: &'a Semaphore,
    /// Set while queued or granted-but-unobserved (and after returning
    /// `TimedOut`, until dropped: the waiter stays queued until then).
    id: Option<u64>,
    /// When to give up, in the pool's µs.
    deadline_us: u64,
}

impl Future for Acquire<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let semaphore = self.semaphore;
        let Some(id) = self.id else {
            return match semaphore.try_acquire() {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TryAcquireError::Closed) => Poll::Ready(Err(AcquireError::Closed)),
                Err(TryAcquireError::NoPermits) => self.enqueue(cx),
            };
        };
        // The common wake-up, a permit handed over, needs no lock: this
        // caller's ticket was served (see the module docs).
        if semaphore.was_granted(id) {
            self.id = None;
            return Poll::Ready(Ok(()));
        }
        let mut list = semaphore.waitlist.lock();
        // Served between the load above and the lock.
        if semaphore.was_granted(id) {
            drop(list);
            self.id = None;
            return Poll::Ready(Ok(()));
        }
        if semaphore.is_closed() {
            list.queue.remove(id);
            semaphore.after_queue_change(&list);
            drop(list);
            self.id = None;
            return Poll::Ready(Err(AcquireError::Closed));
        }
        if let Some(waiter) = list.queue.get_mut(id) {
            if waiter.expired {
                // Stays queued (and counted) until dropped.
                return Poll::Ready(Err(AcquireError::TimedOut));
            }
            match &mut waiter.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Acquire<'_> {
    /// Slow path of the first poll: take a permit that appeared meanwhile,
    /// or join the back of the queue.
    fn enqueue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AcquireError>> {
        let semaphore = self.semaphore;
        let mut list = semaphore.waitlist.lock();
        let mut state = semaphore.state.load(Ordering::Acquire);
        loop {
            if state & CLOSED != 0 {
                return Poll::Ready(Err(AcquireError::Closed));
            }
            let next = if state >= PERMIT {
                state - PERMIT
            } else {
                state | WAITERS
            };
            match semaphore.state.compare_exchange_weak(
                state,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) if state >= PERMIT => return Poll::Ready(Ok(())),
                Ok(_) => break,
                Err(current) => state = current,
            }
        }
        let id = list.next_id;
        list.next_id += 1;
        list.queue
            .push_back(id, cx.waker().clone(), self.deadline_us);
        semaphore.after_queue_change(&list);
        let earlier = self.deadline_us < semaphore.next_deadline.load(Ordering::Acquire);
        if earlier {
            semaphore
                .next_deadline
                .store(self.deadline_us, Ordering::Release);
        }
        drop(list);
        if earlier {
            semaphore.deadline_changed.notify_one();
        }
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let semaphore = self.semaphore;
        let mut list = semaphore.waitlist.lock();
        let waker = if semaphore.was_granted(id) {
            // Woken with a permit but dropped before taking it: pass it on.
            semaphore.release_locked(&mut list)
        } else {
            list.queue.remove(id);
            semaphore.after_queue_change(&list);
            None
        };
        drop(list);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests;
