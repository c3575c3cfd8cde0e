//! A caller's code panics while it holds a pooled connection, against the
//! real server: outside a transaction the connection goes back and is
//! reused; inside one it is closed (never handed on dirty) and its
//! capacity comes back. Each test uses its own `application_name`, so the
//! server's backend counts are its own.

mod common;

use common::{assert_nothing_lost, connect, small_pool, start_db, url_with_app, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_holding_a_clean_connection_returns_it_for_reuse() {
    let db = start_db();
    let app = "panic-clean";
    let pool = connect(
        &url_with_app(&db.url(), app),
        small_pool().min_size(1).max_size(1),
    )
    .await;
    let first_pid = {
        let conn = pool.acquire().await.unwrap();
        common::backend_pid(&conn).await
    };

    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let conn = pool.acquire().await.expect("a connection");
            conn.simple_query("SELECT 1").await.expect("a query");
            panic!("the caller's own bug, outside any transaction");
        })
    };
    assert!(caller.await.expect_err("the caller panicked").is_panic());

    let conn = pool.acquire().await.expect("the capacity came back");
    assert_eq!(
        common::backend_pid(&conn).await,
        first_pid,
        "the clean connection was returned and reused"
    );
    drop(conn);
    assert_eq!(pool.statistics().closed_by_reason.dirty, 0);
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_transaction_never_hands_the_open_transaction_on_and_frees_its_capacity() {
    let db = start_db();
    let app = "panic-in-transaction";
    let pool = connect(
        &url_with_app(&db.url(), app),
        small_pool().min_size(0).max_size(1),
    )
    .await;

    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.expect("a connection");
            let pid: i32 = conn
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .expect("a query")
                .get(0);
            let tx = conn.transaction().await.expect("BEGIN");
            tx.simple_query("SELECT 1")
                .await
                .expect("inside the transaction");
            if pid > 0 {
                panic!("the caller's own bug, inside a transaction (backend {pid})");
            }
        })
    };
    let joined = caller.await.expect_err("the caller panicked");
    assert!(joined.is_panic());

    // The only connection's capacity is back: the next caller is served,
    // by a fresh session that is not inside anyone's transaction.
    let conn = pool.acquire().await.expect("the capacity came back");
    // Over the simple protocol: one statement, so outside a block its
    // transaction started with it.
    let messages = conn
        .simple_query("SELECT now() <> statement_timestamp()")
        .await
        .expect("a query");
    let in_block = messages.iter().any(|message| {
        matches!(message, pool_pg::tokio_postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some("t"))
    });
    assert!(!in_block, "a fresh session, not the abandoned transaction");
    drop(conn);
    let s = pool.statistics();
    eprintln!(
        "panic inside a transaction: closed as dirty {}, as broken {}",
        s.closed_by_reason.dirty, s.closed_by_reason.broken
    );
    wait_until("no backend is left idle in a transaction", || {
        db.query_scalar::<i64>(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
             AND state LIKE 'idle in transaction%'"
        ))
        .is_ok_and(|n| n == 0)
    })
    .await;
    assert_nothing_lost(&pool, &db, app).await;
}
