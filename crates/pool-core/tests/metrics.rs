//! The `metrics` feature: every statistic recorded at its source through
//! the `metrics` facade agrees with the pool's own snapshot, under the
//! OpenTelemetry names and the pool's name; a recorder installed after the
//! pool was built receives its series too.
//!
//! One test function installs the global recorder on purpose: it can be
//! installed once per process, and a snapshot resets what it read, so two
//! tests reading it in parallel would steal each other's values. The other
//! test uses a recorder local to its thread (and its current-thread
//! runtime), which the global one does not see.
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{config, FakeManager, Gate};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pool_core::metrics::{
    ACQUIRE_ERRORS, ATTR_POOL_NAME, ATTR_STATE, BACKGROUND_RESTARTS, CLOSED, CONNECTION_COUNT,
    CONNECTION_IDLE_MAX, CONNECTION_IDLE_MIN, CONNECTION_MAX, CONNECTION_OPENING, CREATED,
    CREATE_FAILURES, CREATE_TIME, LEAKS_REPORTED, LEAKS_SUSPECTED, MANAGER_PANICS,
    PENDING_REQUESTS, POOL_HEALTH, POOL_STATE, TIMEOUTS, USE_TIME, WAIT_TIME,
};
use pool_core::{Pool, PoolError};

/// `(name, sorted labels but the pool's name)` → value, for one pool.
type Readings = HashMap<(String, Vec<(String, String)>), DebugValue>;

fn readings(snapshotter: &Snapshotter, pool: &str) -> Readings {
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
            if !labels.contains(&(ATTR_POOL_NAME.to_owned(), pool.to_owned())) {
                return None;
            }
            labels.retain(|(k, _)| k != ATTR_POOL_NAME);
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
    // Built before the recorder exists: its series must reach it anyway.
    let early = Pool::build(FakeManager::new(), config(1, 3).name("early"))
        .await
        .expect("pool builds");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only global recorder in this binary");

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
    assert_eq!(counter(&r, ACQUIRE_ERRORS, &[]), s.acquire_errors);
    assert_eq!(counter(&r, LEAKS_REPORTED, &[]), s.leaks_reported_total);
    assert_eq!(gauge(&r, LEAKS_SUSPECTED, &[]), s.leaks_suspected as f64);
    assert_eq!(counter(&r, MANAGER_PANICS, &[]), s.manager_panics);
    assert_eq!(counter(&r, BACKGROUND_RESTARTS, &[]), s.background_restarts);
    assert_eq!(samples(&r, WAIT_TIME) as u64, s.total_acquisitions);
    assert_eq!(samples(&r, USE_TIME) as u64, s.total_releases);
    assert_eq!(samples(&r, CREATE_TIME) as u64, s.connections_created);
    for (state, expected) in [("idle", s.idle_connections), ("used", s.active_connections)] {
        assert_eq!(
            gauge(&r, CONNECTION_COUNT, &[(ATTR_STATE, state)]),
            expected as f64,
            "{state}"
        );
    }
    assert_eq!(
        gauge(&r, CONNECTION_OPENING, &[]),
        s.opening_connections as f64
    );
    assert_eq!(gauge(&r, CONNECTION_MAX, &[]), 2.0);
    assert_eq!(gauge(&r, CONNECTION_IDLE_MAX, &[]), 2.0);
    assert_eq!(gauge(&r, CONNECTION_IDLE_MIN, &[]), 1.0);
    assert_eq!(gauge(&r, PENDING_REQUESTS, &[]), 0.0);
    let state = s.state.as_str();
    assert_eq!(gauge(&r, POOL_STATE, &[("state", state)]), 1.0);
    assert_eq!(gauge(&r, POOL_STATE, &[("state", "INITIALIZING")]), 0.0);
    assert_eq!(
        gauge(&r, POOL_HEALTH, &[("status", health.status.as_str())]),
        1.0
    );
    // Only the convention's two connection states, and no series of the
    // pool's own in the convention's namespace.
    for (name, labels) in r.keys() {
        if name == CONNECTION_COUNT {
            assert!(
                labels == &[(ATTR_STATE.to_owned(), "idle".to_owned())]
                    || labels == &[(ATTR_STATE.to_owned(), "used".to_owned())],
                "{labels:?}"
            );
        }
        assert!(
            name.starts_with("db.client.connection.") || name.starts_with("pool_core."),
            "{name}"
        );
    }

    // The pool built before the recorder: its first recording registers its
    // handles with it, with its sizes and state replayed. (After the
    // snapshot above, which drained every histogram.)
    drop(early.acquire().await.unwrap());
    let early_stats = early.statistics();
    let r = readings(&snapshotter, "early");
    assert_eq!(samples(&r, WAIT_TIME), 1);
    assert_eq!(samples(&r, USE_TIME), 1);
    assert_eq!(gauge(&r, CONNECTION_MAX, &[]), 3.0);
    assert_eq!(gauge(&r, CONNECTION_IDLE_MIN, &[]), 1.0);
    assert_eq!(
        gauge(&r, CONNECTION_COUNT, &[(ATTR_STATE, "idle")]),
        early_stats.idle_connections as f64
    );
    assert_eq!(
        gauge(&r, POOL_STATE, &[("state", early_stats.state.as_str())]),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_recorder_installed_after_the_pool_was_built_receives_its_series() {
    let pool = Pool::build(FakeManager::new(), config(1, 4).name("late"))
        .await
        .expect("pool builds");
    let before = pool.acquire().await.unwrap();
    drop(before);

    // A recorder for this thread only; the test's runtime is single-threaded,
    // so the pool's tasks record on this thread too.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let guard = metrics::set_default_local_recorder(&recorder);
    let conn = pool.acquire().await.unwrap();
    let r = readings(&snapshotter, "late");
    assert_eq!(samples(&r, WAIT_TIME), 1, "only the acquire after install");
    assert_eq!(gauge(&r, CONNECTION_COUNT, &[(ATTR_STATE, "used")]), 1.0);
    assert_eq!(gauge(&r, CONNECTION_MAX, &[]), 4.0);
    assert_eq!(gauge(&r, POOL_STATE, &[("state", "HEALTHY")]), 1.0);
    drop(conn);
    let r = readings(&snapshotter, "late");
    assert_eq!(samples(&r, USE_TIME), 1);
    assert_eq!(gauge(&r, CONNECTION_COUNT, &[(ATTR_STATE, "used")]), 0.0);
    drop(guard);

    // Back on the recorder the pool was built with (none): the local one
    // sees nothing more.
    drop(pool.acquire().await.unwrap());
    let r = readings(&snapshotter, "late");
    assert!(
        matches!(r.get(&(WAIT_TIME.to_owned(), vec![])), Some(DebugValue::Histogram(v)) if v.is_empty())
            || !r.contains_key(&(WAIT_TIME.to_owned(), vec![])),
        "{r:?}"
    );
}
