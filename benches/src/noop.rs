//! Managers whose connections are plain numbers: no I/O at all, so a
//! benchmark measures only the pool. One per pool, each doing the least its
//! pool's contract allows.

use std::convert::Infallible;

/// Our pool's no-op manager.
#[derive(Debug, Default)]
pub struct DummyManager;

impl pool_core::Manager for DummyManager {
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

/// deadpool's (managed) no-op manager: `recycle` accepts every object.
#[derive(Debug, Default)]
pub struct DeadpoolNoop;

impl deadpool::managed::Manager for DeadpoolNoop {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _obj: &mut u64,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// bb8's no-op manager. bb8 calls `is_valid` on every checkout by default
/// (`test_on_check_out`); here it is a ready future.
#[derive(Debug, Default)]
pub struct Bb8Noop;

impl bb8::ManageConnection for Bb8Noop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn is_valid(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}
