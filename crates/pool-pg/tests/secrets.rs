//! The password never appears in an error, a `Debug` output, a statistic or
//! a log line: not for malformed URLs, not for real failures (wrong
//! password, unreachable host, timeouts), not for working pools.
//!
//! Every test here logs into one binary-wide capture at TRACE level and
//! checks it at the end.
//!
//! Special characters get their own tests: an `@`, `:`, `/`, `?` or `%` in
//! a password, in the user info or in a `password=` query value, is read as
//! meant (tokio-postgres alone ends the user info at the URL's first `@`),
//! and no piece of the password reaches a log line, an error or a `Debug`.

mod common;

use std::time::Duration;

use common::{
    assert_no_secret, capture_logs, every_rendering, free_port, start_db_with_password, url_for,
    PASSWORD, WRONG_PASSWORD,
};
use pg_tempdb::TempDb;
use pool_pg::{redact_url, PgConfig, PgPool, PoolConfig};

/// A password's tail after an `@`, as distinctive as [`PASSWORD`]: with it,
/// `{PASSWORD}@{TAIL}` leaks if either piece shows.
const TAIL: &str = "t4il:s3c/r3t";

/// Fails the test if `text` contains the password or [`TAIL`].
fn assert_no_piece(what: &str, text: &str) {
    assert_no_secret(what, text);
    assert!(
        !text.contains(TAIL),
        "{what} leaks a password piece: {text}"
    );
}

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
        format!("postgres://app:{PASSWORD}@db/my@orders"),
        format!("postgres://app:1234/{PASSWORD}@db/orders"),
        format!("postgres://app:12?{PASSWORD}@db/orders"),
        format!("postgres://app:{PASSWORD}@db/orders#fr4g@x"),
        format!("postgres://db/orders?password={PASSWORD}#x"),
        format!("postgres://app:{PASSWORD}/x@db:54x2/orders"),
        format!("host=db password={PASSWORD}://x@y"),
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

    // The server is frozen: a connect timeout in build(); at acquire, one
    // timed-out connect is not yet evidence that the database is lost
    // (pool-core's RECOVERY_FAILURE_THRESHOLD), so the caller times out in
    // the connect phase, carrying the last connection error.
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
    assert!(error.is_timeout() || error.is_unavailable(), "{error:?}");
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

#[test]
fn urls_with_special_characters_are_read_as_meant_and_never_show_the_password() {
    capture_logs();
    let secret = format!("{PASSWORD}@{TAIL}");
    let hash = format!("{PASSWORD}#{TAIL}");
    for (url, user, host, dbname, password) in [
        // An `@` in a query value is not the end of the user info.
        (
            format!("postgres://db/orders?password={secret}"),
            None,
            "db",
            "orders",
            &secret,
        ),
        (
            format!("postgres://app@db:6543/orders?password={secret}&sslmode=disable"),
            Some("app"),
            "db",
            "orders",
            &secret,
        ),
        // `@`, `:` and `/` in the password of the user info.
        (
            format!("postgres://app:{secret}@db/orders"),
            Some("app"),
            "db",
            "orders",
            &secret,
        ),
        (
            format!("postgres://us%40er:{PASSWORD}%40{TAIL}@db/orders"),
            Some("us@er"),
            "db",
            "orders",
            &secret,
        ),
        // A host list, with the password in the user info and the query.
        (
            format!("postgres://app:{secret}@db1:5432,db2:5433/orders?password={secret}"),
            Some("app"),
            "db1",
            "orders",
            &secret,
        ),
        // Percent-encoded query values, `#` among them.
        (
            format!("postgresql://db/orders?options=-c%20x%3Dy&password={PASSWORD}%23{TAIL}"),
            None,
            "db",
            "orders",
            &hash,
        ),
        (
            format!("postgres://app:{secret}@[::1]:5432/orders"),
            Some("app"),
            "::1",
            "orders",
            &secret,
        ),
    ] {
        let config = PgConfig::new(&url, PoolConfig::default())
            .unwrap_or_else(|error| panic!("{}: {error}", redact_url(&url)));
        let database = &config.database;
        let shown = redact_url(&url);
        assert_eq!(database.get_user(), user, "{shown}");
        assert_eq!(
            database.get_hosts().first(),
            Some(&pool_pg::tokio_postgres::config::Host::Tcp(host.to_owned())),
            "{shown}"
        );
        assert_eq!(database.get_dbname(), Some(dbname), "{shown}");
        assert_eq!(
            database.get_password(),
            Some(password.as_bytes()),
            "{shown}"
        );
        let manager = config.manager();
        for (what, text) in [
            ("redact_url", shown.clone()),
            ("PgConfig::redacted_url", config.redacted_url()),
            ("PgConfig", format!("{config:?}")),
            ("tokio_postgres::Config", format!("{database:?}")),
            ("PgManager::redacted_url", manager.redacted_url()),
            ("PgManager", format!("{manager:?}")),
        ] {
            assert_no_piece(&format!("{what} of {shown}"), &text);
        }
    }
    assert_logs_are_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_sign_in_a_query_password_stays_out_of_the_start_line_and_connect_errors() {
    let logs = capture_logs();
    let port = free_port();
    // tokio-postgres alone reads the user `/orders?host=..&password=<PASSWORD>`
    // on host `2`.
    let url =
        format!("postgres:///orders?host=127.0.0.1&port={port}&user=app&password={PASSWORD}@2");
    let quick = PoolConfig::default()
        .min_size(1)
        .create_timeout(Duration::from_millis(500))
        .acquire_timeout(Duration::from_millis(800));
    let error = PgPool::connect(&url, quick).await.unwrap_err();
    let text = every_rendering(&error);
    assert_no_secret("connect error", &text);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    let logs = logs.text();
    assert!(
        logs.contains(&format!("postgres://app:***@127.0.0.1:{port}/orders")),
        "{logs}"
    );
    assert_logs_are_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_with_at_signs_colons_and_slashes_logs_in_from_the_user_info_or_the_query() {
    capture_logs();
    let password = format!("{PASSWORD}@{TAIL}");
    let db = TempDb::builder()
        .user("app")
        .password(&password)
        .start()
        .expect("start a throwaway PostgreSQL with a password");
    let (host, port, dbname) = (db.host(), db.port(), db.dbname());
    for url in [
        db.url(),
        format!("postgres://app:{password}@{host}:{port}/{dbname}"),
        format!("postgres://{host}:{port}/{dbname}?user=app&password={password}"),
    ] {
        let shown = redact_url(&url);
        assert_no_piece("redact_url", &shown);
        let pool = PgPool::connect(&url, PoolConfig::default().min_size(1))
            .await
            .unwrap_or_else(|error| panic!("{shown}: {error}"));
        let conn = pool.acquire().await.unwrap();
        let row = conn
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "app", "{shown}");
        assert_no_piece("PgPool", &format!("{pool:?}"));
        assert_no_piece("PgManager", &format!("{:?}", pool.manager()));
    }
    assert_no_piece("the logs", &capture_logs().text());
}
