//! Health: each rule of `docs/health.md`, and the JSON shape.

mod common;

use std::time::Duration;

use common::{config, pool, FakeManager, Gate};
use pool_core::{HealthState, Pool};

#[tokio::test(start_paused = true)]
async fn a_lightly_used_pool_that_has_not_grown_is_healthy() {
    let pool = pool(2, 10).await;
    let health = pool.health_check();
    assert_eq!(health.status, HealthState::Healthy, "{health:?}");
    assert_eq!(health.database.pool.available_percent, 100);
    assert!(health.reasons.is_empty());
    assert_eq!(health.database.status, "up");
}

#[tokio::test(start_paused = true)]
async fn available_capacity_decides_between_healthy_degraded_and_unhealthy() {
    let pool = pool(0, 10).await;
    let mut held = Vec::new();
    let mut verdicts = Vec::new();
    for _ in 0..10 {
        held.push(pool.acquire().await.unwrap());
        let health = pool.health_check();
        verdicts.push((health.database.pool.available_percent, health.status));
    }
    use HealthState::*;
    assert_eq!(
        verdicts,
        [
            (90, Healthy),
            (80, Healthy),
            (70, Degraded),
            (60, Degraded),
            (50, Degraded),
            (40, Unhealthy),
            (30, Unhealthy),
            (20, Unhealthy),
            (10, Unhealthy),
            (0, Unhealthy),
        ]
    );
    drop(held);
    assert_eq!(
        pool.health_check().status,
        Healthy,
        "idle connections count as available"
    );
}

#[tokio::test(start_paused = true)]
async fn thresholds_are_configurable() {
    let cfg = config(0, 10).health_thresholds(95, 20);
    let pool = Pool::build(FakeManager::new(), cfg).await.unwrap();
    let _held = pool.acquire().await.unwrap();
    assert_eq!(
        pool.health_check().status,
        HealthState::Degraded,
        "90% < 95%"
    );
}

#[tokio::test(start_paused = true)]
async fn a_recent_connection_failure_degrades_for_sixty_seconds() {
    let pool = pool(1, 10).await;
    let held = pool.acquire().await.unwrap();
    held.mark_long_held(); // held for a minute on purpose: not a leak
    pool.manager().set_create(Gate::Err);
    pool.manager()
        .retryable
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(pool.acquire().await.is_err());
    let health = pool.health_check();
    assert_eq!(health.status, HealthState::Degraded, "{health:?}");
    assert!(
        health.reasons[0].contains("create refused"),
        "{:?}",
        health.reasons
    );
    assert!(health.database.last_error.is_some());
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(pool.health_check().status, HealthState::Degraded);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(pool.health_check().status, HealthState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn no_connection_and_an_unreachable_database_is_unhealthy() {
    let pool = pool(0, 5).await;
    pool.manager().set_create(Gate::Err);
    pool.manager()
        .retryable
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(pool.acquire().await.is_err());
    let health = pool.health_check();
    assert_eq!(health.status, HealthState::Unhealthy, "{health:?}");
    assert_eq!(health.database.status, "down");
}

#[tokio::test(start_paused = true)]
async fn a_closed_pool_is_unhealthy() {
    let pool = pool(1, 5).await;
    pool.close();
    let health = pool.health_check();
    assert_eq!(health.status, HealthState::Unhealthy);
    assert_eq!(health.pool_state, pool_core::PoolState::Terminated);
    assert!(
        health.reasons.iter().any(|r| r.contains("terminated")),
        "{:?}",
        health.reasons
    );
}

#[tokio::test(start_paused = true)]
async fn the_health_json_has_the_documented_shape_and_latency() {
    let pool = pool(1, 5).await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let json = serde_json::to_value(pool.health_check()).unwrap();
    assert_eq!(json["status"], "healthy");
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    for key in ["total", "idle", "active", "waiting", "max"] {
        assert!(
            json["database"]["pool"].get(key).is_some(),
            "{key} in {json}"
        );
    }
    assert!(
        json["database"]["latency_ms"].is_number(),
        "warm-up validated: {json}"
    );
    assert!(json["database"].get("last_error").is_some());
    assert_eq!(json["uptime_seconds"], 3);
    assert!(pool.statistics().last_health_check.is_some());
}
