//! Outages of the real server, one test each: backends terminated idle or
//! busy, a restart under load, the server stopped for a while (with and
//! without demand), a frozen postmaster, a frozen backend, no free
//! connection slots, a server turned read-only, and network faults from a
//! proxy (a slow link, a stall, a reset).
//!
//! Every test ends with promise 1, "nothing is lost" (see
//! [`assert_nothing_lost`]): the pool is quiet and the server shows exactly
//! the backends the pool counts open. Each test uses its own
//! `application_name`, so those counts are its own.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::{
    assert_nothing_lost, backend_pid, connect, is_sleeping, small_pool, start_db, url_with_app,
    wait_until, StateLog, MARGIN, WAIT,
};
use pg_tempdb::{FaultProxy, Mode, TempDb};
use pool_pg::tokio_postgres::error::SqlState;
use pool_pg::tokio_postgres::{Client, NoTls};
use pool_pg::{ConnectionError, PgPool, Phase, PoolConfig, PoolState};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// The pause between two requests of a task that drives demand.
const DEMAND_EVERY: Duration = Duration::from_millis(20);

/// One `acquire()` plus `SELECT 1`, and how it went.
#[derive(Debug)]
struct Attempt {
    started: Instant,
    ended: Instant,
    outcome: Result<(), Failure>,
}

#[derive(Debug)]
enum Failure {
    Acquire(pool_pg::Error),
    Query(pool_pg::tokio_postgres::Error),
    /// Neither finished within the bound: a hang.
    Hang,
}

impl Failure {
    /// The failures a caller may meet while the server goes away and comes
    /// back: turned away at once, timed out, or a query on a connection
    /// that the server killed.
    fn is_transient(&self) -> bool {
        match self {
            Failure::Acquire(error) => error.is_unavailable() || error.is_timeout(),
            Failure::Query(error) => {
                error.is_closed()
                    || matches!(
                        error.code(),
                        None | Some(&SqlState::ADMIN_SHUTDOWN)
                            | Some(&SqlState::CRASH_SHUTDOWN)
                            | Some(&SqlState::CANNOT_CONNECT_NOW)
                    )
            }
            Failure::Hang => false,
        }
    }
}

/// Acquires and runs `SELECT 1`, bounded by `hang`.
async fn attempt(pool: &PgPool, hang: Duration) -> Attempt {
    let started = Instant::now();
    let work = async {
        let conn = pool.acquire().await.map_err(Failure::Acquire)?;
        conn.query_one("SELECT 1", &[])
            .await
            .map_err(Failure::Query)?;
        Ok(())
    };
    let outcome = timeout(hang, work).await.unwrap_or(Err(Failure::Hang));
    Attempt {
        started,
        ended: Instant::now(),
        outcome,
    }
}

/// A task that calls [`attempt`] every [`DEMAND_EVERY`] until `stop`, and
/// records every attempt in `log`.
fn drive_demand(
    pool: PgPool,
    hang: Duration,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Attempt>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let attempt = attempt(&pool, hang).await;
            lock(&log).push(attempt);
            tokio::time::sleep(DEMAND_EVERY).await;
        }
    })
}

/// The attempts recorded so far (a panicking test thread cannot make them
/// unreadable).
fn lock<T>(log: &Mutex<T>) -> MutexGuard<'_, T> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_whose_backends_were_terminated_are_replaced_without_an_error() {
    let db = start_db();
    let app = "outage-terminate-idle";
    let config = small_pool()
        .min_size(3)
        .max_size(3)
        .validation_skip_window(Duration::ZERO);
    let pool = connect(&url_with_app(&db.url(), app), config).await;

    assert_eq!(db.terminate_backends_of(app).unwrap(), 3);

    // At once, before the client noticed every termination.
    for round in 0..20_i32 {
        let conn = pool
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let row = conn
            .query_one("SELECT $1::int4", &[&round])
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(row.get::<_, i32>(0), round);
    }
    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(closed.broken + closed.validation_failed, 3, "{stats:?}");
    assert_eq!(stats.acquire_errors + stats.total_timeouts, 0, "{stats:?}");
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_on_a_terminated_busy_backend_fails_and_its_connection_is_not_returned() {
    let db = start_db();
    let app = "outage-terminate-busy";
    let pool = connect(
        &url_with_app(&db.url(), app),
        small_pool().min_size(1).max_size(2),
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    let query = tokio::spawn(async move {
        let result = conn.query("SELECT pg_sleep(5)", &[]).await;
        (conn, result, Instant::now())
    });
    wait_until("the query sleeps", || is_sleeping(&db, pid)).await;
    let terminating = Instant::now();
    let terminated = db
        .execute(&format!("SELECT pg_terminate_backend({pid}, 5000)"))
        .unwrap();
    assert_eq!(terminated, "t");
    let (conn, result, failed_at) = timeout(WAIT, query)
        .await
        .expect("the query does not hang")
        .unwrap();

    let error = result.expect_err("the query on a terminated backend fails");
    assert!(
        error.code() == Some(&SqlState::ADMIN_SHUTDOWN) || error.is_closed(),
        "{error:?}"
    );
    let fails_after = failed_at.duration_since(terminating);
    eprintln!(
        "terminated busy backend: the query failed {fails_after:?} after terminating: {:?}",
        error
            .as_db_error()
            .map(|db| (db.code().code(), db.message()))
    );
    assert!(
        fails_after < MARGIN,
        "failed {fails_after:?} after terminating"
    );

    drop(conn);
    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(
        (closed.broken + closed.dirty, stats.idle_connections),
        (1, 0),
        "the connection is closed, not returned: {stats:?}"
    );

    let conn = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&conn).await, pid, "a fresh backend");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_costs_only_transient_errors_and_every_task_recovers_within_a_second()
{
    const TASKS: usize = 4;
    let hang = Duration::from_secs(3);
    let db = start_db();
    let app = "outage-restart";
    let config = PoolConfig::default()
        .min_size(2)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(1))
        .create_timeout(Duration::from_secs(1))
        .reconnect_delays(Duration::from_millis(50), Duration::from_millis(400));
    let pool = connect(&url_with_app(&db.url(), app), config).await;

    let stop = Arc::new(AtomicBool::new(false));
    let logs: Vec<_> = (0..TASKS)
        .map(|_| Arc::new(Mutex::new(Vec::new())))
        .collect();
    let tasks: Vec<_> = logs
        .iter()
        .map(|log| drive_demand(pool.clone(), hang, Arc::clone(&stop), Arc::clone(log)))
        .collect();
    wait_until("every task succeeded before the restart", || {
        logs.iter()
            .all(|log| lock(log).iter().any(|a| a.outcome.is_ok()))
    })
    .await;

    let restarting = Instant::now();
    db.restart().unwrap();
    let back = Instant::now();
    // The observation window: a second to recover, half a second to show
    // that it stays recovered.
    tokio::time::sleep_until(back + Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        timeout(hang + MARGIN, task)
            .await
            .expect("the load task ends")
            .unwrap();
    }

    eprintln!(
        "restart took {:?} (fast shutdown and start)",
        back.duration_since(restarting)
    );
    for (n, log) in logs.iter().enumerate() {
        let attempts = lock(log);
        for a in attempts.iter() {
            if let Err(failure) = &a.outcome {
                assert!(
                    failure.is_transient(),
                    "task {n}: only transient errors: {failure:?}"
                );
                assert!(
                    a.started < back + Duration::from_secs(1),
                    "task {n}: failed {:?} after the server was back: {failure:?}",
                    a.started.duration_since(back)
                );
            }
        }
        let recovered = attempts
            .iter()
            .find(|a| a.started >= back && a.outcome.is_ok())
            .map(|a| a.ended.duration_since(back))
            .unwrap_or_else(|| panic!("task {n} never succeeded after the restart"));
        let failures = attempts.iter().filter(|a| a.outcome.is_err()).count();
        eprintln!(
            "restart: task {n} succeeded again {recovered:?} after the server was back \
             ({failures} transient failures in {} attempts)",
            attempts.len()
        );
        assert!(
            recovered < Duration::from_secs(1),
            "task {n} recovered {recovered:?} after the server was back"
        );
    }
    assert_nothing_lost(&pool, &db, app).await;
}

/// A pool behind `proxy` that validates every checkout and reconnects
/// after 100 ms, doubling up to 800 ms.
async fn pool_behind(proxy: &FaultProxy, db: &TempDb, app: &str) -> PgPool {
    let config = PoolConfig::default()
        .min_size(1)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(2))
        .create_timeout(Duration::from_secs(1))
        .validation_skip_window(Duration::ZERO)
        .reconnect_delays(Duration::from_millis(100), Duration::from_millis(800));
    connect(&url_with_app(&proxy.url_for(db), app), config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demand_while_the_database_is_down_probes_at_a_bounded_rate_and_recovery_takes_under_a_second(
) {
    let down_for = Duration::from_secs(3);
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.unwrap();
    let app = "outage-down-demand";
    let pool = pool_behind(&proxy, &db, app).await;
    let states = StateLog::start(&pool);

    db.stop().unwrap();
    let down_at = Instant::now();
    let accepted_at_down = proxy.accepted();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let demand = drive_demand(pool.clone(), WAIT, Arc::clone(&stop), Arc::clone(&log));
    tokio::time::sleep(down_for).await;
    let window = down_at.elapsed();
    let connects = proxy.accepted() - accepted_at_down;
    assert_eq!(pool.state(), PoolState::Recovering);

    let starting = Instant::now();
    db.start_again().unwrap();
    let back = Instant::now();
    wait_until("a caller succeeds again", || {
        lock(&log).iter().any(|a| a.outcome.is_ok())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    timeout(WAIT, demand)
        .await
        .expect("the demand task ends")
        .unwrap();

    let attempts = std::mem::take(&mut *lock(&log));
    let rate = connects as f64 / window.as_secs_f64();
    let recovered = attempts
        .iter()
        .find(|a| a.outcome.is_ok())
        .map(|a| a.ended.saturating_duration_since(back))
        .unwrap_or_default();
    eprintln!(
        "down {window:?} under demand every {DEMAND_EVERY:?} ({} requests): {connects} connect \
         attempts, {rate:.2}/s; a caller succeeded {recovered:?} after the server was back",
        attempts.len()
    );
    assert!(
        states.seen().contains(&PoolState::Recovering),
        "{:?}",
        states.seen()
    );
    // One connect finds the database gone, then at most one probe per
    // DEMAND_PROBE_INTERVAL (250 ms), however many callers ask.
    let bound = (window.as_secs_f64() * 4.0).ceil() as u64 + 3;
    assert!(
        connects <= bound,
        "{connects} connects in {window:?} (bound {bound})"
    );
    let turned_away = attempts.iter().filter(|a| a.ended < starting);
    for a in turned_away {
        match &a.outcome {
            Err(Failure::Acquire(error)) if error.is_unavailable() => {}
            other => panic!("while down, callers are turned away: {other:?}"),
        }
        let took = a.ended.duration_since(a.started);
        assert!(
            took < Duration::from_millis(500),
            "turned away at once, not after {took:?}"
        );
    }
    assert!(
        recovered < Duration::from_secs(1),
        "recovered {recovered:?} after the server was back"
    );
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_demand_reconnect_probes_are_spaced_by_the_backoff() {
    let observe = Duration::from_millis(2500);
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.unwrap();
    let app = "outage-down-quiet";
    let pool = pool_behind(&proxy, &db, app).await;

    db.stop().unwrap();
    let error = pool.acquire().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(pool.state(), PoolState::Recovering);

    // No caller from here on: only the supervisor connects.
    let since = Instant::now();
    let mut seen = proxy.accepted();
    let mut probes = Vec::new();
    while since.elapsed() < observe {
        let accepted = proxy.accepted();
        probes.extend((seen..accepted).map(|_| since.elapsed()));
        seen = accepted;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "without demand: {} probes in {observe:?} at {probes:?}; gaps {gaps:?}",
        probes.len()
    );
    // 100, 200, 400, 800, 800 ms (±10 %): probes near 0.1, 0.3, 0.7, 1.5
    // and 2.3 s.
    assert!(
        (3..=6).contains(&probes.len()),
        "{} probes in {observe:?}: {probes:?}",
        probes.len()
    );
    for (i, gap) in gaps.iter().enumerate() {
        let nominal = Duration::from_millis((100_u64 << (i + 1)).min(800));
        let least = nominal.mul_f64(0.9) - Duration::from_millis(15);
        assert!(
            *gap >= least,
            "gap {i} is {gap:?}, under the backoff's {nominal:?} - 10 %: {gaps:?}"
        );
    }

    db.start_again().unwrap();
    let deadline = Instant::now() + WAIT;
    while let Err(error) = pool.acquire().await {
        assert!(Instant::now() < deadline, "never recovered: {error}");
        tokio::time::sleep(DEMAND_EVERY).await;
    }
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postmaster_bounds_acquire_while_existing_connections_keep_serving() {
    let db = start_db();
    let (warm_app, cold_app) = ("outage-frozen-warm", "outage-frozen-cold");
    let warm = connect(
        &url_with_app(&db.url(), warm_app),
        small_pool()
            .min_size(1)
            .validation_skip_window(Duration::ZERO),
    )
    .await;
    let acquire_timeout = Duration::from_secs(1);
    let cold_config = PoolConfig::default()
        .min_size(0)
        .max_size(2)
        .acquire_timeout(acquire_timeout)
        .create_timeout(Duration::from_millis(600))
        .reconnect_delays(Duration::from_millis(100), Duration::from_millis(400));
    let cold = connect(&url_with_app(&db.url(), cold_app), cold_config).await;

    db.pause().unwrap();
    let started = Instant::now();
    let cold_result = timeout(WAIT, cold.acquire()).await;
    let elapsed = started.elapsed();
    // Backends are processes of their own: a frozen postmaster does not
    // freeze them, and the warm pool's validated connection still answers.
    let warm_result = timeout(WAIT, async {
        let conn = warm.acquire().await?;
        Ok::<i32, Box<dyn std::error::Error + Send + Sync>>(
            conn.query_one("SELECT 1", &[]).await?.get(0),
        )
    })
    .await;
    db.resume().unwrap();

    let error = cold_result
        .expect("acquire on a frozen server never hangs")
        .expect_err("no connection can be opened");
    eprintln!("frozen postmaster: acquire failed after {elapsed:?}: {error}");
    assert!(error.is_unavailable() || error.is_timeout(), "{error:?}");
    assert!(
        elapsed < acquire_timeout + MARGIN,
        "{elapsed:?} for acquire_timeout {acquire_timeout:?}"
    );
    let one = warm_result
        .expect("the warm pool does not hang")
        .expect("the warm pool keeps serving");
    assert_eq!(one, 1);

    let deadline = Instant::now() + WAIT;
    while let Err(error) = cold.acquire().await {
        assert!(Instant::now() < deadline, "never recovered: {error}");
        tokio::time::sleep(DEMAND_EVERY).await;
    }
    assert_nothing_lost(&warm, &db, warm_app).await;
    assert_nothing_lost(&cold, &db, cold_app).await;
}

/// A process stopped with SIGSTOP, continued with SIGCONT when this is
/// dropped (also when the test fails). Only for a backend of the test's
/// own pool.
struct Frozen(i32);

impl Frozen {
    fn freeze(pid: i32) -> Self {
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("run kill -STOP");
        assert!(status.success(), "kill -STOP {pid}: {status}");
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let pid = self.0.to_string();
        match Command::new("kill").args(["-CONT", &pid]).status() {
            Ok(status) if status.success() => {}
            other => eprintln!("could not continue backend {pid}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_idle_backend_fails_validation_within_its_timeout_and_the_caller_gets_another() {
    let validation_timeout = Duration::from_millis(300);
    let skip_window = Duration::from_millis(50);
    let db = start_db();
    let app = "outage-frozen-backend";
    let config = PoolConfig::default()
        .min_size(2)
        .max_size(3)
        .acquire_timeout(Duration::from_secs(3))
        .create_timeout(Duration::from_secs(2))
        .validation_timeout(validation_timeout)
        .validation_skip_window(skip_window);
    let pool = connect(&url_with_app(&db.url(), app), config).await;
    let idle = pool.acquire().await.unwrap();
    let busy = pool.acquire().await.unwrap();
    let frozen_pid = backend_pid(&idle).await;
    let busy_pid = backend_pid(&busy).await;
    drop(idle);
    let frozen = Frozen::freeze(frozen_pid);

    // Another caller keeps querying on its own connection meanwhile.
    let keep_going = Arc::new(AtomicBool::new(true));
    let served = {
        let keep_going = Arc::clone(&keep_going);
        tokio::spawn(async move {
            let mut served = Vec::new();
            while keep_going.load(Ordering::Relaxed) {
                let row = busy.query_one("SELECT 1", &[]).await;
                served.push((Instant::now(), row.map(|row| row.get::<_, i32>(0))));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            drop(busy);
            served
        })
    };
    // Idle past the skip window: the next checkout validates it.
    tokio::time::sleep(skip_window * 2).await;

    let started = Instant::now();
    let conn = timeout(WAIT, pool.acquire())
        .await
        .expect("acquire never hangs on a frozen backend")
        .expect("the caller gets another connection");
    let took = started.elapsed();
    let ended = Instant::now();
    keep_going.store(false, Ordering::Relaxed);
    let served = timeout(WAIT, served).await.expect("ends").unwrap();

    eprintln!("frozen backend: acquire took {took:?} (validation_timeout {validation_timeout:?})");
    let pid = backend_pid(&conn).await;
    assert!(pid != frozen_pid && pid != busy_pid, "a new backend: {pid}");
    assert!(
        took >= validation_timeout && took < validation_timeout + MARGIN,
        "{took:?}"
    );
    let stats = pool.statistics();
    assert_eq!(stats.validation_failures, 1, "{stats:?}");
    assert_eq!(stats.closed_by_reason.validation_failed, 1, "{stats:?}");
    let last_error = stats.last_error.clone().unwrap_or_default();
    assert!(
        last_error.contains("validation timed out after 300 ms"),
        "{last_error}"
    );
    assert!(
        served.iter().all(|(_, row)| matches!(row, Ok(1))),
        "{served:?}"
    );
    let meanwhile = served
        .iter()
        .filter(|(at, _)| *at > started && *at < ended)
        .count();
    assert!(meanwhile >= 1, "served during the validation: {served:?}");

    drop(conn);
    drop(frozen);
    assert_nothing_lost(&pool, &db, app).await;
}

/// Opens plain client connections (not the pool's) until the server
/// refuses one; returns them (keep them to keep the slots) and the refusal.
async fn hog_every_slot(
    db: &TempDb,
) -> (
    Vec<(Client, JoinHandle<()>)>,
    pool_pg::tokio_postgres::Error,
) {
    let mut hogs = Vec::new();
    loop {
        let mut config = db.config();
        config.application_name("outage-hog");
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                let task = tokio::spawn(async move {
                    // Ends when the client is dropped; an error is of no
                    // interest to the test.
                    drop(connection.await);
                });
                hogs.push((client, task));
                assert!(hogs.len() <= 5, "the server never refused");
            }
            Err(refusal) => return (hogs, refusal),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_connection_slots_is_a_transient_error_and_the_pool_keeps_serving() {
    let db = TempDb::builder().max_connections(5).start().unwrap();
    let app = "outage-no-slots";
    let acquire_timeout = Duration::from_secs(1);
    let config = PoolConfig::default()
        .min_size(2)
        .max_size(4)
        .acquire_timeout(acquire_timeout)
        .create_timeout(Duration::from_secs(1));
    let pool = connect(&url_with_app(&db.url(), app), config).await;
    let states = StateLog::start(&pool);

    let (hogs, refusal) = hog_every_slot(&db).await;
    assert_eq!(hogs.len(), 3, "5 slots, 2 of them the pool's");
    assert_eq!(refusal.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));

    // A third connection cannot be opened: the caller times out in the
    // connect phase, with the refusal as the cause.
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();
    let started = Instant::now();
    let error = pool.acquire().await.unwrap_err();
    let took = started.elapsed();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.timeout_phase(), Some(Phase::Connect), "{error}");
    assert!(took < acquire_timeout + MARGIN, "{took:?}");
    let cause = error
        .connection_error()
        .and_then(ConnectionError::backend)
        .expect("the refusal is the cause");
    assert_eq!(cause.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
    assert!(cause.is_retryable(), "53300 is transient: {cause}");
    let last_error = pool.statistics().last_error.unwrap_or_default();
    assert!(
        last_error.contains("too many clients") && last_error.contains("53300"),
        "{last_error}"
    );

    // A caller retrying the connect is served by a connection another one
    // returns.
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(drop) })
    };
    let failures = pool.statistics().connection_failures;
    wait_until("the waiter retries the connect", || {
        pool.statistics().connection_failures > failures
    })
    .await;
    drop(first);
    timeout(WAIT, waiter)
        .await
        .expect("the waiter is served")
        .unwrap()
        .expect("by the returned connection");
    drop(second);
    // Two callers in turn, on the pool's own connections.
    for caller in 0..2 {
        let conn = pool.acquire().await.unwrap();
        let row = conn.query_one("SELECT 1", &[]).await;
        assert!(row.is_ok(), "caller {caller}: {row:?}");
    }
    assert_ne!(pool.state(), PoolState::Recovering);

    // The slots come free: the pool grows to max_size.
    for (client, task) in hogs {
        drop(client);
        timeout(WAIT, task).await.expect("the hog closes").unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.acquire().await.expect("the pool can grow again"));
    }
    assert_eq!(pool.statistics().total_connections, 4);
    drop(held);

    let seen = states.seen();
    assert!(
        !seen.contains(&PoolState::Recovering),
        "never RECOVERING while it had connections: {seen:?}"
    );
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_as_read_only_retires_the_connection() {
    let db = start_db();
    let app = "outage-read-only";
    let pool = connect(
        &url_with_app(&db.url(), app),
        small_pool().min_size(1).max_size(2),
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    conn.batch_execute("CREATE TABLE marks (id int)")
        .await
        .unwrap();
    let pid = backend_pid(&conn).await;

    db.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        .unwrap();
    db.execute("SELECT pg_reload_conf()").unwrap();
    // The reload reaches the session asynchronously.
    let deadline = Instant::now() + WAIT;
    loop {
        let row = conn
            .query_one("SHOW default_transaction_read_only", &[])
            .await
            .unwrap();
        if row.get::<_, String>(0) == "on" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session never saw the reload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let error = conn
        .execute("INSERT INTO marks VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{error:?}"
    );
    assert!(conn.is_dirty());
    drop(conn);
    let stats = pool.statistics();
    assert_eq!(stats.closed_by_reason.dirty, 1, "{stats:?}");
    assert_eq!(stats.idle_connections, 0, "{stats:?}");

    let conn = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&conn).await, pid, "a new backend");
    let count: i64 = conn
        .query_one("SELECT count(*) FROM marks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "reads still work");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_answer_within_validation_timeout_is_never_handed_out() {
    let validation_timeout = Duration::from_millis(200);
    let acquire_timeout = Duration::from_secs(3);
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.unwrap();
    let app = "outage-slow-link";
    let config = PoolConfig::default()
        .min_size(1)
        .max_size(2)
        .acquire_timeout(acquire_timeout)
        .create_timeout(Duration::from_secs(2))
        .validation_timeout(validation_timeout)
        .validation_skip_window(Duration::ZERO);
    let pool = connect(&url_with_app(&proxy.url_for(&db), app), config).await;
    let conn = pool.acquire().await.unwrap();
    let slow_pid = backend_pid(&conn).await;
    drop(conn);

    // A round trip now takes at least 800 ms.
    proxy
        .set_mode(Mode::Delay(Duration::from_millis(400)))
        .unwrap();
    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = pool.acquire().await;
            (result, started.elapsed())
        })
    };
    wait_until("the idle connection fails its validation", || {
        pool.statistics().validation_failures >= 1
    })
    .await;
    proxy.set_mode(Mode::PassThrough).unwrap();
    let (result, took) = timeout(WAIT, caller).await.expect("no hang").unwrap();

    let conn = result.expect("a fresh connection within acquire_timeout");
    eprintln!("slow link: the caller got a fresh connection after {took:?}");
    assert!(
        took >= validation_timeout && took < acquire_timeout,
        "{took:?}"
    );
    assert_ne!(backend_pid(&conn).await, slow_pid, "not the slow one");
    let stats = pool.statistics();
    assert_eq!(stats.validation_failures, 1, "{stats:?}");
    assert_eq!(stats.closed_by_reason.validation_failed, 1, "{stats:?}");
    let last_error = stats.last_error.clone().unwrap_or_default();
    assert!(
        last_error.contains("validation timed out after 200 ms"),
        "{last_error}"
    );
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

/// A pool of at most two connections behind a fresh proxy.
async fn proxied(app: &str) -> (TempDb, FaultProxy, PgPool) {
    let db = start_db();
    let proxy = FaultProxy::for_db(&db).await.expect("start the proxy");
    let config = small_pool()
        .min_size(1)
        .max_size(2)
        .create_timeout(Duration::from_secs(1));
    let pool = connect(&url_with_app(&proxy.url_for(&db), app), config).await;
    (db, proxy, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_query_abandoned_by_its_caller_retires_the_connection() {
    let app = "outage-stall";
    let (db, proxy, pool) = proxied(app).await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    proxy.set_mode(Mode::Stall).unwrap();
    let abandoned = timeout(Duration::from_millis(300), conn.query_one("SELECT 1", &[])).await;
    assert!(abandoned.is_err(), "the caller's own timeout fires");
    assert!(conn.is_dirty());
    drop(conn);
    let stats = pool.statistics();
    assert_eq!(stats.closed_by_reason.dirty, 1, "{stats:?}");
    assert_eq!(stats.total_connections, 0, "{stats:?}");

    proxy.set_mode(Mode::PassThrough).unwrap();
    let conn = timeout(WAIT, pool.acquire())
        .await
        .expect("no hang")
        .unwrap();
    assert_ne!(backend_pid(&conn).await, pid, "a new backend");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_query_fails_fast_and_is_retired() {
    let app = "outage-reset";
    let (db, proxy, pool) = proxied(app).await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    let query = tokio::spawn(async move {
        let result = conn.query("SELECT pg_sleep(2)", &[]).await;
        (conn, result, Instant::now())
    });
    wait_until("the query sleeps", || is_sleeping(&db, pid)).await;
    let reset_at = Instant::now();
    assert_eq!(proxy.reset_all(), 1);
    let (conn, result, failed_at) = timeout(WAIT, query)
        .await
        .expect("the query does not hang")
        .unwrap();

    let error = result.expect_err("the query fails");
    assert_eq!(error.code(), None, "a connection error: {error:?}");
    let fails_after = failed_at.duration_since(reset_at);
    eprintln!("reset: the query failed {fails_after:?} after the reset: {error}");
    assert!(fails_after < MARGIN, "{fails_after:?}");
    drop(conn);
    let stats = pool.statistics();
    let closed = &stats.closed_by_reason;
    assert_eq!(
        (closed.broken + closed.dirty, stats.idle_connections),
        (1, 0),
        "the connection is closed, not returned: {stats:?}"
    );

    let conn = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&conn).await, pid, "a new backend");
    drop(conn);
    assert_nothing_lost(&pool, &db, app).await;
}
