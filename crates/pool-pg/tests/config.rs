//! Configuration is checked when it is built: every bad variable at once,
//! actionable messages for bad URLs, and connection defaults. No server and
//! no process environment involved.

use std::time::Duration;

use pool_pg::defaults::{DEFAULT_APPLICATION_NAME, DEFAULT_KEEPALIVES_IDLE};
use pool_pg::{ConfigError, PgConfig, PgPool, PoolConfig};

const GOOD_URL: &str = "postgres://app:pw@db.internal:5432/orders";

fn variables(error: &ConfigError) -> Vec<&str> {
    error.issues().iter().map(|i| i.variable.as_str()).collect()
}

fn url_error(url: &str) -> String {
    let error = PgConfig::new(url, PoolConfig::default()).expect_err(url);
    assert_eq!(variables(&error), ["DATABASE_URL"], "{error}");
    error.to_string()
}

fn assert_mentions(text: &str, expected: &[&str]) {
    for part in expected {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
}

#[test]
fn every_bad_variable_is_reported_at_once() {
    let error = PgConfig::from_vars([
        ("POOL_MAX_SIZE", "lots"),
        ("POOL_ACQUIRE_TIMEOUT_MS", "2s"),
        ("HOME", "/root"),
    ])
    .unwrap_err();

    assert_eq!(
        variables(&error),
        ["DATABASE_URL", "POOL_MAX_SIZE", "POOL_ACQUIRE_TIMEOUT_MS"]
    );
    assert_mentions(
        &error.to_string(),
        &[
            "3 problems",
            "DATABASE_URL is not set",
            "set DATABASE_URL=postgres://user:password@host:5432/dbname",
            "POOL_MAX_SIZE (\"lots\") is not a whole number",
            "POOL_ACQUIRE_TIMEOUT_MS (\"2s\") is not a whole number of milliseconds",
        ],
    );
}

#[test]
fn a_malformed_url_and_bad_pool_settings_are_reported_together() {
    let error = PgConfig::from_vars([
        ("DATABASE_URL", "mysql://app:pw@db/orders"),
        ("POOL_MIN_SIZE", "-1"),
        ("POOL_MAX_SZE", "3"),
    ])
    .unwrap_err();

    assert_eq!(
        variables(&error),
        ["DATABASE_URL", "POOL_MIN_SIZE", "POOL_MAX_SZE"]
    );
    assert_mentions(
        &error.to_string(),
        &["`mysql://`", "did you mean POOL_MAX_SIZE?"],
    );
}

#[test]
fn a_url_and_a_pool_config_given_in_code_are_checked_together() {
    let error = PgConfig::new(
        "postgres://app@/orders",
        PoolConfig::default().min_size(0).max_size(0),
    )
    .unwrap_err();
    assert_eq!(variables(&error), ["DATABASE_URL", "POOL_MAX_SIZE"]);
}

#[tokio::test]
async fn a_pool_with_a_bad_configuration_fails_before_connecting() {
    let error = PgPool::from_vars([
        ("DATABASE_URL", "postgres://app@db/x"),
        ("POOL_MIN_SIZE", "x"),
    ])
    .await
    .unwrap_err();
    assert!(error.is_config(), "{error:?}");
}

#[test]
fn an_unknown_scheme_is_named_with_the_accepted_ones() {
    assert_mentions(
        &url_error("mysql://app:pw@db/orders"),
        &[
            "has `mysql://`",
            "only postgres:// and postgresql:// are accepted",
        ],
    );
    assert_mentions(
        &url_error("POSTGRES://app@db/orders"),
        &["write the scheme in lower case: postgres://"],
    );
}

#[test]
fn a_key_value_string_or_a_bare_word_is_refused_with_the_url_form() {
    assert_mentions(
        &url_error("host=db user=app dbname=orders"),
        &[
            "key=value connection string",
            "write it as postgres://user:password@host:5432/dbname",
        ],
    );
    assert_mentions(&url_error("db.internal"), &["has no scheme"]);
    assert_mentions(&url_error("   "), &["DATABASE_URL is empty"]);
}

#[test]
fn a_missing_or_empty_host_is_refused() {
    assert_mentions(
        &url_error("postgres://app:pw@/orders"),
        &["names no host", "add the server's host name"],
    );
    assert_mentions(&url_error("postgres:///orders"), &["names no host"]);
    assert_mentions(
        &url_error("postgres://app:pw@:5432/orders"),
        &["empty host name"],
    );
}

#[test]
fn a_bad_port_or_option_is_refused_with_the_reason() {
    assert_mentions(
        &url_error("postgres://app:pw@db:54x2/orders"),
        &[
            "not a valid PostgreSQL URL",
            "invalid value for option `port`",
        ],
    );
    assert_mentions(
        &url_error("postgres://app@db/orders?sslmod=require"),
        &["unknown option `sslmod`"],
    );
    assert_mentions(
        &url_error("postgres://app@db1:5432,db2:5433,db3:5434/orders?port=1,2"),
        &["3 host(s) but 5 ports"],
    );
}

#[test]
fn an_at_sign_whose_place_is_unclear_gets_the_percent_encoding_advice() {
    // The last `@` before the host ends the user info (`p@ss` is the
    // password); an `@` after the host could be in the password or the
    // database name, so it is refused with the advice.
    assert_mentions(
        &url_error("postgres://app:pw@db/my@orders"),
        &[
            "where the user info ends is unclear",
            "@ as %40",
            "/ as %2F",
        ],
    );
}

#[test]
fn accepted_urls_cover_both_schemes_unix_sockets_and_several_hosts() {
    for url in [
        GOOD_URL,
        "postgresql://app@db/orders",
        "postgres://app@%2Fvar%2Frun%2Fpostgresql/orders",
        "postgres:///orders?host=/var/run/postgresql&user=app",
        "postgres://app@db1:5432,db2:5433/orders?target_session_attrs=read-write",
        "postgres://app@[::1]:5432/orders",
        "postgres://app:p@ss@db/orders",
    ] {
        assert!(PgConfig::new(url, PoolConfig::default()).is_ok(), "{url}");
    }
}

#[test]
fn connections_get_an_application_name_keepalives_and_a_tcp_connect_timeout() {
    let config = PgConfig::from_vars([
        ("DATABASE_URL", GOOD_URL),
        ("POOL_CREATE_TIMEOUT_MS", "1500"),
    ])
    .unwrap();
    let manager = config.manager();
    let pg = manager.pg_config();

    assert_eq!(pg.get_application_name(), Some(DEFAULT_APPLICATION_NAME));
    assert!(pg.get_keepalives());
    assert_eq!(pg.get_keepalives_idle(), DEFAULT_KEEPALIVES_IDLE);
    assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_millis(1500)));
    assert_eq!(
        pg.get_tcp_user_timeout(),
        Some(&pool_pg::defaults::DEFAULT_TCP_USER_TIMEOUT)
    );
    assert_eq!(
        manager.redacted_url(),
        "postgres://app:***@db.internal:5432/orders?application_name=pool-pg"
    );
}

#[test]
fn the_crate_docs_list_every_pool_variable() {
    let crate_docs = include_str!("../src/lib.rs");
    for variable in pool_pg::defaults::POOL_VARIABLES {
        assert!(
            crate_docs.contains(&format!("//! | `{variable}` |")),
            "{variable} is missing from the table in src/lib.rs"
        );
    }
}
