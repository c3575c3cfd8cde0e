//! Eviction: `Pool::evict_all()` and a connection that reports its server
//! lost retire every connection open at that moment (idle ones at once,
//! in-use ones on return, connects under way at first use) without
//! interrupting callers, and later connections are kept.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_nothing_lost, config, FakeManager, Gate};
use pool_core::{Pool, PoolConfig};

async fn build(cfg: PoolConfig) -> Pool<FakeManager> {
    Pool::build(FakeManager::new(), cfg)
        .await
        .expect("pool builds")
}

#[tokio::test(start_paused = true)]
async fn evict_all_closes_idle_connections_at_once_and_busy_ones_on_return() {
    let pool = build(config(3, 4)).await;
    let held = pool.acquire().await.unwrap();
    let held_serial = held.serial;

    assert_eq!(pool.evict_all(), 2, "the two idle connections");
    let s = pool.statistics();
    assert_eq!(s.closed_by_reason.evicted, 2);
    assert_eq!(
        (s.total_connections, s.active_connections),
        (1, 1),
        "the caller keeps its connection until it is done"
    );

    drop(held);
    let s = pool.statistics();
    assert_eq!(s.closed_by_reason.evicted, 3, "closed on return");
    assert_eq!(s.idle_connections, 0);

    let fresh = pool.acquire().await.unwrap();
    assert!(fresh.serial > 3 && fresh.serial != held_serial);
    drop(fresh);
    assert_eq!(
        pool.statistics().closed_by_reason.evicted,
        3,
        "a connection opened after the eviction is kept"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn maintenance_refills_min_size_after_an_eviction() {
    let pool = build(config(2, 4)).await;
    pool.evict_all();
    pool.run_maintenance().await;
    let s = pool.statistics();
    assert_eq!((s.idle_connections, s.connections_created), (2, 4));
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_connect_under_way_during_an_eviction_is_not_reused() {
    let pool = build(config(0, 2)).await;
    pool.manager()
        .set_create(Gate::Slow(Duration::from_millis(100)));
    let pending = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await.map(|c| c.serial) }
    });
    tokio::time::advance(Duration::from_millis(50)).await;
    pool.evict_all();
    let serial = pending.await.unwrap().unwrap();
    assert_eq!(serial, 1, "the caller still gets its connection");
    let s = pool.statistics();
    assert_eq!(
        (s.closed_by_reason.evicted, s.total_connections),
        (1, 0),
        "it may have reached the server being left, so it is not pooled"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_saw_its_server_demoted_evicts_every_connection() {
    // min_size 0: no replenishing to blur the counts.
    let pool = build(config(0, 4)).await;
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();
    drop(pool.acquire().await.unwrap()); // one idle connection
    first.server_lost.store(true, Ordering::SeqCst);
    first.dirty.store(true, Ordering::SeqCst);

    drop(first);
    let s = pool.statistics();
    assert_eq!(
        s.closed_by_reason.evicted, 2,
        "the reporter and the idle connection, at once"
    );
    assert_eq!(s.closed_by_reason.dirty, 0);

    // A second report from the same (old) generation does not evict again:
    // connections opened since then are kept.
    let fresh = pool.acquire().await.unwrap();
    assert_eq!(fresh.serial, 4);
    second.server_lost.store(true, Ordering::SeqCst);
    second.dirty.store(true, Ordering::SeqCst);
    drop(second);
    drop(fresh);
    let s = pool.statistics();
    assert_eq!(s.closed_by_reason.evicted, 2);
    assert_eq!(s.closed_by_reason.dirty, 1, "the old one just goes");
    assert_eq!(s.idle_connections, 1, "the new one is kept");
    assert_nothing_lost(&pool).await;
}
