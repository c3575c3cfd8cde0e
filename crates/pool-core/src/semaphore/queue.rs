//! The waiters' queue: a `VecDeque` of `(ticket, waker)` in arrival order.
//!
//! Tickets are handed out in increasing order and only ever appended, so the
//! deque is always sorted by ticket: the front is the oldest waiter (`O(1)`
//! to serve), and a waiter that leaves out of turn (a cancelled `acquire`)
//! is found by binary search. Compared with the `BTreeMap` it replaces, the
//! common operations — append, serve the front — touch one contiguous
//! buffer and allocate only when the queue outgrows its largest size so far.
//!
//! Only used under the semaphore's lock.

use std::collections::VecDeque;
use std::task::Waker;

/// Queued callers, oldest first, each with its latest waker.
#[derive(Debug, Default)]
pub(super) struct WaitQueue {
    entries: VecDeque<(u64, Option<Waker>)>,
}

impl WaitQueue {
    /// Appends `ticket`, which must be larger than every ticket queued.
    pub(super) fn push_back(&mut self, ticket: u64, waker: Waker) {
        debug_assert!(match self.entries.back() {
            Some((last, _)) => *last < ticket,
            None => true,
        });
        self.entries.push_back((ticket, Some(waker)));
    }

    /// Removes and returns the oldest waiter.
    pub(super) fn pop_front(&mut self) -> Option<(u64, Option<Waker>)> {
        self.entries.pop_front()
    }

    /// Removes `ticket` wherever it is; `false` if it was not queued.
    pub(super) fn remove(&mut self, ticket: u64) -> bool {
        match self.position(ticket) {
            Some(index) => self.entries.remove(index).is_some(),
            None => false,
        }
    }

    /// The waker slot of `ticket`, if queued.
    pub(super) fn get_mut(&mut self, ticket: u64) -> Option<&mut Option<Waker>> {
        let index = self.position(ticket)?;
        self.entries.get_mut(index).map(|(_, waker)| waker)
    }

    /// Empties the queue, returning the wakers in arrival order.
    pub(super) fn take_wakers(&mut self) -> Vec<Waker> {
        self.entries
            .drain(..)
            .filter_map(|(_, waker)| waker)
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
            Some((front, _)) if *front == ticket => Some(0),
            _ => self.entries.binary_search_by_key(&ticket, |(t, _)| *t).ok(),
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
            queue.push_back(ticket, noop_waker());
        }
        assert!(queue.remove(2));
        assert!(!queue.remove(2), "already gone");
        assert!(queue.get_mut(3).is_some());
        assert!(queue.get_mut(2).is_none());
        assert_eq!(queue.pop_front().map(|(t, _)| t), Some(0));
        assert!(queue.remove(4));
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop_front().map(|(t, _)| t)).collect();
        assert_eq!(order, [1, 3]);
        assert!(queue.is_empty());
    }

    #[test]
    fn take_wakers_empties_the_queue() {
        let mut queue = WaitQueue::default();
        queue.push_back(7, noop_waker());
        queue.push_back(9, noop_waker());
        assert_eq!(queue.take_wakers().len(), 2);
        assert_eq!(queue.len(), 0);
    }
}
