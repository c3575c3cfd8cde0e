//! Leak detection against the real PostgreSQL: a connection held past a
//! short leak timeout is reported once with the line that acquired it, and
//! reported again ("unleaked") when it comes back.

mod common;

use std::time::Duration;

use common::{capture_logs, start_db, url_for, wait_until};
use pool_pg::{PgPool, PoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_held_past_the_leak_timeout_is_reported_with_its_line_and_comes_back() {
    let logs = capture_logs();
    let db = start_db();
    let config = PoolConfig::default()
        .min_size(1)
        .max_size(2)
        .leak_detection_timeout(Duration::from_millis(200));
    let pool = PgPool::connect(&url_for(&db, None, db.dbname()), config)
        .await
        .unwrap();
    let conn = pool.acquire().await.unwrap();
    let site = format!("{}:{}", file!(), line!() - 1);
    let pid: i32 = conn
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    wait_until("the leak is reported", || {
        pool.statistics().leaks_reported_total == 1
    })
    .await;
    let text = logs.text();
    let report = text
        .lines()
        .find(|line| line.contains("Potential connection leak detected") && line.contains(&site))
        .unwrap_or_else(|| panic!("no report naming {site}:\n{text}"));
    assert!(report.contains("held_duration_seconds"), "{report}");
    assert_eq!(pool.statistics().leaks_suspected, 1);

    // The report never touches the connection: it still works.
    let still: i32 = conn
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, pid);
    drop(conn);
    let text = logs.text();
    assert!(
        text.lines()
            .any(|line| line.contains("unleaked") && line.contains(&site)),
        "{text}"
    );
    assert_eq!(pool.statistics().leaks_suspected, 0);
    assert_eq!(pool.statistics().leaks_reported_total, 1, "reported once");
}
