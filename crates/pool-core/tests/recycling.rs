//! Recycling: lifetime (with jitter) on checkout, on return and in
//! maintenance; idle shrink down to `min_size`; replenishing; statement
//! count; dirty connections; the validation-skip window.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_nothing_lost, config, eventually, FakeManager, Gate};
use pool_core::{Pool, PoolConfig, PoolState};

const LIFETIME: Duration = Duration::from_secs(10);

async fn build(cfg: PoolConfig) -> Pool<FakeManager> {
    Pool::build(FakeManager::new(), cfg)
        .await
        .expect("pool builds")
}

#[tokio::test(start_paused = true)]
async fn a_connection_past_its_lifetime_is_retired_on_checkout() {
    let pool = build(config(1, 1).max_lifetime(LIFETIME)).await;
    tokio::time::advance(LIFETIME).await;
    let conn = pool.acquire().await.unwrap();
    assert_eq!(conn.serial, 2, "the expired connection was not handed out");
    drop(conn);
    assert_eq!(pool.statistics().closed_by_reason.lifetime, 1);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_past_its_lifetime_is_retired_on_return() {
    let pool = build(config(1, 1).max_lifetime(LIFETIME)).await;
    let conn = pool.acquire().await.unwrap();
    tokio::time::advance(LIFETIME).await;
    drop(conn);
    let s = pool.statistics();
    assert_eq!((s.total_connections, s.closed_by_reason.lifetime), (0, 1));
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn maintenance_retires_expired_idle_connections_and_replenishes() {
    let pool = build(config(3, 5).max_lifetime(LIFETIME)).await;
    tokio::time::advance(LIFETIME).await;
    pool.run_maintenance().await;
    let s = pool.statistics();
    assert_eq!(s.closed_by_reason.lifetime, 3, "mass eviction");
    assert_eq!(
        (s.total_connections, s.idle_connections),
        (3, 3),
        "back to min_size"
    );
    assert_eq!(s.connections_created, 6);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_expiries_so_few_expire_in_any_second() {
    let cfg = config(20, 20)
        .max_lifetime(Duration::from_secs(100))
        .max_lifetime_jitter_percent(20);
    let pool = build(cfg).await;
    tokio::time::advance(Duration::from_secs(79)).await;
    pool.run_maintenance().await;
    assert_eq!(
        pool.statistics().closed_by_reason.lifetime,
        0,
        "none before 80 s"
    );
    let mut worst = 0;
    let mut previous = 0;
    for _ in 0..21 {
        tokio::time::advance(Duration::from_secs(1)).await;
        pool.run_maintenance().await;
        let retired = pool.statistics().closed_by_reason.lifetime;
        worst = worst.max(retired - previous);
        previous = retired;
    }
    assert_eq!(previous, 20, "all expired by 100 s");
    // 20 expiries spread uniformly over 20 s; 10 in one second would take
    // odds below one in ten billion.
    assert!(worst < 10, "{worst} connections expired in the same second");
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn idle_shrink_stops_at_min_size() {
    let cfg = config(2, 6).max_idle_time(Duration::from_secs(60));
    let pool = build(cfg).await;
    let held: Vec<_> = futures_util::future::join_all((0..6).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(held);
    assert_eq!(pool.statistics().idle_connections, 6);
    tokio::time::advance(Duration::from_secs(61)).await;
    pool.run_maintenance().await;
    let s = pool.statistics();
    assert_eq!(s.total_connections, 2, "never below min_size");
    assert_eq!(s.closed_by_reason.idle_timeout, 4);
    tokio::time::advance(Duration::from_secs(600)).await;
    pool.run_maintenance().await;
    assert_eq!(pool.statistics().total_connections, 2);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_recently_used_connection_is_not_shrunk() {
    let pool = build(config(0, 2).max_idle_time(Duration::from_secs(60))).await;
    drop(pool.acquire().await.unwrap());
    tokio::time::advance(Duration::from_secs(59)).await;
    pool.run_maintenance().await;
    assert_eq!(pool.statistics().total_connections, 1);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn replenishing_opens_at_most_two_connections_at_a_time() {
    let pool = build(config(6, 6).max_lifetime(LIFETIME)).await;
    pool.manager()
        .set_create(Gate::Slow(Duration::from_secs(1)));
    tokio::time::advance(LIFETIME).await;
    let maintenance = tokio::spawn({
        let pool = pool.clone();
        async move {
            let started = tokio::time::Instant::now();
            pool.run_maintenance().await;
            started.elapsed()
        }
    });
    let mut most_opening = 0;
    while !maintenance.is_finished() {
        most_opening = most_opening.max(pool.statistics().opening_connections);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(most_opening, 2, "bounded connect rate");
    let took = maintenance.await.unwrap();
    assert_eq!(took, Duration::from_secs(3), "six connects, two at a time");
    assert_eq!(pool.statistics().total_connections, 6);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn replenishing_stops_at_the_first_failure_and_retries_next_round() {
    let pool = build(config(3, 4).max_lifetime(LIFETIME)).await;
    let held = pool.acquire().await.unwrap();
    pool.manager().set_create(Gate::Err);
    tokio::time::advance(LIFETIME).await;
    pool.run_maintenance().await;
    let s = pool.statistics();
    assert_eq!(s.total_connections, 1, "only the held connection is left");
    assert!(
        s.connection_failures <= 2,
        "no storm: {}",
        s.connection_failures
    );
    assert!(s.maintenance_errors >= 1);
    assert_ne!(
        pool.state(),
        PoolState::Recovering,
        "a connection is still open"
    );
    pool.manager().set_create(Gate::Ok);
    pool.run_maintenance().await;
    assert_eq!(pool.statistics().total_connections, 3);
    drop(held);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn losing_every_connection_hands_replenishing_to_the_reconnect_supervisor() {
    let pool = build(config(2, 4).max_lifetime(LIFETIME)).await;
    pool.manager().set_create(Gate::Err);
    tokio::time::advance(LIFETIME).await;
    pool.run_maintenance().await;
    assert_eq!(pool.state(), PoolState::Recovering);
    pool.run_maintenance().await;
    assert!(
        pool.statistics().connection_failures <= 2,
        "maintenance does not connect while recovering"
    );
    pool.manager().set_create(Gate::Ok);
    let mut states = pool.subscribe_state();
    tokio::time::timeout(
        Duration::from_secs(5),
        states.wait_for(|s| *s != PoolState::Recovering),
    )
    .await
    .expect("the first probe, after about 1 s, succeeds")
    .unwrap();
    eventually(&pool, "refilled to min_size", |s| s.total_connections == 2).await;
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn the_maintenance_task_runs_on_its_own_every_interval() {
    let cfg = config(1, 2)
        .max_lifetime(LIFETIME)
        .maintenance_interval(Duration::from_secs(1));
    let pool = build(cfg).await;
    tokio::time::sleep(LIFETIME + Duration::from_millis(1500)).await;
    let s = pool.statistics();
    assert!(s.maintenance_runs >= 10, "{}", s.maintenance_runs);
    assert_eq!(s.closed_by_reason.lifetime, 1);
    assert_eq!(s.total_connections, 1, "replenished");
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_stops_maintenance_and_closes_idle_connections() {
    let cfg = config(2, 2).maintenance_interval(Duration::from_secs(1));
    let pool = build(cfg).await;
    let manager_counters = std::sync::Arc::clone(&pool.manager().counters);
    drop(pool);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(manager_counters.live.load(Ordering::SeqCst), 0);
    assert_eq!(
        manager_counters.creates.load(Ordering::SeqCst),
        2,
        "no replenishing after drop"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_ran_max_queries_statements_is_retired_on_return() {
    let pool = build(config(1, 1).max_queries(3)).await;
    let conn = pool.acquire().await.unwrap();
    conn.statements.store(2, Ordering::SeqCst);
    drop(conn);
    let conn = pool.acquire().await.unwrap();
    assert_eq!(conn.serial, 1, "under the limit: kept");
    conn.statements.store(3, Ordering::SeqCst);
    drop(conn);
    let s = pool.statistics();
    assert_eq!(
        (s.total_connections, s.closed_by_reason.max_queries),
        (0, 1)
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_dirty_connection_is_never_handed_to_the_next_caller() {
    let pool = build(config(1, 1)).await;
    let conn = pool.acquire().await.unwrap();
    conn.dirty.store(true, Ordering::SeqCst);
    drop(conn);
    assert_eq!(pool.statistics().closed_by_reason.dirty, 1);
    assert_eq!(pool.acquire().await.unwrap().serial, 2);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn validation_is_skipped_inside_the_window_and_run_outside_it() {
    let cfg = config(1, 1).validation_skip_window(Duration::from_millis(500));
    let pool = build(cfg).await;
    let warm = pool.statistics().validations;
    drop(pool.acquire().await.unwrap());
    tokio::time::advance(Duration::from_millis(499)).await;
    drop(pool.acquire().await.unwrap());
    assert_eq!(
        pool.statistics().validations,
        warm,
        "used 499 ms ago: no check"
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    drop(pool.acquire().await.unwrap());
    assert_eq!(
        pool.statistics().validations,
        warm + 1,
        "idle 500 ms: checked"
    );
    assert_nothing_lost(&pool).await;
}
