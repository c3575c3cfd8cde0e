//! The README's "run it" command: `cargo run -p examples --example demo`.
//!
//! With `DATABASE_URL` set it uses that database (and the `POOL_*`
//! variables); without it, it starts a throwaway PostgreSQL from the
//! machine's binaries. It builds a pool, runs a few hundred queries from
//! many tasks at once, shows what the pool saw (statistics with latency
//! percentiles, and the health verdict), and shuts down cleanly.

use std::time::{Duration, Instant};

use pg_tempdb::TempDb;
use pool_pg::{PgConfig, PoolConfig};

const TASKS: usize = 32;
const QUERIES_PER_TASK: usize = 10;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(true)
        .compact()
        .init();

    // Keep the throwaway server (if any) alive until the end of `main`.
    let (config, _server) = match std::env::var_os("DATABASE_URL") {
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
                .acquire_timeout(Duration::from_secs(5));
            (PgConfig::new(&server.url(), pool)?, Some(server))
        }
    };

    let pool = config.build().await?;
    println!(
        "\nRunning {} queries from {TASKS} tasks on a pool of at most {} connections...",
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
                        .await
                        .map_err(|e| format!("query failed: {e}"))?;
                    sum += row.get::<_, i64>(0);
                }
                Ok::<i64, Box<dyn std::error::Error + Send + Sync>>(sum)
            })
        })
        .collect();
    let mut total = 0i64;
    for task in tasks {
        total += task.await?.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    let n = (TASKS * QUERIES_PER_TASK) as i64;
    assert_eq!(total, n * (n - 1), "every query returned the right answer");
    println!(
        "Done: {} queries in {:.1} ms ({:.0} queries/s), results verified.",
        n,
        elapsed.as_secs_f64() * 1000.0,
        n as f64 / elapsed.as_secs_f64()
    );

    println!("\nStatistics:");
    println!("{}", serde_json::to_string_pretty(&pool.statistics())?);
    println!("\nHealth:");
    println!("{}", serde_json::to_string_pretty(&pool.health_check())?);

    pool.close();
    println!("\nPool closed. Bye.");
    Ok(())
}
