//! The Prometheus exporter, in process: with the recorder installed before
//! the pool is built, every metric the pool records is rendered under the
//! OpenTelemetry names and the pool's name and agrees with its own
//! statistics snapshot; a pool built before the recorder records into it
//! from its first recording after the install.
//!
//! One test function on purpose: the recorder is process-global, and the
//! pool built *before* it is installed must not share the binary with
//! another test that installs it first.

mod common;

use std::time::{Duration, Instant};

use examples::metrics::{pool_label, prometheus_name, Exporter};
use pool_pg::metrics::{
    ACQUIRE_ERRORS, CLOSED, CONNECTION_COUNT, CONNECTION_IDLE_MAX, CONNECTION_IDLE_MIN,
    CONNECTION_MAX, CONNECTION_OPENING, CREATED, CREATE_FAILURES, CREATE_TIME, LEAKS_REPORTED,
    LEAKS_SUSPECTED, MANAGER_PANICS, PENDING_REQUESTS, POOL_HEALTH, POOL_STATE, TIMEOUTS, USE_TIME,
    WAIT_TIME,
};
use pool_pg::{PgPool, PoolConfig, Statistics};

/// How long the pool may take to settle at `min_size`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The value of the one sample named exactly `series` (name and labels).
fn value(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: not a number ({e})"))
}

/// `name{db_client_connection_pool_name="orders",extra...}`, `name` as
/// the exporter renders it.
fn series(name: &str, extra: &str) -> String {
    let (name, pool) = (prometheus_name(name), pool_label("orders"));
    if extra.is_empty() {
        format!("{name}{{{pool}}}")
    } else {
        format!("{name}{{{pool},{extra}}}")
    }
}

/// Waits until `pool` holds `total` connections with none opening (the
/// background refill finished), so the gauges cannot move under the test.
async fn settle(pool: &PgPool, total: u64) -> Statistics {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let stats = pool.statistics();
        if stats.total_connections == total && stats.opening_connections == 0 {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "the pool did not settle at {total} connections within {SETTLE_TIMEOUT:?}: {stats:?}"
        );
        pool.run_maintenance().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_built_after_the_recorder_renders_every_metric_under_its_name() {
    let db = common::database();
    // Built before any recorder exists: it records into it once installed.
    let early = PgPool::connect(
        &db.url(),
        PoolConfig::default().name("early").min_size(1).max_size(2),
    )
    .await
    .unwrap();
    let exporter = Exporter::install().unwrap();
    let pool = PgPool::connect(
        &db.url(),
        PoolConfig::default().name("orders").min_size(2).max_size(5),
    )
    .await
    .unwrap();
    assert!(exporter.records(&pool));
    drop(early.acquire().await.unwrap());
    assert!(exporter.records(&early));
    let early_text = exporter.render();
    let early_wait = format!(
        "{}_count{{{}}}",
        prometheus_name(WAIT_TIME),
        pool_label("early")
    );
    assert_eq!(value(&early_text, &early_wait), 1.0, "{early_text}");

    let discarded = pool.acquire().await.unwrap();
    discarded.discard();
    settle(&pool, 2).await;
    let held = pool.acquire().await.unwrap();
    let text = exporter.scrape(&pool);
    let stats = pool.statistics();
    println!("{text}"); // shown when the test fails

    assert!(!text.contains("pool=\""), "the old label: {text}");
    for (state, expected) in [("used", 1), ("idle", stats.idle_connections)] {
        let labels = format!("db_client_connection_state=\"{state}\"");
        assert_eq!(
            value(&text, &series(CONNECTION_COUNT, &labels)),
            expected as f64,
            "{state}"
        );
    }
    assert_eq!(stats.idle_connections, 1);
    assert!(
        !text.contains("db_client_connection_state=\"opening\""),
        "{text}"
    );
    assert_eq!(value(&text, &series(CONNECTION_OPENING, "")), 0.0);
    assert_eq!(value(&text, &series(CONNECTION_MAX, "")), 5.0);
    assert_eq!(value(&text, &series(CONNECTION_IDLE_MAX, "")), 5.0);
    assert_eq!(value(&text, &series(CONNECTION_IDLE_MIN, "")), 2.0);
    assert_eq!(value(&text, &series(PENDING_REQUESTS, "")), 0.0);
    assert_eq!(value(&text, &series(TIMEOUTS, "")), 0.0);
    assert_eq!(value(&text, &series(CREATE_FAILURES, "")), 0.0);
    assert_eq!(
        value(&text, &series(CREATED, "")),
        stats.connections_created as f64
    );
    assert_eq!(stats.connections_created, 3);
    assert_eq!(value(&text, &series(CLOSED, "reason=\"discarded\"")), 1.0);
    assert_eq!(value(&text, &series(CLOSED, "reason=\"lifetime\"")), 0.0);

    // Real Prometheus histograms: buckets from 100 µs to 30 s, sum, count.
    for (histogram, count) in [
        (WAIT_TIME, stats.total_acquisitions),
        (USE_TIME, stats.total_releases),
        (CREATE_TIME, stats.connections_created),
    ] {
        assert!(
            text.contains(&format!("# TYPE {} histogram", prometheus_name(histogram))),
            "{histogram}"
        );
        let count_series = series(&format!("{histogram}_count"), "");
        assert_eq!(value(&text, &count_series), count as f64, "{histogram}");
        let bucket = |le: &str| series(&format!("{histogram}_bucket"), &format!("le=\"{le}\""));
        assert_eq!(value(&text, &bucket("+Inf")), count as f64, "{histogram}");
        assert!(
            value(&text, &bucket("0.0001")) <= count as f64,
            "{histogram}"
        );
        assert!(value(&text, &bucket("30")) <= count as f64, "{histogram}");
        assert!(value(&text, &series(&format!("{histogram}_sum"), "")) >= 0.0);
    }
    assert_eq!(stats.total_acquisitions, 2);
    assert_eq!(stats.total_releases, 1);
    assert!(value(&text, &series(&format!("{CREATE_TIME}_sum"), "")) > 0.0);

    let state = format!("state=\"{}\"", stats.state.as_str());
    assert_eq!(value(&text, &series(POOL_STATE, &state)), 1.0, "{state}");
    assert_eq!(
        value(&text, &series(POOL_STATE, "state=\"RECOVERING\"")),
        0.0
    );
    let verdict = format!("status=\"{}\"", pool.health_check().status.as_str());
    assert_eq!(value(&text, &series(POOL_HEALTH, &verdict)), 1.0);

    // The rare events, republished by the scrape from the snapshot.
    assert_eq!(value(&text, &series(LEAKS_SUSPECTED, "")), 0.0);
    assert_eq!(value(&text, &series(LEAKS_REPORTED, "")), 0.0);
    assert_eq!(value(&text, &series(ACQUIRE_ERRORS, "")), 0.0);
    assert_eq!(value(&text, &series(MANAGER_PANICS, "")), 0.0);
    // Nothing of the pool's own in the convention's namespace.
    for line in text.lines().filter(|l| l.contains(&pool_label("orders"))) {
        assert!(
            line.starts_with("db_client_connection_") || line.starts_with("pool_core_"),
            "{line}"
        );
    }
    drop(held);

    pool.shutdown(Duration::from_secs(5)).await;
    let refused = pool.acquire().await.unwrap_err();
    assert!(refused.is_closed(), "{refused}");
    let text = exporter.scrape(&pool);
    let stats = pool.statistics();
    assert_eq!(
        value(&text, &series(POOL_STATE, "state=\"TERMINATED\"")),
        1.0
    );
    assert_eq!(
        value(&text, &series(POOL_HEALTH, "status=\"unhealthy\"")),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &series(CONNECTION_COUNT, "db_client_connection_state=\"idle\"")
        ),
        0.0
    );
    assert_eq!(
        value(&text, &series(CLOSED, "reason=\"pool_closed\"")),
        stats.closed_by_reason.pool_closed as f64
    );
    assert!(stats.acquire_errors >= 1, "{stats:?}");
    assert_eq!(
        value(&text, &series(ACQUIRE_ERRORS, "")),
        stats.acquire_errors as f64
    );
    early.close();
}
