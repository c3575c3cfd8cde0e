//! The pool behind PgBouncer in transaction pooling mode (Debian's
//! `pgbouncer`, 1.18 in Debian 12): concurrent load using only what
//! transaction mode allows, and a PgBouncer restart under load, which the
//! pool must ride through like a server restart.
//!
//! What transaction mode allows: a server connection belongs to a client
//! only for one transaction, so nothing may rely on session state between
//! transactions. tokio-postgres's `query`/`execute` with a SQL string
//! prepare a *named* statement (`s0`, `s1`, ..) in one round trip and run
//! it in a second; outside a transaction PgBouncer may send the second to
//! another server connection ("prepared statement "s0" does not exist").
//! Safe: `query_typed`/`execute_typed` (an unnamed statement, one round
//! trip), `simple_query`/`batch_execute`, and anything inside
//! `conn.transaction()`, with the pool's statement cache off
//! (`POOL_STATEMENT_CACHE_SIZE=0`). See `docs/high-availability.md`.
//!
//! These tests skip (with a message saying how to install it) only when
//! the `pgbouncer` binary is missing; CI installs it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{connect, start_db_with_password, url_with_app, wait_until, WAIT};
use pg_tempdb::{PgBouncer, TempDb};
use pool_pg::tokio_postgres::types::Type;
use pool_pg::{PgConfig, PgPool, PoolConfig};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// `true` (after saying so) when the binary is missing.
fn skip_without_pgbouncer() -> bool {
    if PgBouncer::binary().is_some() {
        return false;
    }
    println!(
        "SKIPPED: the pgbouncer binary was not found (PGBOUNCER, PATH, /usr/sbin/pgbouncer); \
         install it with `apt-get install pgbouncer` to run these tests"
    );
    true
}

fn start_bouncer(db: &TempDb) -> PgBouncer {
    PgBouncer::start(db)
        .expect("start pgbouncer")
        .expect("the binary was found a moment ago")
}

fn create_table(db: &TempDb) {
    db.execute(
        "CREATE TABLE items (task int NOT NULL, n int NOT NULL); ALTER TABLE items OWNER TO app",
    )
    .expect("create the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_serves_sixteen_tasks_of_typed_queries_and_transactions_without_an_error()
{
    const TASKS: i32 = 16;
    const ROUNDS: i32 = 20;
    if skip_without_pgbouncer() {
        return;
    }
    let db = start_db_with_password();
    create_table(&db);
    let bouncer = start_bouncer(&db);
    // The statement cache off, as PgBouncer before 1.21 needs: a cached
    // statement lives on one server connection, and the next transaction
    // may run on another.
    let mut config = PgConfig::from_vars([
        (
            "DATABASE_URL",
            url_with_app(&bouncer.url(), "bouncer-load").as_str(),
        ),
        ("POOL_STATEMENT_CACHE_SIZE", "0"),
    ])
    .expect("the configuration");
    config.pool = config
        .pool
        .min_size(2)
        .max_size(8)
        .acquire_timeout(Duration::from_secs(5));
    let pool = config.build().await.expect("build the pool");

    let tasks: Vec<JoinHandle<Result<(), String>>> = (0..TASKS)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for n in 0..ROUNDS {
                    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
                    // One round trip, unnamed statement: safe outside a
                    // transaction.
                    let row = conn
                        .query_typed_one("SELECT $1::int4 + 1", &[(&n, Type::INT4)])
                        .await
                        .map_err(|e| format!("query_typed: {e}"))?;
                    assert_eq!(row.get::<_, i32>(0), n + 1);
                    // Named statements are fine inside a transaction: it
                    // keeps one server connection throughout.
                    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
                    tx.execute("INSERT INTO items VALUES ($1, $2)", &[&task, &n])
                        .await
                        .map_err(|e| format!("insert: {e}"))?;
                    let mine: i64 = tx
                        .query_one("SELECT count(*) FROM items WHERE task = $1", &[&task])
                        .await
                        .map_err(|e| format!("count: {e}"))?
                        .get(0);
                    assert_eq!(mine, i64::from(n) + 1);
                    tx.commit().await.map_err(|e| format!("commit: {e}"))?;
                    // The simple protocol never prepares anything.
                    conn.batch_execute("SELECT 1; SELECT 2")
                        .await
                        .map_err(|e| format!("batch: {e}"))?;
                    assert_eq!(conn.cached_statements(), 0, "the cache is off");
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        timeout(WAIT * 3, task)
            .await
            .expect("a task hung")
            .expect("a task panicked")
            .expect("every request through PgBouncer succeeds");
    }
    let rows: i64 = db
        .query_scalar("SELECT count(*) FROM items")
        .expect("count the rows");
    assert_eq!(rows, i64::from(TASKS * ROUNDS));
    let statistics = pool.statistics();
    assert_eq!(statistics.connection_failures, 0, "{statistics:?}");
}

/// One request and how it went.
#[derive(Debug)]
struct Request {
    started: Instant,
    ended: Instant,
    outcome: Result<(), String>,
}

fn load(pool: PgPool, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Request>>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let work = async {
                let conn = pool.acquire().await.map_err(|e| e.to_string())?;
                conn.query_typed("SELECT $1::int4", &[(&1_i32, Type::INT4)])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            };
            let outcome = timeout(Duration::from_secs(3), work)
                .await
                .unwrap_or_else(|_| Err("hang".to_owned()));
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Request {
                    started,
                    ended: Instant::now(),
                    outcome,
                });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pgbouncer_restart_under_load_costs_only_transient_errors_and_the_pool_recovers() {
    const TASKS: usize = 8;
    if skip_without_pgbouncer() {
        return;
    }
    let db = start_db_with_password();
    let bouncer = start_bouncer(&db);
    let config = PoolConfig::default()
        .min_size(2)
        .max_size(6)
        .acquire_timeout(Duration::from_secs(1))
        .create_timeout(Duration::from_secs(1))
        .reconnect_delays(Duration::from_millis(50), Duration::from_millis(200));
    let pool = connect(&url_with_app(&bouncer.url(), "bouncer-restart"), config).await;

    let stop = Arc::new(AtomicBool::new(false));
    let logs: Vec<_> = (0..TASKS)
        .map(|_| Arc::new(Mutex::new(Vec::<Request>::new())))
        .collect();
    let tasks: Vec<_> = logs
        .iter()
        .map(|log| load(pool.clone(), Arc::clone(&stop), Arc::clone(log)))
        .collect();
    let succeeded_after = |log: &Mutex<Vec<Request>>, after: Instant| {
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|r| r.ended > after && r.outcome.is_ok())
            .map(|r| r.ended)
            .min()
    };
    let started = Instant::now();
    wait_until("every task succeeded once", || {
        logs.iter()
            .all(|log| succeeded_after(log, started).is_some())
    })
    .await;

    let restarting = Instant::now();
    bouncer.restart().expect("restart pgbouncer");
    let restarted = Instant::now();
    wait_until("every task succeeded after the restart", || {
        logs.iter()
            .all(|log| succeeded_after(log, restarted).is_some())
    })
    .await;
    let recovered = logs
        .iter()
        .filter_map(|log| succeeded_after(log, restarted))
        .max()
        .expect("every task recovered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        timeout(WAIT, task)
            .await
            .expect("a task hung")
            .expect("a task panicked");
    }

    let mut failed = 0;
    for log in &logs {
        let log = log.lock().unwrap_or_else(PoisonError::into_inner);
        let first_ok = log
            .iter()
            .filter(|r| r.ended > restarted && r.outcome.is_ok())
            .map(|r| r.ended)
            .min()
            .expect("recovered");
        let late: Vec<_> = log
            .iter()
            .filter(|r| r.started > first_ok && r.outcome.is_err())
            .collect();
        assert!(
            late.is_empty(),
            "errors after this task recovered: {late:?}"
        );
        assert!(
            log.iter()
                .all(|r| r.outcome.as_ref().err().is_none_or(|e| e != "hang")),
            "a request hung: {log:?}"
        );
        failed += log.iter().filter(|r| r.outcome.is_err()).count();
    }
    println!(
        "pgbouncer restart: took {:?}; every task served again {:?} after it; {failed} requests \
         failed in between",
        restarted - restarting,
        recovered.saturating_duration_since(restarted)
    );
    assert!(
        recovered.saturating_duration_since(restarted) < Duration::from_secs(2),
        "recovery took {:?}",
        recovered.saturating_duration_since(restarted)
    );
}
