//! The session as the wire shows it, whatever path the caller's requests
//! take: row streams dropped part-way, `GenericClient` code, transactions
//! through the bare client, `COPY`.

mod common;

use std::time::Duration;

use common::{backend_pid, start_db, wait_until, MARGIN};
use futures_util::{SinkExt, StreamExt};
use pool_pg::tokio_postgres::GenericClient;
use pool_pg::{PgPool, PoolConfig};
use tokio::time::{timeout, Instant};

async fn pool(db: &pg_tempdb::TempDb, size: u32) -> PgPool {
    let config = PoolConfig::default().min_size(size).max_size(size);
    PgPool::connect(&db.url(), config)
        .await
        .expect("build the pool")
}

const NO_PARAMS: [i32; 0] = [];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_stream_dropped_after_its_first_row_is_drained_and_the_connection_reused() {
    let db = start_db();
    let pool = pool(&db, 1).await;
    let conn = pool.acquire().await.expect("acquire");
    let pid = backend_pid(&conn).await;
    let mut rows = Box::pin(
        conn.query_raw("SELECT generate_series(1, 500)", NO_PARAMS)
            .await
            .expect("query_raw"),
    );
    rows.next().await.expect("a row").expect("not an error");
    drop(rows);
    drop(conn);

    let conn = pool.acquire().await.expect("acquire again");
    assert_eq!(backend_pid(&conn).await, pid, "settled clean and reused");
    let n: i64 = conn
        .query_one("SELECT count(*) FROM generate_series(1, 3)", &[])
        .await
        .expect("the next caller's query")
        .get(0);
    assert_eq!(n, 3, "the next caller reads its own rows, not the old ones");
    assert_eq!(pool.statistics().connections_closed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stream_dropped_after_its_first_row_never_delays_the_next_caller() {
    let db = start_db();
    let pool = pool(&db, 2).await;
    let conn = pool.acquire().await.expect("acquire");
    let abandoned = backend_pid(&conn).await;
    let mut rows = Box::pin(
        conn.query_raw(
            "SELECT g, pg_sleep(0.01) FROM generate_series(1, 100000) g",
            NO_PARAMS,
        )
        .await
        .expect("query_raw"),
    );
    rows.next().await.expect("a row").expect("not an error");
    drop(rows);
    assert!(conn.is_dirty(), "rows are still coming");
    drop(conn);

    // The next caller gets the other connection at once, and its query is
    // not queued behind the abandoned one.
    let started = Instant::now();
    let conn = pool.acquire().await.expect("acquire");
    assert_ne!(backend_pid(&conn).await, abandoned);
    conn.query_one("SELECT 1", &[]).await.expect("query");
    assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
    drop(conn);

    // The abandoned one is closed once its settle time is up, and the
    // query is cancelled on the server instead of running for 1,000 s.
    wait_until("the abandoned connection is closed", || {
        pool.statistics().closed_by_reason.dirty == 1
    })
    .await;
    wait_until("the abandoned backend is gone", || {
        db.query_scalar::<i64>(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {abandoned}"
        ))
        .expect("look it up")
            == 0
    })
    .await;
}

/// Code written against tokio-postgres's `GenericClient`, which the pool
/// never sees as calls of its own.
async fn begin_and_insert(client: &impl GenericClient) {
    client.batch_execute("BEGIN").await.expect("BEGIN");
    client
        .execute("INSERT INTO items VALUES ($1)", &[&1_i32])
        .await
        .expect("INSERT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_client_code_that_leaves_a_transaction_open_gets_its_connection_closed() {
    let db = start_db();
    db.execute("CREATE TABLE items (id int)").expect("create");
    let pool = pool(&db, 1).await;
    let conn = pool.acquire().await.expect("acquire");
    let pid = backend_pid(&conn).await;
    begin_and_insert(&**conn).await;
    assert!(conn.is_dirty());
    drop(conn);

    let conn = pool.acquire().await.expect("acquire again");
    assert_ne!(backend_pid(&conn).await, pid, "closed, not reused");
    let stats = pool.statistics();
    assert_eq!(stats.closed_by_reason.dirty, 1, "{stats:?}");
    let rows: i64 = conn
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "the open transaction was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_on_the_bare_client_dropped_uncommitted_leaves_it_clean() {
    let db = start_db();
    db.execute("CREATE TABLE items (id int)").expect("create");
    let pool = pool(&db, 1).await;
    let mut conn = pool.acquire().await.expect("acquire");
    let pid = backend_pid(&conn).await;
    let tx = conn.client_mut().transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO items VALUES (1)", &[])
        .await
        .expect("INSERT");
    drop(tx); // tokio-postgres queues a ROLLBACK
    drop(conn);

    let conn = pool.acquire().await.expect("acquire again");
    assert_eq!(backend_pid(&conn).await, pid, "the ROLLBACK went through");
    assert_eq!(pool.statistics().connections_closed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_leave_the_connection_clean_and_counted() {
    let db = start_db();
    db.execute("CREATE TABLE items (id int)").expect("create");
    let pool = pool(&db, 1).await;
    let conn = pool.acquire().await.expect("acquire");
    let pid = backend_pid(&conn).await;
    let before = conn.statements();
    let sink = conn
        .copy_in("COPY items FROM STDIN")
        .await
        .expect("COPY FROM");
    let mut sink = Box::pin(sink);
    sink.send(bytes_of("1\n2\n3\n")).await.expect("send");
    let copied = sink.as_mut().finish().await.expect("finish");
    assert_eq!(copied, 3);
    // The ReadyForQuery after CommandComplete may still be on its way.
    wait_until("the COPY FROM's ReadyForQuery", || !conn.is_dirty()).await;
    let out = conn
        .copy_out("COPY items TO STDOUT")
        .await
        .expect("COPY TO");
    let chunks: Vec<_> = out.collect().await;
    assert_eq!(chunks.len(), 3);
    wait_until("the COPY TO's ReadyForQuery", || !conn.is_dirty()).await;
    assert_eq!(conn.statements() - before, 2, "two COPY commands");
    drop(conn);
    let conn = timeout(Duration::from_secs(5), pool.acquire())
        .await
        .expect("no hang")
        .expect("acquire again");
    assert_eq!(backend_pid(&conn).await, pid);
}

fn bytes_of(text: &str) -> std::io::Cursor<Vec<u8>> {
    std::io::Cursor::new(text.as_bytes().to_vec())
}
