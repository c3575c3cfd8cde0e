//! Recycling against the real server: statements are counted for
//! `max_queries`; a connection returned mid-request or inside a transaction
//! is closed, never handed out; a properly ended transaction leaves the
//! connection clean and reused; terminated idle connections never reach a
//! caller.

mod common;

use std::time::Duration;

use common::{capture_logs, small_pool, start_db, wait_until, MARGIN};
use pg_tempdb::TempDb;
use pool_pg::backend::{Manager, Verdict};
use pool_pg::defaults::DEFAULT_APPLICATION_NAME;
use pool_pg::tokio_postgres::{GenericClient, IsolationLevel, SimpleQueryMessage};
use pool_pg::{PgConnection, PgPool, PoolConfig};
use tokio::time::{timeout, Instant};

/// One connection at most, so "the next connection" is unambiguous.
fn one_connection() -> PoolConfig {
    small_pool().min_size(1).max_size(1)
}

async fn backend_pid(conn: &PgConnection) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("SELECT pg_backend_pid()")
        .get(0)
}

/// Whether the session is inside a transaction block, asked over the
/// simple protocol (one statement, so outside a block its transaction
/// started with it: `now() = statement_timestamp()`).
async fn in_transaction(conn: &PgConnection) -> bool {
    let messages = conn
        .simple_query(
            "SELECT now() <> statement_timestamp() \
             OR pg_current_xact_id_if_assigned() IS NOT NULL",
        )
        .await
        .expect("ask whether a transaction is open");
    let value = messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    value.as_deref() == Some("t")
}

/// How many backends of the pool are idle inside a transaction block.
fn idle_in_transaction(db: &TempDb) -> i64 {
    db.query_scalar(&format!(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = '{DEFAULT_APPLICATION_NAME}' \
         AND state LIKE 'idle in transaction%'"
    ))
    .expect("count backends idle in a transaction")
}

async fn count_items(conn: &PgConnection) -> i64 {
    conn.query_one("SELECT count(*) FROM items", &[])
        .await
        .expect("count the items")
        .get(0)
}

fn backend_exists(db: &TempDb, pid: i32) -> bool {
    db.query_scalar::<i64>(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
    ))
    .expect("look the backend up")
        > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_sent_through_the_connection_are_counted() {
    let db = start_db();
    // Every checkout validates: the pool's own SELECT 1 must not count.
    let config = one_connection().validation_skip_window(Duration::ZERO);
    let pool = PgPool::connect(&db.url(), config).await.unwrap();

    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(conn.statements(), 0);
    conn.query("SELECT 1", &[]).await.unwrap();
    conn.execute("SELECT 1", &[]).await.unwrap();
    conn.simple_query("SELECT 1").await.unwrap();
    conn.batch_execute("SELECT 1; SELECT 2").await.unwrap();
    assert_eq!(conn.statements(), 5);
    // Preparing is not a statement; running the prepared one is.
    let statement = conn.prepare("SELECT $1::int4").await.unwrap();
    conn.query_one(&statement, &[&7_i32]).await.unwrap();
    assert_eq!(conn.statements(), 6);
    // The server's own count: no text is read.
    conn.batch_execute("SELECT ';'; /* ; */ SELECT $$;$$ -- ;\n;")
        .await
        .unwrap();
    assert_eq!(conn.statements(), 8);
    let tx = conn.transaction().await.unwrap();
    tx.execute("SELECT 1", &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(conn.statements(), 11, "BEGIN, the statement, COMMIT");
    // Every path is counted: the bare client, generic code, a failure.
    conn.client().query("SELECT 1", &[]).await.unwrap();
    generic_select(&**conn).await;
    conn.batch_execute("SELECT 1/0").await.unwrap_err();
    assert_eq!(
        conn.statements(),
        14,
        "the client, GenericClient, the error"
    );
    assert_eq!(
        pool.manager().verdict(&mut conn),
        Verdict::Reuse { statements: 14 },
        "the manager's verdict carries the count for max_queries"
    );
    drop(conn);

    let conn = pool.acquire().await.unwrap();
    assert_eq!(conn.statements(), 14, "validated, not counted");
    let stats = pool.statistics();
    assert!(stats.validations >= 1, "{stats:?}");
    assert_eq!(stats.connections_closed, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_ran_max_queries_statements_is_retired_on_return() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), one_connection().max_queries(3))
        .await
        .unwrap();

    let conn = pool.acquire().await.unwrap();
    let first = backend_pid(&conn).await;
    conn.execute("SELECT 1", &[]).await.unwrap();
    drop(conn); // 2 statements: kept

    let conn = pool.acquire().await.unwrap();
    assert_eq!(backend_pid(&conn).await, first, "reused below the limit");
    drop(conn); // 3 statements: retired
    let stats = pool.statistics();
    assert_eq!(stats.closed_by_reason.max_queries, 1, "{stats:?}");
    assert_eq!(stats.connections_closed, 1, "{stats:?}");

    let conn = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&conn).await, first, "a fresh backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_query_is_closed_and_its_query_cancelled() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), small_pool().max_size(2))
        .await
        .unwrap();

    let conn = pool.acquire().await.unwrap();
    let abandoned = backend_pid(&conn).await;
    let slow = conn.query("SELECT pg_sleep(30)", &[]);
    assert!(timeout(Duration::from_millis(200), slow).await.is_err());
    assert!(conn.is_dirty());
    drop(conn);

    let started = Instant::now();
    let conn = timeout(MARGIN * 2, pool.acquire())
        .await
        .expect("the next acquire does not wait for the abandoned query")
        .unwrap();
    assert!(started.elapsed() < MARGIN * 2);
    assert_ne!(backend_pid(&conn).await, abandoned);
    assert!(!conn.is_dirty());
    // It was given SETTLE_TIMEOUT to finish, then closed, never reused.
    wait_until("the abandoned connection is closed", || {
        pool.statistics().closed_by_reason.dirty == 1
    })
    .await;
    assert_eq!(pool.statistics().idle_connections, 0);

    // Closing sent a cancel request: the server stops the query at once
    // instead of sleeping out its 30 s.
    wait_until("the abandoned backend exits", || {
        !backend_exists(&db, abandoned)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_left_inside_a_transaction_is_closed_never_reused() {
    let logs = capture_logs();
    let db = start_db();
    let pool = PgPool::connect(&db.url(), one_connection()).await.unwrap();

    let ways_to_leave_a_transaction_open = [
        "batch_execute BEGIN",
        "execute START TRANSACTION",
        "simple_query with a comment",
        "query BEGIN",
        "a batch that failed after BEGIN",
        "a prepared BEGIN",
    ];
    for (done, way) in ways_to_leave_a_transaction_open.iter().enumerate() {
        let conn = pool.acquire().await.unwrap();
        let pid = backend_pid(&conn).await;
        assert!(!in_transaction(&conn).await, "{way}: starts clean");
        match *way {
            "batch_execute BEGIN" => {
                conn.batch_execute("BEGIN").await.unwrap();
                conn.query("SELECT txid_current()", &[]).await.unwrap();
                assert!(in_transaction(&conn).await, "the probe sees it");
            }
            "execute START TRANSACTION" => {
                let begin = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ";
                conn.execute(begin, &[]).await.unwrap();
                conn.batch_execute("CREATE TEMP TABLE scratch (id int)")
                    .await
                    .unwrap();
            }
            "simple_query with a comment" => {
                conn.simple_query("/* app */ begin; SELECT 1")
                    .await
                    .unwrap();
            }
            "query BEGIN" => {
                conn.query("BEGIN", &[]).await.unwrap();
            }
            "a batch that failed after BEGIN" => {
                let failed = conn.batch_execute("BEGIN; SELECT 1/0; COMMIT").await;
                assert!(failed.is_err());
            }
            "a prepared BEGIN" => {
                let begin = conn.prepare("BEGIN").await.unwrap();
                conn.execute(&begin, &[]).await.unwrap();
            }
            other => unreachable!("{other}"),
        }
        assert!(conn.is_dirty(), "{way}");
        drop(conn);

        // One connection: the next caller waits until the return settled.
        let conn = pool.acquire().await.unwrap();
        let stats = pool.statistics();
        assert_eq!(
            stats.closed_by_reason.dirty,
            done as u64 + 1,
            "{way}: {stats:?}"
        );
        assert_ne!(backend_pid(&conn).await, pid, "{way}: a fresh backend");
        assert!(
            !in_transaction(&conn).await,
            "{way}: not inside a transaction"
        );
        conn.batch_execute("BEGIN; COMMIT").await.unwrap();
        assert!(!conn.is_dirty(), "{way}");
    }

    wait_until("no backend of the pool is idle in a transaction", || {
        idle_in_transaction(&db) == 0
    })
    .await;
    let text = logs.text();
    assert!(
        text.contains("WARN")
            && text.contains("returned inside a transaction: COMMIT or ROLLBACK it"),
        "the misuse is logged with the fix: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_committed_rolled_back_or_dropped_leaves_the_connection_clean() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), one_connection()).await.unwrap();
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;
    conn.batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    drop(conn);

    // Committed: kept. (In a spawned task: the futures are `Send`.)
    let committer = pool.clone();
    tokio::spawn(async move {
        let mut conn = committer.acquire().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        tx.execute("INSERT INTO items VALUES (1)", &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(!conn.is_dirty());
    })
    .await
    .unwrap();

    // Rolled back: undone.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(backend_pid(&conn).await, pid);
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO items VALUES (2)", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(!conn.is_dirty());
    drop(conn);

    // Dropped uncommitted: tokio-postgres queues a ROLLBACK, which runs
    // before anything the next caller sends.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(backend_pid(&conn).await, pid);
    let mut tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await
        .unwrap();
    let savepoint = tx.transaction().await.unwrap();
    savepoint
        .execute("INSERT INTO items VALUES (3)", &[])
        .await
        .unwrap();
    drop(savepoint);
    tx.execute("INSERT INTO items VALUES (4)", &[])
        .await
        .unwrap();
    drop(tx);
    // The ROLLBACK is queued: the return lets it through before judging.
    drop(conn);

    // Ended in SQL: the server's status says so.
    let conn = pool.acquire().await.unwrap();
    assert_eq!(
        backend_pid(&conn).await,
        pid,
        "the dropped transaction left it clean"
    );
    assert!(!in_transaction(&conn).await);
    assert_eq!(count_items(&conn).await, 1, "only the committed row");
    conn.batch_execute("BEGIN; INSERT INTO items VALUES (5); COMMIT")
        .await
        .unwrap();
    conn.batch_execute("BEGIN").await.unwrap();
    conn.execute("INSERT INTO items VALUES (6)", &[])
        .await
        .unwrap();
    conn.simple_query("ROLLBACK").await.unwrap();
    assert!(!conn.is_dirty());
    drop(conn);

    let conn = pool.acquire().await.unwrap();
    assert_eq!(backend_pid(&conn).await, pid);
    assert_eq!(count_items(&conn).await, 2);
    let stats = pool.statistics();
    assert_eq!(stats.closed_by_reason.dirty, 0, "{stats:?}");
    assert_eq!(stats.connections_closed, 0, "{stats:?}");
}

/// Code written against tokio-postgres's `GenericClient`.
async fn generic_select(client: &impl GenericClient) {
    client
        .query_one("SELECT 1", &[])
        .await
        .expect("SELECT 1 through GenericClient");
}

/// Builds a pool of three warm connections and terminates their backends.
async fn pool_with_three_terminated_backends(config: PoolConfig) -> (TempDb, PgPool) {
    let db = start_db();
    let config = config.min_size(3).max_size(3);
    let pool = PgPool::connect(&db.url(), config)
        .await
        .expect("build a pool of three");
    assert_eq!(
        db.terminate_backends_of(DEFAULT_APPLICATION_NAME)
            .expect("terminate the pool's backends"),
        3
    );
    (db, pool)
}

async fn twenty_rounds_succeed(pool: &PgPool) {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_idle_connections_never_reach_a_caller_when_every_checkout_validates() {
    let config = small_pool().validation_skip_window(Duration::ZERO);
    let (_db, pool) = pool_with_three_terminated_backends(config).await;

    // At once: some terminations are not even noticed by the client yet.
    twenty_rounds_succeed(&pool).await;

    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(closed.broken + closed.validation_failed, 3, "{stats:?}");
    assert_eq!(stats.acquire_errors + stats.total_timeouts, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_idle_connections_never_reach_a_caller_once_the_pool_noticed() {
    let (_db, pool) = pool_with_three_terminated_backends(small_pool()).await;
    wait_until("the client notices all three terminations", || {
        pool.manager().connection_errors() == 3
    })
    .await;

    // Recently used connections skip validation; the free closed-check
    // catches the first terminated one, and from then on the others are
    // suspect: validated before use, or swept by maintenance at once.
    twenty_rounds_succeed(&pool).await;

    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(closed.broken + closed.validation_failed, 3, "{stats:?}");
    assert_eq!(stats.acquire_errors + stats.total_timeouts, 0, "{stats:?}");
}
