//! Settling: a manager that needs I/O before it can judge a returned
//! connection (`Verdict::Settle`) gets it, in a task of its own, while the
//! connection keeps its capacity; bounded by `validation_timeout`.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_nothing_lost, config, eventually, FakeManager, Gate};
use pool_core::Pool;

async fn build(settle: Gate) -> Pool<FakeManager> {
    let manager = FakeManager::new();
    *manager.settle_gate.lock() = settle;
    Pool::build(
        manager,
        config(1, 1).validation_timeout(Duration::from_secs(1)),
    )
    .await
    .expect("pool builds")
}

#[tokio::test(start_paused = true)]
async fn a_settling_connection_keeps_its_capacity_and_then_goes_back_idle() {
    let pool = build(Gate::Slow(Duration::from_millis(100))).await;
    let conn = pool.acquire().await.unwrap();
    conn.unsettled.store(true, Ordering::SeqCst);
    drop(conn);
    let s = pool.statistics();
    assert_eq!((s.idle_connections, s.total_connections), (0, 1), "{s:?}");

    // A waiter is served only once the settle decided, with that very
    // connection: no second one was opened meanwhile.
    let started = tokio::time::Instant::now();
    let conn = pool.acquire().await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(conn.serial, 1);
    assert!(!conn.unsettled.load(Ordering::SeqCst));
    drop(conn);
    assert_eq!(pool.manager().creates(), 1);
    assert_eq!(pool.statistics().connections_closed, 0);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_settle_that_fails_or_outlasts_validation_timeout_closes_the_connection() {
    for gate in [Gate::Err, Gate::Never] {
        let pool = build(gate).await;
        let conn = pool.acquire().await.unwrap();
        conn.unsettled.store(true, Ordering::SeqCst);
        drop(conn);
        eventually(&pool, "the connection is closed as dirty", |s| {
            s.closed_by_reason.dirty == 1
        })
        .await;
        let conn = pool.acquire().await.unwrap();
        assert_eq!(conn.serial, 2, "{gate:?}: a fresh connection");
        drop(conn);
        assert_nothing_lost(&pool).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_settle_that_panics_closes_the_connection_and_is_counted() {
    let pool = build(Gate::Ok).await;
    pool.manager().panic_in_settle.store(true, Ordering::SeqCst);
    let conn = pool.acquire().await.unwrap();
    conn.unsettled.store(true, Ordering::SeqCst);
    drop(conn);
    eventually(&pool, "the connection is closed as dirty", |s| {
        s.closed_by_reason.dirty == 1 && s.manager_panics == 1
    })
    .await;
    pool.manager()
        .panic_in_settle
        .store(false, Ordering::SeqCst);
    assert_nothing_lost(&pool).await;
}

#[test]
fn a_guard_dropped_outside_a_runtime_is_closed_instead_of_settled() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = runtime.block_on(build(Gate::Ok));
    let conn = runtime.block_on(pool.acquire()).unwrap();
    conn.unsettled.store(true, Ordering::SeqCst);
    drop(conn); // no runtime entered here
    let s = pool.statistics();
    assert_eq!(s.closed_by_reason.dirty, 1, "{s:?}");
    assert_eq!(s.total_connections, 0, "{s:?}");
}
