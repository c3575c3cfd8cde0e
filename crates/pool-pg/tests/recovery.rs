//! A connection whose backend dies is noticed, logged, counted and never
//! handed out again; the pool replaces it.

mod common;

use std::time::Duration;

use common::{small_pool, start_db, wait_until};
use pool_pg::PgPool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_whose_backend_was_terminated_is_replaced() {
    let db = start_db();
    let config = small_pool()
        .max_size(1)
        .validation_skip_window(Duration::ZERO);
    let pool = PgPool::connect(&db.url(), config).await.unwrap();

    assert_eq!(db.terminate_backends().unwrap(), 1);
    // The connection task reads the server's FATAL message, logs and counts it.
    wait_until("the client notices the terminated backend", || {
        pool.manager().connection_errors() == 1
    })
    .await;

    let conn = pool.acquire().await.unwrap();
    let row = conn.query_one("SELECT 7::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);

    let stats = pool.statistics();
    assert_eq!(stats.connections_created, 2, "{stats:?}");
    assert_eq!(stats.connections_closed, 1, "{stats:?}");
    assert_eq!(stats.total_connections, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_terminated_while_borrowed_is_not_returned_to_the_pool() {
    let db = start_db();
    // min_size 0: nothing may reopen a connection behind the test's back.
    let pool = PgPool::connect(&db.url(), small_pool().min_size(0).max_size(1))
        .await
        .unwrap();
    let conn = pool.acquire().await.unwrap();

    assert_eq!(db.terminate_backends().unwrap(), 1);
    assert!(conn.simple_query("SELECT 1").await.is_err());
    wait_until("the client reports the connection closed", || {
        conn.is_closed()
    })
    .await;
    drop(conn);

    let stats = pool.statistics();
    assert_eq!(stats.idle_connections, 0, "{stats:?}");
    assert_eq!(stats.connections_closed, 1, "{stats:?}");
    assert!(stats.is_quiet(), "{stats:?}");

    let conn = pool.acquire().await.unwrap();
    assert!(conn.simple_query("SELECT 1").await.is_ok());
    assert_eq!(pool.statistics().connections_created, 2);
}
