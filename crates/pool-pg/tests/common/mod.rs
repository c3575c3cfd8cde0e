//! Helpers shared by the integration tests: throwaway servers, URLs, a
//! bounded wait on state, a log capture, and the outage tests' promise that
//! nothing is lost.
//!
//! Each test starts its own [`TempDb`] (about 0.2 s), so tests run in
//! parallel without sharing state.

#![allow(dead_code)] // each test binary uses a different part

use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pg_tempdb::TempDb;
use pool_pg::{PgConnection, PgPool, PoolConfig, PoolState};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The distinctive password every secrecy assertion looks for.
pub(crate) const PASSWORD: &str = "s3cr3t-p4ss";
/// A wrong password, just as distinctive.
pub(crate) const WRONG_PASSWORD: &str = "wr0ng-s3cr3t";
/// The bound of every wait on state in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// Slack allowed over a configured timeout before a test calls it a hang.
pub(crate) const MARGIN: Duration = Duration::from_millis(750);

/// A server with trust authentication, user and database `postgres`.
pub(crate) fn start_db() -> TempDb {
    TempDb::start().expect("start a throwaway PostgreSQL")
}

/// A server where user `app` needs [`PASSWORD`] over TCP.
pub(crate) fn start_db_with_password() -> TempDb {
    TempDb::builder()
        .user("app")
        .password(PASSWORD)
        .start()
        .expect("start a throwaway PostgreSQL with a password")
}

/// The server's URL with `password` (none when `None`) and `dbname`.
pub(crate) fn url_for(db: &TempDb, password: Option<&str>, dbname: &str) -> String {
    let password = password.map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "postgres://{}{password}@{}:{}/{dbname}",
        db.user(),
        db.host(),
        db.port()
    )
}

/// A port on 127.0.0.1 where nothing listens (the kernel's pick, released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("find a free port")
}

/// Small, fast settings for tests: 1 warm connection, at most 4.
pub(crate) fn small_pool() -> PoolConfig {
    PoolConfig::default()
        .min_size(1)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(5))
        .create_timeout(Duration::from_secs(2))
}

/// Waits until `done()` holds, for at most [`WAIT`] (`test-support`).
pub(crate) async fn wait_until(what: &str, done: impl FnMut() -> bool) {
    test_support::wait_until(what, WAIT, done).await;
}

/// Fails the test if `text` contains either test password.
pub(crate) fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(!text.contains(secret), "{what} leaks a password: {text}");
    }
}

/// `error`'s `Display`, `Debug` and every `source()` in the chain, joined.
pub(crate) fn every_rendering(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error}\n{error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    text
}

/// Every log line of this test binary, at every level, from the moment
/// [`capture_logs`] is first called (`test-support`).
pub(crate) type LogCapture = test_support::LogCapture;

/// The binary-wide log capture: the global subscriber, installed on first
/// use, so events from all threads and tasks are caught.
pub(crate) fn capture_logs() -> LogCapture {
    LogCapture::global()
}

/// `base` (a server's or a proxy's URL, without a query string) with its
/// own `application_name`, so `pg_stat_activity` counts only one test's
/// connections.
pub(crate) fn url_with_app(base: &str, application_name: &str) -> String {
    format!("{base}?application_name={application_name}")
}

/// Builds a pool, or fails the test saying why.
pub(crate) async fn connect(url: &str, config: PoolConfig) -> PgPool {
    PgPool::connect(url, config)
        .await
        .unwrap_or_else(|e| panic!("build the pool: {e}"))
}

/// Whether backend `pid` is inside `pg_sleep` right now.
pub(crate) fn is_sleeping(db: &TempDb, pid: i32) -> bool {
    db.query_scalar::<i64>(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event = 'PgSleep'"
    ))
    .expect("look the backend up")
        == 1
}

/// The port of the server `conn` is connected to.
pub(crate) async fn server_port(conn: &PgConnection) -> i32 {
    conn.query_one("SELECT inet_server_port()", &[])
        .await
        .expect("SELECT inet_server_port()")
        .get(0)
}

/// The backend process id of `conn`, asked through it.
pub(crate) async fn backend_pid(conn: &PgConnection) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("SELECT pg_backend_pid()")
        .get(0)
}

/// Promise 1, "nothing is lost": within [`WAIT`] the pool becomes quiet (no
/// connection lent, opening or waited for) and the server shows exactly as
/// many backends with `application_name` as the pool counts open. Polled,
/// because a connection the pool closed takes a moment to vanish
/// server-side; the pool's snapshot is taken before and after the count and
/// must not move in between.
pub(crate) async fn assert_nothing_lost(pool: &PgPool, db: &TempDb, application_name: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let before = pool.statistics();
        // A server that is briefly out of slots (the admin query needs one)
        // is retried like a count that does not match yet.
        let server = db.count_connections(application_name);
        let after = pool.statistics();
        let settled = before.is_quiet()
            && after.is_quiet()
            && before.total_connections == after.total_connections;
        if settled && matches!(&server, Ok(n) if *n == after.total_connections) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "something was lost: after {WAIT:?} the server shows {server:?} backends of \
             {application_name:?}, the pool {} open and is {}quiet: {after:?}",
            after.total_connections,
            if after.is_quiet() { "" } else { "not " },
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every state a pool passed through, from the moment of `start`, as seen
/// by a subscriber. (A transition that is undone within microseconds may be
/// coalesced away; the states these tests look for last far longer.)
pub(crate) struct StateLog {
    seen: Arc<Mutex<Vec<PoolState>>>,
    task: JoinHandle<()>,
}

impl StateLog {
    /// Starts recording `pool`'s states, its current one first.
    pub(crate) fn start(pool: &PgPool) -> Self {
        let mut states = pool.subscribe_state();
        let first = *states.borrow_and_update();
        let seen = Arc::new(Mutex::new(vec![first]));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while states.changed().await.is_ok() {
                let state = *states.borrow_and_update();
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(state);
            }
        });
        Self { seen, task }
    }

    /// The states recorded so far, in order.
    pub(crate) fn seen(&self) -> Vec<PoolState> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pause between two requests of a task that drives demand.
#[allow(dead_code)] // used by some test binaries only
pub(crate) const DEMAND_EVERY: Duration = Duration::from_millis(20);
