//! A generic, FIFO-fair, cancel-safe async connection pool.
//!
//! `pool-core` knows nothing about any database: a [`Manager`] opens,
//! validates and judges connections, and the pool does the rest. The
//! PostgreSQL connector is the `pool-pg` crate.
//!
//! # Design in one paragraph
//!
//! Idle connections sit in a lock-free queue. Callers take a permit from a
//! hand-written FIFO semaphore (one CAS when uncontended), pop an idle
//! connection, and validate it only if it sat idle longer than
//! `validation_skip_window`. When nothing is idle, a spawned task opens a
//! new connection, so a cancelled caller never loses it. Capacity is an RAII
//! slot: `open == idle + in_use + opening <= max_size` holds at every
//! instant, and every count has one owner. See `docs/architecture.md`.
//!
//! # Features
//!
//! - `metrics`: records every statistic at its source through the
//!   [`metrics`](https://docs.rs/metrics) facade (names in the `metrics`
//!   module).
//! - `paused-clock`: the pool's timestamps (lifetimes, idle and leak
//!   timeouts, hold and wait times) follow `tokio::time::Instant`, so a test
//!   under `tokio::time::pause()` can drive them with `advance()`. Without
//!   it the pool reads the CPU's calibrated time-stamp counter, which is
//!   cheaper per reading. `acquire_timeout` and every other timer are tokio
//!   timers either way, and follow a paused clock regardless.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use pool_core::{Manager, Pool, PoolConfig};
//!
//! struct Numbers;
//!
//! impl Manager for Numbers {
//!     type Connection = u32;
//!     type Error = Infallible;
//!     async fn create(&self) -> Result<u32, Infallible> { Ok(7) }
//!     async fn validate(&self, _: &mut u32) -> Result<(), Infallible> { Ok(()) }
//!     fn is_broken(&self, _: &mut u32) -> bool { false }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let pool = Pool::build(Numbers, PoolConfig::default().max_size(4)).await?;
//! let conn = pool.acquire().await?;
//! assert_eq!(*conn, 7);
//! drop(conn);
//! assert_eq!(pool.statistics().total_releases, 1);
//! # Ok::<(), pool_core::PoolError<Infallible>>(())
//! # }).unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod acquire_span;
mod checkout;
mod clock;
mod config;
mod deadline;
mod env;
mod error;
mod gauges;
mod guard;
mod health;
mod histogram;
mod idle;
mod leak;
mod ledger;
mod maintenance;
mod manager;
pub mod metrics;
mod open;
mod phase;
mod pool;
mod readme;
mod reconnect;
mod recovery;
mod recycle;
mod report;
mod retire;
mod running;
mod seats;
mod semaphore;
mod settle;
mod shared;
mod shutdown;
mod site;
mod slot;
mod slow_path;
mod stamp;
mod state;
mod stats;
mod sync;
mod tasks;
mod validate;

#[cfg(all(test, pool_loom))]
mod loom_models;

pub use config::{
    PoolConfig, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CREATE_TIMEOUT, DEFAULT_HEALTH_DEGRADED_PERCENT,
    DEFAULT_HEALTH_HEALTHY_PERCENT, DEFAULT_LEAK_DETECTION_TIMEOUT, DEFAULT_MAINTENANCE_INTERVAL,
    DEFAULT_MAX_IDLE_TIME, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_LIFETIME_JITTER_PERCENT,
    DEFAULT_MAX_QUERIES, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE, DEFAULT_NAME,
    DEFAULT_RECONNECT_INITIAL_DELAY, DEFAULT_RECONNECT_MAX_DELAY, DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_VALIDATION_SKIP_WINDOW, DEFAULT_VALIDATION_TIMEOUT, MAX_DURATION,
    MAX_LIFETIME_JITTER_PERCENT, MAX_NAME_LEN, MAX_POOL_SIZE,
};
pub use env::POOL_VARIABLES;
pub use error::{
    ConfigError, ConfigIssue, ConnectionError, InitError, Phase, PoolError, TimeoutError,
    UnavailableError,
};
pub use guard::PooledConnection;
pub use health::{DatabaseHealth, HealthStatus, PoolHealth, RECENT_ERROR_WINDOW};
pub use histogram::LatencySummary;
pub use leak::LEAK_SCAN_MAX_INTERVAL;
pub use maintenance::REPLENISH_CONCURRENCY;
pub use manager::{ForceClose, Manager, Verdict};
pub use open::WARM_UP_BATCH;
pub use pool::Pool;
pub use reconnect::{DEMAND_PROBE_INTERVAL, RECOVERY_FAILURE_THRESHOLD};
pub use report::{ForcedConnection, ShutdownReport};
pub use retire::RetireReason;
pub use state::{HealthState, PoolState};
pub use stats::{ClosedByReason, Statistics, RECENT_WINDOW};

/// Whether this build's pool clock follows tokio's (`paused-clock`
/// feature) rather than the CPU's time-stamp counter. For tests that must
/// know which clock they drive.
#[doc(hidden)]
pub const PAUSED_CLOCK: bool = cfg!(feature = "paused-clock");
