//! Shared pieces of the benchmarks and of the baseline runner.
//!
//! Everything that is measured is a [`Contender`]: something that can do one
//! *operation* (acquire an object, use it, give it back). The same contender
//! types serve the criterion benches (`benches/acquire.rs`,
//! `benches/postgres.rs`, `benches/cached.rs`), the baseline runner (`src/bin/baseline/`) and
//! the profiling loop (`src/bin/hot_path.rs`), so they can never measure
//! different things. `docs/performance.md` says how to run them and how to
//! read the results.
//!
//! * [`noop`]: managers whose connections are plain numbers (no I/O), for
//!   our pool, deadpool and bb8; [`dummy`]: the acquire/release contenders
//!   built on them and on the floor, in two shapes.
//! * [`floor`]: the bare floor, a tokio `Semaphore` plus a crossbeam
//!   `ArrayQueue`, with no bookkeeping at all. No real pool can be cheaper.
//! * [`pg`]: the `SELECT 1` contenders against one throwaway PostgreSQL
//!   server, and the warm-up measurements.
//! * [`cached`]: a repeated parameterised single-row query against the
//!   same server, through our pool, a dedicated prepared client,
//!   deadpool-postgres (with and without its statement cache) and sqlx:
//!   what a prepared-statement cache saves.
//! * [`workload`]: running a contender with N tasks, either for a fixed
//!   number of operations (criterion) or for a fixed time, recording
//!   latencies and per-task completions (the baseline).
//! * [`fairness`]: median, Jain's fairness index, starved tasks.

pub mod cached;
pub mod dummy;
pub mod fairness;
pub mod floor;
pub mod noop;
pub mod pg;
pub mod workload;

use std::future::Future;

pub use floor::{Floor, FloorError, FloorGuard};
pub use noop::DummyManager;

/// What a failed operation reports. A benchmark stops at the first one.
pub type OpError = Box<dyn std::error::Error + Send + Sync>;

/// Something that can do one benchmark operation: acquire an object, use
/// it, give it back.
pub trait Contender: Clone + Send + Sync + 'static {
    /// One operation. Resolves once the object is back in its pool.
    fn op(&self) -> impl Future<Output = Result<(), OpError>> + Send;
}

/// A tokio runtime with 2 worker threads (the machine has 2 cores), the
/// one every benchmark runs on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
