//! Statistics: each field moves exactly as documented, percentiles of a
//! known distribution come out right, and the JSON has the documented
//! names.

mod common;

use std::time::Duration;

use common::{assert_nothing_lost, config, eventually, pool, FakeManager, Gate};
use pool_core::Pool;

#[tokio::test(start_paused = true)]
async fn counters_move_exactly_as_documented_through_a_scripted_session() {
    let pool = pool(1, 2).await;
    let s = pool.statistics();
    assert_eq!(
        (s.connections_created, s.validations, s.total_acquisitions),
        (1, 1, 0)
    );

    let a = pool.acquire().await.unwrap(); // idle, fresh: fast path
    let b = pool.acquire().await.unwrap(); // opens a second connection
    let s = pool.statistics();
    assert_eq!((s.acquisitions_immediate, s.acquisitions_waited), (2, 0));
    assert_eq!((s.active_connections, s.peak_active_connections), (2, 2));
    assert_eq!(s.connections_created, 2);

    let waiter = common::spawn_acquire(&pool);
    eventually(&pool, "queued", |s| s.waiting_requests == 1).await;
    drop(a);
    waiter.await.unwrap().unwrap();
    let s = pool.statistics();
    assert_eq!(s.acquisitions_waited, 1);
    assert_eq!(s.peak_waiting_requests, 1);
    assert_eq!(s.total_releases, 2);

    b.discard();
    let s = pool.statistics();
    assert_eq!(
        (
            s.total_releases,
            s.connections_closed,
            s.closed_by_reason.discarded
        ),
        (3, 1, 1)
    );
    assert_eq!(s.total_acquisitions, 3);
    assert_eq!(
        (s.total_timeouts, s.acquire_errors, s.acquires_cancelled),
        (0, 0, 0)
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_is_counted_as_cancelled_and_nothing_else() {
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let queued = common::spawn_acquire(&pool);
    eventually(&pool, "queued", |s| s.waiting_requests == 1).await;
    queued.abort();
    eventually(&pool, "cancelled", |s| s.acquires_cancelled == 1).await;
    let s = pool.statistics();
    assert_eq!(
        (s.total_acquisitions, s.total_timeouts, s.acquire_errors),
        (1, 0, 0)
    );
    drop(held);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_timeout_counts_as_a_timeout_not_as_a_cancellation() {
    let cfg = config(1, 1).acquire_timeout(Duration::from_millis(100));
    let pool = Pool::build(FakeManager::new(), cfg).await.unwrap();
    let held = pool.acquire().await.unwrap();
    assert!(pool.acquire().await.unwrap_err().is_timeout());
    let s = pool.statistics();
    assert_eq!((s.total_timeouts, s.acquires_cancelled), (1, 0));
    drop(held);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn hold_time_percentiles_of_a_known_distribution_come_out_right() {
    let pool = pool(1, 1).await;
    for ms in 1..=100u64 {
        let conn = pool.acquire().await.unwrap();
        tokio::time::advance(Duration::from_millis(ms)).await;
        drop(conn);
    }
    let hold = pool.statistics().hold_time;
    assert_eq!(hold.count, 100);
    let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.13;
    assert!(close(hold.p50_ms, 50.0), "p50 {hold:?}");
    assert!(close(hold.p95_ms, 95.0), "p95 {hold:?}");
    assert!(close(hold.p99_ms, 99.0), "p99 {hold:?}");
    assert!(close(hold.max_ms, 100.0), "max {hold:?}");
    assert!(close(hold.mean_ms, 50.5), "mean {hold:?}");
}

#[tokio::test(start_paused = true)]
async fn wait_time_records_how_long_a_queued_caller_waited() {
    let pool = pool(1, 1).await;
    let held = pool.acquire().await.unwrap();
    let waiter = common::spawn_acquire(&pool);
    eventually(&pool, "queued", |s| s.waiting_requests == 1).await;
    tokio::time::advance(Duration::from_millis(200)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
    let s = pool.statistics();
    assert_eq!(s.wait_time.count, 2);
    assert!((180.0..=230.0).contains(&s.peak_wait_time_ms), "{s:?}");
    assert_eq!(s.peak_wait_time_ms, s.wait_time.max_ms);
    assert_eq!(s.wait_time_recent.count, 2, "recent window holds both");
    tokio::time::advance(Duration::from_secs(120)).await;
    let s = pool.statistics();
    assert_eq!(s.wait_time_recent.count, 0, "the recent window forgot them");
    assert_eq!(s.wait_time.count, 2, "the overall summary did not");
}

#[tokio::test(start_paused = true)]
async fn create_time_records_each_successful_connect() {
    let manager = FakeManager::new();
    manager.set_create(Gate::Slow(Duration::from_millis(40)));
    let pool = Pool::build(manager, config(2, 2)).await.unwrap();
    let create = pool.statistics().create_time;
    assert_eq!(create.count, 2);
    assert!((35.0..=45.0).contains(&create.p50_ms), "{create:?}");
}

#[tokio::test(start_paused = true)]
async fn the_last_connection_error_and_its_time_are_kept() {
    let pool = pool(0, 1).await;
    assert!(pool.statistics().last_error.is_none());
    pool.manager().set_create(Gate::Err);
    pool.manager()
        .retryable
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(pool.acquire().await.is_err());
    let s = pool.statistics();
    assert!(
        s.last_error.as_deref().unwrap().contains("create refused"),
        "{s:?}"
    );
    assert!(s.last_error_time.is_some());
    assert_eq!(s.connection_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_serializes_with_the_documented_field_names() {
    let pool = pool(1, 3).await;
    drop(pool.acquire().await.unwrap());
    let json = serde_json::to_value(pool.statistics()).unwrap();
    for field in [
        "total_connections",
        "idle_connections",
        "active_connections",
        "waiting_requests",
        "total_acquisitions",
        "total_releases",
        "avg_acquisition_time_ms",
        "peak_active_connections",
        "peak_wait_time_ms",
        "pool_created_at",
        "last_health_check",
        "last_error",
        "last_error_time",
        "closed_by_reason",
        "wait_time",
        "wait_time_recent",
        "create_time",
        "hold_time",
        "state",
    ] {
        assert!(json.get(field).is_some(), "missing {field} in {json}");
    }
    assert_eq!(json["total_connections"], 1);
    assert_eq!(json["wait_time"]["count"], 1);
    assert!(json["wait_time"].get("p99_ms").is_some());
    assert!(json["pool_created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(start_paused = true)]
async fn acquisitions_that_did_not_wait_count_as_zero_waits_overall_and_recently() {
    let pool = pool(1, 1).await;
    for _ in 0..99 {
        drop(pool.acquire().await.unwrap()); // the fast path: no wait
    }
    let held = pool.acquire().await.unwrap();
    let waiter = common::spawn_acquire(&pool);
    eventually(&pool, "queued", |s| s.waiting_requests == 1).await;
    tokio::time::advance(Duration::from_millis(50)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
    let s = pool.statistics();
    assert_eq!((s.total_acquisitions, s.acquisitions_immediate), (101, 100));
    for (name, wait) in [("overall", s.wait_time), ("recent", s.wait_time_recent)] {
        assert_eq!(wait.count, 101, "{name}: {wait:?}");
        assert_eq!((wait.p50_ms, wait.p95_ms), (0.0, 0.0), "{name}: {wait:?}");
        assert!(wait.max_ms >= 45.0, "{name}: {wait:?}");
        assert!(wait.mean_ms > 0.4 && wait.mean_ms < 0.6, "{name}: {wait:?}");
    }
}

/// The acquisition, release and hold-time counts live in each seat and are
/// written without locked instructions by whoever holds the seat's
/// connection: many threads trading connections must lose none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_kept_per_seat_lose_nothing_when_threads_trade_connections() {
    let pool = pool(4, 4).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..2_000 {
                    let conn = pool.acquire().await.unwrap();
                    tokio::task::yield_now().await;
                    drop(conn);
                }
            })
        })
        .collect();
    tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(tasks),
    )
    .await
    .expect("16,000 acquisitions finish within a minute")
    .into_iter()
    .for_each(|joined| joined.unwrap());
    let s = pool.statistics();
    assert_eq!(s.total_acquisitions, 16_000);
    assert_eq!(s.total_releases, 16_000);
    assert_eq!(s.acquisitions_immediate + s.acquisitions_waited, 16_000);
    assert_eq!(s.hold_time.count, 16_000);
    assert_eq!(s.wait_time.count, 16_000);
    assert_nothing_lost(&pool).await;
}
