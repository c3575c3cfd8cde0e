//! The acquire/release contenders: our pool, the floor, deadpool and bb8,
//! each over a no-op manager ([`crate::noop`]), in two shapes.
//!
//! One operation takes an object, reads it (`black_box`), optionally holds
//! it across one `tokio::task::yield_now()`, and gives it back.

use futures_util::future::join_all;
use pool_core::{Pool, PoolConfig};

use crate::noop::{Bb8Noop, DeadpoolNoop, DummyManager};
use crate::{Contender, Floor, OpError};

/// The `(tasks, size)` matrix: `w1s4` (uncontended), `w8s4`, `w64s16`,
/// `w256s16`.
pub const MATRIX: [(usize, usize); 4] = [(1, 4), (8, 4), (64, 16), (256, 16)];

/// The name of a matrix case, `w{tasks}s{size}`.
pub fn case_name(tasks: usize, size: usize) -> String {
    format!("w{tasks}s{size}")
}

/// What the holder does with the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Gives it back at once.
    Release,
    /// Holds it across one `yield_now` (the holder "does some work", and
    /// other tasks run meanwhile).
    Hold,
}

impl Shape {
    /// Both shapes, release first.
    pub const ALL: [Shape; 2] = [Shape::Release, Shape::Hold];

    /// `release` or `hold`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Release => "release",
            Shape::Hold => "hold",
        }
    }

    fn holds(self) -> bool {
        self == Shape::Hold
    }
}

/// The configuration our pool is benchmarked with: the defaults (statistics
/// and leak-site tracking on) with `min_size = max_size = size`.
pub fn ours_config(size: usize) -> PoolConfig {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    PoolConfig::default().min_size(size).max_size(size)
}

/// Our pool.
#[derive(Clone, Debug)]
pub struct Ours {
    pool: Pool<DummyManager>,
    hold: bool,
}

impl Ours {
    /// Builds (and warms) a pool with `config`.
    pub async fn build(config: PoolConfig, shape: Shape) -> Result<Self, OpError> {
        let pool = Pool::build(DummyManager, config).await?;
        Ok(Self {
            pool,
            hold: shape.holds(),
        })
    }

    /// The pool, for its statistics.
    pub fn pool(&self) -> &Pool<DummyManager> {
        &self.pool
    }
}

impl Contender for Ours {
    async fn op(&self) -> Result<(), OpError> {
        let conn = self.pool.acquire().await?;
        if self.hold {
            tokio::task::yield_now().await;
        }
        std::hint::black_box(*conn);
        Ok(())
    }
}

/// The floor.
#[derive(Clone, Debug)]
pub struct FloorContender {
    floor: Floor<u64>,
    hold: bool,
}

impl FloorContender {
    /// A floor of `size` objects.
    pub fn new(size: usize, shape: Shape) -> Self {
        Self {
            floor: Floor::new(size),
            hold: shape.holds(),
        }
    }
}

impl Contender for FloorContender {
    async fn op(&self) -> Result<(), OpError> {
        self.floor.cycle_holding(self.hold).await?;
        Ok(())
    }
}

/// deadpool's managed pool.
#[derive(Clone)]
pub struct Deadpool {
    pool: deadpool::managed::Pool<DeadpoolNoop>,
    hold: bool,
}

impl Deadpool {
    /// Builds a pool of `size` and creates all its objects (deadpool creates
    /// them lazily).
    pub async fn build(size: usize, shape: Shape) -> Result<Self, OpError> {
        let pool = deadpool::managed::Pool::builder(DeadpoolNoop)
            .max_size(size)
            .build()?;
        let objects = join_all((0..size).map(|_| pool.get())).await;
        for object in objects {
            drop(object?);
        }
        Ok(Self {
            pool,
            hold: shape.holds(),
        })
    }
}

impl Contender for Deadpool {
    async fn op(&self) -> Result<(), OpError> {
        let object = self.pool.get().await?;
        if self.hold {
            tokio::task::yield_now().await;
        }
        std::hint::black_box(*object);
        Ok(())
    }
}

/// bb8, with its defaults (`test_on_check_out` on: `is_valid` runs on every
/// checkout; for this no-op manager it is a ready future).
#[derive(Clone)]
pub struct Bb8 {
    pool: bb8::Pool<Bb8Noop>,
    hold: bool,
}

impl Bb8 {
    /// Builds a pool of `size` with `size` idle connections.
    pub async fn build(size: usize, shape: Shape) -> Result<Self, OpError> {
        let size = u32::try_from(size)?;
        let pool = bb8::Pool::builder()
            .max_size(size)
            .min_idle(size)
            .build(Bb8Noop)
            .await?;
        Ok(Self {
            pool,
            hold: shape.holds(),
        })
    }
}

impl Contender for Bb8 {
    async fn op(&self) -> Result<(), OpError> {
        let conn = self.pool.get().await?;
        if self.hold {
            tokio::task::yield_now().await;
        }
        std::hint::black_box(*conn);
        Ok(())
    }
}

/// The four contenders of one matrix case.
pub struct DummySet {
    /// Our pool, with [`ours_config`].
    pub ours: Ours,
    /// The floor.
    pub floor: FloorContender,
    /// deadpool.
    pub deadpool: Deadpool,
    /// bb8.
    pub bb8: Bb8,
}

impl DummySet {
    /// Builds the four, each holding `size` objects.
    pub async fn build(size: usize, shape: Shape) -> Result<Self, OpError> {
        Ok(Self {
            ours: Ours::build(ours_config(size), shape).await?,
            floor: FloorContender::new(size, shape),
            deadpool: Deadpool::build(size, shape).await?,
            bb8: Bb8::build(size, shape).await?,
        })
    }
}
