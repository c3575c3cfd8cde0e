//! Outages of the real server, one test each: backends terminated idle or
//! busy, a frozen postmaster, a frozen backend, no free connection slots, a
//! server turned read-only. Restarts and reconnection are in
//! `outage_reconnect.rs`; network faults in `outage_network.rs`.
//! Every test ends with promise 1, "nothing is lost" (see
//! `assert_nothing_lost` in `common`): the pool is quiet and the server shows
//! exactly the backends the pool counts open. Each test uses its own
//! `application_name`, so those counts are its own.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    assert_nothing_lost, backend_pid, connect, is_sleeping, small_pool, start_db, url_with_app,
    wait_until, StateLog, DEMAND_EVERY, MARGIN, WAIT,
};
use pg_tempdb::TempDb;
use pool_pg::detail::ConnectionError;
use pool_pg::tokio_postgres::error::SqlState;
use pool_pg::tokio_postgres::{Client, NoTls};
use pool_pg::{Phase, PoolConfig, PoolState};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_whose_backends_were_terminated_are_replaced_without_an_error() {
    let db = start_db();
    let app = "outage-terminate-idle";
    let config = small_pool()
        .min_size(3)
        .max_size(3)
        .validation_skip_window(Duration::ZERO);
    let pool = connect(&url_with_app(&db.url(), app), config).await;

    assert_eq!(db.terminate_backends_of(app).unwrap(), 3);

    // At once, before the client noticed every termination.
    for round in 0..20_i32 {
        let conn = pool
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let row = conn
            .query_one("SELECT $1::int4", &[&round])
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(row.get::<_, i32>(0), round);
    }
    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(closed.broken + closed.validation_failed, 3, "{stats:?}");
    assert_eq!(stats.acquire_errors + stats.total_timeouts, 0, "{stats:?}");
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_on_a_terminated_busy_backend_fails_and_its_connection_is_not_returned() {
    let db = start_db();
    let app = "outage-terminate-busy";
    let pool = connect(
        &url_with_app(&db.url(), app),
        small_pool().min_size(1).max_size(2),
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    let query = tokio::spawn(async move {
        let result = conn.query("SELECT pg_sleep(5)", &[]).await;
        (conn, result, Instant::now())
    });
    wait_until("the query sleeps", || is_sleeping(&db, pid)).await;
    let terminating = Instant::now();
    let terminated = db
        .execute(&format!("SELECT pg_terminate_backend({pid}, 5000)"))
        .unwrap();
    assert_eq!(terminated, "t");
    let (conn, result, failed_at) = timeout(WAIT, query)
        .await
        .expect("the query does not hang")
        .unwrap();

    let error = result.expect_err("the query on a terminated backend fails");
    assert!(
        error.code() == Some(&SqlState::ADMIN_SHUTDOWN) || error.is_closed(),
        "{error:?}"
    );
    let fails_after = failed_at.duration_since(terminating);
    eprintln!(
        "terminated busy backend: the query failed {fails_after:?} after terminating: {:?}",
        error
            .as_db_error()
            .map(|db| (db.code().code(), db.message()))
    );
    assert!(
        fails_after < MARGIN,
        "failed {fails_after:?} after terminating"
    );

    drop(conn);
    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(
        (closed.broken + closed.dirty, stats.idle_connections),
        (1, 0),
        "the connection is closed, not returned: {stats:?}"
    );

    let conn = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&conn).await, pid, "a fresh backend");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postmaster_bounds_acquire_while_existing_connections_keep_serving() {
    let db = start_db();
    let (warm_app, cold_app) = ("outage-frozen-warm", "outage-frozen-cold");
    let warm = connect(
        &url_with_app(&db.url(), warm_app),
        small_pool()
            .min_size(1)
            .validation_skip_window(Duration::ZERO),
    )
    .await;
    let acquire_timeout = Duration::from_secs(1);
    let cold_config = PoolConfig::default()
        .min_size(0)
        .max_size(2)
        .acquire_timeout(acquire_timeout)
        .create_timeout(Duration::from_millis(600))
        .reconnect_delays(Duration::from_millis(100), Duration::from_millis(400));
    let cold = connect(&url_with_app(&db.url(), cold_app), cold_config).await;

    db.pause().unwrap();
    let started = Instant::now();
    let cold_result = timeout(WAIT, cold.acquire()).await;
    let elapsed = started.elapsed();
    // Backends are processes of their own: a frozen postmaster does not
    // freeze them, and the warm pool's validated connection still answers.
    let warm_result = timeout(WAIT, async {
        let conn = warm.acquire().await?;
        Ok::<i32, Box<dyn std::error::Error + Send + Sync>>(
            conn.query_one("SELECT 1", &[]).await?.get(0),
        )
    })
    .await;
    db.resume().unwrap();

    let error = cold_result
        .expect("acquire on a frozen server never hangs")
        .expect_err("no connection can be opened");
    eprintln!("frozen postmaster: acquire failed after {elapsed:?}: {error}");
    assert!(error.is_unavailable() || error.is_timeout(), "{error:?}");
    assert!(
        elapsed < acquire_timeout + MARGIN,
        "{elapsed:?} for acquire_timeout {acquire_timeout:?}"
    );
    let one = warm_result
        .expect("the warm pool does not hang")
        .expect("the warm pool keeps serving");
    assert_eq!(one, 1);

    let deadline = Instant::now() + WAIT;
    while let Err(error) = cold.acquire().await {
        assert!(Instant::now() < deadline, "never recovered: {error}");
        tokio::time::sleep(DEMAND_EVERY).await;
    }
    assert_nothing_lost(&warm, &db, warm_app).await;
    assert_nothing_lost(&cold, &db, cold_app).await;
}

/// A process stopped with SIGSTOP, continued with SIGCONT when this is
/// dropped (also when the test fails). Only for a backend of the test's
/// own pool.
struct Frozen(i32);

impl Frozen {
    fn freeze(pid: i32) -> Self {
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("run kill -STOP");
        assert!(status.success(), "kill -STOP {pid}: {status}");
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let pid = self.0.to_string();
        match Command::new("kill").args(["-CONT", &pid]).status() {
            Ok(status) if status.success() => {}
            other => eprintln!("could not continue backend {pid}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_idle_backend_fails_validation_within_its_timeout_and_the_caller_gets_another() {
    let validation_timeout = Duration::from_millis(300);
    let skip_window = Duration::from_millis(50);
    let db = start_db();
    let app = "outage-frozen-backend";
    let config = PoolConfig::default()
        .min_size(2)
        .max_size(3)
        .acquire_timeout(Duration::from_secs(3))
        .create_timeout(Duration::from_secs(2))
        .validation_timeout(validation_timeout)
        .validation_skip_window(skip_window);
    let pool = connect(&url_with_app(&db.url(), app), config).await;
    let idle = pool.acquire().await.unwrap();
    let busy = pool.acquire().await.unwrap();
    let frozen_pid = backend_pid(&idle).await;
    let busy_pid = backend_pid(&busy).await;
    drop(idle);
    let frozen = Frozen::freeze(frozen_pid);

    // Another caller keeps querying on its own connection meanwhile.
    let keep_going = Arc::new(AtomicBool::new(true));
    let served = {
        let keep_going = Arc::clone(&keep_going);
        tokio::spawn(async move {
            let mut served = Vec::new();
            while keep_going.load(Ordering::Relaxed) {
                let row = busy.query_one("SELECT 1", &[]).await;
                served.push((Instant::now(), row.map(|row| row.get::<_, i32>(0))));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            drop(busy);
            served
        })
    };
    // Idle past the skip window: the next checkout validates it.
    tokio::time::sleep(skip_window * 2).await;

    let started = Instant::now();
    let conn = timeout(WAIT, pool.acquire())
        .await
        .expect("acquire never hangs on a frozen backend")
        .expect("the caller gets another connection");
    let took = started.elapsed();
    let ended = Instant::now();
    keep_going.store(false, Ordering::Relaxed);
    let served = timeout(WAIT, served).await.expect("ends").unwrap();

    eprintln!("frozen backend: acquire took {took:?} (validation_timeout {validation_timeout:?})");
    let pid = backend_pid(&conn).await;
    assert!(pid != frozen_pid && pid != busy_pid, "a new backend: {pid}");
    assert!(
        took >= validation_timeout && took < validation_timeout + MARGIN,
        "{took:?}"
    );
    let stats = pool.statistics();
    assert_eq!(stats.validation_failures, 1, "{stats:?}");
    assert_eq!(stats.closed_by_reason.validation_failed, 1, "{stats:?}");
    let last_error = stats.last_error.clone().unwrap_or_default();
    assert!(
        last_error.contains("validation timed out after 300 ms"),
        "{last_error}"
    );
    assert!(
        served.iter().all(|(_, row)| matches!(row, Ok(1))),
        "{served:?}"
    );
    let meanwhile = served
        .iter()
        .filter(|(at, _)| *at > started && *at < ended)
        .count();
    assert!(meanwhile >= 1, "served during the validation: {served:?}");

    drop(conn);
    drop(frozen);
    assert_nothing_lost(&pool, &db, app).await;
}

/// Opens plain client connections (not the pool's) until the server
/// refuses one; returns them (keep them to keep the slots) and the refusal.
async fn hog_every_slot(
    db: &TempDb,
) -> (
    Vec<(Client, JoinHandle<()>)>,
    pool_pg::tokio_postgres::Error,
) {
    let mut hogs = Vec::new();
    loop {
        let mut config = db.config();
        config.application_name("outage-hog");
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                let task = tokio::spawn(async move {
                    // Ends when the client is dropped; an error is of no
                    // interest to the test.
                    drop(connection.await);
                });
                hogs.push((client, task));
                assert!(hogs.len() <= 5, "the server never refused");
            }
            Err(refusal) => return (hogs, refusal),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_connection_slots_is_a_transient_error_and_the_pool_keeps_serving() {
    let db = TempDb::builder().max_connections(5).start().unwrap();
    let app = "outage-no-slots";
    let acquire_timeout = Duration::from_secs(1);
    let config = PoolConfig::default()
        .min_size(2)
        .max_size(4)
        .acquire_timeout(acquire_timeout)
        .create_timeout(Duration::from_secs(1));
    let pool = connect(&url_with_app(&db.url(), app), config).await;
    let states = StateLog::start(&pool);

    let (hogs, refusal) = hog_every_slot(&db).await;
    assert_eq!(hogs.len(), 3, "5 slots, 2 of them the pool's");
    assert_eq!(refusal.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));

    // A third connection cannot be opened: the caller times out in the
    // connect phase, with the refusal as the cause.
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();
    let started = Instant::now();
    let error = pool.acquire().await.unwrap_err();
    let took = started.elapsed();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.timeout_phase(), Some(Phase::Connect), "{error}");
    assert!(took < acquire_timeout + MARGIN, "{took:?}");
    let cause = error
        .connection_error()
        .and_then(ConnectionError::backend)
        .expect("the refusal is the cause");
    assert_eq!(cause.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
    assert!(cause.is_retryable(), "53300 is transient: {cause}");
    let last_error = pool.statistics().last_error.unwrap_or_default();
    assert!(
        last_error.contains("too many clients") && last_error.contains("53300"),
        "{last_error}"
    );

    // A caller retrying the connect is served by a connection another one
    // returns.
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(drop) })
    };
    let failures = pool.statistics().connection_failures;
    wait_until("the waiter retries the connect", || {
        pool.statistics().connection_failures > failures
    })
    .await;
    drop(first);
    timeout(WAIT, waiter)
        .await
        .expect("the waiter is served")
        .unwrap()
        .expect("by the returned connection");
    drop(second);
    // Two callers in turn, on the pool's own connections.
    for caller in 0..2 {
        let conn = pool.acquire().await.unwrap();
        let row = conn.query_one("SELECT 1", &[]).await;
        assert!(row.is_ok(), "caller {caller}: {row:?}");
    }
    assert_ne!(pool.state(), PoolState::Recovering);

    // The slots come free: the pool grows to max_size.
    for (client, task) in hogs {
        drop(client);
        timeout(WAIT, task).await.expect("the hog closes").unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.acquire().await.expect("the pool can grow again"));
    }
    assert_eq!(pool.statistics().total_connections, 4);
    drop(held);

    let seen = states.seen();
    assert!(
        !seen.contains(&PoolState::Recovering),
        "never RECOVERING while it had connections: {seen:?}"
    );
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_as_read_only_evicts_every_connection_to_that_server() {
    let db = start_db();
    let app = "outage-read-only";
    let pool = connect(
        &url_with_app(&db.url(), app),
        small_pool().min_size(0).max_size(2),
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    let other = pool.acquire().await.unwrap();
    conn.batch_execute("CREATE TABLE marks (id int)")
        .await
        .unwrap();
    let pid = backend_pid(&conn).await;
    let idle_pid = backend_pid(&other).await;
    drop(other); // idle: it never sees the refusal itself

    db.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        .unwrap();
    db.execute("SELECT pg_reload_conf()").unwrap();
    // The reload reaches the session asynchronously.
    let deadline = Instant::now() + WAIT;
    loop {
        let row = conn
            .query_one("SHOW default_transaction_read_only", &[])
            .await
            .unwrap();
        if row.get::<_, String>(0) == "on" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session never saw the reload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let error = conn
        .execute("INSERT INTO marks VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{error:?}"
    );
    assert!(conn.is_dirty());
    drop(conn);
    // The refusal is read with the ReadyForQuery after it, which can still be
    // on the wire when the error reaches the caller: wait for the verdict.
    wait_until("the returned connection is judged", || {
        pool.statistics().active_connections == 0
    })
    .await;
    // A read-only server is a demoted primary for every session on it: the
    // idle connection goes too, at once, not after its own failed write.
    let stats = pool.statistics();
    assert_eq!(stats.closed_by_reason.evicted, 2, "{stats:?}");
    assert_eq!(stats.closed_by_reason.dirty, 0, "{stats:?}");
    assert_eq!(stats.idle_connections, 0, "{stats:?}");

    let conn = pool.acquire().await.unwrap();
    let new_pid = backend_pid(&conn).await;
    assert!(new_pid != pid && new_pid != idle_pid, "a new backend");
    let count: i64 = conn
        .query_one("SELECT count(*) FROM marks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "reads still work");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}
