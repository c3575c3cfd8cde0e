//! The manager's checkout hook (`Manager::before_checkout`): run on every
//! idle connection about to be lent, never on a fresh one; `false` closes
//! it as discarded and the caller gets another; a hook that hangs or
//! panics is bounded by `validation_timeout` and counted.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_nothing_lost, config, FakeManager, Gate};
use pool_core::Pool;

async fn build(hook: Option<Gate>, min: u32) -> Pool<FakeManager> {
    let manager = FakeManager::new();
    *manager.checkout_gate.lock() = hook;
    Pool::build(
        manager,
        config(min, 2).validation_timeout(Duration::from_millis(200)),
    )
    .await
    .expect("pool builds")
}

#[tokio::test(start_paused = true)]
async fn the_hook_runs_on_every_idle_checkout_and_lends_what_it_keeps() {
    let pool = build(Some(Gate::Ok), 1).await;
    for _ in 0..3 {
        let conn = pool.acquire().await.unwrap();
        assert_eq!(conn.serial, 1, "the same connection, kept");
        drop(conn);
    }
    assert_eq!(pool.manager().checked_out.load(Ordering::SeqCst), 3);
    assert_eq!(pool.statistics().connections_closed, 0);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_opened_for_the_caller_is_lent_without_the_hook() {
    let pool = build(Some(Gate::Ok), 0).await;
    let conn = pool.acquire().await.unwrap();
    assert_eq!(pool.manager().checked_out.load(Ordering::SeqCst), 0);
    drop(conn);
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_hook_discards_is_closed_and_the_caller_gets_a_fresh_one() {
    let pool = build(Some(Gate::Err), 1).await;
    let conn = pool.acquire().await.expect("a fresh connection instead");
    assert_eq!(conn.serial, 2, "the idle one was discarded");
    drop(conn);
    let s = pool.statistics();
    assert_eq!(
        (
            s.closed_by_reason.discarded,
            s.validation_failures,
            s.total_timeouts
        ),
        (1, 0, 0),
        "{s:?}"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_hangs_is_cut_at_validation_timeout_and_counted() {
    let pool = build(Some(Gate::Never), 1).await;
    let started = tokio::time::Instant::now();
    let conn = pool.acquire().await.expect("a fresh connection instead");
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(conn.serial, 2);
    drop(conn);
    let s = pool.statistics();
    assert_eq!(
        (s.closed_by_reason.validation_failed, s.validation_failures),
        (1, 1),
        "{s:?}"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_panics_closes_the_connection_and_counts_the_panic() {
    let pool = build(Some(Gate::Ok), 1).await;
    pool.manager()
        .panic_in_checkout
        .store(true, Ordering::SeqCst);
    let conn = pool.acquire().await.expect("a fresh connection instead");
    assert_eq!(conn.serial, 2);
    drop(conn);
    let s = pool.statistics();
    assert_eq!(
        (s.closed_by_reason.validation_failed, s.manager_panics),
        (1, 1),
        "{s:?}"
    );
    assert_nothing_lost(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn without_a_hook_nothing_runs() {
    let pool = build(None, 1).await;
    drop(pool.acquire().await.unwrap());
    assert_eq!(pool.manager().checked_out.load(Ordering::SeqCst), 0);
    assert_nothing_lost(&pool).await;
}
