//! The README's "run it" command: `cargo run -p examples --example demo`.
//!
//! With `DATABASE_URL` set it uses that database (and the `POOL_*`
//! variables); without it, it starts a throwaway PostgreSQL from the
//! machine's binaries. It then shows, in order:
//!
//! 1. a concurrent workload (a few hundred queries from many tasks on a
//!    small pool), with the statistics (latency percentiles) and health;
//! 2. leak detection: one connection held past a short leak timeout is
//!    reported with the line that acquired it, and reported again when it
//!    comes back;
//! 3. an outage (throwaway server only): the server is stopped under load,
//!    the pool goes `RECOVERING` and backs off, the server comes back and
//!    the demo measures how long until queries succeed again;
//! 4. a graceful shutdown with its report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_tempdb::TempDb;
use pool_pg::{PgConfig, PgPool, PoolConfig, PoolState};

const TASKS: usize = 32;
const QUERIES_PER_TASK: usize = 10;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pool_core::connect=error".into()),
        )
        .with_target(true)
        .compact()
        .init();

    // Keep the throwaway server (if any) alive until the end of `main`.
    let (config, server) = match std::env::var_os("DATABASE_URL") {
        Some(_) => {
            println!("Using DATABASE_URL and POOL_* from the environment.");
            (PgConfig::from_env()?, None)
        }
        None => {
            println!("No DATABASE_URL: starting a throwaway PostgreSQL...");
            let server = tokio::task::spawn_blocking(TempDb::start).await??;
            println!(
                "PostgreSQL {} listening on 127.0.0.1:{}",
                server.server_version(),
                server.port()
            );
            let pool = PoolConfig::default()
                .min_size(2)
                .max_size(8)
                .acquire_timeout(Duration::from_secs(5))
                .create_timeout(Duration::from_secs(2))
                .leak_detection_timeout(Duration::from_millis(500));
            (PgConfig::new(&server.url(), pool)?, Some(Arc::new(server)))
        }
    };

    let pool = config.build().await?;
    workload(&pool).await?;
    leak(&pool).await?;
    if let Some(server) = &server {
        outage(&pool, server).await?;
    }

    section("Graceful shutdown");
    let report = pool.shutdown(Duration::from_secs(30)).await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("State: {}. Bye.", pool.state());
    Ok(())
}

fn section(title: &str) {
    println!("\n=== {title} ===");
}

/// A few hundred queries from many tasks, then what the pool saw.
async fn workload(pool: &PgPool) -> Result<(), Error> {
    section("Concurrent workload");
    println!(
        "Running {} queries from {TASKS} tasks on a pool of at most {} connections...",
        TASKS * QUERIES_PER_TASK,
        pool.config().max_size
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut sum = 0i64;
                for query in 0..QUERIES_PER_TASK {
                    let conn = pool.acquire().await?;
                    // A little server-side work so connections are really
                    // contended: 32 tasks share at most 8 connections.
                    let row = conn
                        .query_one(
                            "SELECT $1::int8 * 2, pg_sleep(0.002)::text",
                            &[&((task * QUERIES_PER_TASK + query) as i64)],
                        )
                        .await?;
                    sum += row.get::<_, i64>(0);
                }
                Ok::<i64, Error>(sum)
            })
        })
        .collect();
    let mut total = 0i64;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = started.elapsed();
    let n = (TASKS * QUERIES_PER_TASK) as i64;
    if total != n * (n - 1) {
        return Err(format!("wrong results: {total} != {}", n * (n - 1)).into());
    }
    println!(
        "Done: {n} queries in {:.1} ms ({:.0} queries/s), results verified.",
        elapsed.as_secs_f64() * 1000.0,
        n as f64 / elapsed.as_secs_f64()
    );
    println!("\nStatistics:");
    println!("{}", serde_json::to_string_pretty(&pool.statistics())?);
    println!("\nHealth:");
    println!("{}", serde_json::to_string_pretty(&pool.health_check())?);
    Ok(())
}

/// Holds one connection past the leak timeout, then gives it back.
async fn leak(pool: &PgPool) -> Result<(), Error> {
    section("Leak detection");
    let timeout = pool.config().leak_detection_timeout;
    println!(
        "Holding one connection for {} ms with leak_detection_timeout = {} ms (watch for the WARN line)...",
        timeout.as_millis() * 3,
        timeout.as_millis()
    );
    let conn = pool.acquire().await?;
    tokio::time::sleep(timeout * 3).await;
    println!(
        "leaks_suspected = {}; health: {}",
        pool.statistics().leaks_suspected,
        pool.health_check().reasons.join("; ")
    );
    drop(conn);
    println!(
        "Returned it (see the 'unleaked' line); leaks_reported_total = {}",
        pool.statistics().leaks_reported_total
    );
    Ok(())
}

/// Stops the server under load, shows the recovery, and measures it.
async fn outage(pool: &PgPool, server: &Arc<TempDb>) -> Result<(), Error> {
    section("Outage and recovery");
    let (ok, unavailable, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let load_until = Instant::now() + Duration::from_secs(8);
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (pool, ok, unavailable, other) =
                (pool.clone(), ok.clone(), unavailable.clone(), other.clone());
            tokio::spawn(async move {
                while Instant::now() < load_until {
                    match pool.acquire().await {
                        Ok(conn) => match conn.simple_query("SELECT 1").await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => other.fetch_add(1, Ordering::Relaxed),
                        },
                        Err(e) if e.is_unavailable() => unavailable.fetch_add(1, Ordering::Relaxed),
                        Err(_) => other.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    let mut states = pool.subscribe_state();
    let watcher = tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = *states.borrow_and_update();
            println!("  state -> {state}");
            if state == PoolState::Terminated {
                break;
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("Stopping PostgreSQL under load...");
    let stopping = Arc::clone(server);
    tokio::task::spawn_blocking(move || stopping.stop()).await??;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "While down: {} callers were told at once that the database is unavailable (no waiting); health: {}",
        unavailable.load(Ordering::Relaxed),
        pool.health_check().status.as_str()
    );
    println!("Starting PostgreSQL again...");
    let starting = Arc::clone(server);
    tokio::task::spawn_blocking(move || starting.start_again()).await??;
    let back = Instant::now();
    let ok_before = ok.load(Ordering::Relaxed);
    while ok.load(Ordering::Relaxed) == ok_before {
        if back.elapsed() > Duration::from_secs(10) {
            return Err("no query succeeded within 10 s of the restart".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "Recovered: the first query succeeded {:.0} ms after PostgreSQL accepted connections again.",
        back.elapsed().as_secs_f64() * 1000.0
    );
    for task in load {
        task.await?;
    }
    println!(
        "Load totals: {} ok, {} unavailable, {} other errors (queries cut by the stop).",
        ok.load(Ordering::Relaxed),
        unavailable.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed)
    );
    watcher.abort();
    Ok(())
}
