//! Checkout and return: build, acquire, try_acquire, discard, validation on
//! checkout, and closing.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_nothing_lost, config, pool, FakeManager, Gate};
use pool_core::{Pool, PoolError};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn build_opens_min_size_connections_in_parallel() {
    let manager = FakeManager::new();
    manager.set_create(Gate::Slow(Duration::from_millis(500)));
    let started = Instant::now();
    let pool = Pool::build(manager, config(4, 8)).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(500),
        "four connects ran at once"
    );
    let s = pool.statistics();
    assert_eq!((s.total_connections, s.idle_connections), (4, 4));
    assert_eq!(s.connections_created, 4);
    assert_eq!(s.validations, 4, "warm-up validates each connection");
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn build_fails_fast_with_an_actionable_init_error_when_connects_fail() {
    let manager = FakeManager::new();
    manager.set_create(Gate::Err);
    let err = Pool::build(manager, config(3, 5)).await.unwrap_err();
    assert!(err.is_init(), "{err}");
    let text = err.to_string();
    assert!(text.contains("min_size=3"), "{text}");
    assert!(text.contains("create refused"), "{text}");
    assert!(text.contains("Suggestion:"), "{text}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the cause is chained"
    );
}

#[tokio::test(start_paused = true)]
async fn build_gives_up_within_create_timeout_when_connects_hang() {
    let manager = FakeManager::new();
    manager.set_create(Gate::Never);
    let started = Instant::now();
    let err = Pool::build(manager, config(2, 4)).await.unwrap_err();
    assert!(err.is_init());
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "bounded by create_timeout"
    );
    assert!(err.to_string().contains("POOL_CREATE_TIMEOUT_MS"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn build_rejects_an_invalid_configuration_before_connecting() {
    let manager = FakeManager::new();
    let err = Pool::build(manager, config(5, 2)).await.unwrap_err();
    assert!(err.is_config());
    assert!(err
        .to_string()
        .contains("max_size (2) must be >= min_size (5). Suggestion: increase POOL_MAX_SIZE or reduce POOL_MIN_SIZE"));
}

#[tokio::test(start_paused = true)]
async fn acquire_lends_a_connection_and_dropping_the_guard_returns_it() {
    let pool = pool(1, 2).await;
    let conn = pool.acquire().await.unwrap();
    assert_eq!(conn.serial, 1, "the warm connection is reused");
    let s = pool.statistics();
    assert_eq!((s.active_connections, s.idle_connections), (1, 0));
    drop(conn);
    let s = pool.statistics();
    assert_eq!((s.active_connections, s.idle_connections), (0, 1));
    assert_eq!((s.total_acquisitions, s.total_releases), (1, 1));
    assert_eq!(s.acquisitions_immediate, 1);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn acquire_opens_a_new_connection_when_nothing_is_idle() {
    let pool = pool(0, 2).await;
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    assert_ne!(a.serial, b.serial);
    assert_eq!(pool.statistics().connections_created, 2);
    drop((a, b));
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn try_acquire_never_waits_and_says_the_pool_is_exhausted() {
    let pool = pool(1, 1).await;
    let held = pool.try_acquire().unwrap();
    let err = pool.try_acquire().unwrap_err();
    assert!(err.is_exhausted(), "{err}");
    assert_eq!(err.statistics().unwrap().active_connections, 1);
    assert!(err.to_string().contains("POOL_MAX_SIZE"));
    drop(held);
    assert!(pool.try_acquire().is_ok());
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn try_acquire_does_not_open_connections() {
    let pool = pool(0, 3).await;
    assert!(pool.try_acquire().unwrap_err().is_exhausted());
    assert_eq!(pool.manager().creates(), 0);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn discard_closes_the_connection_and_frees_its_slot() {
    let pool = pool(1, 1).await;
    let conn = pool.acquire().await.unwrap();
    conn.discard();
    let s = pool.statistics();
    assert_eq!(
        (s.total_connections, s.connections_closed, s.total_releases),
        (0, 1, 1)
    );
    let fresh = pool.acquire().await.unwrap();
    assert_eq!(fresh.serial, 2);
    drop(fresh);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_returned_broken_is_closed_not_reused() {
    let pool = pool(1, 1).await;
    let conn = pool.acquire().await.unwrap();
    conn.broken.store(true, Ordering::SeqCst);
    drop(conn);
    assert_eq!(pool.statistics().total_connections, 0);
    assert_eq!(pool.acquire().await.unwrap().serial, 2);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_recently_used_connection_is_handed_out_without_validation() {
    let pool = pool(1, 1).await;
    let validations = pool.statistics().validations;
    drop(pool.acquire().await.unwrap());
    drop(pool.acquire().await.unwrap());
    assert_eq!(
        pool.statistics().validations,
        validations,
        "used within the skip window"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_that_fails_validation_is_replaced_within_the_deadline() {
    let pool = pool(1, 1).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager().set_validate(Gate::Err);
    let conn = pool.acquire().await.unwrap();
    assert_eq!(
        conn.serial, 2,
        "the stale connection was closed and a new one opened"
    );
    let s = pool.statistics();
    assert_eq!(s.validation_failures, 1);
    assert_eq!(s.connections_closed, 1);
    drop(conn);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_connect_failure_is_returned_at_once() {
    let pool = pool(0, 1).await;
    pool.manager().set_create(Gate::Err);
    pool.manager().retryable.store(false, Ordering::SeqCst);
    let started = Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert!(matches!(err, PoolError::Connection(_)), "{err}");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(pool.statistics().acquire_errors, 1);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn closing_fails_waiters_and_new_acquires_and_closes_idle_connections() {
    let pool = pool(2, 2).await;
    let held = pool.acquire().await.unwrap();
    let _held2 = pool.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await.map(|_| ()) }
    });
    common::eventually(&pool, "one waiter queued", |s| s.waiting_requests == 1).await;
    pool.close();
    assert!(waiter.await.unwrap().unwrap_err().is_closed());
    assert!(pool.acquire().await.unwrap_err().is_closed());
    assert!(pool.try_acquire().unwrap_err().is_closed());
    drop(held);
    let s = pool.statistics();
    assert_eq!(
        s.idle_connections, 0,
        "a connection returned to a closed pool is closed"
    );
    assert_eq!(s.state, pool_core::PoolState::Terminated);
}

#[tokio::test(start_paused = true)]
async fn a_connection_returned_while_a_caller_connects_is_handed_to_that_caller() {
    let pool = pool(1, 2).await;
    let held = pool.acquire().await.unwrap();
    // The caller's own connect hangs (until create_timeout).
    pool.manager().set_create(Gate::Never);
    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let conn = pool.acquire().await?;
            Ok::<_, PoolError<common::FakeError>>((conn.serial, started.elapsed()))
        })
    };
    common::eventually(&pool, "the caller is connecting", |s| {
        s.opening_connections == 1
    })
    .await;

    drop(held);

    let (serial, took) = caller.await.unwrap().expect("the returned connection");
    assert_eq!(serial, 1, "the connection that came back");
    assert!(
        took < pool.config().create_timeout,
        "taken at once, not after the connect timed out ({took:?})"
    );
    pool.manager().set_create(Gate::Ok);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_returned_connection_goes_to_a_queued_waiter_before_a_connecting_caller() {
    let pool = pool(0, 2).await;
    let first = pool.acquire().await.unwrap();
    pool.manager().set_create(Gate::Never);
    // The second caller connects (hangs); the third queues for a permit.
    let connecting = common::spawn_acquire(&pool);
    common::eventually(&pool, "connecting", |s| s.opening_connections == 1).await;
    let queued = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(|conn| conn.serial) })
    };
    common::eventually(&pool, "queued", |s| s.waiting_requests == 1).await;

    drop(first);

    assert_eq!(queued.await.unwrap().unwrap(), 1, "first in line first");
    pool.manager().set_create(Gate::Ok);
    connecting
        .await
        .unwrap()
        .expect("served once its connect retried");
    assert_nothing_lost(&pool).await;
}
