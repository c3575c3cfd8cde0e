//! The `pool.acquire` tracing span: one per `acquire()`, named after its
//! pool, closed with its outcome, how long it waited and, on a timeout,
//! the phase that stalled; the checkout's own events are inside it.

mod common;

use std::time::Duration;

use common::{config, FakeManager};
use pool_core::Pool;
use test_support::LogCapture;
use tracing::Level;

/// The close lines of the `pool.acquire` spans.
fn closed_spans(logs: &LogCapture) -> Vec<String> {
    logs.lines_with("pool.acquire{")
        .into_iter()
        .filter(|line| line.contains(": close"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_acquire_on_the_fast_path_closes_its_span_as_acquired_without_waiting() {
    let (logs, _guard) = LogCapture::scoped_with_spans(Level::DEBUG);
    let pool = Pool::build(FakeManager::new(), config(1, 2).name("orders"))
        .await
        .unwrap();
    drop(pool.acquire().await.unwrap());

    let spans = closed_spans(&logs);
    assert_eq!(spans.len(), 1, "{}", logs.text());
    let span = &spans[0];
    assert!(span.contains("pool=orders"), "{span}");
    assert!(span.contains("outcome=\"acquired\""), "{span}");
    assert!(span.contains("waited_us=0"), "{span}");
    assert!(span.contains("pool_core::acquire"), "{span}");
}

#[tokio::test(start_paused = true)]
async fn an_acquire_that_times_out_closes_its_span_with_the_phase_and_holds_the_timeout_event() {
    let (logs, _guard) = LogCapture::scoped_with_spans(Level::DEBUG);
    let pool = Pool::build(
        FakeManager::new(),
        config(1, 1)
            .name("billing")
            .acquire_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let held = pool.acquire().await.unwrap();
    let error = pool.acquire().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    drop(held);

    let spans = closed_spans(&logs);
    assert_eq!(spans.len(), 2, "{}", logs.text());
    let timed_out = spans
        .iter()
        .find(|line| line.contains("outcome=\"timeout\""))
        .unwrap_or_else(|| panic!("no timed-out span in:\n{}", logs.text()));
    assert!(timed_out.contains("pool=billing"), "{timed_out}");
    assert!(timed_out.contains("phase=wait"), "{timed_out}");
    assert!(timed_out.contains("waited_us=200000"), "{timed_out}");
    // The warning is logged inside the span.
    let warning = logs.lines_with("acquire timed out");
    assert_eq!(warning.len(), 1, "{}", logs.text());
    assert!(
        warning[0].contains("pool.acquire{pool=billing"),
        "{}",
        warning[0]
    );
}

#[tokio::test(start_paused = true)]
async fn no_span_is_recorded_when_no_subscriber_wants_debug_events() {
    let (capture, _guard) = LogCapture::scoped_with_spans(Level::INFO);
    let pool = Pool::build(FakeManager::new(), config(1, 2).name("quiet"))
        .await
        .unwrap();
    drop(pool.acquire().await.unwrap());
    assert!(closed_spans(&capture).is_empty(), "{}", capture.text());
}
