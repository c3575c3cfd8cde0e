//! Graceful shutdown: waiters fail at once, borrowed connections are waited
//! for up to the deadline and then force-closed, background tasks stop,
//! concurrent calls are safe. Fake manager, paused clock.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{eventually, pool, Gate};
use pool_core::PoolState;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn shutdown_with_three_borrowed_connections_and_five_waiters_called_twice() {
    let pool = pool(3, 3).await;
    let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire().await.map(drop) })
        })
        .collect();
    eventually(&pool, "five waiters", |s| s.waiting_requests == 5).await;
    // The borrowers give their connections back after 2 s.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(held);
    });
    let started = Instant::now();
    let (first, second) = tokio::join!(
        pool.shutdown(Duration::from_secs(30)),
        pool.shutdown(Duration::from_secs(30))
    );
    for waiter in waiters {
        assert!(
            waiter.await.unwrap().unwrap_err().is_closed(),
            "waiters fail with Closed"
        );
    }
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "waited for the borrowers, no longer"
    );
    let (done, other) = if first.first {
        (first, second)
    } else {
        (second, first)
    };
    assert!(done.first && !other.first);
    assert_eq!(done.returned_in_time, 3);
    assert!(done.forced.is_empty());
    assert_eq!(
        other.returned_in_time, 3,
        "the second call gets the same report"
    );
    assert_eq!(pool.state(), PoolState::Terminated);
    assert_eq!(pool.manager().live(), 0, "every connection closed");
    assert!(pool.acquire().await.unwrap_err().is_closed());
    let again = pool.shutdown(Duration::from_secs(1)).await;
    assert!(!again.first, "idempotent");
}

#[tokio::test(start_paused = true)]
async fn connections_held_past_the_deadline_are_force_closed_and_listed() {
    let pool = pool(2, 2).await;
    let kept = pool.acquire().await.unwrap();
    let kept_id = kept.id();
    tokio::time::advance(Duration::from_secs(7)).await;
    let started = Instant::now();
    let report = pool.shutdown(Duration::from_secs(3)).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "bounded by its timeout"
    );
    assert_eq!(report.idle_closed, 1);
    assert_eq!(report.forced.len(), 1);
    let forced = &report.forced[0];
    assert_eq!(forced.connection_id, kept_id);
    assert!(forced.aborted);
    assert_eq!(forced.held_ms, 10_000);
    assert!(
        kept.broken.load(Ordering::SeqCst),
        "the manager's force-close ran"
    );
    assert_eq!(pool.state(), PoolState::Terminated);
    drop(kept);
    assert_eq!(pool.manager().live(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_finishes_opening_during_shutdown_is_closed_at_once() {
    let pool = pool(0, 2).await;
    pool.manager()
        .set_create(Gate::Slow(Duration::from_secs(2)));
    let caller = common::spawn_acquire(&pool);
    eventually(&pool, "connecting", |s| s.opening_connections == 1).await;
    let report = pool.shutdown(Duration::from_secs(10)).await;
    assert!(caller.await.unwrap().unwrap_err().is_closed());
    assert_eq!(report.returned_in_time, 1);
    assert!(report.duration_ms <= 2_001.0, "{report:?}");
    assert_eq!(pool.manager().live(), 0, "closed as soon as it opened");
    assert_eq!(pool.statistics().closed_by_reason.pool_closed, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_reconnect_backoff_stops_the_supervisor() {
    let pool = pool(1, 2).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager().set_create(Gate::Err);
    pool.manager().set_validate(Gate::Err);
    assert!(pool.acquire().await.unwrap_err().is_unavailable());
    assert_eq!(pool.state(), PoolState::Recovering);
    let report = pool.shutdown(Duration::from_secs(5)).await;
    assert!(report.first);
    assert_eq!(report.duration_ms, 0.0, "nothing to wait for");
    let creates = pool.manager().creates();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(pool.manager().creates(), creates, "no probe after shutdown");
    assert_eq!(pool.state(), PoolState::Terminated);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_during_recovery_stops_the_supervisor() {
    let pool = pool(1, 2).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager().set_create(Gate::Err);
    pool.manager().set_validate(Gate::Err);
    assert!(pool.acquire().await.unwrap_err().is_unavailable());
    let counters = std::sync::Arc::clone(&pool.manager().counters);
    drop(pool);
    let creates = counters.creates.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(counters.creates.load(Ordering::SeqCst), creates);
}

#[test]
fn close_racing_a_maintenance_round_never_leaves_an_idle_connection_open() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for round in 0..200 {
            let pool = pool(16, 16).await;
            let maintenance = {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run_maintenance().await })
            };
            let closer = {
                let pool = pool.clone();
                tokio::spawn(async move { pool.close() })
            };
            let (m, c) = tokio::join!(maintenance, closer);
            m.unwrap();
            c.unwrap();
            let s = pool.statistics();
            assert_eq!(
                (s.idle_connections, pool.manager().live()),
                (0, 0),
                "round {round}: a closed pool keeps nothing open: {s:?}"
            );
        }
    });
}
