//! `cargo run -p examples --example failover`: a failover, watched from
//! the pool.
//!
//! Starts a throwaway primary and a streaming standby (`pg_basebackup -R`),
//! opens a `read-write` pool on a URL naming both, and writes in a loop
//! from four tasks. Then it stops the primary, promotes the standby with
//! `pg_ctl promote`, and prints how long the writes were interrupted: from
//! the stop, and from the promotion, to the first successful write on the
//! new primary. Set `RUST_LOG=info` to see the pool's own account
//! (`Connection pool recovered: ..`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pg_tempdb::{TempCluster, TempDb};
use pool_pg::{PgPool, PoolConfig};
use tokio::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

const WRITERS: i32 = 4;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    println!("starting a primary and a streaming standby ...");
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| {
            TempCluster::start(TempDb::builder().user("app").password("failover-demo"))
        })
        .await??,
    );
    cluster.primary().execute(
        "CREATE TABLE events (id bigserial PRIMARY KEY, writer int); \
         ALTER TABLE events OWNER TO app",
    )?;
    let url = format!(
        "{}&application_name=failover-demo",
        cluster.url("read-write")
    );
    println!(
        "primary on port {}, standby on port {}; pool URL {}",
        cluster.primary().port(),
        cluster.standby().port(),
        pool_pg::redact_url(&url)
    );
    let pool = PgPool::connect(
        &url,
        PoolConfig::default()
            .min_size(2)
            .max_size(4)
            .acquire_timeout(Duration::from_secs(1))
            .create_timeout(Duration::from_secs(1))
            .reconnect_delays(Duration::from_millis(50), Duration::from_millis(200)),
    )
    .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let last_success = Arc::new(Mutex::new(None::<Instant>));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            let (pool, stop) = (pool.clone(), Arc::clone(&stop));
            let (failures, last) = (Arc::clone(&failures), Arc::clone(&last_success));
            tokio::spawn(write_loop(pool, id, stop, failures, last))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("stopping the primary ...");
    let stopping = Instant::now();
    let primary = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || primary.primary().stop()).await??;
    println!("promoting the standby ...");
    let promoting = Instant::now();
    let standby = Arc::clone(&cluster);
    let took = tokio::task::spawn_blocking(move || standby.promote()).await??;
    println!("promoted in {took:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let last = *last_success.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = last.filter(|at| *at > stopping) {
            break at;
        }
        if Instant::now() > deadline {
            return Err("no write succeeded within 10 s of the promotion".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await?;
    }
    println!(
        "first write on the new primary: {:?} after the primary's stop began, {:?} after \
         pg_ctl promote; {} writes failed meanwhile",
        first.saturating_duration_since(stopping),
        first.saturating_duration_since(promoting),
        failures.load(Ordering::Relaxed)
    );
    println!("pool statistics: {:?}", pool.statistics().closed_by_reason);
    Ok(())
}

async fn write_loop(
    pool: PgPool,
    id: i32,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    last_success: Arc<Mutex<Option<Instant>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let write = async {
            let conn = pool.acquire().await?;
            conn.execute("INSERT INTO events (writer) VALUES ($1)", &[&id])
                .await?;
            Ok::<_, Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(3), write).await {
            Ok(Ok(())) => {
                *last_success.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            }
            _ => {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
