//! A state-machine property test: random sequences of pool operations over
//! the fake manager on a paused clock, checked after every step against a
//! reference model and the pool's conservation laws.
//!
//! The model is deliberately simple and exact where the pool is
//! deterministic: which operations succeed, how many connections are lent,
//! how many acquisitions and releases happened. Everything else is checked
//! as an invariant: `open == idle + in_use + opening <= max_size`, every
//! live fake connection is counted by the pool, created − closed == open,
//! closed connections add up by reason, and nobody is left waiting. Failing
//! cases shrink to a short, readable list of operations.

mod common;

use std::time::Duration;

use common::{config, FakeManager, Gate};
use pool_core::{Pool, PooledConnection};
use proptest::prelude::*;

const MAX: u32 = 3;
const MIN: u32 = 1;

#[derive(Clone, Debug)]
enum Op {
    /// `acquire()` with a deadline of a few milliseconds.
    Acquire,
    /// `acquire()` wrapped in a zero timeout (cancelled at its first await).
    AcquireZeroTimeout,
    TryAcquire,
    /// Queue an `acquire()` on a full pool, then abort it.
    CancelPendingAcquire,
    /// Give back the n-th held connection (modulo how many are held).
    Return(usize),
    ReturnBroken(usize),
    Discard(usize),
    CreateFails(bool),
    ValidationFails(bool),
    /// Let virtual time pass (crossing the validation-skip window).
    Advance(u64),
    MaintenanceTick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        1 => Just(Op::AcquireZeroTimeout),
        2 => Just(Op::TryAcquire),
        1 => Just(Op::CancelPendingAcquire),
        3 => (0usize..4).prop_map(Op::Return),
        1 => (0usize..4).prop_map(Op::ReturnBroken),
        1 => (0usize..4).prop_map(Op::Discard),
        1 => any::<bool>().prop_map(Op::CreateFails),
        1 => any::<bool>().prop_map(Op::ValidationFails),
        1 => (1u64..2_000).prop_map(Op::Advance),
        1 => Just(Op::MaintenanceTick),
    ]
}

/// What the model expects, and what it counted.
#[derive(Debug, Default)]
struct Model {
    acquisitions: u64,
    releases: u64,
    /// Whether the fake's connects fail now.
    create_fails: bool,
}

/// The clock and scheduler a run uses.
#[derive(Clone, Copy, Debug)]
enum Flavor {
    /// One thread, tokio's paused clock: exact and fast.
    Paused,
    /// Two worker threads on the real clock, with every duration scaled
    /// down: the interleavings a paused single thread never produces.
    MultiThread,
}

impl Flavor {
    /// The longest an `acquire()` may take before the model calls it a hang.
    fn patience(self) -> Duration {
        match self {
            Flavor::Paused => Duration::from_millis(50),
            Flavor::MultiThread => Duration::from_secs(2),
        }
    }

    /// Virtual `ms` of an `Advance` step, as this flavor sleeps them.
    fn advance(self, ms: u64) -> Duration {
        match self {
            Flavor::Paused => Duration::from_millis(ms),
            Flavor::MultiThread => Duration::from_micros(ms * 10),
        }
    }
}

type Held = Vec<PooledConnection<FakeManager>>;

async fn step(
    pool: &Pool<FakeManager>,
    held: &mut Held,
    model: &mut Model,
    op: &Op,
    flavor: Flavor,
) {
    let stats = pool.statistics();
    match op {
        Op::Acquire => {
            let full = held.len() as u32 == MAX;
            // Room to lend, connects that work, and no recovery under way:
            // the pool must lend, and a timeout would be a lost permit or a
            // lost wake-up.
            let must_lend =
                !full && !model.create_fails && pool.state() != pool_core::PoolState::Recovering;
            match tokio::time::timeout(flavor.patience(), pool.acquire()).await {
                Ok(Ok(conn)) => {
                    assert!(!full, "a full pool lent a connection");
                    model.acquisitions += 1;
                    held.push(conn);
                }
                Ok(Err(err)) => {
                    assert!(
                        err.is_timeout() || err.is_unavailable(),
                        "acquire failed with an untyped error: {err}"
                    );
                    assert!(
                        !(must_lend && err.is_timeout()),
                        "a pool that was not full timed out: {err}"
                    );
                }
                // Our own deadline, before the pool's.
                Err(_elapsed) => assert!(
                    !must_lend,
                    "a pool that was not full did not lend within {:?}",
                    flavor.patience()
                ),
            }
        }
        Op::AcquireZeroTimeout => {
            if let Ok(Ok(conn)) = tokio::time::timeout(Duration::ZERO, pool.acquire()).await {
                model.acquisitions += 1;
                held.push(conn);
            }
        }
        Op::TryAcquire => match pool.try_acquire() {
            Ok(conn) => {
                // On two threads maintenance may have parked a connection
                // since the snapshot.
                assert!(
                    stats.idle_connections > 0 || matches!(flavor, Flavor::MultiThread),
                    "try_acquire lent with nothing idle"
                );
                model.acquisitions += 1;
                held.push(conn);
            }
            Err(err) => {
                assert!(err.is_exhausted(), "{err}");
                // On two threads maintenance may have taken the idle
                // connection for a sweep since the snapshot.
                if matches!(flavor, Flavor::Paused) {
                    assert_eq!(
                        stats.idle_connections, 0,
                        "try_acquire refused with idle connections"
                    );
                }
            }
        },
        Op::CancelPendingAcquire => {
            if held.len() as u32 == MAX {
                let pending = common::spawn_acquire(pool);
                common::eventually(pool, "queued", |s| s.waiting_requests == 1).await;
                pending.abort();
                let aborted = pending.await.expect_err("the pending acquire was aborted");
                assert!(aborted.is_cancelled());
            }
        }
        Op::Return(i) | Op::ReturnBroken(i) | Op::Discard(i) => {
            if held.is_empty() {
                return;
            }
            let conn = held.remove(i % held.len());
            model.releases += 1;
            match op {
                Op::ReturnBroken(_) => {
                    conn.broken.store(true, std::sync::atomic::Ordering::SeqCst);
                    drop(conn);
                }
                Op::Discard(_) => conn.discard(),
                _ => drop(conn),
            }
        }
        Op::CreateFails(fails) => {
            model.create_fails = *fails;
            pool.manager()
                .set_create(if *fails { Gate::Err } else { Gate::Ok });
        }
        Op::ValidationFails(fails) => {
            pool.manager()
                .set_validate(if *fails { Gate::Err } else { Gate::Ok });
        }
        Op::Advance(ms) => tokio::time::sleep(flavor.advance(*ms)).await,
        Op::MaintenanceTick => pool.run_maintenance().await,
    }
}

/// Every broken law, as text (empty when the books are exact).
fn violations(pool: &Pool<FakeManager>, held: &Held, model: &Model) -> Vec<String> {
    let s = pool.statistics();
    let r = &s.closed_by_reason;
    let closed_by_reason = r.lifetime
        + r.idle_timeout
        + r.max_queries
        + r.broken
        + r.dirty
        + r.validation_failed
        + r.discarded
        + r.pool_closed
        + r.dropped
        + r.evicted;
    let laws = [
        (
            s.total_connections
                == s.idle_connections + s.active_connections + s.opening_connections,
            "open == idle + in use + opening",
        ),
        (s.total_connections <= u64::from(MAX), "open <= max_size"),
        (
            s.active_connections == held.len() as u64,
            "in use == held by the test",
        ),
        (s.waiting_requests == 0, "nobody waiting"),
        (
            s.total_acquisitions == model.acquisitions,
            "acquisitions as modelled",
        ),
        (s.total_releases == model.releases, "releases as modelled"),
        (
            s.connections_created - s.connections_closed
                == s.total_connections - s.opening_connections,
            "created - closed == open - opening",
        ),
        (
            s.connections_closed == closed_by_reason,
            "closed adds up by reason",
        ),
        (
            pool.manager().live() == s.total_connections,
            "every live fake connection is counted",
        ),
    ];
    laws.iter()
        .filter(|(holds, _)| !holds)
        .map(|(_, law)| format!("{law}; statistics: {s:?}"))
        .collect()
}

/// Checks the laws: at once on the paused clock, where nothing moves
/// between steps; on two threads, within a bounded time, since maintenance
/// may be sweeping or replenishing in the background at any instant.
async fn check(
    pool: &Pool<FakeManager>,
    held: &Held,
    model: &Model,
    history: &[Op],
    flavor: Flavor,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let broken = violations(pool, held, model);
        if broken.is_empty() {
            return;
        }
        let give_up = matches!(flavor, Flavor::Paused) || tokio::time::Instant::now() >= deadline;
        assert!(!give_up, "after {history:?}: {broken:#?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn run(ops: Vec<Op>, flavor: Flavor) {
    let rt = match flavor {
        Flavor::Paused => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .expect("runtime");
    rt.block_on(async move {
        let cfg = match flavor {
            Flavor::Paused => config(MIN, MAX)
                .acquire_timeout(Duration::from_secs(1))
                .reconnect_delays(Duration::from_millis(300), Duration::from_secs(2)),
            Flavor::MultiThread => config(MIN, MAX)
                .acquire_timeout(Duration::from_millis(20))
                .validation_skip_window(Duration::from_millis(5))
                .reconnect_delays(Duration::from_millis(3), Duration::from_millis(20)),
        };
        let pool = Pool::build(FakeManager::new(), cfg)
            .await
            .expect("pool builds");
        let mut held: Held = Vec::new();
        let mut model = Model::default();
        for (n, op) in ops.iter().enumerate() {
            step(&pool, &mut held, &mut model, op, flavor).await;
            // Let spawned connect tasks and wake-ups settle (bounded: the
            // fake's gates are instant, so nothing stays in flight). On two
            // threads a connect task of a cancelled caller may be between
            // opening its connection (counted in use) and parking it idle.
            let lent = held.len() as u64;
            common::eventually(&pool, "settled", |s| {
                s.opening_connections == 0
                    && s.waiting_requests == 0
                    && s.active_connections == lent
            })
            .await;
            check(&pool, &held, &model, &ops[..=n], flavor).await;
        }
        drop(held);
        let report = pool.shutdown(Duration::from_secs(1)).await;
        assert!(report.forced.is_empty(), "{report:?}");
        assert_eq!(pool.manager().live(), 0, "shutdown closed everything");
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_sequence_of_operations_keeps_the_books_exact(ops in prop::collection::vec(op(), 1..40)) {
        run(ops, Flavor::Paused);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).map_or(24, |n: u32| n / 10),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_sequence_of_operations_keeps_the_books_exact_on_two_threads(ops in prop::collection::vec(op(), 1..40)) {
        run(ops, Flavor::MultiThread);
    }
}
