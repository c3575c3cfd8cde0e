//! The per-connection statement cache against a real server: hits seen in
//! `pg_prepared_statements`, the bound, stale plans after `ALTER TABLE`,
//! `DISCARD ALL`, the cache turned off, and the session reset and
//! `after_connect` hook that share its settings.

mod common;

use common::{start_db, wait_until};
use pg_tempdb::TempDb;
use pool_pg::{PgConfig, PgPool, PgPooledConnection};

/// A pool of one connection on `db`, with extra `POOL_*` settings.
async fn pool(db: &TempDb, settings: &[(&str, &str)]) -> PgPool {
    let url = db.url();
    let mut vars = vec![("DATABASE_URL", url.as_str()), ("POOL_MIN_SIZE", "1")];
    vars.push(("POOL_MAX_SIZE", "1"));
    vars.extend_from_slice(settings);
    PgConfig::from_vars(vars)
        .expect("the configuration")
        .build()
        .await
        .expect("build the pool")
}

/// The statements this session has prepared, as the server sees them.
async fn prepared_on_server(conn: &PgPooledConnection) -> i64 {
    conn.client()
        .simple_query("SELECT count(*) FROM pg_prepared_statements")
        .await
        .expect("ask the server")
        .iter()
        .find_map(|message| match message {
            pool_pg::tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
        .expect("one row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_query_is_prepared_once_and_served_from_the_cache() {
    let db = start_db();
    let pool = pool(&db, &[]).await;
    let conn = pool.acquire().await.expect("acquire");
    for n in 0..5_i32 {
        let row = conn
            .query_one("SELECT $1::int4 * 2", &[&n])
            .await
            .expect("query");
        assert_eq!(row.get::<_, i32>(0), n * 2);
    }
    assert_eq!(conn.cached_statements(), 1);
    assert_eq!(prepared_on_server(&conn).await, 1, "one named statement");
    // An explicit prepare_cached is the same entry: nothing new prepared.
    let statement = conn.prepare_cached("SELECT $1::int4 * 2").await.expect("a");
    conn.query_one(&statement, &[&3_i32]).await.expect("run it");
    assert_eq!(conn.cached_statements(), 1);
    drop(conn);

    // The cache belongs to the connection: the next caller hits it too.
    let conn = pool.acquire().await.expect("acquire again");
    conn.execute("SELECT $1::int4 * 2", &[&1_i32])
        .await
        .expect("execute");
    assert_eq!(
        conn.statements(),
        8,
        "five queries, the count, the run, an execute"
    );
    assert_eq!(prepared_on_server(&conn).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_at_most_its_size_and_closes_what_it_evicts() {
    let db = start_db();
    let pool = pool(&db, &[("POOL_STATEMENT_CACHE_SIZE", "3")]).await;
    let conn = pool.acquire().await.expect("acquire");
    for n in 0..10 {
        conn.query(&format!("SELECT {n}"), &[])
            .await
            .expect("query");
        assert!(conn.cached_statements() <= 3);
    }
    assert_eq!(conn.cached_statements(), 3);
    // Evicted statements were closed on the server (the Close of a
    // dropped statement is sent ahead of this request).
    assert_eq!(prepared_on_server(&conn).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_altered_under_a_cached_query_is_prepared_again_and_the_call_succeeds() {
    let db = start_db();
    db.execute("CREATE TABLE items (id int, name text); INSERT INTO items VALUES (1, 'a')")
        .expect("create the table");
    let pool = pool(&db, &[]).await;
    let conn = pool.acquire().await.expect("acquire");
    let rows = conn
        .query("SELECT * FROM items", &[])
        .await
        .expect("before");
    assert_eq!(rows[0].len(), 2);

    db.execute("ALTER TABLE items ADD COLUMN price int")
        .expect("alter the table");
    // 0A000 "cached plan must not change result type": dropped and run
    // again, outside a transaction.
    let rows = conn.query("SELECT * FROM items", &[]).await.expect("after");
    assert_eq!(rows[0].len(), 3);
    assert_eq!(conn.cached_statements(), 1);

    // Inside a transaction a retry is not safe: the error is the caller's.
    db.execute("ALTER TABLE items DROP COLUMN price")
        .expect("alter it again");
    conn.batch_execute("BEGIN").await.expect("BEGIN");
    let stale = conn.query("SELECT * FROM items", &[]).await;
    assert!(stale.is_err(), "the transaction sees the stale plan fail");
    conn.batch_execute("ROLLBACK").await.expect("ROLLBACK");
    let rows = conn.query("SELECT * FROM items", &[]).await.expect("next");
    assert_eq!(rows[0].len(), 2, "the stale entry was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_all_sent_by_the_caller_empties_the_cache() {
    let db = start_db();
    let pool = pool(&db, &[]).await;
    let conn = pool.acquire().await.expect("acquire");
    conn.query_one("SELECT 1", &[]).await.expect("query");
    assert_eq!(conn.cached_statements(), 1);
    conn.batch_execute("DISCARD ALL")
        .await
        .expect("DISCARD ALL");
    // The wire saw the command tag: the next run prepares afresh instead
    // of failing with "prepared statement does not exist".
    conn.query_one("SELECT 1", &[]).await.expect("query after");
    assert_eq!(conn.cached_statements(), 1);
    assert_eq!(prepared_on_server(&conn).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_nothing_stays_prepared() {
    let db = start_db();
    let pool = pool(&db, &[("POOL_STATEMENT_CACHE_SIZE", "0")]).await;
    let conn = pool.acquire().await.expect("acquire");
    for _ in 0..3 {
        conn.query_one("SELECT 1", &[]).await.expect("query");
    }
    assert_eq!(conn.cached_statements(), 0);
    assert_eq!(prepared_on_server(&conn).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_query_runs_on_every_return_before_the_connection_goes_idle() {
    let db = start_db();
    let pool = pool(&db, &[("POOL_RESET_QUERY", "RESET ALL")]).await;
    let conn = pool.acquire().await.expect("acquire");
    conn.batch_execute("SET statement_timeout = 1234")
        .await
        .expect("SET");
    let statements = conn.statements();
    drop(conn);
    let conn = pool.acquire().await.expect("acquire again");
    let timeout: String = conn
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(timeout, "0", "the next caller does not inherit the SET");
    assert_eq!(
        conn.statements(),
        statements + 1,
        "the reset is the pool's, not the caller's"
    );
    let stats = pool.statistics();
    assert_eq!(stats.connections_closed, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reset_closes_the_connection_and_is_counted() {
    let db = start_db();
    let config = PgConfig::from_vars([
        ("DATABASE_URL", db.url().as_str()),
        ("POOL_MIN_SIZE", "1"),
        ("POOL_MAX_SIZE", "1"),
    ])
    .expect("the configuration");
    let manager = config
        .manager()
        .reset_on_return("SELECT no_such_function()");
    let pool = pool_pg::PgPool::from_manager(manager, config.pool)
        .await
        .expect("build");
    let conn = pool.acquire().await.expect("acquire");
    drop(conn);
    wait_until("the connection is closed", || {
        pool.statistics().closed_by_reason.dirty == 1
    })
    .await;
    assert_eq!(pool.manager().hook_failures(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_after_connect_hook_sets_up_every_new_connection_uncounted() {
    let db = start_db();
    db.execute("CREATE SCHEMA app").expect("create the schema");
    let config = PgConfig::from_vars([
        ("DATABASE_URL", db.url().as_str()),
        ("POOL_MIN_SIZE", "2"),
        ("POOL_MAX_SIZE", "2"),
    ])
    .expect("the configuration");
    let manager = config.manager().after_connect(|conn| {
        Box::pin(async move { conn.batch_execute("SET search_path TO app").await })
    });
    let pool = pool_pg::PgPool::from_manager(manager, config.pool)
        .await
        .expect("build");
    let a = pool.acquire().await.expect("a");
    let b = pool.acquire().await.expect("b");
    for conn in [&a, &b] {
        let path: String = conn
            .query_one("SHOW search_path", &[])
            .await
            .expect("SHOW")
            .get(0);
        assert_eq!(path, "app");
        assert_eq!(conn.statements(), 1, "only the SHOW is the caller's");
    }
}
