//! Shutting the pool down against the real server: waiters fail at once,
//! borrowers get the grace period, a connection held past it is aborted
//! (its backend goes away), a connect in progress or a reconnect backoff
//! does not hold the shutdown up, and a pool dropped mid-query leaves no
//! backend behind.
//!
//! Every test ends with promise 1, "nothing is lost": the pool is quiet and
//! the server shows none of its backends.

mod common;

use std::time::Duration;

use common::{
    assert_nothing_lost, backend_pid, connect, is_sleeping, small_pool, start_db, url_with_app,
    wait_until, MARGIN, WAIT,
};
use pg_tempdb::{FaultProxy, Mode};
use pool_pg::{PoolConfig, PoolState};
use tokio::time::{timeout, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_waiters_at_once_and_waits_for_borrowed_connections() {
    let hold = Duration::from_millis(200);
    let grace = Duration::from_secs(5);
    let db = start_db();
    let app = "shutdown-graceful";
    let config = small_pool().min_size(3).max_size(3).acquire_timeout(WAIT);
    let pool = connect(&url_with_app(&db.url(), app), config).await;

    // Three borrowers keep working through the grace period, then return.
    let mut borrowers = Vec::new();
    for _ in 0..3 {
        let conn = pool.acquire().await.unwrap();
        let mut states = pool.subscribe_state();
        borrowers.push(tokio::spawn(async move {
            states
                .wait_for(|state| state.is_closing())
                .await
                .expect("the pool announces its shutdown");
            let still_works = conn.query_one("SELECT 1", &[]).await.is_ok();
            tokio::time::sleep(hold).await;
            drop(conn);
            (still_works, Instant::now())
        }));
    }
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let result = pool.acquire().await.map(drop);
                (result, Instant::now())
            })
        })
        .collect();
    wait_until("five callers wait", || {
        pool.statistics().waiting_requests == 5
    })
    .await;

    let started = Instant::now();
    let shutdowns: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.shutdown(grace).await })
        })
        .collect();
    let mut reports = Vec::new();
    for shutdown in shutdowns {
        reports.push(
            timeout(grace + MARGIN, shutdown)
                .await
                .expect("returns")
                .unwrap(),
        );
    }
    let took = started.elapsed();

    let mut returned = Vec::new();
    for borrower in borrowers {
        let (still_works, returned_at) = timeout(WAIT, borrower).await.expect("returns").unwrap();
        assert!(
            still_works,
            "a borrowed connection works during the grace period"
        );
        returned.push(returned_at);
    }
    let first_return = returned.iter().min().copied().expect("three borrowers");
    for waiter in waiters {
        let (result, failed_at) = timeout(WAIT, waiter).await.expect("fails").unwrap();
        let error = result.expect_err("a waiter gets no connection");
        assert!(error.is_closed(), "{error:?}");
        assert!(
            failed_at < first_return,
            "waiters fail at once ({:?}), not after the borrowers return ({:?})",
            failed_at.duration_since(started),
            first_return.duration_since(started)
        );
    }
    eprintln!("graceful shutdown took {took:?}: {:?}", reports[0]);
    assert_eq!(
        reports.iter().filter(|report| report.first).count(),
        1,
        "{reports:?}"
    );
    for report in &reports {
        assert_eq!(report.returned_in_time, 3, "{report:?}");
        assert!(report.forced.is_empty(), "{report:?}");
    }
    assert!(took >= hold && took < hold + MARGIN, "{took:?}");
    assert_eq!(pool.state(), PoolState::Terminated);
    db.wait_for_connections(Some(app), 0, WAIT).unwrap();
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_held_past_the_shutdown_timeout_is_aborted_and_its_backend_goes_away() {
    let grace = Duration::from_millis(300);
    let db = start_db();
    let app = "shutdown-forced";
    let pool = connect(
        &url_with_app(&db.url(), app),
        small_pool().min_size(1).max_size(1),
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    let started = Instant::now();
    let report = pool.shutdown(grace).await;
    let took = started.elapsed();

    assert!(took >= grace && took < grace + MARGIN, "{took:?}");
    assert_eq!(report.returned_in_time, 0, "{report:?}");
    assert_eq!(report.forced.len(), 1, "{report:?}");
    let forced = &report.forced[0];
    assert_eq!(forced.connection_id, conn.id(), "{report:?}");
    assert!(forced.aborted, "{report:?}");
    assert!(forced.held_ms >= 300, "{report:?}");
    assert_eq!(pool.state(), PoolState::Terminated);

    db.wait_for_connections(Some(app), 0, WAIT)
        .unwrap_or_else(|e| panic!("backend {pid} stays after the abort: {e}"));
    eprintln!(
        "forced shutdown: backend gone {:?} after the shutdown began",
        started.elapsed()
    );
    let late = conn.query_one("SELECT 1", &[]).await;
    assert!(late.is_err(), "the aborted connection is closed: {late:?}");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_hanging_connect_returns_within_its_timeout_and_releases_the_caller() {
    let grace = Duration::from_millis(500);
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.unwrap();
    let app = "shutdown-connecting";
    let config = PoolConfig::default()
        .min_size(0)
        .max_size(2)
        .acquire_timeout(Duration::from_secs(8))
        .create_timeout(Duration::from_secs(5));
    let pool = connect(&url_with_app(&proxy.url_for(&db), app), config).await;

    proxy.set_mode(Mode::AcceptThenSilence).unwrap();
    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let result = pool.acquire().await.map(drop);
            (result, Instant::now())
        })
    };
    wait_until("the connect hangs", || {
        proxy.accepted() == 1 && pool.statistics().opening_connections == 1
    })
    .await;

    let started = Instant::now();
    let report = pool.shutdown(grace).await;
    let took = started.elapsed();
    let returned = Instant::now();
    let after = pool.statistics();
    eprintln!(
        "shutdown during a connect took {took:?}: {report:?}; then {}: {} open, {} opening",
        after.state, after.total_connections, after.opening_connections
    );
    assert!(took < grace + MARGIN, "{took:?}");
    assert_eq!(pool.state(), PoolState::Terminated);

    let (result, failed_at) = timeout(WAIT, caller)
        .await
        .expect("the caller returns")
        .unwrap();
    let error = result.expect_err("no connection after shutdown");
    eprintln!(
        "shutdown during a connect: the caller failed {:?} after shutdown returned: {error}",
        failed_at.saturating_duration_since(returned)
    );
    assert!(
        failed_at < returned + MARGIN,
        "the caller is released with the shutdown, not {:?} later",
        failed_at.saturating_duration_since(returned)
    );
    assert!(error.is_closed(), "{error:?}");
    // The connect was still in progress when the grace period ended.
    assert_eq!(report.returned_in_time, 0, "{report:?}");
    assert_nothing_lost(&pool, &db, app).await;
    wait_until("the silent connect is closed", || proxy.connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_reconnect_backoff_returns_at_once_and_stops_probing() {
    let reconnect_max_delay = Duration::from_millis(800);
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.unwrap();
    let app = "shutdown-recovering";
    let config = PoolConfig::default()
        .min_size(1)
        .max_size(2)
        .acquire_timeout(Duration::from_secs(2))
        .create_timeout(Duration::from_secs(1))
        .validation_skip_window(Duration::ZERO)
        .reconnect_delays(Duration::from_millis(100), reconnect_max_delay);
    let pool = connect(&url_with_app(&proxy.url_for(&db), app), config).await;

    db.stop().unwrap();
    let error = pool.acquire().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(pool.state(), PoolState::Recovering);

    let started = Instant::now();
    let report = pool.shutdown(Duration::from_secs(5)).await;
    let took = started.elapsed();
    eprintln!("shutdown while recovering took {took:?}: {report:?}");
    assert!(
        took < MARGIN,
        "nothing is lent, nothing to wait for: {took:?}"
    );
    assert!(report.forced.is_empty(), "{report:?}");
    assert_eq!(pool.state(), PoolState::Terminated);

    // Longer than the longest backoff (plus its jitter): a supervisor still
    // running would probe in this window; the server coming back must not
    // wake one either.
    let accepted = proxy.accepted();
    tokio::time::sleep(reconnect_max_delay.mul_f64(1.25)).await;
    db.start_again().unwrap();
    tokio::time::sleep(reconnect_max_delay.mul_f64(1.25)).await;
    assert_eq!(proxy.accepted(), accepted, "no probe after the shutdown");
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_dropped_while_a_query_runs_leaves_no_backend_behind() {
    let db = start_db();
    let app = "shutdown-dropped";
    let pool = connect(&url_with_app(&db.url(), app), small_pool().min_size(1)).await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;
    let query = tokio::spawn(async move { conn.query("SELECT pg_sleep(30)", &[]).await.map(drop) });
    wait_until("the query sleeps", || is_sleeping(&db, pid)).await;

    drop(pool);
    query.abort();
    let dropped = Instant::now();
    let join = timeout(WAIT, query).await.expect("the task ends");
    assert!(
        join.is_err_and(|e| e.is_cancelled()),
        "the task was aborted"
    );

    // Nothing is lost: with every handle gone, no backend of the pool stays.
    db.wait_for_connections(Some(app), 0, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("backend {pid} outlives the pool: {e}"));
    eprintln!(
        "dropped pool: backend gone {:?} after the drop",
        dropped.elapsed()
    );
}
