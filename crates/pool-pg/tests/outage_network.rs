//! Network faults between the pool and the real server, through the fault
//! proxy: a slow link, a stalled query, a reset mid-query.
//! Every test ends with promise 1, "nothing is lost" (see
//! `assert_nothing_lost` in `common`): the pool is quiet and the server shows
//! exactly the backends the pool counts open. Each test uses its own
//! `application_name`, so those counts are its own.

mod common;

use std::time::Duration;

use common::{
    assert_nothing_lost, backend_pid, connect, is_sleeping, small_pool, start_db, url_with_app,
    wait_until, MARGIN, WAIT,
};
use pg_tempdb::{FaultProxy, Mode, TempDb};
use pool_pg::{PgPool, PoolConfig};
use tokio::time::{timeout, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_answer_within_validation_timeout_is_never_handed_out() {
    let validation_timeout = Duration::from_millis(200);
    let acquire_timeout = Duration::from_secs(3);
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.unwrap();
    let app = "outage-slow-link";
    let config = PoolConfig::default()
        .min_size(1)
        .max_size(2)
        .acquire_timeout(acquire_timeout)
        .create_timeout(Duration::from_secs(2))
        .validation_timeout(validation_timeout)
        .validation_skip_window(Duration::ZERO);
    let pool = connect(&url_with_app(&proxy.url_for(&db), app), config).await;
    let conn = pool.acquire().await.unwrap();
    let slow_pid = backend_pid(&conn).await;
    drop(conn);

    // A round trip now takes at least 800 ms.
    proxy
        .set_mode(Mode::Delay(Duration::from_millis(400)))
        .unwrap();
    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = pool.acquire().await;
            (result, started.elapsed())
        })
    };
    wait_until("the idle connection fails its validation", || {
        pool.statistics().validation_failures >= 1
    })
    .await;
    proxy.set_mode(Mode::PassThrough).unwrap();
    let (result, took) = timeout(WAIT, caller).await.expect("no hang").unwrap();

    let conn = result.expect("a fresh connection within acquire_timeout");
    eprintln!("slow link: the caller got a fresh connection after {took:?}");
    assert!(
        took >= validation_timeout && took < acquire_timeout,
        "{took:?}"
    );
    assert_ne!(backend_pid(&conn).await, slow_pid, "not the slow one");
    let stats = pool.statistics();
    assert_eq!(stats.validation_failures, 1, "{stats:?}");
    assert_eq!(stats.closed_by_reason.validation_failed, 1, "{stats:?}");
    let last_error = stats.last_error.clone().unwrap_or_default();
    assert!(
        last_error.contains("validation timed out after 200 ms"),
        "{last_error}"
    );
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

/// A pool of at most two connections behind a fresh proxy.
async fn proxied(app: &str) -> (TempDb, FaultProxy, PgPool) {
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.expect("start the proxy");
    let config = small_pool()
        .min_size(1)
        .max_size(2)
        .create_timeout(Duration::from_secs(1));
    let pool = connect(&url_with_app(&proxy.url_for(&db), app), config).await;
    (db, proxy, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_query_abandoned_by_its_caller_retires_the_connection() {
    let app = "outage-stall";
    let (db, proxy, pool) = proxied(app).await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    proxy.set_mode(Mode::Stall).unwrap();
    let abandoned = timeout(Duration::from_millis(300), conn.query_one("SELECT 1", &[])).await;
    assert!(abandoned.is_err(), "the caller's own timeout fires");
    assert!(conn.is_dirty());
    drop(conn);
    // The pool lets what is queued finish for SETTLE_TIMEOUT, then closes.
    wait_until("the stalled connection is closed", || {
        pool.statistics().closed_by_reason.dirty == 1
    })
    .await;
    let stats = pool.statistics();
    assert_eq!(stats.total_connections, 0, "{stats:?}");

    proxy.set_mode(Mode::PassThrough).unwrap();
    let conn = timeout(WAIT, pool.acquire())
        .await
        .expect("no hang")
        .unwrap();
    assert_ne!(backend_pid(&conn).await, pid, "a new backend");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_query_fails_fast_and_is_retired() {
    let app = "outage-reset";
    let (db, proxy, pool) = proxied(app).await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    let query = tokio::spawn(async move {
        let result = conn.query("SELECT pg_sleep(2)", &[]).await;
        (conn, result, Instant::now())
    });
    wait_until("the query sleeps", || is_sleeping(&db, pid)).await;
    let reset_at = Instant::now();
    assert_eq!(proxy.reset_all(), 1);
    let (conn, result, failed_at) = timeout(WAIT, query)
        .await
        .expect("the query does not hang")
        .unwrap();

    let error = result.expect_err("the query fails");
    assert_eq!(error.code(), None, "a connection error: {error:?}");
    let fails_after = failed_at.duration_since(reset_at);
    eprintln!("reset: the query failed {fails_after:?} after the reset: {error}");
    assert!(fails_after < MARGIN, "{fails_after:?}");
    drop(conn);
    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(
        (closed.broken + closed.dirty, stats.idle_connections),
        (1, 0),
        "the connection is closed, not returned: {stats:?}"
    );

    let conn = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&conn).await, pid, "a new backend");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}
