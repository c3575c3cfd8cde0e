//! Panics: in the manager's `create` and `validate` (a bug in a backend),
//! and in the caller's own code while it holds a connection. The pool
//! counts a manager panic as a failed connect or validation, logs it at
//! ERROR (see `events.rs`), and every task that met it carries on; a caller's panic gives the
//! connection and its capacity back. Fake manager, paused clock.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_nothing_lost, config, pool, FakeManager, Gate};
use pool_core::{Pool, PoolState};

#[tokio::test(start_paused = true)]
async fn a_panic_in_create_is_a_failed_connect_with_its_message_as_the_last_error() {
    let pool = pool(0, 2).await;
    pool.manager().panic_in_create.store(true, Ordering::SeqCst);

    let err = pool.acquire().await.unwrap_err();

    assert!(
        err.is_unavailable() || err.is_timeout(),
        "a typed error, not a panic in the caller: {err}"
    );
    let s = pool.statistics();
    assert!(s.connection_failures >= 1, "{s:?}");
    assert!(s.manager_panics >= 1, "{s:?}");
    let last = s.last_error.expect("the panic is the last error");
    assert!(
        last.contains("the fake manager's create panicked"),
        "{last}"
    );
    pool.manager()
        .panic_in_create
        .store(false, Ordering::SeqCst);
    // The pool recovers once create stops panicking.
    let conn = common::acquire_once_recovered(&pool, Duration::from_secs(60)).await;
    drop(conn);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn the_reconnect_supervisor_survives_a_panicking_probe() {
    let pool = Pool::build(
        FakeManager::new(),
        config(0, 2).reconnect_delays(Duration::from_millis(100), Duration::from_millis(400)),
    )
    .await
    .expect("pool builds");
    pool.manager().set_create(Gate::Err);
    assert!(pool.acquire().await.unwrap_err().is_unavailable());
    assert_eq!(pool.state(), PoolState::Recovering);

    // The database is back, but the backend's connect panics for a while.
    pool.manager().set_create(Gate::Ok);
    pool.manager().panic_in_create.store(true, Ordering::SeqCst);
    let creates = pool.manager().creates();
    common::eventually(&pool, "the supervisor probed twice into the panic", |s| {
        s.manager_panics >= 2
    })
    .await;
    assert!(pool.manager().creates() >= creates + 2);
    assert_eq!(pool.state(), PoolState::Recovering);

    pool.manager()
        .panic_in_create
        .store(false, Ordering::SeqCst);
    common::wait_until_recovered(&pool, Duration::from_secs(60)).await;
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn maintenance_survives_a_panicking_create_and_replenishes_afterwards() {
    let pool = Pool::build(
        FakeManager::new(),
        config(2, 2).maintenance_interval(Duration::from_secs(1)),
    )
    .await
    .expect("pool builds");
    pool.manager().panic_in_create.store(true, Ordering::SeqCst);
    // Both go; maintenance is woken to replenish, into the panic.
    pool.evict_all();
    common::eventually(&pool, "a replenishing connect panicked", |s| {
        s.manager_panics >= 1
    })
    .await;

    pool.manager()
        .panic_in_create
        .store(false, Ordering::SeqCst);
    // The next rounds (every maintenance_interval) still run.
    common::eventually(&pool, "maintenance replenished to min_size", |s| {
        s.total_connections == 2 && s.idle_connections == 2
    })
    .await;
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_validate_closes_that_connection_and_the_caller_gets_a_fresh_one() {
    let pool = Pool::build(
        FakeManager::new(),
        config(1, 1).validation_skip_window(Duration::ZERO),
    )
    .await
    .expect("pool builds");
    pool.manager()
        .panic_in_validate
        .store(true, Ordering::SeqCst);

    let conn = pool.acquire().await.expect("a fresh connection");

    assert_eq!(conn.serial, 2, "the idle one was closed, a new one opened");
    drop(conn);
    let s = pool.statistics();
    assert_eq!(s.validation_failures, 1, "{s:?}");
    assert_eq!(s.closed_by_reason.validation_failed, 1, "{s:?}");
    assert_eq!(s.manager_panics, 1, "{s:?}");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("validate panicked")),
        "{s:?}"
    );
    pool.manager()
        .panic_in_validate
        .store(false, Ordering::SeqCst);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_panics_while_holding_a_connection_gives_it_back() {
    let pool = pool(1, 1).await;
    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let _conn = pool.acquire().await.expect("a connection");
            panic!("the caller's own bug");
        })
    };
    let joined = caller.await.expect_err("the caller panicked");
    assert!(joined.is_panic());

    assert_nothing_lost(&pool).await;
    let s = pool.statistics();
    assert_eq!(s.total_releases, 1, "{s:?}");
    assert_eq!(s.idle_connections, 1, "returned, not lost: {s:?}");
    assert_eq!(s.free_permits, 1, "its capacity came back: {s:?}");
    let conn = pool
        .try_acquire()
        .expect("the same connection is lent again");
    assert_eq!(conn.serial, 1);
}
