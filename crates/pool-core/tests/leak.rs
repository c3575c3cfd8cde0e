//! Leak detection: a connection held past the timeout is reported once,
//! with the caller's own file and line; it comes back with an "unleaked"
//! line; the opt-out and the switch work; health degrades for 60 s.
//! Fake manager, paused clock, captured logs.

mod common;

use std::time::Duration;

use common::{config, FakeManager, Logs};
use pool_core::{HealthState, Pool, PoolConfig};

const TIMEOUT: Duration = Duration::from_secs(5);

fn leaky(cfg: PoolConfig) -> PoolConfig {
    cfg.leak_detection_timeout(TIMEOUT)
}

async fn build(cfg: PoolConfig) -> Pool<FakeManager> {
    Pool::build(FakeManager::new(), cfg)
        .await
        .expect("pool builds")
}

#[tokio::test(start_paused = true)]
async fn a_connection_held_past_the_timeout_is_reported_once_with_the_callers_line() {
    let (logs, _guard) = Logs::scoped();
    let pool = build(leaky(config(1, 2))).await;
    let conn = pool.acquire().await.unwrap();
    let here = format!("{}:{}", file!(), line!() - 1);
    assert_eq!(conn.acquired_at().as_deref(), Some(here.as_str()));

    tokio::time::sleep(TIMEOUT - Duration::from_millis(10)).await;
    assert!(
        logs.lines_with("Potential connection leak").is_empty(),
        "not before the timeout"
    );

    tokio::time::sleep(Duration::from_secs(30)).await;
    let reports = logs.lines_with("Potential connection leak detected");
    assert_eq!(reports.len(), 1, "exactly once: {reports:?}");
    assert!(reports[0].contains(&here), "{}", reports[0]);
    assert!(
        reports[0].contains("held_duration_seconds"),
        "{}",
        reports[0]
    );
    let s = pool.statistics();
    assert_eq!((s.leaks_suspected, s.leaks_reported_total), (1, 1));

    drop(conn);
    let back = logs.lines_with("unleaked");
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(back[0].contains("returned after"), "{}", back[0]);
    assert_eq!(pool.statistics().leaks_suspected, 0);
    assert_eq!(pool.statistics().leaks_reported_total, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_returned_in_time_is_never_reported() {
    let (logs, _guard) = Logs::scoped();
    let pool = build(leaky(config(1, 2))).await;
    for _ in 0..5 {
        let conn = pool.acquire().await.unwrap();
        tokio::time::sleep(TIMEOUT / 2).await;
        drop(conn);
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(logs.lines_with("leak").is_empty(), "{}", logs.text());
    assert_eq!(pool.statistics().leaks_reported_total, 0);
}

#[tokio::test(start_paused = true)]
async fn disabling_leak_detection_stops_all_of_it() {
    for cfg in [
        leaky(config(1, 2)).enable_leak_detection(false),
        config(1, 2).leak_detection_timeout(Duration::ZERO),
    ] {
        let (logs, _guard) = Logs::scoped();
        let pool = build(cfg).await;
        let conn = pool.acquire().await.unwrap();
        assert_eq!(conn.acquired_at(), None, "no site recorded");
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(conn);
        assert!(logs.lines_with("leak").is_empty(), "{}", logs.text());
        assert_eq!(pool.statistics().leaks_reported_total, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_marked_long_held_is_not_reported() {
    let (logs, _guard) = Logs::scoped();
    let pool = build(leaky(config(1, 2))).await;
    let listener = pool.acquire().await.unwrap();
    listener.mark_long_held();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(logs.lines_with("Potential connection leak").is_empty());
    drop(listener);
    // The exemption was for that lending only.
    let next = pool.acquire().await.unwrap();
    tokio::time::sleep(TIMEOUT * 3).await;
    assert_eq!(logs.lines_with("Potential connection leak").len(), 1);
    drop(next);
}

#[tokio::test(start_paused = true)]
async fn health_degrades_while_a_leak_was_reported_in_the_last_minute() {
    let pool = build(leaky(config(1, 10))).await;
    let conn = pool.acquire().await.unwrap();
    tokio::time::sleep(TIMEOUT * 3).await;
    drop(conn);
    let health = pool.health_check();
    assert_eq!(health.status, HealthState::Degraded, "{health:?}");
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r == "Connection pool health degraded: 1 potential leaks detected in last 60s"),
        "{:?}",
        health.reasons
    );
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(pool.health_check().status, HealthState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_leak_report_with_backtraces_on_contains_a_frame_of_the_test() {
    let (logs, _guard) = Logs::scoped();
    let pool = build(leaky(config(1, 2)).leak_backtrace(true)).await;
    let conn = pool.acquire().await.unwrap();
    tokio::time::sleep(TIMEOUT * 3).await;
    let reports = logs.lines_with("Potential connection leak detected");
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].contains("a_leak_report_with_backtraces_on_contains_a_frame_of_the_test"),
        "{}",
        reports[0]
    );
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn a_forced_shutdown_lists_the_acquisition_sites() {
    let pool = build(leaky(config(1, 2))).await;
    let conn = pool.acquire().await.unwrap();
    let here = format!("{}:{}", file!(), line!() - 1);
    let report = pool.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.forced.len(), 1);
    assert_eq!(report.forced[0].acquired_at.as_deref(), Some(here.as_str()));
    drop(conn);
}
