//! Queries through the pooled connection, alone and from many tasks.

mod common;

use common::{small_pool, start_db};
use pool_pg::defaults::DEFAULT_APPLICATION_NAME;
use pool_pg::PgPool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_transactions_run_through_the_guard() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), small_pool()).await.unwrap();

    let mut conn = pool.acquire().await.unwrap();
    let row = conn.query_one("SELECT $1::int + 1", &[&41]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);

    conn.batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO items VALUES (1), (2)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let count: i64 = conn
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);

    drop(conn);
    let stats = pool.statistics();
    assert!(stats.is_quiet(), "{stats:?}");
    assert_eq!(stats.idle_connections, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_tasks_share_a_small_pool_and_it_ends_quiet() {
    const TASKS: i32 = 40;
    let db = start_db();
    let pool = PgPool::connect(&db.url(), small_pool().max_size(3))
        .await
        .unwrap();

    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let conn = pool.acquire().await.map_err(|e| e.to_string())?;
                let row = conn
                    .query_one("SELECT $1::int * 2 FROM pg_sleep(0.005)", &[&i])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<i32, String>(row.get(0))
            })
        })
        .collect();
    for (i, task) in (0..TASKS).zip(tasks) {
        assert_eq!(task.await.unwrap(), Ok(i * 2));
    }

    let stats = pool.statistics();
    assert!(stats.is_quiet(), "{stats:?}");
    assert!(stats.total_connections <= 3, "{stats:?}");
    assert_eq!(stats.total_acquisitions, TASKS as u64, "{stats:?}");
    assert_eq!(stats.total_releases, TASKS as u64, "{stats:?}");
    assert_eq!(stats.total_timeouts + stats.acquire_errors, 0, "{stats:?}");
    assert!(db.count_connections(DEFAULT_APPLICATION_NAME).unwrap() <= 3);
}
