//! Timeouts: each phase is reported by name, with a statistics snapshot
//! and the last connection error, and no acquire outlives its deadline.

mod common;

use std::time::Duration;

use common::{assert_nothing_lost, config, pool, FakeManager, Gate};
use pool_core::{ConnectionError, Phase, Pool};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn waiting_for_a_busy_pool_times_out_in_the_wait_phase_with_a_snapshot() {
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "exactly acquire_timeout"
    );
    assert_eq!(err.timeout_phase(), Some(Phase::Wait));
    let stats = err.statistics().unwrap();
    assert_eq!((stats.active_connections, stats.waiting_requests), (1, 1));
    let text = err.to_string();
    assert!(text.contains("waiting for a free connection"), "{text}");
    assert!(text.contains("POOL_MAX_SIZE"), "{text}");
    assert_eq!(pool.statistics().total_timeouts, 1);
    drop(held);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn failing_connects_time_out_in_the_connect_phase_carrying_the_last_error() {
    // One connection stays open, so the database is not "lost": the caller
    // keeps retrying its own connect until its deadline.
    let pool = pool(1, 2).await;
    let held = pool.acquire().await.unwrap();
    pool.manager().set_create(Gate::Err);
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(err.timeout_phase(), Some(Phase::Connect));
    let last = err.connection_error().expect("last connection error");
    assert!(matches!(last, ConnectionError::Connect(_)), "{last}");
    assert!(err.to_string().contains("create refused"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    let creates = pool.manager().creates() - 1;
    assert!(
        (3..=12).contains(&creates),
        "retries back off within the deadline ({creates} connects in 5 s)"
    );
    drop(held);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_hanging_connect_times_out_in_the_connect_phase() {
    let manager = FakeManager::new();
    manager.set_create(Gate::Never);
    let cfg = config(0, 2).acquire_timeout(Duration::from_millis(300));
    let pool = Pool::build(manager, cfg).await.unwrap();
    let started = Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(err.timeout_phase(), Some(Phase::Connect));
    // The connect task gives up at create_timeout and frees its slot.
    assert_nothing_lost(&pool).await;
    assert_eq!(pool.statistics().connection_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_validation_times_out_in_the_validate_phase() {
    let manager = FakeManager::new();
    let cfg = config(1, 1)
        .acquire_timeout(Duration::from_millis(300))
        .validation_timeout(Duration::from_secs(1));
    let pool = Pool::build(manager, cfg).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager().set_validate(Gate::Never);
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(err.timeout_phase(), Some(Phase::Validate));
    assert!(
        err.to_string().contains("POOL_VALIDATION_TIMEOUT_MS"),
        "{err}"
    );
    let s = pool.statistics();
    assert_eq!(
        s.total_connections, 0,
        "a connection dropped mid-check is closed"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_validation_is_cut_by_validation_timeout_and_a_fresh_connection_used() {
    let pool = pool(1, 1).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager()
        .set_validate(Gate::Slow(Duration::from_secs(60)));
    let started = Instant::now();
    let conn = pool.acquire().await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "validation_timeout cut the check"
    );
    assert_eq!(conn.serial, 2);
    let last = pool.statistics();
    assert_eq!(last.validation_failures, 1);
    drop(conn);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_per_call_deadline_shorter_than_acquire_timeout_reports_like_the_pools_own() {
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let err = pool
        .acquire_timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(50),
        "this call's own deadline"
    );
    assert_eq!(err.timeout_phase(), Some(Phase::Wait));
    let stats = err.statistics().expect("a snapshot");
    assert_eq!((stats.active_connections, stats.waiting_requests), (1, 1));
    assert!(err.to_string().contains("acquire_timeout 50 ms"), "{err}");
    let stats = pool.statistics();
    assert_eq!(
        (stats.total_timeouts, stats.acquires_cancelled),
        (1, 0),
        "a timeout, not a cancellation: {stats:?}"
    );
    drop(held);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_per_call_deadline_longer_than_acquire_timeout_outwaits_the_pools_own() {
    // acquire_timeout is 5 s; the connection comes back after 8.
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(8)).await;
        drop(held);
    });
    let started = Instant::now();
    let conn = pool
        .acquire_timeout(Duration::from_secs(10))
        .await
        .expect("served within this call's deadline");
    assert_eq!(started.elapsed(), Duration::from_secs(8));
    release.await.unwrap();
    assert_eq!(pool.statistics().total_timeouts, 0);
    drop(conn);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_zero_deadline_takes_an_idle_connection_but_never_queues() {
    let pool = pool(1, 1).await;
    let conn = pool
        .acquire_timeout(Duration::ZERO)
        .await
        .expect("the idle connection");
    let started = Instant::now();
    let err = pool.acquire_timeout(Duration::ZERO).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(err.timeout_phase(), Some(Phase::Wait));
    drop(conn);
    assert_nothing_lost(&pool).await;
}
