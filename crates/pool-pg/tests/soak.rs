//! The chaos soak: a mixed workload against a real throwaway PostgreSQL,
//! through a [`FaultProxy`], while a fault driver restarts (or kills -9) the server,
//! terminates its backends, pauses the postmaster, and cuts, resets,
//! stalls, refuses and silently accepts connections at random.
//!
//! Design: 24 workers (`workload.rs`) step until the deadline, each step
//! one `acquire()` and one use (short query, write transaction, long hold,
//! query cancelled mid-flight, acquire dropped mid-wait), in waves of
//! demand; one fault driver (`faults.rs`) injects a fault every 1–4 s and
//! stops [`faults::QUIET_TAIL`] early so the last recovery is measured.
//! Workers never panic: each step becomes a record, judged at the end
//! (`outcome.rs` classifies errors, `ledger.rs` checks the writes,
//! `report.rs` the statistics and prints the figures).
//!
//! Length `SOAK_SECS` (default [`rng::DEFAULT_SOAK_SECS`] = 20 s, so
//! `cargo test --workspace` stays short; CI runs it with `SOAK_SECS=60`,
//! longer by hand); choices seeded by `SOAK_SEED`, printed first so a
//! failure can be replayed. A report goes to stderr (`-- --nocapture`).
//!
//! What must hold at the end (each is checked, none is sampled):
//! * every `acquire()` answered within `acquire_timeout` + 500 ms, with a
//!   connection or a typed error; every query error is one the faults
//!   explain (closed, 57P01/57P02/57P03, reset...); nothing else happened;
//! * every task finished (no hang);
//! * no result was lost, crossed or invented: every `SELECT $1` echoed its
//!   value, every committed write is in the table, no write that failed
//!   before `COMMIT` is, no row was never attempted (`ledger.rs`);
//! * every fault is followed within 5 s by a successful query;
//! * the pool serves again, is back to `min_size`, is quiet, and the server
//!   shows exactly the pool's open connections in `pg_stat_activity`;
//! * the statistics add up, against the workers' own tally
//!   (`report::check_statistics` lists the identities).

mod common;
#[path = "soak/faults.rs"]
mod faults;
#[path = "soak/ledger.rs"]
mod ledger;
#[path = "soak/outcome.rs"]
mod outcome;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/rng.rs"]
mod rng;
#[path = "soak/workload.rs"]
mod workload;

use std::sync::Arc;
use std::time::Duration;

use common::{connect, url_with_app, WAIT};
use pg_tempdb::{FaultProxy, TempDb};
use pool_pg::{PgPool, PoolConfig, PoolState};
use tokio::time::{sleep, timeout_at, Instant};

use report::Tally;
use rng::Rng;
use workload::Workload;

/// The bound of every wait at the end of the soak.
pub(crate) const BOUND: Duration = WAIT;
/// Workers: three per connection of `max_size`, so callers queue.
const TASKS: i32 = 24;
/// How long after the deadline a worker may still be finishing its step:
/// an `acquire()` (2.5 s) and three queries (4.5 s each), rounded up.
const STEP_BOUND: Duration = Duration::from_secs(20);
/// The pool's `application_name`, so `pg_stat_activity` counts only it.
const APP: &str = "soak";

/// Small and quick to react: faults come every 1–4 s.
fn soak_config() -> PoolConfig {
    PoolConfig::default()
        .min_size(2)
        .max_size(8)
        .acquire_timeout(Duration::from_secs(2))
        .create_timeout(Duration::from_secs(1))
        .validation_timeout(Duration::from_millis(500))
        .validation_skip_window(Duration::from_millis(50))
        .reconnect_delays(Duration::from_millis(100), Duration::from_millis(800))
        .maintenance_interval(Duration::from_secs(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_random_restarts_kills_pauses_and_cuts_every_acquire_is_answered_in_time_and_nothing_is_lost(
) {
    let secs = rng::soak_secs();
    let seed = rng::master_seed();
    eprintln!("soak: SOAK_SEED={seed} SOAK_SECS={secs} (set both to replay the choices)");
    // Acknowledged commits must survive a `kill -9` of the postmaster (the
    // kit's default turns synchronous_commit off for speed).
    let db = Arc::new(
        TempDb::builder()
            .setting("synchronous_commit", "on")
            .start()
            .expect("start a throwaway PostgreSQL"),
    );
    db.execute(ledger::CREATE_TABLE).unwrap();
    let proxy = Arc::new(FaultProxy::for_db(&db).await.unwrap());
    let pool = connect(&url_with_app(&proxy.url_for(&db), APP), soak_config()).await;

    let epoch = Instant::now();
    let deadline = epoch + Duration::from_secs(secs);
    let load = Arc::new(Workload::new(pool.clone(), epoch, deadline));
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let rng = Rng::derive(seed, 1 + task as u64);
            tokio::spawn(workload::worker(Arc::clone(&load), task, rng))
        })
        .collect();
    let driver = tokio::spawn(faults::drive(
        Arc::clone(&db),
        Arc::clone(&proxy),
        APP.to_owned(),
        deadline,
        Rng::derive(seed, 0),
    ));

    let mut problems = Vec::new();
    let fault_log = timeout_at(deadline + STEP_BOUND, driver)
        .await
        .expect("the fault driver ends after the deadline")
        .expect("the fault driver does not panic");
    problems.extend(fault_log.error.clone());
    let mut records = Vec::new();
    for (task, worker) in workers.into_iter().enumerate() {
        match timeout_at(deadline + STEP_BOUND, worker).await {
            Ok(done) => records.extend(done.expect("a worker does not panic")),
            Err(_) => problems.push(format!(
                "worker {task} hung: not finished {STEP_BOUND:?} after the deadline"
            )),
        }
    }
    drop(load);

    let settling = Instant::now();
    problems.extend(settle(&pool, &db).await.err());
    let settled_in = settling.elapsed();
    let stats = pool.statistics();
    let tally = Tally::of(&records, epoch);
    problems.extend(tally.problems.iter().cloned());
    problems.extend(report::check_statistics(&stats, &tally));
    let writes: Vec<_> = records.iter().filter_map(|r| r.write).collect();
    let (ledger, ledger_problems) = ledger::check(&writes, &ledger::read_table(&db).await);
    problems.extend(ledger_problems);
    let recovered = report::recoveries(&fault_log.faults, &records);
    problems.extend(report::check_recoveries(
        epoch,
        &fault_log.faults,
        &recovered,
    ));
    report::print(
        &format!("SOAK_SEED={seed} SOAK_SECS={secs}, {TASKS} tasks"),
        epoch,
        &tally,
        &fault_log.faults,
        &recovered,
        &ledger,
        &stats,
    );
    eprintln!(
        "settled (serving, quiet, min_size open, pg_stat_activity matching) {:.1} ms after the \
         last worker finished",
        settled_in.as_secs_f64() * 1e3
    );
    assert!(
        problems.is_empty(),
        "the soak (SOAK_SEED={seed} SOAK_SECS={secs}) found {} problem(s); the first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// After the faults: within [`BOUND`] the pool serves again (its state
/// follows its health, no longer `RECOVERING`), has topped up to
/// `min_size` (maintenance runs every second), is quiet, and the server
/// shows exactly as many backends of [`APP`] as the pool counts open (the
/// promise of `common::assert_nothing_lost`, returned instead of panicking
/// so the report is still printed).
async fn settle(pool: &PgPool, db: &TempDb) -> Result<(), String> {
    let deadline = Instant::now() + BOUND;
    loop {
        let before = pool.statistics();
        let serving = matches!(before.state, PoolState::Healthy | PoolState::Degraded);
        let server = db.count_connections(APP);
        let after = pool.statistics();
        let settled = serving
            && after.total_connections >= after.min_size
            && before.is_quiet()
            && after.is_quiet()
            && before.total_connections == after.total_connections;
        if settled && matches!(&server, Ok(n) if *n == after.total_connections) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "something was lost: {BOUND:?} after the soak the server shows {server:?} \
                 backends of {APP:?}, the pool {} open (min_size {}), state {:?}, {}quiet: \
                 {after:?}",
                after.total_connections,
                after.min_size,
                after.state,
                if after.is_quiet() { "" } else { "not " },
            ));
        }
        sleep(Duration::from_millis(20)).await;
    }
}
