//! The read-only query runner and its JSON conversion, in process, against
//! a throwaway PostgreSQL: each value must equal what PostgreSQL itself
//! prints, limits must hold, writes must fail, and every connection must
//! come back clean.

mod common;

use std::time::Duration;

use examples::db_error::{ErrorKind, Failure};
use examples::query::{run_read_only, Limits, QueryError};
use pool_pg::{PgPool, PoolConfig};
use serde_json::{json, Value};

async fn pool(db: &pg_tempdb::TempDb) -> PgPool {
    PgPool::connect(&db.url(), PoolConfig::default().min_size(1).max_size(2))
        .await
        .expect("connect")
}

async fn rows(pool: &PgPool, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    run_read_only(pool, sql, Limits::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

fn kind(pool: &PgPool, error: QueryError) -> ErrorKind {
    match Failure::from_query(error, pool) {
        Failure::Database(error) => error.kind,
        Failure::Invalid(why) => panic!("expected a database error, got: {why}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_types_become_json_as_postgresql_prints_them() {
    let db = common::database();
    let pool = pool(&db).await;
    let row = &rows(
        &pool,
        "SELECT NULL::int4 AS null, true AS bool, 2::int2 AS i2, 3::int4 AS i4, \
         9007199254740993::int8 AS i8, 1.5::float4 AS f4, 'NaN'::float8 AS nan, \
         'héllo'::text AS text, 'v'::varchar AS varchar, 'c'::char(2) AS bpchar, \
         '{\"a\": [1, null]}'::json AS json, '{\"b\": true}'::jsonb AS jsonb, \
         '0e6f8c9a-3c3e-4bde-9a7e-4d7f3e0b6a01'::uuid AS uuid, '\\x01ff'::bytea AS bytea, \
         '2026-11-26 11:20:00.5+00'::timestamptz AS tstz, '1999-12-31 23:59:59'::timestamp AS ts, \
         '2026-11-26'::date AS date, 'infinity'::date AS forever",
    )
    .await[0];
    let expected = json!({
        "null": null, "bool": true, "i2": 2, "i4": 3, "i8": 9007199254740993_i64,
        "f4": 1.5, "nan": "NaN", "text": "héllo", "varchar": "v", "bpchar": "c ",
        "json": { "a": [1, null] }, "jsonb": { "b": true },
        "uuid": "0e6f8c9a-3c3e-4bde-9a7e-4d7f3e0b6a01", "bytea": "\\x01ff",
        "tstz": "2026-11-26T11:20:00.5Z", "ts": "1999-12-31T23:59:59",
        "date": "2026-11-26", "forever": "infinity",
    });
    assert_eq!(Value::Object(row.clone()), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numerics_equal_postgresqls_own_text() {
    let db = common::database();
    let pool = pool(&db).await;
    let values = "0, 0.00, 1, -1, 12.50, 0.001, 123456789.000123, -0.0000001, 1e20, \
                  -98765432109876543210.0123456789, 10000, 0.1, 'NaN', 'Infinity', '-Infinity'";
    let sql =
        format!("SELECT v AS value, v::text AS text FROM unnest(ARRAY[{values}]::numeric[]) AS v");
    let rows = rows(&pool, &sql).await;
    assert_eq!(rows.len(), 15);
    for row in rows {
        assert_eq!(row["value"], row["text"], "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_types_are_cast_to_text_by_the_server() {
    let db = common::database();
    let pool = pool(&db).await;
    let output = run_read_only(
        &pool,
        "SELECT '1 day 02:00'::interval AS span, ARRAY[1, 2] AS list, 7 AS n -- trailing comment",
        Limits::default(),
    )
    .await
    .unwrap();
    assert!(output.cast_to_text);
    assert_eq!(
        Value::Object(output.rows[0].clone()),
        json!({ "span": "1 day 02:00:00", "list": "{1,2}", "n": 7 })
    );
    // SHOW cannot be wrapped in a subquery, but its column is text anyway;
    // duplicate names get a suffix.
    let show = rows(&pool, "SHOW statement_timeout").await;
    assert_eq!(show[0]["statement_timeout"], "5s");
    let twice = rows(&pool, "SELECT 1 AS a, 2 AS a").await;
    assert_eq!(Value::Object(twice[0].clone()), json!({ "a": 1, "a_2": 2 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_and_writes_fail_and_connections_come_back_clean() {
    let db = common::database();
    let pool = pool(&db).await;
    let limits = Limits::from_input(Some(3), Some(200)).unwrap();

    let many = run_read_only(&pool, "SELECT generate_series(1, 100000) AS n", limits)
        .await
        .unwrap();
    assert_eq!(many.row_count, 3);
    assert!(many.truncated);

    let write = run_read_only(&pool, "CREATE TABLE x()", limits)
        .await
        .unwrap_err();
    assert_eq!(kind(&pool, write), ErrorKind::ReadOnly);
    let sneaky = run_read_only(&pool, "SELECT 1; CREATE TABLE x()", limits)
        .await
        .unwrap_err();
    assert_eq!(kind(&pool, sneaky), ErrorKind::Query, "one statement only");
    let slow = run_read_only(&pool, "SELECT pg_sleep(5)", limits)
        .await
        .unwrap_err();
    assert_eq!(kind(&pool, slow), ErrorKind::StatementTimeout);
    let control = run_read_only(&pool, "  commit;", limits).await.unwrap_err();
    assert!(matches!(control, QueryError::Rejected(_)), "{control}");

    // Nothing leaked, nothing left inside a transaction, nothing closed:
    // the 25006 came from our own READ ONLY transaction, which pool-pg
    // tells apart from a server that became read-only (a demoted primary,
    // whose connection it would retire). The statement timeout and the
    // errors left their connections clean too, once the ROLLBACK their
    // dropped transactions queued went through (the pool lets it, on
    // return, before it judges).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !pool.statistics().is_quiet() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool never went quiet: {:?}",
            pool.statistics()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stats = pool.statistics();
    assert_eq!(stats.closed_by_reason.dirty, 0, "{stats:?}");
    assert_eq!(stats.closed_by_reason.evicted, 0, "{stats:?}");
    assert_eq!(stats.connections_closed, 0, "{stats:?}");
    let after = rows(
        &pool,
        "SELECT current_setting('transaction_read_only') AS ro",
    )
    .await;
    assert_eq!(after[0]["ro"], "on", "the query still runs read-only");
    let outside = pool.acquire().await.unwrap();
    let state: String = outside
        .query_one("SELECT current_setting('transaction_read_only')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "off", "nothing read-only leaked into the session");
    drop(outside);
    pool.shutdown(Duration::from_secs(5)).await;
}
