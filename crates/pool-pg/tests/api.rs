//! The user's side of the API: one error type for the pool and the
//! database (what `?` converts, what `is_retryable()` and `sqlstate()`
//! say), and the caller's location kept through `PgPool`'s methods.

mod common;

use std::time::Duration;

use common::{small_pool, start_db};
use pool_pg::tokio_postgres::error::SqlState;
use pool_pg::{PgPool, Phase, PoolConfig, PoolError};

/// A pooled query with its own deadline: both `?`s give a `pool_pg::Error`.
async fn scalar(pool: &PgPool, sql: &str) -> Result<i64, pool_pg::Error> {
    let conn = pool.acquire_timeout(Duration::from_millis(200)).await?;
    let row = conn.query_one(sql, &[]).await?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_timeout_and_a_query_failure_arrive_as_one_error_type() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), small_pool().max_size(1))
        .await
        .expect("pool");
    assert_eq!(scalar(&pool, "SELECT 41::int8 + 1").await.expect("run"), 42);

    let held = pool.acquire().await.expect("the only connection");
    let error = scalar(&pool, "SELECT 1::int8").await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.timeout_phase(), Some(Phase::Wait), "{error}");
    assert!(error.is_retryable(), "{error}");
    assert!(error.sqlstate().is_none(), "{error}");
    assert!(
        matches!(error.pool(), Some(PoolError::Timeout(_))),
        "{error:?}"
    );
    // The pool's own message, verbatim: the phase and what to change.
    let text = error.to_string();
    assert_eq!(text, error.pool().expect("a pool error").to_string());
    assert!(text.contains("POOL_MAX_SIZE"), "{text}");
    assert_eq!(pool.statistics().total_timeouts, 1);
    drop(held);

    let error = scalar(&pool, "SELEKT 1").await.unwrap_err();
    assert!(error.database().is_some(), "{error:?}");
    assert_eq!(error.sqlstate(), Some(&SqlState::SYNTAX_ERROR), "{error}");
    assert!(!error.is_retryable(), "{error}");
    assert!(!error.is_timeout(), "{error}");
    let text = error.to_string();
    assert!(text.contains("SQLSTATE 42601"), "{text}");
    assert!(std::error::Error::source(&error).is_some(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_sqlstates_are_retryable_and_others_are_not() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), small_pool())
        .await
        .expect("pool");
    let raise = |code: &str| {
        format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$")
    };
    for (code, retryable) in [
        ("40001", true),
        ("40P01", true),
        ("08006", true),
        ("25006", true),
        ("23505", false),
        ("22012", false),
    ] {
        let conn = pool.acquire().await.expect("acquire");
        let error = pool_pg::Error::from(conn.batch_execute(&raise(code)).await.unwrap_err());
        assert_eq!(error.sqlstate().map(SqlState::code), Some(code), "{error}");
        assert_eq!(error.is_retryable(), retryable, "{code}: {error}");
    }

    // A write on a read-only session, as on a primary demoted by a failover.
    let conn = pool.acquire().await.expect("acquire");
    let result: Result<(), pool_pg::Error> = async {
        conn.batch_execute("SET default_transaction_read_only = on")
            .await?;
        conn.batch_execute("CREATE TABLE t (id int)").await?;
        Ok(())
    }
    .await;
    let error = result.unwrap_err();
    assert_eq!(
        error.sqlstate(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{error}"
    );
    assert!(error.is_retryable(), "{error}");
    conn.discard();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_the_server_is_retryable() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), small_pool())
        .await
        .expect("pool");
    let conn = pool.acquire().await.expect("acquire");
    let error = pool_pg::Error::from(
        conn.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
            .await
            .unwrap_err(),
    );
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pool_is_not_retryable() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), small_pool())
        .await
        .expect("pool");
    pool.close();
    let error = pool.acquire().await.unwrap_err();
    assert!(error.is_closed(), "{error}");
    assert!(!error.is_retryable(), "{error}");
    let error = pool.try_acquire().unwrap_err();
    assert!(error.is_closed(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_records_the_callers_file_for_leak_reports() {
    let db = start_db();
    let pool = PgPool::connect(
        &db.url(),
        PoolConfig::default()
            .min_size(1)
            .max_size(2)
            .acquire_timeout(Duration::from_secs(5)),
    )
    .await
    .expect("pool");
    let here = file!();
    let conn = pool.acquire().await.expect("acquire");
    let site = conn.acquired_at().expect("leak detection is on by default");
    assert!(site.contains(here), "{site}");
    drop(conn);
    let conn = pool
        .acquire_timeout(Duration::from_secs(1))
        .await
        .expect("acquire_timeout");
    let site = conn.acquired_at().expect("a site");
    assert!(site.contains(here), "{site}");
    drop(conn);
    let conn = pool.try_acquire().expect("an idle connection");
    let site = conn.acquired_at().expect("a site");
    assert!(site.contains(here), "{site}");
}
