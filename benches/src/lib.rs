//! Shared pieces of the benchmarks: a no-I/O manager for measuring the
//! pool's own overhead, and the bare floor it is compared with.

use std::convert::Infallible;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use pool_core::Manager;
use tokio::sync::Semaphore;

/// A manager whose connections are plain numbers: no I/O at all, so a
/// benchmark measures only the pool.
#[derive(Debug, Default)]
pub struct DummyManager;

impl Manager for DummyManager {
    type Connection = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn validate(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn is_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}

/// The floor: a tokio `Semaphore` plus a crossbeam `ArrayQueue`, with no
/// bookkeeping at all. No real pool can be cheaper than this.
#[derive(Debug, Clone)]
pub struct Floor {
    semaphore: Arc<Semaphore>,
    objects: Arc<ArrayQueue<u64>>,
}

impl Floor {
    /// A floor holding `size` objects.
    pub fn new(size: usize) -> Self {
        let objects = ArrayQueue::new(size);
        for i in 0..size as u64 {
            // The queue has exactly `size` places.
            let _pushed = objects.push(i).is_ok();
        }
        Self {
            semaphore: Arc::new(Semaphore::new(size)),
            objects: Arc::new(objects),
        }
    }

    /// Takes an object, uses it, gives it back.
    pub async fn cycle(&self) -> u64 {
        self.cycle_holding(false).await
    }

    /// Like [`cycle`](Floor::cycle), optionally holding the object across
    /// one `yield_now` (the realistic shape: the holder does some work).
    pub async fn cycle_holding(&self, hold_across_yield: bool) -> u64 {
        let permit = self.semaphore.acquire().await;
        let object = self.objects.pop().unwrap_or_default();
        if hold_across_yield {
            tokio::task::yield_now().await;
        }
        let value = std::hint::black_box(object);
        let _pushed = self.objects.push(object).is_ok();
        drop(permit);
        value
    }
}
