//! Losing the database: the state machine, failing fast, the reconnect
//! supervisor's backoff and demand probes, and validation of every idle
//! connection after a sign of a restart. Fake manager, paused clock.

mod common;

use std::time::Duration;

use common::{assert_nothing_lost, config, pool, FakeManager, Gate};
use pool_core::{Pool, PoolConfig, PoolState};
use tokio::time::Instant;

/// A pool whose only connection went stale and whose database is now gone.
async fn lost(cfg: PoolConfig) -> Pool<FakeManager> {
    let pool = Pool::build(FakeManager::new(), cfg)
        .await
        .expect("pool builds");
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager().set_create(Gate::Err);
    pool.manager().set_validate(Gate::Err);
    pool
}

async fn wait_for_state(pool: &Pool<FakeManager>, wanted: PoolState, within: Duration) {
    let mut states = pool.subscribe_state();
    tokio::time::timeout(within, states.wait_for(|s| *s == wanted))
        .await
        .unwrap_or_else(|_| panic!("not {wanted} within {within:?}; now {}", pool.state()))
        .expect("the state channel lives as long as the pool");
}

#[tokio::test(start_paused = true)]
async fn losing_the_database_enters_recovering_and_fails_callers_at_once() {
    let pool = lost(config(1, 3)).await;
    let started = Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no waiting for acquire_timeout"
    );
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(pool.state(), PoolState::Recovering);
    let text = err.to_string();
    assert!(
        text.contains("create refused"),
        "carries the last connection error: {text}"
    );
    assert!(text.contains("POOL_WAIT_FOR_RECOVERY"), "{text}");
    assert!(err.statistics().is_some());
    let again = pool.acquire().await.unwrap_err();
    assert!(again.is_unavailable());
    assert_eq!(
        pool.health_check().status,
        pool_core::HealthState::Unhealthy
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn the_supervisor_backs_off_1_2_4_8_16_then_every_16_seconds() {
    // Lost by maintenance, with no caller asking (no demand probes).
    let pool = lost(config(1, 3).max_lifetime(Duration::from_secs(1))).await;
    pool.run_maintenance().await;
    assert_eq!(pool.state(), PoolState::Recovering);
    let lost_at = Instant::now();
    let creates_before = pool.manager().create_times.lock().len();
    tokio::time::sleep(Duration::from_secs(80)).await;
    let times = pool.manager().create_times.lock().clone();
    let probes: Vec<f64> = times[creates_before..]
        .iter()
        .map(|t| t.duration_since(lost_at).as_secs_f64())
        .collect();
    let gaps: Vec<f64> = probes
        .iter()
        .scan(0.0, |previous, t| {
            let gap = t - *previous;
            *previous = *t;
            Some(gap)
        })
        .collect();
    let expected = [1.0, 2.0, 4.0, 8.0, 16.0, 16.0];
    assert!(gaps.len() >= expected.len(), "probes at {probes:?}");
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(
            (gap - want).abs() <= want * 0.1 + 0.001,
            "gaps {gaps:?}, want {expected:?}"
        );
    }
    assert_eq!(pool.state(), PoolState::Recovering, "it never gives up");
}

#[tokio::test(start_paused = true)]
async fn demand_brings_probes_forward_but_never_more_than_four_a_second() {
    let pool = lost(config(1, 3)).await;
    assert!(pool.acquire().await.is_err());
    let creates_before = pool.manager().creates();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(pool.acquire().await.unwrap_err().is_unavailable());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let probes = pool.manager().creates() - creates_before;
    assert!(
        (4..=9).contains(&probes),
        "{probes} probes in 2 s of demand"
    );
    // The database comes back: a caller succeeds well within a second.
    pool.manager().set_create(Gate::Ok);
    pool.manager().set_validate(Gate::Ok);
    let back = Instant::now();
    loop {
        match pool.acquire().await {
            Ok(conn) => {
                drop(conn);
                break;
            }
            Err(err) => assert!(err.is_unavailable(), "{err}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        back.elapsed() <= Duration::from_millis(300),
        "recovered in {:?}",
        back.elapsed()
    );
    assert_ne!(pool.state(), PoolState::Recovering);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn with_wait_for_recovery_a_caller_waits_and_gets_the_recovered_connection() {
    let pool = lost(config(1, 3).wait_for_recovery(true)).await;
    let caller = tokio::spawn({
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            pool.acquire()
                .await
                .map(|conn| (conn.serial, started.elapsed()))
        }
    });
    wait_for_state(&pool, PoolState::Recovering, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pool.manager().set_create(Gate::Ok);
    pool.manager().set_validate(Gate::Ok);
    let (serial, waited) = caller.await.unwrap().unwrap();
    assert!(serial > 1);
    assert!(
        waited < Duration::from_secs(5),
        "bounded by acquire_timeout: {waited:?}"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_published_in_order() {
    let pool = pool(1, 3).await;
    let mut states = pool.subscribe_state();
    let mut seen = vec![*states.borrow_and_update()];
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.manager().set_create(Gate::Err);
    pool.manager().set_validate(Gate::Err);
    assert!(pool.acquire().await.is_err());
    states.changed().await.unwrap();
    seen.push(*states.borrow_and_update());
    pool.manager().set_create(Gate::Ok);
    pool.manager().set_validate(Gate::Ok);
    states.changed().await.unwrap();
    seen.push(*states.borrow_and_update());
    let report = pool.shutdown(Duration::from_secs(1)).await;
    assert!(report.first);
    seen.push(*states.borrow_and_update());
    // After recovering, the recent failure keeps the pool DEGRADED for a
    // minute (the watch may coalesce HEALTHY -> DEGRADED into one change).
    assert_eq!(seen[..2], [PoolState::Healthy, PoolState::Recovering]);
    assert!(
        matches!(seen[2], PoolState::Healthy | PoolState::Degraded),
        "{seen:?}"
    );
    assert_eq!(seen[3], PoolState::Terminated);
}

#[tokio::test(start_paused = true)]
async fn a_dead_connection_makes_the_pool_check_every_idle_one_before_handing_it_out() {
    let pool = pool(4, 4).await;
    // The server restarted: every idle connection is dead, though all were
    // used moments ago (inside the validation-skip window).
    pool.manager().set_validate(Gate::Err);
    let first = pool.acquire().await.unwrap();
    first
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    drop(first);
    let conn = pool.acquire().await.unwrap();
    assert!(
        conn.serial > 4,
        "a fresh connection, not a dead idle one (got {})",
        conn.serial
    );
    drop(conn);
    pool.manager().set_validate(Gate::Ok);
    assert_nothing_lost(&pool).await;
    let s = pool.statistics();
    assert_eq!(s.closed_by_reason.broken, 1);
    // At least the three dead idle ones. While the caller's own connect is
    // under way it may also take connections maintenance parks meanwhile;
    // made in the instant of the failure, they are suspect too, and fail
    // this fake's validation as well.
    assert!(s.closed_by_reason.validation_failed >= 3, "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_connect_failure_with_connections_still_open_is_not_an_outage() {
    let pool = pool(1, 3).await;
    let held = pool.acquire().await.unwrap();
    pool.manager().set_create(Gate::Err);
    let cfg_timeout = pool.config().acquire_timeout;
    let err = pool.acquire().await.unwrap_err();
    assert!(
        err.is_timeout(),
        "transient: retried until the deadline ({cfg_timeout:?}): {err}"
    );
    assert_ne!(pool.state(), PoolState::Recovering);
    drop(held);
    pool.manager().set_create(Gate::Ok);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn one_transient_connect_failure_on_an_empty_pool_turns_no_caller_away() {
    let pool = pool(0, 4).await;
    // Too many connections, a server starting up: not evidence it is down.
    pool.manager()
        .server_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    pool.manager()
        .fail_next_creates
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let mut states = pool.subscribe_state();
    states.borrow_and_update();
    let started = Instant::now();

    let callers: Vec<_> = (0..3).map(|_| common::spawn_acquire(&pool)).collect();
    for caller in callers {
        caller
            .await
            .unwrap()
            .expect("every caller gets a connection; nobody is told the database is down");
    }

    let refused_for = started.elapsed();
    eprintln!("one transient failure on an empty pool: callers served after {refused_for:?}, none refused");
    assert!(
        refused_for < Duration::from_millis(100),
        "served after the callers' own retry ({refused_for:?}), not after a recovery"
    );
    assert!(
        !states.has_changed().unwrap() || *states.borrow() != PoolState::Recovering,
        "never RECOVERING"
    );
    assert_eq!(pool.statistics().connection_failures, 1);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_connect_on_an_empty_pool_starts_recovery_at_once() {
    let pool = pool(0, 4).await;
    pool.manager().set_create(Gate::Err);
    let started = Instant::now();

    let err = pool.acquire().await.unwrap_err();

    assert!(err.is_unavailable(), "{err}");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(
        pool.manager().creates(),
        1,
        "one refusal is evidence enough"
    );
    assert_eq!(pool.state(), PoolState::Recovering);
    pool.manager().set_create(Gate::Ok);
    common::wait_until_recovered(&pool, Duration::from_secs(30)).await;
}

#[tokio::test(start_paused = true)]
async fn transient_failures_in_a_row_start_recovery_after_the_threshold() {
    let pool = pool(0, 4).await;
    pool.manager()
        .server_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    pool.manager().set_create(Gate::Err);

    let err = pool.acquire().await.unwrap_err();

    assert!(err.is_unavailable(), "{err}");
    assert_eq!(
        pool.manager().creates(),
        pool_core::RECOVERY_FAILURE_THRESHOLD,
        "RECOVERING after {} failures in a row, not one",
        pool_core::RECOVERY_FAILURE_THRESHOLD
    );
    assert_eq!(pool.state(), PoolState::Recovering);
    pool.manager().set_create(Gate::Ok);
    common::wait_until_recovered(&pool, Duration::from_secs(30)).await;
}

#[tokio::test(start_paused = true)]
async fn a_connect_under_way_that_gets_through_ends_the_recovery_at_once() {
    // Slow probes: only the caller's own connect can end the outage early.
    let cfg = config(0, 2).reconnect_delays(Duration::from_secs(30), Duration::from_secs(30));
    let pool = Pool::build(FakeManager::new(), cfg)
        .await
        .expect("pool builds");
    // A caller's connect is under way (it will succeed in 500 ms) ...
    pool.manager()
        .set_create(Gate::Slow(Duration::from_millis(500)));
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    while pool.manager().creates() == 0 {
        tokio::task::yield_now().await;
    }
    // ... when every other connect starts failing: the pool is lost.
    pool.manager().set_create(Gate::Ok);
    pool.manager()
        .fail_next_creates
        .store(1_000, std::sync::atomic::Ordering::SeqCst);
    let turned_away = pool.acquire().await.unwrap_err();
    assert!(turned_away.is_unavailable(), "{turned_away}");
    assert_eq!(pool.state(), PoolState::Recovering);

    let conn = first
        .await
        .expect("the caller's task")
        .expect("its connect got through");
    assert_ne!(
        pool.state(),
        PoolState::Recovering,
        "a connect that got through proves the database is back"
    );
    pool.manager()
        .fail_next_creates
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let second = pool
        .acquire()
        .await
        .expect("served, not turned away until the next probe in 30 s");
    drop((conn, second));
    assert_nothing_lost(&pool).await;
}
