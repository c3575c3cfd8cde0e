//! The `metrics` feature: every statistic recorded at its source through
//! the `metrics` facade agrees with the pool's own snapshot, under the
//! pool's name.
//!
//! One test function on purpose: the debugging recorder is process-global
//! and a snapshot resets what it read, so tests in parallel would steal
//! each other's values.
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{config, FakeManager, Gate};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pool_core::metrics::{
    CLOSED, CONNECTION_COUNT, CONNECTION_IDLE_MIN, CONNECTION_MAX, CREATED, CREATE_FAILURES,
    CREATE_TIME, POOL_HEALTH, POOL_STATE, TIMEOUTS, USE_TIME, WAIT_TIME,
};
use pool_core::{Pool, PoolError};

/// `(name, sorted labels)` → value, for one pool.
type Readings = HashMap<(String, Vec<(String, String)>), DebugValue>;

fn readings(snapshotter: &metrics_util::debugging::Snapshotter, pool: &str) -> Readings {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            if !labels.contains(&("pool".to_owned(), pool.to_owned())) {
                return None;
            }
            labels.retain(|(k, _)| k != "pool");
            Some(((key.name().to_owned(), labels), value))
        })
        .collect()
}

fn counter(r: &Readings, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(r, name, labels) {
        DebugValue::Counter(n) => *n,
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

fn gauge(r: &Readings, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(r, name, labels) {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn samples(r: &Readings, name: &str) -> usize {
    match value(r, name, &[]) {
        DebugValue::Histogram(v) => v.len(),
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

fn value<'r>(r: &'r Readings, name: &str, labels: &[(&str, &str)]) -> &'r DebugValue {
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    r.get(&(name.to_owned(), labels.clone()))
        .unwrap_or_else(|| panic!("no {name}{labels:?}; have {:?}", r.keys()))
}

#[tokio::test(start_paused = true)]
async fn every_metric_agrees_with_the_pools_own_statistics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder in this binary");

    let pool = Pool::build(
        FakeManager::new(),
        config(1, 2)
            .name("orders")
            .acquire_timeout(Duration::from_millis(100)),
    )
    .await
    .expect("pool builds");
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();
    // Full: this one times out.
    let timeout = pool.acquire().await.unwrap_err();
    assert!(matches!(timeout, PoolError::Timeout(_)), "{timeout:?}");
    drop(first);
    second.discard();
    pool.manager().set_create(Gate::Err);
    pool.evict_all();
    // Connects now fail: a failure, counted once per attempt.
    assert!(pool.acquire().await.is_err());

    let s = pool.statistics();
    let health = pool.health_check();
    let r = readings(&snapshotter, "orders");
    assert_eq!(counter(&r, CREATED, &[]), s.connections_created);
    assert_eq!(counter(&r, CREATE_FAILURES, &[]), s.connection_failures);
    assert!(s.connection_failures > 0);
    assert_eq!(counter(&r, TIMEOUTS, &[]), s.total_timeouts);
    assert!(s.total_timeouts >= 1);
    assert_eq!(
        counter(&r, CLOSED, &[("reason", "discarded")]),
        s.closed_by_reason.discarded
    );
    assert_eq!(
        counter(&r, CLOSED, &[("reason", "evicted")]),
        s.closed_by_reason.evicted
    );
    assert_eq!(s.closed_by_reason.evicted, 1);
    assert_eq!(samples(&r, WAIT_TIME) as u64, s.total_acquisitions);
    assert_eq!(samples(&r, USE_TIME) as u64, s.total_releases);
    assert_eq!(samples(&r, CREATE_TIME) as u64, s.connections_created);
    for (state, expected) in [
        ("idle", s.idle_connections),
        ("used", s.active_connections),
        ("opening", s.opening_connections),
    ] {
        assert_eq!(
            gauge(&r, CONNECTION_COUNT, &[("state", state)]),
            expected as f64,
            "{state}"
        );
    }
    assert_eq!(gauge(&r, CONNECTION_MAX, &[]), 2.0);
    assert_eq!(gauge(&r, CONNECTION_IDLE_MIN, &[]), 1.0);
    let state = s.state.as_str();
    assert_eq!(gauge(&r, POOL_STATE, &[("state", state)]), 1.0);
    assert_eq!(gauge(&r, POOL_STATE, &[("state", "INITIALIZING")]), 0.0);
    assert_eq!(
        gauge(&r, POOL_HEALTH, &[("status", health.status.as_str())]),
        1.0
    );
}
