//! A fault-injecting fake manager shared by the pool-core test suites.
//!
//! Its `create` and `validate` steps are each behind a [`Gate`]: `Ok`,
//! `Err`, `Slow(d)` (succeed after `d`), or `Never` (hang until dropped).
//! Connections carry a shared `broken` flag the test can flip.

#![allow(dead_code, unreachable_pub, missing_docs, unused_imports)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pool_core::{Manager, Pool, PoolConfig, Statistics, Verdict};

/// What a gated step does when called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Ok,
    Err,
    Slow(Duration),
    Never,
}

#[derive(Debug, thiserror::Error)]
#[error("fake backend failure: {0}")]
pub struct FakeError(pub &'static str);

#[derive(Debug)]
pub struct FakeConn {
    pub serial: u64,
    pub broken: Arc<AtomicBool>,
    /// Set by a test to mimic a connection left mid-request or in a transaction.
    pub dirty: AtomicBool,
    /// Statements "run" on this connection, set by a test.
    pub statements: AtomicU64,
    /// Set by a test to mimic a connection that saw its server demoted.
    pub server_lost: AtomicBool,
    /// Set by a test: the manager asks to settle it on return.
    pub unsettled: AtomicBool,
}

#[derive(Default)]
pub struct Counters {
    pub creates: AtomicU64,
    pub validates: AtomicU64,
    pub live: AtomicU64,
}

pub struct FakeManager {
    /// When each `create` was called (the runtime clock; paused in tests).
    pub create_times: Mutex<Vec<tokio::time::Instant>>,
    pub create_gate: Mutex<Gate>,
    pub validate_gate: Mutex<Gate>,
    pub retryable: AtomicBool,
    /// Whether a failed create says the server is down (like a refused TCP
    /// connect); `true` unless a test says otherwise.
    pub server_down: AtomicBool,
    /// Panic in the next `create` / `validate` call(s) while set.
    pub panic_in_create: AtomicBool,
    pub panic_in_validate: AtomicBool,
    /// How `settle` goes: `Ok` settles clean, `Err` dirty, `Slow` and
    /// `Never` take their time; panics while `panic_in_settle` is set.
    pub settle_gate: Mutex<Gate>,
    pub panic_in_settle: AtomicBool,
    /// The checkout hook, if any (read when the pool is built): `Ok` lends,
    /// `Err` discards, `Slow` and `Never` take their time; panics while
    /// `panic_in_checkout` is set. `checked_out` counts its runs.
    pub checkout_gate: Mutex<Option<Gate>>,
    pub panic_in_checkout: AtomicBool,
    pub checked_out: AtomicU64,
    /// The next this many creates fail (before the gate is consulted).
    pub fail_next_creates: AtomicU64,
    pub counters: Arc<Counters>,
}

/// Closing a fake connection is visible to the test through `live`.
pub struct LiveConn {
    pub conn: FakeConn,
    counters: Arc<Counters>,
}

impl Drop for LiveConn {
    fn drop(&mut self) {
        self.counters.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::ops::Deref for LiveConn {
    type Target = FakeConn;
    fn deref(&self) -> &FakeConn {
        &self.conn
    }
}

impl FakeManager {
    pub fn new() -> Self {
        Self {
            create_times: Mutex::new(Vec::new()),
            create_gate: Mutex::new(Gate::Ok),
            validate_gate: Mutex::new(Gate::Ok),
            retryable: AtomicBool::new(true),
            server_down: AtomicBool::new(true),
            panic_in_create: AtomicBool::new(false),
            panic_in_validate: AtomicBool::new(false),
            settle_gate: Mutex::new(Gate::Ok),
            panic_in_settle: AtomicBool::new(false),
            checkout_gate: Mutex::new(None),
            panic_in_checkout: AtomicBool::new(false),
            checked_out: AtomicU64::new(0),
            fail_next_creates: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
        }
    }

    pub fn set_create(&self, gate: Gate) {
        *self.create_gate.lock() = gate;
    }

    pub fn set_validate(&self, gate: Gate) {
        *self.validate_gate.lock() = gate;
    }

    pub fn creates(&self) -> u64 {
        self.counters.creates.load(Ordering::SeqCst)
    }

    pub fn live(&self) -> u64 {
        self.counters.live.load(Ordering::SeqCst)
    }
}

async fn pass(gate: Gate, what: &'static str) -> Result<(), FakeError> {
    match gate {
        Gate::Ok => Ok(()),
        Gate::Err => Err(FakeError(what)),
        Gate::Slow(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Gate::Never => std::future::pending().await,
    }
}

impl Manager for FakeManager {
    type Connection = LiveConn;
    type Error = FakeError;

    async fn create(&self) -> Result<LiveConn, FakeError> {
        let serial = self.counters.creates.fetch_add(1, Ordering::SeqCst) + 1;
        self.create_times.lock().push(tokio::time::Instant::now());
        let failing = self
            .fail_next_creates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(FakeError("create refused (one-off)"));
        }
        let gate = *self.create_gate.lock();
        pass(gate, "create refused").await?;
        if self.panic_in_create.load(Ordering::SeqCst) {
            panic!("the fake manager's create panicked");
        }
        self.counters.live.fetch_add(1, Ordering::SeqCst);
        Ok(LiveConn {
            conn: FakeConn {
                serial,
                broken: Arc::new(AtomicBool::new(false)),
                dirty: AtomicBool::new(false),
                statements: AtomicU64::new(0),
                server_lost: AtomicBool::new(false),
                unsettled: AtomicBool::new(false),
            },
            counters: Arc::clone(&self.counters),
        })
    }

    async fn validate(&self, _conn: &mut LiveConn) -> Result<(), FakeError> {
        self.counters.validates.fetch_add(1, Ordering::SeqCst);
        let gate = *self.validate_gate.lock();
        pass(gate, "validation refused").await?;
        if self.panic_in_validate.load(Ordering::SeqCst) {
            panic!("the fake manager's validate panicked");
        }
        Ok(())
    }

    fn is_broken(&self, conn: &mut LiveConn) -> bool {
        conn.broken.load(Ordering::SeqCst)
    }

    fn force_closer(&self, conn: &LiveConn) -> Option<pool_core::ForceClose> {
        let broken = Arc::clone(&conn.broken);
        Some(Box::new(move || broken.store(true, Ordering::SeqCst)))
    }

    fn verdict(&self, conn: &mut LiveConn) -> Verdict {
        let broken = conn.broken.load(Ordering::SeqCst);
        let dirty = conn.dirty.load(Ordering::SeqCst);
        if (broken || dirty) && conn.server_lost.load(Ordering::SeqCst) {
            Verdict::ServerLost("the fake server was demoted".to_owned())
        } else if broken {
            Verdict::Broken
        } else if conn.unsettled.load(Ordering::SeqCst) {
            Verdict::Settle
        } else if dirty {
            Verdict::Dirty
        } else {
            Verdict::Reuse {
                statements: conn.statements.load(Ordering::SeqCst),
            }
        }
    }

    async fn settle(&self, conn: &mut LiveConn) -> Verdict {
        let gate = *self.settle_gate.lock();
        if self.panic_in_settle.load(Ordering::SeqCst) {
            panic!("the fake manager's settle panicked");
        }
        match pass(gate, "settle failed").await {
            Ok(()) => {
                conn.unsettled.store(false, Ordering::SeqCst);
                self.verdict(conn)
            }
            Err(_) => Verdict::Dirty,
        }
    }

    fn has_checkout_hook(&self) -> bool {
        self.checkout_gate.lock().is_some()
    }

    async fn before_checkout(&self, _conn: &mut LiveConn) -> bool {
        self.checked_out.fetch_add(1, Ordering::SeqCst);
        let gate = self.checkout_gate.lock().unwrap_or(Gate::Ok);
        if self.panic_in_checkout.load(Ordering::SeqCst) {
            panic!("the fake manager's checkout hook panicked");
        }
        pass(gate, "discard").await.is_ok()
    }

    fn is_retryable(&self, _error: &FakeError) -> bool {
        self.retryable.load(Ordering::SeqCst)
    }

    fn is_server_down(&self, _error: &FakeError) -> bool {
        self.server_down.load(Ordering::SeqCst)
    }
}

/// Test defaults: short timeouts; no jitter, so lifetimes are exact.
pub fn config(min: u32, max: u32) -> PoolConfig {
    PoolConfig::default()
        .min_size(min)
        .max_size(max)
        .max_lifetime_jitter_percent(0)
        .acquire_timeout(Duration::from_secs(5))
        .create_timeout(Duration::from_secs(2))
        .validation_timeout(Duration::from_secs(1))
}

pub async fn pool(min: u32, max: u32) -> Pool<FakeManager> {
    Pool::build(FakeManager::new(), config(min, max))
        .await
        .expect("fake pool builds")
}

/// Spawns a caller that acquires a connection and gives it back at once.
pub fn spawn_acquire(
    pool: &Pool<FakeManager>,
) -> tokio::task::JoinHandle<Result<(), pool_core::PoolError<FakeError>>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.acquire().await.map(drop) })
}

/// Waits (on state, bounded, in paused or real time) until `check` holds.
pub async fn eventually<M: Manager>(
    pool: &Pool<M>,
    what: &str,
    check: impl Fn(&Statistics) -> bool,
) {
    test_support::wait_until_or(
        what,
        Duration::from_secs(30),
        || check(&pool.statistics()),
        || pool.statistics(),
    )
    .await;
}

/// Acquires until the pool lends, while it answers `Unavailable` (a
/// recovery under way); any other error fails the test. Bounded by `within`.
pub async fn acquire_once_recovered(
    pool: &Pool<FakeManager>,
    within: Duration,
) -> pool_core::PooledConnection<FakeManager> {
    tokio::time::timeout(within, async {
        loop {
            match pool.acquire().await {
                Ok(conn) => break conn,
                Err(err) => {
                    assert!(err.is_unavailable(), "{err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "still not lending after {within:?}: {:?}",
            pool.statistics()
        )
    })
}

/// Waits (bounded) until the pool has left `RECOVERING`.
pub async fn wait_until_recovered(pool: &Pool<FakeManager>, within: Duration) {
    let mut states = pool.subscribe_state();
    tokio::time::timeout(
        within,
        states.wait_for(|s| *s != pool_core::PoolState::Recovering),
    )
    .await
    .unwrap_or_else(|_| panic!("still recovering after {within:?}"))
    .expect("the state channel lives as long as the pool");
}

/// Asserts the quiet state every test must return to: nothing in use,
/// opening or waiting, and the gauges add up.
pub async fn assert_nothing_lost(pool: &Pool<FakeManager>) {
    eventually(pool, "pool back to quiet", |s| s.is_quiet()).await;
    let s = pool.statistics();
    assert_eq!(
        s.total_connections,
        s.idle_connections + s.active_connections + s.opening_connections
    );
    assert!(s.total_connections <= s.max_size);
    assert_eq!(
        s.free_permits, s.max_size,
        "every permit is back once the pool is quiet: {s:?}"
    );
    assert_eq!(
        pool.manager().live(),
        s.total_connections,
        "every live fake connection is accounted for by the pool"
    );
    let by_reason = &s.closed_by_reason;
    assert_eq!(
        s.connections_closed,
        by_reason.lifetime
            + by_reason.idle_timeout
            + by_reason.max_queries
            + by_reason.broken
            + by_reason.dirty
            + by_reason.validation_failed
            + by_reason.discarded
            + by_reason.pool_closed
            + by_reason.dropped
            + by_reason.evicted,
        "closed connections add up by reason"
    );
    assert_eq!(
        s.connections_created,
        s.connections_closed + s.total_connections - s.opening_connections,
        "every connection created is either open or closed"
    );
}

/// The log capture shared with pool-pg's tests (`test-support`):
/// `Logs::scoped()` captures this thread's events until its guard drops.
pub use test_support::LogCapture as Logs;
