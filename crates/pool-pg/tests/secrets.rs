//! The password never appears in an error, a `Debug` output, a statistic or
//! a log line: not for malformed URLs, not for real failures (wrong
//! password, unreachable host, timeouts), not for working pools.
//!
//! Every test here logs into one binary-wide capture at TRACE level and
//! checks it at the end.

mod common;

use std::time::Duration;

use common::{
    assert_no_secret, capture_logs, every_rendering, free_port, start_db_with_password, url_for,
    PASSWORD, WRONG_PASSWORD,
};
use pool_pg::{redact_url, PgConfig, PgPool, PgPoolExt, PoolConfig};

fn assert_logs_are_clean() {
    assert_no_secret("the logs", &capture_logs().text());
}

#[test]
fn malformed_urls_never_echo_the_password() {
    capture_logs();
    for url in [
        format!("mysql://app:{PASSWORD}@db/orders"),
        format!("app:{PASSWORD}@db/orders"),
        format!("host=db user=app password={PASSWORD}"),
        format!("host=db password='{PASSWORD} x' dbname"),
        format!("postgres://app:{PASSWORD}@/orders"),
        format!("postgres://app:{PASSWORD}@:5432/orders"),
        format!("postgres://app:{PASSWORD}@db:54x2/orders"),
        format!("postgres://app:p@{PASSWORD}@db/orders"),
        format!("postgres://app:{PASSWORD}@db/orders?sslmode=sometimes"),
        format!("postgres://app@db/orders?password={PASSWORD}&port=x"),
        format!("postgres://app:{PASSWORD}@[::1/orders"),
        format!("POSTGRES://app:{PASSWORD}@db/orders"),
    ] {
        let error = PgConfig::new(&url, PoolConfig::default()).unwrap_err();
        assert_no_secret(&url, &every_rendering(&error));
        for issue in error.issues() {
            assert_no_secret(&url, &issue.value);
        }
    }
    assert_logs_are_clean();
}

#[test]
fn the_redaction_helpers_hide_the_password_and_keep_the_rest() {
    let url =
        format!("postgres://app:{PASSWORD}@db:5432/orders?password={PASSWORD}&sslmode=disable");
    assert_eq!(
        redact_url(&url),
        "postgres://app:***@db:5432/orders?password=***&sslmode=disable"
    );
    let config = PgConfig::new(&url, PoolConfig::default()).unwrap();
    assert_eq!(config.redacted_url(), "postgres://app:***@db:5432/orders");
    assert_eq!(
        config.manager().redacted_url(),
        "postgres://app:***@db:5432/orders?application_name=pool-pg"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_of_every_public_type_hides_the_password() {
    capture_logs();
    let db = start_db_with_password();
    let url = url_for(&db, Some(PASSWORD), db.dbname());
    let config = PgConfig::new(&url, PoolConfig::default().min_size(1)).unwrap();
    assert_no_secret("PgConfig", &format!("{config:?}"));
    assert_no_secret("tokio_postgres::Config", &format!("{:?}", config.database));
    assert_no_secret("PgManager", &format!("{:?}", config.manager()));

    let pool = config.build().await.unwrap();
    let conn = pool.acquire().await.unwrap();
    assert_no_secret("PgPool", &format!("{pool:?}"));
    assert_no_secret("PgPooledConnection", &format!("{conn:?}"));
    assert_no_secret("PgConnection", &format!("{:?}", &*conn));
    assert_no_secret("PgManager", &format!("{:?}", pool.manager()));
    assert_no_secret("PoolConfig", &format!("{:?}", pool.config()));
    assert_no_secret("Statistics", &format!("{:?}", pool.statistics()));
    drop(conn);
    assert_logs_are_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_real_failures_never_contain_the_password() {
    let logs = capture_logs();
    let db = start_db_with_password();
    let quick = PoolConfig::default()
        .min_size(1)
        .create_timeout(Duration::from_millis(500))
        .acquire_timeout(Duration::from_millis(800));

    // The server refuses the password (build, then acquire).
    let wrong = url_for(&db, Some(WRONG_PASSWORD), db.dbname());
    let error = PgPool::connect(&wrong, quick.clone()).await.unwrap_err();
    assert!(error.to_string().contains("28P01"), "{error}");
    assert_no_secret("wrong password at build", &every_rendering(&error));
    let pool = PgPool::connect(&wrong, quick.clone().min_size(0))
        .await
        .unwrap();
    let error = pool.acquire().await.unwrap_err();
    assert_no_secret("wrong password at acquire", &every_rendering(&error));

    // Nothing listens.
    let unreachable = format!("postgres://app:{PASSWORD}@127.0.0.1:{}/app", free_port());
    let error = PgPool::connect(&unreachable, quick.clone())
        .await
        .unwrap_err();
    assert_no_secret("unreachable host", &every_rendering(&error));

    // The server is frozen: a connect timeout in build(); at acquire, the
    // pool (with nothing open) declares the database lost and turns the
    // caller away at once, carrying the last connection error.
    let right = url_for(&db, Some(PASSWORD), db.dbname());
    db.pause().unwrap();
    let at_build = PgPool::connect(&right, quick.clone()).await;
    let pool = PgPool::connect(&right, quick.clone().min_size(0)).await;
    let at_acquire = match &pool {
        Ok(pool) => Some(pool.acquire().await),
        Err(_) => None,
    };
    db.resume().unwrap();
    let error = at_build.unwrap_err();
    assert_no_secret("connect timeout", &every_rendering(&error));
    let error = at_acquire.unwrap().unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(error.connection_error().is_some(), "{error:?}");
    assert_no_secret("database unavailable", &every_rendering(&error));

    let text = logs.text();
    assert!(
        text.contains("starting PostgreSQL connection pool"),
        "{text}"
    );
    assert!(text.contains("postgres://app:***@127.0.0.1"), "{text}");
    assert!(text.contains("could not open a connection"), "{text}");
    assert_logs_are_clean();
}
