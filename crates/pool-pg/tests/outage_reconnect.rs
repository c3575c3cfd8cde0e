//! Reconnection against the real server: a restart under load, a crash
//! (`kill -9` of the postmaster) under writes, and the server stopped for a
//! while with and without demand (connect-attempt rates,
//! backoff spacing, recovery time).
//! Every test ends with promise 1, "nothing is lost" (see
//! `assert_nothing_lost` in `common`): the pool is quiet and the server shows
//! exactly the backends the pool counts open. Each test uses its own
//! `application_name`, so those counts are its own.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::{
    assert_nothing_lost, connect, start_db, url_with_app, wait_until, StateLog, DEMAND_EVERY,
    MARGIN, WAIT,
};
use pg_tempdb::{FaultProxy, TempDb};
use pool_pg::tokio_postgres::error::SqlState;
use pool_pg::tokio_postgres::types::ToSql;
use pool_pg::{PgPool, PoolConfig, PoolState};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

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

/// Acquires and runs `sql` with `params`, bounded by `hang`.
async fn attempt(
    pool: &PgPool,
    hang: Duration,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Attempt {
    let started = Instant::now();
    let work = async {
        let conn = pool.acquire().await.map_err(Failure::Acquire)?;
        conn.execute(sql, params).await.map_err(Failure::Query)?;
        Ok(())
    };
    let outcome = timeout(hang, work).await.unwrap_or(Err(Failure::Hang));
    Attempt {
        started,
        ended: Instant::now(),
        outcome,
    }
}

/// The pool of the load tests: 2 to 4 connections, a 1 s acquire and
/// connect bound, reconnecting after 50 ms, doubling up to 400 ms.
fn load_config() -> PoolConfig {
    PoolConfig::default()
        .min_size(2)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(1))
        .create_timeout(Duration::from_secs(1))
        .reconnect_delays(Duration::from_millis(50), Duration::from_millis(400))
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
            let attempt = attempt(&pool, hang, "SELECT 1", &[]).await;
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

/// Lets the load run for the observation window after the server is
/// `back` (a second to recover, half a second to show that it stays
/// recovered), then stops the load tasks and joins them, bounded.
async fn observe_then_stop(
    back: Instant,
    stop: &AtomicBool,
    tasks: Vec<JoinHandle<()>>,
    hang: Duration,
) {
    tokio::time::sleep_until(back + Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        timeout(hang + MARGIN, task)
            .await
            .expect("the load task ends")
            .expect("the load task did not panic");
    }
}

/// Asserts what every load task saw around an outage that ended at
/// `back`: only transient failures, none starting later than a second
/// after `back`, and a success within a second of it. Prints each task's
/// recovery time under `label`.
fn assert_recovered_within_a_second(label: &str, logs: &[Arc<Mutex<Vec<Attempt>>>], back: Instant) {
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
            .unwrap_or_else(|| panic!("task {n} never succeeded after the {label}"));
        let failures = attempts.iter().filter(|a| a.outcome.is_err()).count();
        eprintln!(
            "{label}: task {n} succeeded again {recovered:?} after the server was back \
             ({failures} transient failures in {} attempts)",
            attempts.len()
        );
        assert!(
            recovered < Duration::from_secs(1),
            "task {n} recovered {recovered:?} after the server was back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_costs_only_transient_errors_and_every_task_recovers_within_a_second()
{
    const TASKS: usize = 4;
    let hang = Duration::from_secs(3);
    let db = start_db();
    let app = "outage-restart";
    let pool = connect(&url_with_app(&db.url(), app), load_config()).await;

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
    observe_then_stop(back, &stop, tasks, hang).await;

    eprintln!(
        "restart took {:?} (fast shutdown and start)",
        back.duration_since(restarting)
    );
    assert_recovered_within_a_second("restart", &logs, back);
    assert_nothing_lost(&pool, &db, app).await;
}

/// A task that inserts a new id into `ledger` every [`DEMAND_EVERY`] until
/// `stop`, recording each attempt in `log` and each acknowledged id in
/// `acked`.
fn drive_writes(
    pool: PgPool,
    hang: Duration,
    first_id: i64,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Attempt>>>,
    acked: Arc<Mutex<Vec<i64>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut id = first_id;
        while !stop.load(Ordering::Relaxed) {
            let attempt = attempt(&pool, hang, "INSERT INTO ledger (id) VALUES ($1)", &[&id]).await;
            if attempt.outcome.is_ok() {
                lock(&acked).push(id);
            }
            lock(&log).push(attempt);
            id += 1;
            tokio::time::sleep(DEMAND_EVERY).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_of_the_postmaster_under_writes_loses_no_acknowledged_write_and_recovers_within_a_second(
) {
    const TASKS: usize = 4;
    let hang = Duration::from_secs(3);
    // An acknowledged commit must be in the WAL before the client hears of
    // it (the kit's default turns this off for speed).
    let db = TempDb::builder()
        .setting("synchronous_commit", "on")
        .start()
        .expect("start a throwaway PostgreSQL");
    db.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        .unwrap();
    let app = "outage-kill-9";
    let pool = connect(&url_with_app(&db.url(), app), load_config()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let logs: Vec<_> = (0..TASKS)
        .map(|_| Arc::new(Mutex::new(Vec::new())))
        .collect();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(n, log)| {
            let first_id = i64::try_from(n).unwrap() * 1_000_000;
            drive_writes(
                pool.clone(),
                hang,
                first_id,
                Arc::clone(&stop),
                Arc::clone(log),
                Arc::clone(&acked),
            )
        })
        .collect();
    wait_until(
        "every task wrote, 40 writes in all, before the crash",
        || {
            logs.iter()
                .all(|log| lock(log).iter().any(|a| a.outcome.is_ok()))
                && lock(&acked).len() >= 40
        },
    )
    .await;

    let killed = Instant::now();
    db.kill().unwrap();
    let acked_before_crash = lock(&acked).len();
    db.start_again().unwrap();
    let back = Instant::now();
    observe_then_stop(back, &stop, tasks, hang).await;

    eprintln!(
        "kill -9: the server was back (crash recovery done) {:?} after the kill",
        back.duration_since(killed)
    );
    assert_recovered_within_a_second("kill -9", &logs, back);
    // Every acknowledged write is there: before the crash and after it.
    let acked = lock(&acked).clone();
    let stored: i64 = db
        .query_scalar(&format!(
            "SELECT count(*) FROM ledger WHERE id IN ({})",
            acked
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ))
        .unwrap();
    eprintln!(
        "kill -9: {} writes acknowledged ({acked_before_crash} before the crash), {stored} found",
        acked.len()
    );
    assert_eq!(
        stored,
        i64::try_from(acked.len()).unwrap(),
        "an acknowledged write was lost"
    );
    assert_nothing_lost(&pool, &db, app).await;
}

/// A pool behind `proxy` that validates every checkout and reconnects
/// after 100 ms, doubling up to 800 ms.
fn pool_config() -> PoolConfig {
    PoolConfig::default()
        .min_size(1)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(2))
        .create_timeout(Duration::from_secs(1))
        .validation_skip_window(Duration::ZERO)
        .reconnect_delays(Duration::from_millis(100), Duration::from_millis(800))
}

async fn pool_behind(proxy: &FaultProxy, db: &TempDb, app: &str) -> PgPool {
    connect(&url_with_app(&proxy.url_for(db), app), pool_config()).await
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
    // `min_size(0)`: with a floor, maintenance would top the pool up after
    // the dead idle connection is closed, and that connect, begun just
    // before recovery, would reach the proxy as a probe the supervisor never
    // made.
    let config = pool_config().min_size(0);
    let pool = connect(&url_with_app(&proxy.url_for(&db), app), config).await;
    drop(pool.acquire().await.unwrap());

    db.stop().unwrap();
    let error = pool.acquire().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(pool.state(), PoolState::Recovering);

    // Belt and braces: no connect that began before the pool entered
    // recovery may still be on its way through the proxy, so every accept
    // counted below is the supervisor's.
    wait_until("no connect is left in flight", || {
        pool.statistics().opening_connections == 0
    })
    .await;
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
