//! `cargo run -p examples --example usage`: the code of
//! `docs/examples/usage.md`, compiled and run against a throwaway PostgreSQL
//! (or `DATABASE_URL`).
//!
//! Each function is one section of the guide; the test `tests/usage_doc.rs`
//! checks that every snippet of the guide appears here verbatim, so the
//! guide cannot drift from code that compiles and runs.

use std::time::Duration;

use pg_tempdb::TempDb;
use pool_pg::tokio_postgres::config::SslMode;
use pool_pg::{HealthState, NoTls, PgConfig, PgPool, PoolConfig, PoolState};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let server = match std::env::var_os("DATABASE_URL") {
        Some(_) => None,
        None => Some(tokio::task::spawn_blocking(TempDb::start).await??),
    };
    let url = match &server {
        Some(server) => server.url(),
        None => std::env::var("DATABASE_URL")?,
    };

    let pool = initialization(&url).await?;
    acquisition(&pool).await?;
    health(&pool);
    errors(&url).await?;
    shutdown(pool).await;
    Ok(())
}

/// Three ways to build a pool.
async fn initialization(url: &str) -> Result<PgPool, Error> {
    println!("== Initialization");
    // 1. From the environment: DATABASE_URL and the POOL_* variables.
    if std::env::var_os("DATABASE_URL").is_some() {
        let pool = PgPool::from_env().await?;
        println!("from the environment: max_size {}", pool.config().max_size);
        pool.close();
    }

    // 2. From a URL and a PoolConfig built in code.
    let pool = PgPool::connect(
        url,
        PoolConfig::default()
            .min_size(2)
            .max_size(8)
            .acquire_timeout(Duration::from_secs(5))
            .leak_detection_timeout(Duration::from_secs(10)),
    )
    .await?;

    // 3. With TLS: adjust the parsed connection settings, then build with a
    //    TLS connector. `NoTls` stands in for a real one, such as
    //    `tokio_postgres_rustls::MakeRustlsConnect::new(client_config)`.
    let mut config = PgConfig::new(url, PoolConfig::default().min_size(1))?;
    config.database.ssl_mode(SslMode::Prefer);
    let tls_pool = config.build_with_tls(NoTls).await?;
    println!("TLS-ready pool: {}", tls_pool.state());
    tls_pool.close();
    Ok(pool)
}

/// acquire, try_acquire, a transaction, and a connection held on purpose.
async fn acquisition(pool: &PgPool) -> Result<(), Error> {
    println!("== Acquisition");
    // acquire(): waits up to acquire_timeout for a connection.
    let conn = pool.acquire().await?;
    let row = conn.query_one("SELECT $1::int4 + 1", &[&41]).await?;
    println!("41 + 1 = {}", row.get::<_, i32>(0));
    drop(conn); // back to the pool

    // acquire_timeout(): a deadline of this call's own; pool and query
    // errors are one type, pool_pg::Error.
    match relations(pool).await {
        Ok(n) => println!("{n} relations"),
        Err(error) if error.is_retryable() => println!("try again later: {error}"),
        Err(error) => return Err(error.into()),
    }

    // try_acquire(): an idle connection now, or an error at once.
    match pool.try_acquire() {
        Ok(conn) => println!("got idle connection {}", conn.id()),
        Err(error) if error.is_exhausted() => println!("nothing idle: {error}"),
        Err(error) => return Err(error.into()),
    }

    // A transaction: rolls back unless committed, even if the task is
    // cancelled mid-way.
    let mut conn = pool.acquire().await?;
    let tx = conn.transaction().await?;
    tx.batch_execute("CREATE TEMP TABLE IF NOT EXISTS notes (body text)")
        .await?;
    tx.execute("INSERT INTO notes VALUES ($1)", &[&"hello"])
        .await?;
    tx.commit().await?;
    drop(conn);

    // A connection held on purpose (a LISTEN loop, a leader lock, a long
    // migration): exempt it from leak reports, and discard it afterwards
    // because its session state (LISTEN, locks) must not reach the next
    // caller.
    let conn = pool.acquire().await?;
    conn.mark_long_held();
    conn.batch_execute("LISTEN pool_events").await?;
    let leader: bool = conn
        .query_one("SELECT pg_try_advisory_lock(42)", &[])
        .await?
        .get(0);
    println!("leader: {leader}");
    conn.discard();
    Ok(())
}

/// A per-call deadline, and one error type for the pool and the query.
async fn relations(pool: &PgPool) -> Result<i64, pool_pg::Error> {
    let conn = pool.acquire_timeout(Duration::from_millis(200)).await?;
    let row = conn.query_one("SELECT count(*) FROM pg_class", &[]).await?;
    Ok(row.get(0))
}

/// The health verdict and a few statistics.
fn health(pool: &PgPool) {
    println!("== Health");
    let health = pool.health_check(); // no query, no lock
    match health.status {
        HealthState::Healthy => println!("healthy"),
        HealthState::Degraded => println!("degraded: {}", health.reasons.join("; ")),
        _ => println!("unhealthy: {}", health.reasons.join("; ")),
    }
    let stats = pool.statistics();
    println!(
        "{} open ({} idle, {} in use), {} waiting; wait p99 {:.2} ms; {} timeouts",
        stats.total_connections,
        stats.idle_connections,
        stats.active_connections,
        stats.waiting_requests,
        stats.wait_time.p99_ms,
        stats.total_timeouts
    );
}

/// What a caller does with each kind of pool error.
fn handle(error: &pool_pg::Error) -> &'static str {
    if error.is_timeout() {
        // Every connection stayed busy (or connecting was slow): shed load.
        "timeout: answer 503 and retry later"
    } else if error.is_unavailable() {
        // The database is down; the pool reconnects in the background.
        "unavailable: answer 503 at once, retry in a few seconds"
    } else if error.is_closed() {
        // The pool was shut down: this process is stopping.
        "closed: stop taking work"
    } else {
        // Wrong credentials, unknown database, ...: no retry will help.
        "fatal: fix the configuration"
    }
}

/// Provokes a timeout and a closed pool, and shows how each is handled.
async fn errors(url: &str) -> Result<(), Error> {
    println!("== Error handling");
    let small = PgPool::connect(
        url,
        PoolConfig::default()
            .min_size(1)
            .max_size(1)
            .acquire_timeout(Duration::from_millis(200)),
    )
    .await?;
    let held = small.acquire().await?;
    match small.acquire().await {
        Ok(_) => println!("unexpected: a second connection"),
        Err(error) => println!("{} ({:?} phase)", handle(&error), error.timeout_phase()),
    }
    drop(held);
    small.close();
    if let Err(error) = small.acquire().await {
        println!("{}", handle(&error));
    }
    Ok(())
}

/// Graceful shutdown: wait for borrowed connections, then close.
async fn shutdown(pool: PgPool) {
    println!("== Shutdown");
    let mut states = pool.subscribe_state();
    let watcher = tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = *states.borrow_and_update();
            println!("state -> {state}");
            if state == PoolState::Terminated {
                break;
            }
        }
    });
    let report = pool.shutdown(Duration::from_secs(30)).await;
    println!(
        "shut down in {:.1} ms: {} idle closed, {} returned in time, {} forced",
        report.duration_ms,
        report.idle_closed,
        report.returned_in_time,
        report.forced.len()
    );
    if let Err(error) = watcher.await {
        println!("state watcher failed: {error}");
    }
}
