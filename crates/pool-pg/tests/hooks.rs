//! The user's keep-or-discard hooks against a real server:
//! `before_acquire` on every idle connection about to be lent,
//! `after_release` on every clean connection coming back; a hook that says
//! no closes its connection, a hook that fails or leaves a transaction open
//! is counted, and the caller is always served.

mod common;

use common::{backend_pid, start_db, wait_until};
use pg_tempdb::TempDb;
use pool_pg::backend::{KeepFuture, PgManager};
use pool_pg::{PgConfig, PgConnection, PgPool};

/// A pool of one warm connection (two at most) on `db`, with `hooks`.
async fn pool(db: &TempDb, hooks: impl FnOnce(PgManager) -> PgManager) -> PgPool {
    let config = PgConfig::from_vars([
        ("DATABASE_URL", db.url().as_str()),
        ("POOL_MIN_SIZE", "1"),
        ("POOL_MAX_SIZE", "2"),
    ])
    .expect("the configuration");
    PgPool::from_manager(hooks(config.manager()), config.pool)
        .await
        .expect("build the pool")
}

/// Keeps a session only if it holds no advisory lock.
fn no_advisory_lock(conn: &mut PgConnection) -> KeepFuture<'_> {
    Box::pin(async move {
        let row = conn
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0) == 0)
    })
}

/// Waits until nothing is checked out or settling.
async fn all_returned(pool: &PgPool) {
    wait_until("every connection is back or closed", || {
        pool.statistics().active_connections == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_acquire_lends_a_clean_session_and_discards_one_holding_a_lock() {
    let db = start_db();
    let pool = pool(&db, |manager| manager.before_acquire(no_advisory_lock)).await;

    let conn = pool.acquire().await.expect("acquire");
    let first = backend_pid(&conn).await;
    drop(conn);
    let conn = pool.acquire().await.expect("acquire again");
    assert_eq!(
        backend_pid(&conn).await,
        first,
        "a clean session is lent again"
    );
    conn.batch_execute("SELECT pg_advisory_lock(42)")
        .await
        .expect("take a session-level lock");
    drop(conn);
    all_returned(&pool).await;

    let conn = pool.acquire().await.expect("served by another connection");
    assert_ne!(
        backend_pid(&conn).await,
        first,
        "the locked session is not lent"
    );
    drop(conn);
    let statistics = pool.statistics();
    assert_eq!(statistics.closed_by_reason.discarded, 1, "{statistics:?}");
    assert_eq!(pool.manager().hook_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_before_acquire_is_counted_and_the_caller_still_served() {
    let db = start_db();
    let pool = pool(&db, |manager| {
        manager.before_acquire(|conn| {
            Box::pin(async move {
                conn.batch_execute("SELECT * FROM no_such_table").await?;
                Ok(true)
            })
        })
    })
    .await;
    let conn = pool
        .acquire()
        .await
        .expect("a fresh connection, not checked");
    drop(conn);
    assert_eq!(pool.manager().hook_failures(), 1);
    assert_eq!(pool.statistics().closed_by_reason.discarded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_release_discards_a_session_left_with_a_temporary_table() {
    let db = start_db();
    let pool = pool(&db, |manager| {
        manager.after_release(|conn| {
            Box::pin(async move {
                let row = conn
                    .query_one(
                        "SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'",
                        &[],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0) == 0)
            })
        })
    })
    .await;

    let conn = pool.acquire().await.expect("acquire");
    let first = backend_pid(&conn).await;
    drop(conn);
    all_returned(&pool).await;
    let conn = pool.acquire().await.expect("acquire again");
    assert_eq!(backend_pid(&conn).await, first, "a clean session is kept");
    conn.batch_execute("CREATE TEMPORARY TABLE scratch (id int)")
        .await
        .expect("a temporary table");
    drop(conn);
    all_returned(&pool).await;

    let statistics = pool.statistics();
    assert_eq!(
        (
            statistics.closed_by_reason.discarded,
            statistics.idle_connections
        ),
        (1, 0),
        "{statistics:?}"
    );
    let conn = pool.acquire().await.expect("a fresh connection");
    assert_ne!(backend_pid(&conn).await, first);
    assert_eq!(pool.manager().hook_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_after_release_hook_that_leaves_a_transaction_open_gets_its_connection_closed() {
    let db = start_db();
    let pool = pool(&db, |manager| {
        manager.after_release(|conn| {
            Box::pin(async move {
                conn.batch_execute("BEGIN").await?;
                Ok(true)
            })
        })
    })
    .await;
    drop(pool.acquire().await.expect("acquire"));
    all_returned(&pool).await;
    let statistics = pool.statistics();
    assert_eq!(
        (
            statistics.closed_by_reason.dirty,
            statistics.idle_connections
        ),
        (1, 0),
        "{statistics:?}"
    );
    assert_eq!(pool.manager().hook_failures(), 1);
}
