//! Failover against a real primary and streaming standby (`TempCluster`):
//! the primary stops and the standby is promoted, or the primary is
//! demoted; a `read-write` multi-host pool follows the writable node.
//! And the other side of the same judgement: a write refused inside the
//! caller's *own* read-only transaction is not a demoted server, so it
//! neither evicts the pool nor costs the connection.
//!
//! Timings are measured, printed (`cargo test -- --nocapture` shows them)
//! and held to the goal of the issue: under 2 s from promotion to the first
//! successful write through the pool.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{connect, start_db, url_with_app, wait_until, PASSWORD, WAIT};
use pg_tempdb::{TempCluster, TempDb};
use pool_pg::tokio_postgres::error::SqlState;
use pool_pg::{PgPool, PoolConfig};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// The goal: promotion to first successful write.
const GOAL: Duration = Duration::from_secs(2);
/// The bound of one write (acquire + INSERT) before it counts as a hang.
const HANG: Duration = Duration::from_secs(3);

fn start_cluster() -> TempCluster {
    TempCluster::start(TempDb::builder().user("app").password(PASSWORD))
        .expect("start a primary and a streaming standby")
}

/// Settings for a pool that should fail over fast: short connects, quick
/// reconnect probes.
fn failover_pool() -> PoolConfig {
    PoolConfig::default()
        .min_size(2)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(1))
        .create_timeout(Duration::from_secs(1))
        .reconnect_delays(Duration::from_millis(50), Duration::from_millis(200))
}

/// Creates the table the writers use and waits until the standby has it.
fn create_table(cluster: &TempCluster) {
    cluster
        .primary()
        .execute(
            "CREATE TABLE writes (id bigserial PRIMARY KEY, writer int NOT NULL); \
             ALTER TABLE writes OWNER TO app",
        )
        .expect("create the table");
    let deadline = std::time::Instant::now() + WAIT;
    while cluster
        .standby()
        .query_scalar::<i64>("SELECT count(*) FROM pg_class WHERE relname = 'writes'")
        .expect("look for the table on the standby")
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the table never reached the standby"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One write and how it went.
#[derive(Debug)]
struct Write {
    started: Instant,
    ended: Instant,
    outcome: Result<(), String>,
}

/// A task that writes every 10 ms until `stop`, recording each write.
fn writer(
    pool: PgPool,
    id: i32,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Write>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let work = async {
                let conn = pool.acquire().await.map_err(|e| e.to_string())?;
                conn.execute("INSERT INTO writes (writer) VALUES ($1)", &[&id])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            };
            let outcome = timeout(HANG, work)
                .await
                .unwrap_or_else(|_| Err("hang".to_owned()));
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Write {
                    started,
                    ended: Instant::now(),
                    outcome,
                });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

fn first_success_after(log: &Mutex<Vec<Write>>, after: Instant) -> Option<Instant> {
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|w| w.ended > after && w.outcome.is_ok())
        .map(|w| w.ended)
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_primary_stops_and_the_standby_is_promoted_writes_succeed_within_two_seconds() {
    const WRITERS: i32 = 4;
    let logs = common::capture_logs();
    let cluster = start_cluster();
    create_table(&cluster);
    let url = format!(
        "{}&application_name=failover-promote",
        cluster.url("read-write")
    );
    let pool = connect(&url, failover_pool()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|id| writer(pool.clone(), id, Arc::clone(&stop), Arc::clone(&log)))
        .collect();
    let started = Instant::now();
    wait_until("the writers wrote to the primary", || {
        first_success_after(&log, started).is_some()
    })
    .await;

    let stopping = Instant::now();
    cluster.primary().stop().expect("stop the primary");
    let stopped = Instant::now();
    let promotion = cluster.promote().expect("promote the standby");
    // `promote()` returns once a psql poll saw the promotion, which may be
    // after the pool's first write: measure from the promote command.
    let promoting = Instant::now() - promotion;
    let promoted = Instant::now();
    wait_until("a write succeeded on the new primary", || {
        first_success_after(&log, promoted).is_some()
    })
    .await;
    let first_write = first_success_after(&log, stopped).expect("a write after the stop");
    // Keep writing for a while after recovery: nothing may fail any more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        timeout(WAIT, task)
            .await
            .expect("a writer hung")
            .expect("a writer panicked");
    }

    let from_promotion = first_write.saturating_duration_since(promoting);
    let from_stop = first_write.saturating_duration_since(stopping);
    println!(
        "failover: primary stop took {:?}, promotion (pg_ctl promote until pg_is_in_recovery() \
         is false) {promotion:?}; first write through the pool {from_promotion:?} after \
         pg_ctl promote, {from_stop:?} after the primary's stop began",
        stopped - stopping
    );
    assert!(
        from_promotion < GOAL,
        "the first write came {from_promotion:?} after the promotion (goal {GOAL:?})"
    );
    {
        // Writes in flight when the pool recovered may still fail (they
        // were turned away a moment before); none started after it may.
        let writes = log.lock().unwrap_or_else(PoisonError::into_inner);
        let late: Vec<_> = writes
            .iter()
            .filter(|w| w.started > first_write && w.outcome.is_err())
            .collect();
        let pool_log: Vec<String> = logs
            .text()
            .lines()
            .filter(|line| {
                line.contains("failover-promote")
                    || line.contains("pool_core::reconnect")
                    || line.contains("pool_core::connect")
            })
            .map(str::to_owned)
            .collect();
        assert!(
            late.is_empty(),
            "errors after the recovery (first write {first_write:?}): {late:?}\nthe pool's log:\n{}",
            pool_log.join("\n")
        );
        let hangs = writes
            .iter()
            .filter(|w| w.outcome.as_ref().is_err_and(|e| e == "hang"))
            .count();
        assert_eq!(hangs, 0, "writes hung: {writes:?}");
    }
    let port: i32 = pool
        .acquire()
        .await
        .expect("acquire after the failover")
        .query_one("SELECT inet_server_port()", &[])
        .await
        .expect("ask the server's port")
        .get(0);
    assert_eq!(
        port,
        i32::from(cluster.standby().port()),
        "not on the new primary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_is_left_at_its_first_refused_write_with_every_connection_evicted() {
    let cluster = start_cluster();
    create_table(&cluster);
    let url = format!(
        "{}&application_name=failover-demote",
        cluster.url("read-write")
    );
    let config = failover_pool().min_size(3);
    let pool = connect(&url, config).await;
    assert_eq!(pool.statistics().idle_connections, 3);

    cluster.promote().expect("promote the standby");
    cluster
        .demote(cluster.primary())
        .expect("demote the primary");
    let demoted = Instant::now();

    // The first write lands on a warm connection to the demoted node.
    let conn = pool.acquire().await.expect("acquire");
    let error = conn
        .execute("INSERT INTO writes (writer) VALUES (1)", &[])
        .await
        .expect_err("the demoted node refuses the write");
    assert_eq!(error.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    drop(conn);
    // The refusal is read with the ReadyForQuery after it, which can still be
    // on the wire when the error reaches the caller: wait for the verdict.
    wait_until("the returned connection is judged", || {
        pool.statistics().active_connections == 0
    })
    .await;
    let statistics = pool.statistics();
    assert_eq!(
        statistics.closed_by_reason.evicted, 3,
        "the refusing connection and both idle ones go at once: {statistics:?}"
    );

    // The next write connects anew, skips the read-only node, and succeeds.
    let conn = pool.acquire().await.expect("acquire after the eviction");
    conn.execute("INSERT INTO writes (writer) VALUES (2)", &[])
        .await
        .expect("write on the writable node");
    let recovered = demoted.elapsed();
    let port: i32 = conn
        .query_one("SELECT inet_server_port()", &[])
        .await
        .expect("ask the server's port")
        .get(0);
    assert_eq!(port, i32::from(cluster.standby().port()));
    println!("demotion: first successful write {recovered:?} after the demotion took effect");
}

/// The refused write cost no connection: nothing evicted, nothing closed.
fn assert_nothing_closed(pool: &PgPool) {
    let statistics = pool.statistics();
    assert_eq!(statistics.closed_by_reason.evicted, 0, "{statistics:?}");
    assert_eq!(statistics.connections_closed, 0, "{statistics:?}");
}

/// A pool on one server, the refused write, and what it cost.
async fn refused_write_on_one_server(
    app: &str,
    refuse: impl for<'a> FnOnce(
        &'a mut pool_pg::PgPooledConnection,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = pool_pg::tokio_postgres::Error> + Send + 'a>,
    >,
) -> (TempDb, PgPool, i32) {
    let db = start_db();
    db.execute("CREATE TABLE writes (id int)")
        .expect("create the table");
    let config = PoolConfig::default().min_size(2).max_size(2);
    let pool = connect(&url_with_app(&db.url(), app), config).await;
    let mut conn = pool.acquire().await.expect("acquire");
    let pid = common::backend_pid(&conn).await;
    let error = refuse(&mut conn).await;
    assert_eq!(
        error.code(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{error}"
    );
    drop(conn);
    // A request can still be in flight on the wire when the error reaches the
    // caller (the ReadyForQuery after it is not read yet); such a connection is
    // settled in the background before it is judged. Wait for that verdict.
    wait_until("the returned connection is judged", || {
        pool.statistics().active_connections == 0
    })
    .await;
    (db, pool, pid)
}

#[tokio::test]
async fn a_write_refused_inside_the_callers_own_read_only_transaction_keeps_the_connection() {
    let (_db, pool, pid) = refused_write_on_one_server("ro-builder", |conn| {
        Box::pin(async move {
            let tx = conn
                .build_transaction()
                .read_only(true)
                .start()
                .await
                .expect("BEGIN READ ONLY");
            let error = tx
                .execute("INSERT INTO writes VALUES (1)", &[])
                .await
                .expect_err("a read-only transaction refuses the write");
            tx.rollback().await.expect("ROLLBACK");
            error
        })
    })
    .await;
    assert_nothing_closed(&pool);
    assert_eq!(pool.statistics().idle_connections, 2);
    // The same session serves the next caller (FIFO idle queue: the other
    // connection first, then this one).
    let a = pool.acquire().await.expect("acquire");
    let b = pool.acquire().await.expect("acquire");
    let pids = [common::backend_pid(&a).await, common::backend_pid(&b).await];
    assert!(
        pids.contains(&pid),
        "connection {pid} was replaced: {pids:?}"
    );
}

#[tokio::test]
async fn a_write_refused_after_begin_read_only_sent_as_text_keeps_the_connection() {
    let (_db, pool, _) = refused_write_on_one_server("ro-text", |conn| {
        Box::pin(async move {
            conn.batch_execute("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await
                .expect("START TRANSACTION READ ONLY");
            let error = conn
                .execute("INSERT INTO writes VALUES (1)", &[])
                .await
                .expect_err("refused");
            conn.batch_execute("ROLLBACK").await.expect("ROLLBACK");
            error
        })
    })
    .await;
    assert_nothing_closed(&pool);
}

#[tokio::test]
async fn a_write_refused_after_set_transaction_read_only_keeps_the_connection() {
    let (_db, pool, _) = refused_write_on_one_server("ro-set", |conn| {
        Box::pin(async move {
            let tx = conn.transaction().await.expect("BEGIN");
            tx.batch_execute("SET TRANSACTION READ ONLY")
                .await
                .expect("SET TRANSACTION READ ONLY");
            let error = tx
                .execute("INSERT INTO writes VALUES (1)", &[])
                .await
                .expect_err("refused");
            drop(tx);
            error
        })
    })
    .await;
    assert_nothing_closed(&pool);
}

#[tokio::test]
async fn a_read_only_session_default_set_by_the_caller_closes_only_that_connection() {
    let (_db, pool, _) = refused_write_on_one_server("ro-session", |conn| {
        Box::pin(async move {
            conn.batch_execute("SET default_transaction_read_only = on")
                .await
                .expect("SET default_transaction_read_only");
            conn.execute("INSERT INTO writes VALUES (1)", &[])
                .await
                .expect_err("refused")
        })
    })
    .await;
    let statistics = pool.statistics();
    assert_eq!(statistics.closed_by_reason.evicted, 0, "{statistics:?}");
    assert_eq!(
        statistics.closed_by_reason.dirty, 1,
        "the read-only session must not reach the next caller: {statistics:?}"
    );
    assert_eq!(statistics.idle_connections, 1, "{statistics:?}");
}

#[tokio::test]
async fn a_write_refused_by_a_server_made_read_only_evicts_the_pool() {
    let (db, pool, _) = refused_write_on_one_server("ro-server", |conn| {
        Box::pin(async move {
            conn.execute("INSERT INTO writes VALUES (1)", &[])
                .await
                .expect("a write before the demotion");
            conn.execute(
                "SELECT set_config('default_transaction_read_only', 'on', false)",
                &[],
            )
            .await
            .expect("a session made read-only behind the pool's back");
            conn.execute("INSERT INTO writes VALUES (1)", &[])
                .await
                .expect_err("refused")
        })
    })
    .await;
    let statistics = pool.statistics();
    assert_eq!(
        statistics.closed_by_reason.evicted, 2,
        "a refusal the caller did not ask for is the server's: {statistics:?}"
    );
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_pool_leaves_a_standby_at_its_first_use_after_promotion() {
    let cluster = start_cluster();
    let url = format!(
        "{}&application_name=failover-promoted-reader",
        cluster.url("read-only")
    );
    let pool = connect(&url, failover_pool().min_size(2).max_size(2)).await;
    let conn = pool.acquire().await.expect("a reader");
    assert_eq!(
        common::server_port(&conn).await,
        i32::from(cluster.standby().port())
    );
    drop(conn);

    cluster.promote().expect("promote the standby");
    // The first read after the promotion still works (a read is a read),
    // and its ReadyForQuery carries in_hot_standby = off.
    let conn = pool.acquire().await.expect("a reader, before it knows");
    common::server_port(&conn).await;
    drop(conn);
    wait_until("the promoted server's connections are evicted", || {
        let statistics = pool.statistics();
        statistics.closed_by_reason.evicted == 2 && statistics.active_connections == 0
    })
    .await;

    // Both servers take writes now: a read-only pool has nowhere to go.
    let error = pool
        .acquire_timeout(Duration::from_millis(500))
        .await
        .expect_err("no read-only server is left");
    assert!(
        error.to_string().contains("not read only"),
        "the connects say why: {error}"
    );
}
