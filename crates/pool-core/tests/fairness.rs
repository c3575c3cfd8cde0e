//! Fairness and load: FIFO order of waiters, thousands of waiters on a few
//! connections, and the size invariant sampled under concurrent load.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_nothing_lost, config, pool, FakeManager};
use parking_lot::Mutex;
use pool_core::Pool;

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_the_order_they_arrived() {
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (task_pool, order) = (pool.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let conn = task_pool.acquire().await.unwrap();
            order.lock().push(i);
            tokio::task::yield_now().await;
            drop(conn);
        }));
        // Queue them one by one so arrival order is known.
        common::eventually(&pool, "waiter queued", |s| s.waiting_requests == i + 1).await;
    }
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock(), (0..10).collect::<Vec<_>>());
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn two_thousand_waiters_on_three_connections_are_all_served() {
    let pool = pool(3, 3).await;
    let tasks: Vec<_> = (0..2_000)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let conn = pool.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_micros(100)).await;
                drop(conn);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let s = pool.statistics();
    assert_eq!(s.total_acquisitions, 2_000);
    assert_eq!(s.total_timeouts, 0);
    assert_eq!(s.connections_created, 3, "no connection beyond max_size");
    assert_nothing_lost(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_invariant_holds_at_every_sample_under_concurrent_load() {
    let cfg = config(0, 4).acquire_timeout(Duration::from_secs(20));
    let pool = Pool::build(FakeManager::new(), cfg).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut samples = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let s = pool.statistics();
                assert_eq!(
                    s.total_connections,
                    s.idle_connections + s.active_connections + s.opening_connections
                );
                assert!(s.total_connections <= 4, "{s:?}");
                samples += 1;
                tokio::task::yield_now().await;
            }
            samples
        })
    };
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for n in 0..500 {
                    let conn = pool.acquire().await.unwrap();
                    if (i + n) % 97 == 0 {
                        conn.discard();
                    } else {
                        tokio::task::yield_now().await;
                        drop(conn);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    assert!(samples > 0);
    let s = pool.statistics();
    assert_eq!(s.total_acquisitions, 16 * 500);
    assert_eq!(s.total_releases, 16 * 500);
    assert_nothing_lost(&pool).await;
}
