//! Log events: every event the pool logs names its pool, so the logs of a
//! service with several pools can be told apart.

mod common;

use std::time::Duration;

use common::{config, FakeManager, Logs};
use pool_core::Pool;

#[tokio::test(start_paused = true)]
async fn every_event_the_pool_logs_names_its_pool() {
    let (logs, _guard) = Logs::scoped();
    let pool = Pool::build(FakeManager::new(), config(1, 2).name("orders"))
        .await
        .unwrap();
    // A connection discarded (retired), one evicted, a timeout, a shutdown.
    pool.acquire().await.unwrap().discard();
    let held = pool.acquire().await.unwrap();
    let other = pool.acquire().await.unwrap();
    let timeout = pool.acquire();
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(timeout.await.is_err());
    pool.evict_all();
    drop((held, other));
    pool.shutdown(Duration::from_secs(1)).await;
    drop(pool);
    tokio::task::yield_now().await;

    let text = logs.text();
    let events: Vec<&str> = text.lines().filter(|l| l.contains("pool_core")).collect();
    for expected in [
        "retiring connection",
        "acquire timed out",
        "Evicting every connection",
        "connection pool shut down",
    ] {
        assert!(
            events.iter().any(|line| line.contains(expected)),
            "no {expected:?} event in:\n{text}"
        );
    }
    let unnamed: Vec<&&str> = events
        .iter()
        .filter(|line| !line.contains("pool=orders"))
        .collect();
    assert!(
        unnamed.is_empty(),
        "events without the pool's name: {unnamed:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_manager_is_logged_at_error_with_its_message() {
    let (logs, _guard) = Logs::scoped();
    let pool = Pool::build(FakeManager::new(), config(0, 1).name("panicky"))
        .await
        .unwrap();
    pool.manager()
        .panic_in_create
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(pool.acquire().await.is_err());
    pool.close();

    let errors = logs.lines_with("ERROR");
    assert!(
        errors.iter().any(|line| line.contains("pool=panicky")
            && line.contains("create panicked")
            && line.contains("the fake manager's create panicked")),
        "no ERROR event for the panic in:\n{}",
        logs.text()
    );
}

#[tokio::test(start_paused = true)]
async fn losing_the_database_logs_the_reconnection_mode_line() {
    let (logs, _guard) = Logs::scoped();
    let pool = Pool::build(FakeManager::new(), config(0, 1).name("lost"))
        .await
        .unwrap();
    pool.manager().set_create(common::Gate::Err);
    assert!(pool.acquire().await.unwrap_err().is_unavailable());
    pool.close();

    let lines = logs.lines_with("Database connectivity lost, entering reconnection mode");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(
        lines[0].contains("WARN") && lines[0].contains("pool=lost"),
        "{lines:?}"
    );
}
