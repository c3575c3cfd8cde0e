//! Lifetimes and idle timeouts on the production clock (the CPU's
//! time-stamp counter), against the real server, in real time.
//!
//! Every other pool-core timing test drives tokio's paused clock through
//! the `paused-clock` feature; a workspace-wide `cargo test` unifies that
//! feature into every crate. `.ci/run` therefore also runs this file alone
//! (`cargo test -p pool-pg --test production_clock`, with
//! `POOL_EXPECT_PRODUCTION_CLOCK=1`), where it must be the counter clock.

mod common;

use std::time::Duration;

use common::{connect, small_pool, start_db, url_with_app, wait_until};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetimes_and_idle_timeouts_run_on_the_production_clock() {
    if std::env::var_os("POOL_EXPECT_PRODUCTION_CLOCK").is_some() {
        let paused: bool = std::hint::black_box(pool_pg::PAUSED_CLOCK);
        assert!(
            !paused,
            "run alone, this test must drive the time-stamp counter clock"
        );
    }
    eprintln!(
        "pool clock: {}",
        if pool_pg::PAUSED_CLOCK {
            "tokio (paused-clock feature unified in)"
        } else {
            "time-stamp counter (production)"
        }
    );
    let db = start_db();
    let app = "production-clock";
    let max_lifetime = Duration::from_millis(600);
    let max_idle_time = Duration::from_millis(300);
    let config = small_pool()
        .min_size(0)
        .max_size(2)
        .max_lifetime(max_lifetime)
        .max_lifetime_jitter_percent(0)
        .max_idle_time(max_idle_time)
        .maintenance_interval(Duration::from_millis(50));
    let pool = connect(&url_with_app(&db.url(), app), config).await;

    // Idle timeout: a connection returned and left alone is closed by
    // maintenance once idle longer than max_idle_time, not before.
    let returned_at = {
        let conn = pool.acquire().await.unwrap();
        conn.simple_query("SELECT 1").await.unwrap();
        Instant::now()
    };
    wait_until("the idle connection is closed", || {
        pool.statistics().closed_by_reason.idle_timeout >= 1
    })
    .await;
    let idle_for = returned_at.elapsed();
    eprintln!("idle timeout {max_idle_time:?}: closed after {idle_for:?}");
    assert!(idle_for >= max_idle_time, "closed early: {idle_for:?}");

    // Lifetime: a connection held past max_lifetime is retired on return.
    let conn = pool.acquire().await.unwrap();
    let opened = Instant::now();
    conn.simple_query("SELECT 1").await.unwrap();
    tokio::time::sleep(max_lifetime + Duration::from_millis(50)).await;
    drop(conn);
    let s = pool.statistics();
    assert_eq!(
        s.closed_by_reason.lifetime,
        1,
        "retired on return after {:?}: {s:?}",
        opened.elapsed()
    );
    // And one younger than max_lifetime is kept.
    let conn = pool.acquire().await.unwrap();
    conn.simple_query("SELECT 1").await.unwrap();
    drop(conn);
    assert_eq!(pool.statistics().closed_by_reason.lifetime, 1);
    assert_eq!(pool.statistics().idle_connections, 1);
}
