//! A pool that outlives the runtime that built it: a pool in a `static`
//! shared by `#[tokio::test]`s, or a runtime shut down while another still
//! uses the pool. The background tasks died with the first runtime; no
//! caller may wait forever for them, and they start again on the caller's
//! runtime. Fake manager, real time (two runtimes cannot share a paused
//! clock), every wait bounded.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{config, FakeManager, Gate};
use pool_core::{Phase, Pool, PoolState};
use tokio::runtime::{Builder, Runtime};

/// Far beyond any deadline in these tests: reaching it means a hang.
const HANG: Duration = Duration::from_secs(20);

fn runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Builds a pool on a runtime of its own that is then shut down.
fn pool_from_a_dead_runtime(cfg: pool_core::PoolConfig) -> Pool<FakeManager> {
    let first = runtime();
    let pool = first
        .block_on(Pool::build(FakeManager::new(), cfg))
        .expect("pool builds");
    drop(first);
    pool
}

#[test]
fn an_acquire_queued_after_the_building_runtime_is_gone_still_times_out() {
    let acquire_timeout = Duration::from_millis(200);
    let pool = pool_from_a_dead_runtime(config(1, 1).acquire_timeout(acquire_timeout));

    runtime().block_on(async {
        let held = pool.acquire().await.expect("the idle connection");
        let queued = tokio::time::timeout(HANG, pool.acquire())
            .await
            .expect("bounded by acquire_timeout, not waiting forever");

        let err = queued.expect_err("the only connection is held");
        let pool_core::PoolError::Timeout(timeout) = err else {
            panic!("a timeout, not {err}");
        };
        assert_eq!(timeout.phase, Phase::Wait);
        assert!(timeout.waited >= acquire_timeout, "{:?}", timeout.waited);
        drop(held);
        let s = pool.statistics();
        assert!(s.background_restarts >= 1, "{s:?}");
        assert_eq!(s.total_timeouts, 1);
    });
}

#[test]
fn a_caller_already_queued_when_the_building_runtime_shuts_down_keeps_its_deadline() {
    let acquire_timeout = Duration::from_millis(300);
    // The first runtime lives on another thread until told to shut down.
    let (pool_tx, pool_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let first = std::thread::spawn(move || {
        let rt = runtime();
        let pool = rt
            .block_on(Pool::build(
                FakeManager::new(),
                config(1, 1).acquire_timeout(acquire_timeout),
            ))
            .expect("pool builds");
        pool_tx.send(pool).expect("the test waits for the pool");
        stop_rx.recv_timeout(HANG).expect("told to stop");
        drop(rt);
    });
    let pool: Pool<FakeManager> = pool_rx.recv_timeout(HANG).expect("the pool");

    runtime().block_on(async {
        let held = pool.acquire().await.expect("the idle connection");
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire().await.map(drop) })
        };
        common::eventually(&pool, "the second caller queued", |s| {
            s.waiting_requests == 1
        })
        .await;
        // The deadline task's runtime goes away under the queued caller.
        stop_tx.send(()).expect("the first runtime listens");
        tokio::task::spawn_blocking(move || first.join())
            .await
            .expect("joined")
            .expect("the first runtime shut down cleanly");

        let result = tokio::time::timeout(HANG, queued)
            .await
            .expect("the queued caller kept its deadline")
            .expect("the caller did not panic");
        assert!(result.expect_err("still held").is_timeout());
        drop(held);
        common::assert_nothing_lost(&pool).await;
    });
}

#[test]
fn maintenance_starts_again_on_the_callers_runtime() {
    let pool =
        pool_from_a_dead_runtime(config(2, 2).maintenance_interval(Duration::from_millis(20)));

    runtime().block_on(async {
        pool.evict_all();
        // The slow path (nothing idle) notices the lost tasks.
        drop(pool.acquire().await.expect("a fresh connection"));
        common::eventually(&pool, "maintenance replenished to min_size", |s| {
            s.total_connections == 2 && s.maintenance_runs >= 1
        })
        .await;
        assert!(pool.statistics().background_restarts >= 2);
        common::assert_nothing_lost(&pool).await;
    });
}

#[test]
fn recovery_goes_on_after_the_runtime_of_the_supervisor_is_gone() {
    let first = runtime();
    let pool = first
        .block_on(async {
            let pool = Pool::build(
                FakeManager::new(),
                config(0, 2).reconnect_delays(Duration::from_millis(10), Duration::from_millis(50)),
            )
            .await?;
            pool.manager().set_create(Gate::Err);
            let err = pool.acquire().await.unwrap_err();
            assert!(err.is_unavailable(), "{err}");
            Ok::<_, pool_core::PoolError<common::FakeError>>(pool)
        })
        .expect("pool builds");
    assert_eq!(pool.state(), PoolState::Recovering);
    drop(first);

    runtime().block_on(async {
        pool.manager().set_create(Gate::Ok);
        // A new supervisor probes and the pool recovers.
        let conn = common::acquire_once_recovered(&pool, HANG).await;
        drop(conn);
        assert_ne!(pool.state(), PoolState::Recovering);
        common::assert_nothing_lost(&pool).await;
    });
}
