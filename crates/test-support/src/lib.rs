//! What the pool's test suites share: a log capture and a bounded wait on
//! state, so pool-core's and pool-pg's tests do not each keep a copy.
//!
//! * [`LogCapture`] collects formatted `tracing` events as text, either for
//!   the current thread (and the tasks of a current-thread runtime) with
//!   [`LogCapture::scoped`], or for the whole test binary with
//!   [`LogCapture::global`], installed once on first use.
//! * [`wait_until`] polls a condition on tokio's clock (paused or real)
//!   and fails the test with what it waited for once the bound passes:
//!   tests wait on state, never on a bare sleep, and never forever.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing::subscriber::DefaultGuard;

/// How often [`wait_until`] looks again.
pub const POLL_EVERY: Duration = Duration::from_millis(1);

/// Waits until `done()` holds, looking every [`POLL_EVERY`] on tokio's
/// clock, for at most `within`; then fails the test naming `what` and
/// `describe()` (the state it saw last).
pub async fn wait_until_or<D: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> bool,
    describe: impl Fn() -> D,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}; last seen: {:?}",
            describe()
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// [`wait_until_or`] without a description of the last state.
pub fn wait_until<'a>(
    what: &'a str,
    within: Duration,
    done: impl FnMut() -> bool + 'a,
) -> impl Future<Output = ()> + 'a {
    wait_until_or(what, within, done, || "-")
}

/// Formatted `tracing` events, as text.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Captures every event (DEBUG and above) of the current thread, and of
    /// the tasks of a current-thread runtime on it, until the guard drops.
    pub fn scoped() -> (LogCapture, DefaultGuard) {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// Like [`scoped`](Self::scoped), at `max_level` and above, and each
    /// span's close too, as a line with its name and every field recorded
    /// into it (`pool.acquire{pool=a outcome="acquired" ...}: ... close`).
    pub fn scoped_with_spans(max_level: tracing::Level) -> (LogCapture, DefaultGuard) {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_max_level(max_level)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// Captures every event (TRACE and above) of the whole test binary,
    /// from every thread and task: the global subscriber, installed on the
    /// first call; later calls return the same capture.
    pub fn global() -> LogCapture {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE
            .get_or_init(|| {
                let capture = LogCapture::default();
                let writer = capture.clone();
                tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::TRACE)
                    .with_ansi(false)
                    .with_writer(move || writer.clone())
                    .init();
                capture
            })
            .clone()
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    /// The captured lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_capture_sees_this_threads_events_and_only_while_held() {
        let (logs, guard) = LogCapture::scoped();
        tracing::info!(target: "test", "inside");
        drop(guard);
        tracing::info!(target: "test", "outside");
        assert_eq!(logs.lines_with("inside").len(), 1);
        assert!(logs.lines_with("outside").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_returns_once_the_condition_holds() {
        let started = tokio::time::Instant::now();
        let mut polls = 0;
        wait_until("three polls", Duration::from_secs(1), || {
            polls += 1;
            polls == 3
        })
        .await;
        assert_eq!(started.elapsed(), 2 * POLL_EVERY);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out after 10ms waiting until never")]
    async fn wait_until_fails_the_test_once_the_bound_passes() {
        wait_until("never", Duration::from_millis(10), || false).await;
    }
}
