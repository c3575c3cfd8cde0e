//! The FIFO-fair, cancel-safe waiter semaphore.
//!
//! # Design
//!
//! One `AtomicUsize` holds `permits << 2 | WAITERS | CLOSED`. A waitlist
//! behind a `parking_lot` mutex holds the queued callers in arrival order
//! (a deque sorted by ticket, `semaphore/queue.rs`) and the ids of callers that
//! were granted a permit but have not yet been polled.
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
//!   [`Closed`]; permits already granted stay valid.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering};

mod queue;

use queue::WaitQueue;

const CLOSED: usize = 1;
const WAITERS: usize = 2;
const PERMIT: usize = 4;

/// The semaphore was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closed;

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
    /// Callers granted a permit that have not observed it yet.
    granted: Vec<u64>,
}

/// A counting semaphore with a FIFO queue of waiters.
#[derive(Debug)]
pub(crate) struct Semaphore {
    state: AtomicUsize,
    waitlist: Mutex<Waitlist>,
    /// Mirror of `queue.len()`, written under the lock, read lock-free.
    waiting: AtomicU64,
    /// The highest `waiting` ever seen.
    peak_waiting: AtomicU64,
}

impl Semaphore {
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            state: AtomicUsize::new(permits * PERMIT),
            waitlist: Mutex::new(Waitlist::default()),
            waiting: AtomicU64::new(0),
            peak_waiting: AtomicU64::new(0),
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
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.state.load(Ordering::Acquire) / PERMIT
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
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

    /// Waits for a permit, in arrival order. See [`Acquire`].
    pub(crate) fn acquire(&self) -> Acquire<'_> {
        Acquire {
            semaphore: self,
            id: None,
        }
    }

    /// Gives one permit back: to the first waiter if any, else to the count.
    pub(crate) fn release(&self) {
        let mut state = self.state.load(Ordering::Acquire);
        while state & WAITERS == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + PERMIT,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
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
            Some((id, waker)) => {
                list.granted.push(id);
                self.after_queue_change(list);
                waker
            }
            None => {
                self.state.fetch_add(PERMIT, Ordering::AcqRel);
                None
            }
        }
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
        let wakers: Vec<Waker> = list.queue.take_wakers();
        self.after_queue_change(&list);
        drop(list);
        for waker in wakers {
            waker.wake();
        }
    }
}

/// The future returned by [`Semaphore::acquire`]. Cancel-safe: see the
/// module documentation.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub(crate) struct Acquire<'a> {
    semaphore: &'a Semaphore,
    /// Set while queued or granted-but-unobserved.
    id: Option<u64>,
}

impl Future for Acquire<'_> {
    type Output = Result<(), Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let semaphore = self.semaphore;
        let Some(id) = self.id else {
            return match semaphore.try_acquire() {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TryAcquireError::Closed) => Poll::Ready(Err(Closed)),
                Err(TryAcquireError::NoPermits) => self.enqueue(cx),
            };
        };
        let mut list = semaphore.waitlist.lock();
        if let Some(index) = list.granted.iter().position(|g| *g == id) {
            list.granted.swap_remove(index);
            drop(list);
            self.id = None;
            return Poll::Ready(Ok(()));
        }
        if semaphore.is_closed() {
            list.queue.remove(id);
            semaphore.after_queue_change(&list);
            drop(list);
            self.id = None;
            return Poll::Ready(Err(Closed));
        }
        if let Some(slot) = list.queue.get_mut(id) {
            match slot {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Acquire<'_> {
    /// Slow path of the first poll: take a permit that appeared meanwhile,
    /// or join the back of the queue.
    fn enqueue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        let semaphore = self.semaphore;
        let mut list = semaphore.waitlist.lock();
        let mut state = semaphore.state.load(Ordering::Acquire);
        loop {
            if state & CLOSED != 0 {
                return Poll::Ready(Err(Closed));
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
        list.queue.push_back(id, cx.waker().clone());
        semaphore.after_queue_change(&list);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let semaphore = self.semaphore;
        let mut list = semaphore.waitlist.lock();
        let waker = if let Some(index) = list.granted.iter().position(|g| *g == id) {
            // Woken with a permit but dropped before taking it: pass it on.
            list.granted.swap_remove(index);
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
mod tests {
    use super::*;
    use std::sync::Arc;

    fn noop_cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn waiters_are_served_in_arrival_order() {
        let sem = Semaphore::new(1);
        sem.try_acquire().unwrap();
        let mut cx = noop_cx();
        let mut first = Box::pin(sem.acquire());
        let mut second = Box::pin(sem.acquire());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(sem.waiting(), 2);
        sem.release();
        assert!(
            second.as_mut().poll(&mut cx).is_pending(),
            "second must not overtake"
        );
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(
            sem.try_acquire(),
            Err(TryAcquireError::NoPermits),
            "no barging past a waiter"
        );
        sem.release();
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(sem.waiting(), 0);
    }

    #[test]
    fn a_waiter_dropped_after_being_granted_passes_the_permit_on() {
        let sem = Semaphore::new(1);
        sem.try_acquire().unwrap();
        let mut cx = noop_cx();
        let mut first = Box::pin(sem.acquire());
        let mut second = Box::pin(sem.acquire());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        sem.release();
        drop(first);
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        sem.release();
        assert_eq!(sem.available(), 1);
    }

    #[test]
    fn a_waiter_dropped_while_queued_unlinks_itself() {
        let sem = Semaphore::new(1);
        sem.try_acquire().unwrap();
        let mut cx = noop_cx();
        let mut waiter = Box::pin(sem.acquire());
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        drop(waiter);
        assert_eq!(sem.waiting(), 0);
        sem.release();
        assert_eq!(sem.available(), 1, "the permit went back to the count");
    }

    #[test]
    fn close_fails_queued_and_future_acquires() {
        let sem = Semaphore::new(0);
        let mut cx = noop_cx();
        let mut waiter = Box::pin(sem.acquire());
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        sem.close();
        assert_eq!(waiter.as_mut().poll(&mut cx), Poll::Ready(Err(Closed)));
        assert_eq!(sem.try_acquire(), Err(TryAcquireError::Closed));
        assert_eq!(sem.waiting(), 0);
    }

    #[test]
    fn concurrent_acquire_and_release_never_lose_a_permit() {
        let sem = Arc::new(Semaphore::new(3));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let sem = Arc::clone(&sem);
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        for _ in 0..2_000 {
                            sem.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            sem.release();
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sem.available(), 3);
        assert_eq!(sem.waiting(), 0);
    }
}
