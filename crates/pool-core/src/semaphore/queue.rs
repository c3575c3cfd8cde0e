//! The waiters' queue: a `VecDeque` of [`Waiter`]s in arrival order.
//!
//! Tickets are handed out in increasing order and only ever appended, so the
//! deque is always sorted by ticket: the front is the oldest waiter (`O(1)`
//! to serve), and a waiter that leaves out of turn (a cancelled `acquire`)
//! is found by binary search. The common operations — append, serve the
//! front — touch one contiguous buffer and allocate only when the queue
//! outgrows its largest size so far, where an ordered map would allocate
//! and free nodes as waiters come and go.
//!
//! Only used under the semaphore's lock.

use std::collections::VecDeque;
use std::task::Waker;

/// One queued caller.
#[derive(Debug)]
pub(super) struct Waiter {
    /// Its place in line.
    pub(super) ticket: u64,
    /// Its latest waker.
    pub(super) waker: Option<Waker>,
    /// When it gives up, in the pool's µs; `u64::MAX` for never.
    pub(super) deadline_us: u64,
    /// Set by `expire_due` once the deadline passed; the caller sees it at
    /// its next poll (still queued, so a statistics snapshot counts it).
    pub(super) expired: bool,
}

/// Queued callers, oldest first.
#[derive(Debug, Default)]
pub(super) struct WaitQueue {
    entries: VecDeque<Waiter>,
}

impl WaitQueue {
    /// Appends `ticket`, which must be larger than every ticket queued.
    pub(super) fn push_back(&mut self, ticket: u64, waker: Waker, deadline_us: u64) {
        debug_assert!(match self.entries.back() {
            Some(last) => last.ticket < ticket,
            None => true,
        });
        self.entries.push_back(Waiter {
            ticket,
            waker: Some(waker),
            deadline_us,
            expired: false,
        });
    }

    /// Removes and returns the oldest waiter.
    pub(super) fn pop_front(&mut self) -> Option<Waiter> {
        self.entries.pop_front()
    }

    /// Marks every waiter whose deadline is at or before `now_us` expired,
    /// collecting their wakers into `wake`. Returns the earliest deadline
    /// still ahead (`u64::MAX` if none). Visits every waiter: deadlines are
    /// nearly, not strictly, in queue order (a caller that queues again
    /// keeps its first deadline), and this runs about once per deadline.
    pub(super) fn expire_due(&mut self, now_us: u64, wake: &mut Vec<Waker>) -> u64 {
        let mut next = u64::MAX;
        for waiter in self.entries.iter_mut().filter(|w| !w.expired) {
            if waiter.deadline_us <= now_us {
                waiter.expired = true;
                wake.extend(waiter.waker.take());
            } else {
                next = next.min(waiter.deadline_us);
            }
        }
        next
    }

    /// Removes `ticket` wherever it is; `false` if it was not queued.
    pub(super) fn remove(&mut self, ticket: u64) -> bool {
        match self.position(ticket) {
            Some(index) => self.entries.remove(index).is_some(),
            None => false,
        }
    }

    /// The waiter holding `ticket`, if queued.
    pub(super) fn get_mut(&mut self, ticket: u64) -> Option<&mut Waiter> {
        let index = self.position(ticket)?;
        self.entries.get_mut(index)
    }

    /// Copies of the wakers of every waiter not yet expired, in arrival
    /// order; the queue is left as it is.
    pub(super) fn wakers(&self) -> Vec<Waker> {
        self.entries
            .iter()
            .filter_map(|waiter| waiter.waker.clone())
            .collect()
    }

    /// Empties the queue, returning the wakers in arrival order.
    pub(super) fn take_wakers(&mut self) -> Vec<Waker> {
        self.entries
            .drain(..)
            .filter_map(|waiter| waiter.waker)
            .collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn position(&self, ticket: u64) -> Option<usize> {
        // Most lookups are for the front (the next to be served, or a
        // waiter polled again right after being queued): check it first.
        match self.entries.front() {
            Some(front) if front.ticket == ticket => Some(0),
            _ => self
                .entries
                .binary_search_by_key(&ticket, |waiter| waiter.ticket)
                .ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::task::noop_waker;

    use super::WaitQueue;

    #[test]
    fn waiters_leave_from_the_front_and_out_of_turn_in_any_order() {
        let mut queue = WaitQueue::default();
        for ticket in 0..5 {
            queue.push_back(ticket, noop_waker(), u64::MAX);
        }
        assert!(queue.remove(2));
        assert!(!queue.remove(2), "already gone");
        assert!(queue.get_mut(3).is_some());
        assert!(queue.get_mut(2).is_none());
        assert_eq!(queue.pop_front().map(|w| w.ticket), Some(0));
        assert!(queue.remove(4));
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop_front().map(|w| w.ticket)).collect();
        assert_eq!(order, [1, 3]);
        assert!(queue.is_empty());
    }

    #[test]
    fn expiry_marks_only_the_waiters_whose_deadline_passed() {
        let mut queue = WaitQueue::default();
        queue.push_back(1, noop_waker(), 100);
        queue.push_back(2, noop_waker(), 50); // queued again: an older deadline
        queue.push_back(3, noop_waker(), 300);
        let mut wake = Vec::new();
        assert_eq!(queue.expire_due(100, &mut wake), 300, "the next deadline");
        assert_eq!(wake.len(), 2);
        assert!(queue.get_mut(1).is_some_and(|w| w.expired));
        assert!(queue.get_mut(2).is_some_and(|w| w.expired));
        assert!(queue.get_mut(3).is_some_and(|w| !w.expired));
        wake.clear();
        assert_eq!(queue.expire_due(200, &mut wake), 300, "nothing new is due");
        assert!(wake.is_empty(), "an expired waiter is woken once");
        assert_eq!(queue.len(), 3, "expired waiters stay until they leave");
    }

    #[test]
    fn take_wakers_empties_the_queue() {
        let mut queue = WaitQueue::default();
        queue.push_back(7, noop_waker(), u64::MAX);
        queue.push_back(9, noop_waker(), u64::MAX);
        assert_eq!(queue.take_wakers().len(), 2);
        assert_eq!(queue.len(), 0);
    }
}
