//! The floor: a tokio `Semaphore` plus a crossbeam `ArrayQueue`, with no
//! bookkeeping at all (no statistics, no validation, no leak tracking, no
//! lifetime). No real pool can be cheaper than this, so every pool is
//! measured as a ratio to it.
//!
//! Its guard gives the object back to the queue first and releases the
//! permit second, like our pool's guard, so the next waiter finds the object
//! already there.
//!
//! With `u64` objects it is the floor of the acquire/release benches; with
//! `tokio_postgres::Client`s it is the "dedicated" floor of the PostgreSQL
//! benches.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The bare floor: `size` objects behind a semaphore of `size` permits.
pub struct Floor<T> {
    semaphore: Arc<Semaphore>,
    objects: Arc<ArrayQueue<T>>,
}

impl<T> Clone for Floor<T> {
    fn clone(&self) -> Self {
        Self {
            semaphore: Arc::clone(&self.semaphore),
            objects: Arc::clone(&self.objects),
        }
    }
}

impl<T> fmt::Debug for Floor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Floor")
            .field("available", &self.semaphore.available_permits())
            .field("idle", &self.objects.len())
            .finish()
    }
}

impl Floor<u64> {
    /// A floor holding `size` numbers.
    pub fn new(size: usize) -> Self {
        Self::from_objects((0..size as u64).collect())
    }

    /// Takes a number, uses it, gives it back; with `hold_across_yield`,
    /// holds it across one `yield_now` first (the realistic shape: the
    /// holder does some work).
    pub async fn cycle_holding(&self, hold_across_yield: bool) -> Result<u64, FloorError> {
        let object = self.get().await?;
        if hold_across_yield {
            tokio::task::yield_now().await;
        }
        Ok(std::hint::black_box(*object))
    }
}

impl<T> Floor<T> {
    /// A floor holding `objects` (at least one).
    pub fn from_objects(objects: Vec<T>) -> Self {
        let queue = ArrayQueue::new(objects.len().max(1));
        let permits = objects.len();
        for object in objects {
            // The queue has exactly one place per object.
            let _pushed = queue.push(object).is_ok();
        }
        Self {
            semaphore: Arc::new(Semaphore::new(permits)),
            objects: Arc::new(queue),
        }
    }

    /// Waits for a permit (FIFO, tokio's semaphore) and pops an object.
    pub async fn get(&self) -> Result<FloorGuard<'_, T>, FloorError> {
        let permit = self
            .semaphore
            .acquire()
            .await
            .map_err(|_closed| FloorError::Closed)?;
        let object = self.objects.pop().ok_or(FloorError::Empty)?;
        Ok(FloorGuard {
            object: Some(object),
            objects: &self.objects,
            _permit: permit,
        })
    }
}

/// An object lent by a [`Floor`]; gives it back when dropped.
pub struct FloorGuard<'a, T> {
    // Field order matters: the object goes back in `Drop::drop`, before the
    // permit (dropped with the fields) wakes the next waiter.
    object: Option<T>,
    objects: &'a ArrayQueue<T>,
    _permit: SemaphorePermit<'a>,
}

impl<T> Deref for FloorGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.object {
            Some(object) => object,
            None => unreachable!("the object is only taken in Drop"),
        }
    }
}

impl<T> Drop for FloorGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            // One place per object: the push cannot fail.
            let _pushed = self.objects.push(object).is_ok();
        }
    }
}

/// Why [`Floor::get`] failed. Neither can happen while the floor is used as
/// intended (it is never closed, and it holds one object per permit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorError {
    /// The semaphore was closed.
    Closed,
    /// A permit was granted but the queue was empty.
    Empty,
}

impl fmt::Display for FloorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FloorError::Closed => f.write_str("the floor's semaphore is closed"),
            FloorError::Empty => f.write_str("the floor's queue was empty under a permit"),
        }
    }
}

impl std::error::Error for FloorError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_floor_lends_each_object_once_and_takes_it_back() {
        let floor = Floor::new(2);
        let a = floor.get().await.unwrap();
        let b = floor.get().await.unwrap();
        assert_ne!(*a, *b);
        drop(a);
        let c = floor.get().await.unwrap();
        assert_ne!(*c, *b);
        drop((b, c));
        assert!(floor.cycle_holding(true).await.unwrap() < 2);
    }
}
