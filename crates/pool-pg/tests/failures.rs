//! Connect failures end quickly with an error that says what to change:
//! an unreachable or frozen server within `create_timeout`, a wrong password
//! or database at once (they are not retried).

mod common;

use std::time::Duration;

use common::{
    free_port, start_db, start_db_with_password, url_for, MARGIN, PASSWORD, WRONG_PASSWORD,
};
use pool_pg::detail::ConnectionError;
use pool_pg::tokio_postgres::error::SqlState;
use pool_pg::{PgPool, PoolConfig, PoolError};
use tokio::time::Instant;

/// Long enough that a test failing "fast" cannot be waiting it out.
const PATIENT: Duration = Duration::from_secs(10);
/// How fast a non-retryable failure must be reported.
const AT_ONCE: Duration = Duration::from_secs(3);

fn patient_pool() -> PoolConfig {
    PoolConfig::default()
        .min_size(1)
        .create_timeout(PATIENT)
        .acquire_timeout(PATIENT)
}

#[tokio::test]
async fn an_unreachable_database_fails_build_fast_with_an_actionable_error() {
    let port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let create_timeout = Duration::from_secs(2);

    let started = Instant::now();
    let error = PgPool::connect(&url, PoolConfig::default().create_timeout(create_timeout))
        .await
        .unwrap_err();

    assert!(
        started.elapsed() < create_timeout + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert!(error.is_init(), "{error:?}");
    let text = error.to_string();
    for expected in [
        format!("could not connect to 127.0.0.1:{port}"),
        "Connection refused".to_owned(),
        "check that PostgreSQL is running".to_owned(),
        "Suggestion:".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} missing in: {text}");
    }
}

#[tokio::test]
async fn a_blackholed_address_fails_build_within_create_timeout() {
    // TEST-NET-1 (RFC 5737) is never routed: the SYN is dropped or refused
    // at once, depending on the machine; either way build() must return.
    let create_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error = PgPool::connect(
        "postgres://postgres@192.0.2.1:5432/postgres",
        PoolConfig::default().create_timeout(create_timeout),
    )
    .await
    .unwrap_err();

    assert!(
        started.elapsed() < create_timeout + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert!(error.is_init(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_fails_build_within_create_timeout() {
    let db = start_db();
    let create_timeout = Duration::from_secs(1);
    db.pause().unwrap();

    let started = Instant::now();
    let result = PgPool::connect(
        &db.url(),
        PoolConfig::default().create_timeout(create_timeout),
    )
    .await;
    let elapsed = started.elapsed();
    db.resume().unwrap();

    let error = result.unwrap_err();
    assert!(elapsed < create_timeout + MARGIN, "{elapsed:?}");
    assert!(error.is_init(), "{error:?}");
    assert!(
        matches!(error.connection_error(), Some(ConnectionError::ConnectTimeout(t)) if *t == create_timeout),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("POOL_CREATE_TIMEOUT_MS"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_build_at_once_and_says_so() {
    let db = start_db_with_password();
    let url = url_for(&db, Some(WRONG_PASSWORD), db.dbname());

    let started = Instant::now();
    let error = PgPool::connect(&url, patient_pool()).await.unwrap_err();

    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert!(error.is_init(), "{error:?}");
    let pg = error.connection_error().and_then(ConnectionError::backend);
    assert_eq!(pg.and_then(|e| e.code()), Some(&SqlState::INVALID_PASSWORD));
    let text = error.to_string();
    assert!(
        text.contains("password authentication failed for user \"app\""),
        "{text}"
    );
    assert!(
        text.contains("check the user name and password in DATABASE_URL"),
        "{text}"
    );
    assert!(
        !text.contains(WRONG_PASSWORD) && !text.contains(PASSWORD),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_acquire_at_once_when_min_size_is_zero() {
    let db = start_db_with_password();
    let url = url_for(&db, Some(WRONG_PASSWORD), db.dbname());
    let pool = PgPool::connect(&url, patient_pool().min_size(0))
        .await
        .unwrap();

    let started = Instant::now();
    let error = pool.acquire().await.unwrap_err();

    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert!(
        matches!(error.pool(), Some(PoolError::Connection(_))),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("password authentication failed"),
        "{error}"
    );
    let stats = pool.statistics();
    assert_eq!(
        (stats.connection_failures, stats.acquire_errors),
        (1, 1),
        "{stats:?}"
    );
    assert!(stats.is_quiet(), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_is_reported_without_retrying() {
    let db = start_db();
    let url = url_for(&db, None, "no_such_db");
    let pool = PgPool::connect(&url, patient_pool().min_size(0))
        .await
        .unwrap();

    let started = Instant::now();
    let error = pool.acquire().await.unwrap_err();

    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert!(
        matches!(error.pool(), Some(PoolError::Connection(_))),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("database \"no_such_db\" does not exist"),
        "{text}"
    );
    assert!(
        text.contains("3D000") && text.contains("create the database"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_password_is_reported_without_retrying() {
    let db = start_db_with_password();
    let url = url_for(&db, None, db.dbname());

    let started = Instant::now();
    let error = PgPool::connect(&url, patient_pool()).await.unwrap_err();

    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    let pg = error.connection_error().and_then(ConnectionError::backend);
    assert_eq!(pg.map(|e| e.is_retryable()), Some(false), "{error:?}");
    assert!(
        error.to_string().contains("add it to DATABASE_URL"),
        "{error}"
    );
}
