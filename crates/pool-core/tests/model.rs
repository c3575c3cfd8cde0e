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
}

type Held = Vec<PooledConnection<FakeManager>>;

async fn step(pool: &Pool<FakeManager>, held: &mut Held, model: &mut Model, op: &Op) {
    let stats = pool.statistics();
    match op {
        Op::Acquire => {
            let full = held.len() as u32 == MAX;
            match tokio::time::timeout(Duration::from_millis(50), pool.acquire()).await {
                Ok(Ok(conn)) => {
                    assert!(!full, "a full pool lent a connection");
                    model.acquisitions += 1;
                    held.push(conn);
                }
                Ok(Err(err)) => assert!(
                    err.is_timeout() || err.is_unavailable(),
                    "acquire failed with an untyped error: {err}"
                ),
                // Our own 50 ms deadline: the pool's (1 s) did not fire yet.
                Err(_elapsed) => {}
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
                assert!(
                    stats.idle_connections > 0,
                    "try_acquire lent with nothing idle"
                );
                model.acquisitions += 1;
                held.push(conn);
            }
            Err(err) => {
                assert!(err.is_exhausted(), "{err}");
                assert_eq!(
                    stats.idle_connections, 0,
                    "try_acquire refused with idle connections"
                );
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
            pool.manager()
                .set_create(if *fails { Gate::Err } else { Gate::Ok });
        }
        Op::ValidationFails(fails) => {
            pool.manager()
                .set_validate(if *fails { Gate::Err } else { Gate::Ok });
        }
        Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        Op::MaintenanceTick => pool.run_maintenance().await,
    }
}

fn check(pool: &Pool<FakeManager>, held: &Held, model: &Model, history: &[Op]) {
    let s = pool.statistics();
    let context = || format!("after {history:?}\nstatistics: {s:?}");
    assert_eq!(
        s.total_connections,
        s.idle_connections + s.active_connections + s.opening_connections,
        "{}",
        context()
    );
    assert!(s.total_connections <= u64::from(MAX), "{}", context());
    assert_eq!(s.active_connections, held.len() as u64, "{}", context());
    assert_eq!(s.waiting_requests, 0, "{}", context());
    assert_eq!(s.total_acquisitions, model.acquisitions, "{}", context());
    assert_eq!(s.total_releases, model.releases, "{}", context());
    assert_eq!(
        s.connections_created - s.connections_closed,
        s.total_connections - s.opening_connections,
        "{}",
        context()
    );
    let r = &s.closed_by_reason;
    assert_eq!(
        s.connections_closed,
        r.lifetime
            + r.idle_timeout
            + r.max_queries
            + r.broken
            + r.dirty
            + r.validation_failed
            + r.discarded
            + r.pool_closed
            + r.dropped
            + r.evicted,
        "{}",
        context()
    );
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let cfg = config(MIN, MAX)
            .acquire_timeout(Duration::from_secs(1))
            .reconnect_delays(Duration::from_millis(300), Duration::from_secs(2));
        let pool = Pool::build(FakeManager::new(), cfg)
            .await
            .expect("pool builds");
        let mut held: Held = Vec::new();
        let mut model = Model::default();
        for (n, op) in ops.iter().enumerate() {
            step(&pool, &mut held, &mut model, op).await;
            // Let spawned connect tasks and wake-ups settle (bounded: the
            // fake's gates are instant, so nothing stays in flight).
            common::eventually(&pool, "settled", |s| {
                s.opening_connections == 0 && s.waiting_requests == 0
            })
            .await;
            check(&pool, &held, &model, &ops[..=n]);
            let live: u64 = pool.manager().live();
            assert_eq!(
                live,
                pool.statistics().total_connections,
                "after {:?}",
                &ops[..=n]
            );
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
        run(ops);
    }
}
