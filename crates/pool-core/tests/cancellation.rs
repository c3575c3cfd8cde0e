//! Cancellation at every await point loses nothing: no slot, no waiter, no
//! phantom opening connection, and no live connection the pool forgot.

mod common;

use std::time::Duration;

use common::{assert_nothing_lost, config, eventually, pool, FakeManager, Gate};
use pool_core::{Pool, PoolState};

#[tokio::test(start_paused = true)]
async fn a_caller_cancelled_while_queued_gives_up_its_place() {
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let queued = common::spawn_acquire(&pool);
    eventually(&pool, "queued", |s| s.waiting_requests == 1).await;
    queued.abort();
    eventually(&pool, "unlinked", |s| s.waiting_requests == 0).await;
    drop(held);
    assert!(
        pool.try_acquire().is_ok(),
        "the permit came back to the pool"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_cancelled_after_being_woken_passes_its_turn_to_the_next() {
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let first = common::spawn_acquire(&pool);
    eventually(&pool, "first queued", |s| s.waiting_requests == 1).await;
    let second = common::spawn_acquire(&pool);
    eventually(&pool, "second queued", |s| s.waiting_requests == 2).await;
    // On this single-threaded runtime, `first` is granted the permit and
    // woken here but cannot run before it is aborted.
    drop(held);
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    tokio::time::timeout(Duration::from_secs(1), second)
        .await
        .expect("the second waiter was served")
        .unwrap()
        .unwrap();
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_cancelled_while_connecting_leaves_the_new_connection_idle() {
    let pool = pool(0, 1).await;
    pool.manager()
        .set_create(Gate::Slow(Duration::from_secs(1)));
    let caller = common::spawn_acquire(&pool);
    eventually(&pool, "connect started", |s| s.opening_connections == 1).await;
    caller.abort();
    eventually(&pool, "connection parked idle", |s| s.idle_connections == 1).await;
    pool.manager().set_create(Gate::Err);
    let conn = pool.acquire().await.unwrap();
    assert_eq!(
        conn.serial, 1,
        "the connection opened for the cancelled caller is reused"
    );
    drop(conn);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_cancelled_while_validating_closes_that_connection_and_frees_its_slot() {
    let pool = pool(1, 1).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager().set_validate(Gate::Never);
    let caller = common::spawn_acquire(&pool);
    eventually(&pool, "validation started", |s| s.validations == 2).await;
    caller.abort();
    eventually(&pool, "slot freed", |s| s.total_connections == 0).await;
    pool.manager().set_validate(Gate::Ok);
    drop(pool.acquire().await.unwrap());
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_timed_out_while_queued_leaves_no_waiter_behind() {
    let cfg = config(1, 1).acquire_timeout(Duration::from_millis(50));
    let pool = Pool::build(FakeManager::new(), cfg).await.unwrap();
    let held = pool.acquire().await.unwrap();
    for _ in 0..10 {
        assert!(pool.acquire().await.unwrap_err().is_timeout());
    }
    assert_eq!(pool.statistics().waiting_requests, 0);
    drop(held);
    assert_nothing_lost(&pool).await;
}

/// Every combination of create and validate behaviour, with many callers on
/// tiny deadlines, some aborted mid-flight.
#[tokio::test(start_paused = true)]
async fn the_cancellation_matrix_loses_nothing_in_any_combination() {
    let gates = [
        Gate::Ok,
        Gate::Err,
        Gate::Slow(Duration::from_millis(40)),
        Gate::Never,
    ];
    for create in gates {
        for validate in gates {
            let cfg = config(1, 3)
                .acquire_timeout(Duration::from_millis(120))
                .create_timeout(Duration::from_millis(200))
                .validation_timeout(Duration::from_millis(60))
                .validation_skip_window(Duration::ZERO);
            let pool = Pool::build(FakeManager::new(), cfg).await.unwrap();
            pool.manager().set_create(create);
            pool.manager().set_validate(validate);
            let mut tasks = Vec::new();
            for i in 0u64..40 {
                let pool = pool.clone();
                // Deterministic spread of caller deadlines: 1..=97 ms.
                let budget = Duration::from_millis(1 + (i * 37) % 97);
                tasks.push(tokio::spawn(async move {
                    if let Ok(Ok(conn)) = tokio::time::timeout(budget, pool.acquire()).await {
                        tokio::time::sleep(Duration::from_millis(i % 5)).await;
                        if i % 7 == 0 {
                            conn.discard();
                        }
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            for (i, task) in tasks.iter().enumerate() {
                if i % 3 == 0 {
                    task.abort();
                }
            }
            for task in tasks {
                let _joined = task.await;
            }
            pool.manager().set_create(Gate::Ok);
            pool.manager().set_validate(Gate::Ok);
            assert_nothing_lost(&pool).await;
            // If every connection was lost, the pool is reconnecting: let
            // its supervisor finish (bounded) before asking again.
            let mut states = pool.subscribe_state();
            tokio::time::timeout(
                Duration::from_secs(60),
                states.wait_for(|s| *s != PoolState::Recovering),
            )
            .await
            .expect("recovered within its backoff")
            .unwrap();
            let started = tokio::time::Instant::now();
            let conn = pool.acquire().await.unwrap_or_else(|e| {
                panic!("create={create:?} validate={validate:?}: fresh acquire failed: {e}")
            });
            assert_eq!(
                started.elapsed(),
                Duration::ZERO,
                "create={create:?} validate={validate:?}: a fresh acquire succeeds at once"
            );
            drop(conn);
            assert_nothing_lost(&pool).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_build_in_the_middle_of_warm_up_leaves_nothing_open() {
    let manager = FakeManager::new();
    let counters = std::sync::Arc::clone(&manager.counters);
    manager.set_create(Gate::Slow(Duration::from_millis(500)));
    // 20 warm connections: a first batch of 16, then a second of 4.
    let build = Pool::build(manager, config(20, 20));

    let dropped = tokio::time::timeout(Duration::from_millis(750), build).await;

    assert!(dropped.is_err(), "build was still warming up");
    let live = || counters.live.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        counters.creates.load(std::sync::atomic::Ordering::SeqCst),
        20,
        "both batches had started"
    );
    assert_eq!(live(), 0, "the first batch's idle connections were closed");
    // Nothing goes on in the background either.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(live(), 0);
    assert_eq!(
        counters.creates.load(std::sync::atomic::Ordering::SeqCst),
        20
    );
}
