//! The soak's workload: tasks that loop until the deadline, each step one
//! `acquire()` and one kind of use (see [`OpKind`]), every await bounded.
//!
//! Bounds: `acquire()` by `acquire_timeout` + [`ACQUIRE_MARGIN`] (the pool
//! promises to answer within `acquire_timeout`; missing that by more than
//! the margin is a problem, even while the postmaster is paused); every
//! query by [`QUERY_BOUND`] (no fault stalls a live connection for longer
//! than [`crate::faults::LONGEST_WINDOW`]). A worker never panics: each step
//! ends in an [`OpRecord`], and what went wrong is judged at the end.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pool_pg::{tokio_postgres, PgPool, PgPooledConnection};
use tokio::time::{sleep, timeout, Instant};

use crate::outcome::{classify_acquire, classify_query, AcquireEnd, Fate, OpKind, OpRecord};
use crate::rng::Rng;

/// Slack over `acquire_timeout` before an `acquire()` counts as hung.
pub(crate) const ACQUIRE_MARGIN: Duration = Duration::from_millis(500);
/// The bound of one query: the longest fault window plus 2 s; longer is a
/// hang.
pub(crate) const QUERY_BOUND: Duration =
    crate::faults::LONGEST_WINDOW.saturating_add(Duration::from_secs(2));
/// The statement of a write.
const INSERT: &str = "INSERT INTO soak_ledger (op_id, task) VALUES ($1, $2)";

/// Demand comes in waves, so the pool also meets faults while lightly
/// used (idle connections age past the skip window and are validated, the
/// fast path runs, maintenance tops up): each level of [`WAVE`] lasts
/// [`WAVE_STEP`]; a worker whose number is not below the level sits out.
const WAVE: [i32; 3] = [i32::MAX, 6, 2];
const WAVE_STEP: Duration = Duration::from_secs(4);

/// What every worker shares.
pub(crate) struct Workload {
    pub(crate) pool: PgPool,
    /// When the soak started.
    epoch: Instant,
    /// Workers start no step after this.
    pub(crate) deadline: Instant,
    /// The pool's `acquire_timeout`.
    pub(crate) acquire_timeout: Duration,
    /// The next write's `op_id`.
    next_id: AtomicI64,
}

impl Workload {
    pub(crate) fn new(pool: PgPool, epoch: Instant, deadline: Instant) -> Self {
        let acquire_timeout = pool.config().acquire_timeout;
        Self {
            pool,
            epoch,
            deadline,
            acquire_timeout,
            next_id: AtomicI64::new(1),
        }
    }

    /// Whether worker `task` takes part in the current wave.
    fn is_active(&self, task: i32) -> bool {
        let step = self.epoch.elapsed().as_millis() / WAVE_STEP.as_millis();
        task < WAVE[step as usize % WAVE.len()]
    }
}

/// One worker: steps until the deadline, then returns what it did.
pub(crate) async fn worker(load: Arc<Workload>, task: i32, mut rng: Rng) -> Vec<OpRecord> {
    let mut records = Vec::new();
    while Instant::now() < load.deadline {
        if !load.is_active(task) {
            sleep(Duration::from_millis(50)).await;
            continue;
        }
        let kind = OpKind::pick(rng.next_u64());
        let mut record = OpRecord::new(kind);
        step(&load, task, &mut rng, &mut record).await;
        record.ended = Instant::now();
        // A short pause, longer after a failure (as a real client would),
        // so no task spins on a pool that turns callers away at once.
        let pause = match record.succeeded || kind == OpKind::DroppedAcquire {
            true => rng.millis(0, 3),
            false => rng.millis(10, 30),
        };
        records.push(record);
        sleep(pause).await;
    }
    records
}

async fn step(load: &Workload, task: i32, rng: &mut Rng, record: &mut OpRecord) {
    if record.kind == OpKind::DroppedAcquire {
        let patience = rng.millis(0, 5);
        let started = Instant::now();
        match timeout(patience, load.pool.acquire()).await {
            Err(_elapsed) => {
                record.acquire = AcquireEnd::Dropped;
                record.label = "acquire: dropped by the caller".to_owned();
            }
            Ok(Ok(conn)) => {
                record.acquire = AcquireEnd::Ok;
                record.succeeded = true;
                drop(conn);
            }
            Ok(Err(error)) => {
                let (end, class) = classify_acquire(&error);
                record.acquire = end;
                record.fail(class);
            }
        }
        record.acquire_took = started.elapsed();
        return;
    }
    let Some(mut conn) = acquire(load, record).await else {
        return;
    };
    match record.kind {
        OpKind::Short => short(&conn, rng, record).await,
        OpKind::Write => write(&mut conn, load, task, record).await,
        OpKind::Hold => hold(&conn, rng, record).await,
        OpKind::CancelledQuery => cancelled_query(&conn, rng, record).await,
        OpKind::DroppedAcquire => unreachable!("handled above"),
    }
}

/// `acquire()` bounded by `acquire_timeout` + [`ACQUIRE_MARGIN`].
async fn acquire(load: &Workload, record: &mut OpRecord) -> Option<PgPooledConnection> {
    let bound = load.acquire_timeout + ACQUIRE_MARGIN;
    let started = Instant::now();
    let result = timeout(bound, load.pool.acquire()).await;
    record.acquire_took = started.elapsed();
    match result {
        Ok(Ok(conn)) => {
            record.acquire = AcquireEnd::Ok;
            Some(conn)
        }
        Ok(Err(error)) => {
            let (end, class) = classify_acquire(&error);
            record.acquire = end;
            record.fail(class);
            None
        }
        Err(_elapsed) => {
            record.acquire = AcquireEnd::Dropped;
            record.fail(Err(format!(
                "acquire() did not answer within acquire_timeout {:?} + {ACQUIRE_MARGIN:?}",
                load.acquire_timeout
            )));
            None
        }
    }
}

/// Runs one query under [`QUERY_BOUND`]; records a failure and returns
/// `None` if it fails or hangs.
async fn query<T>(
    record: &mut OpRecord,
    what: &str,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Option<T> {
    match timeout(QUERY_BOUND, work).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            record.fail(classify_query(what, &error));
            None
        }
        Err(_elapsed) => {
            record.fail(Err(format!("{what} did not answer within {QUERY_BOUND:?}")));
            None
        }
    }
}

/// `SELECT $1::int4` with a random value, which must come back unchanged
/// (a result from another request would be a crossed connection).
async fn select_value(conn: &PgPooledConnection, rng: &mut Rng, record: &mut OpRecord) -> bool {
    let value = rng.int();
    let Some(row) = query(
        record,
        "SELECT $1::int4",
        conn.query_one("SELECT $1::int4", &[&value]),
    )
    .await
    else {
        return false;
    };
    match row.try_get::<_, i32>(0) {
        Ok(got) if got == value => true,
        got => {
            record.fail(Err(format!(
                "SELECT {value}::int4 returned {got:?}: a result was lost or crossed"
            )));
            false
        }
    }
}

async fn short(conn: &PgPooledConnection, rng: &mut Rng, record: &mut OpRecord) {
    record.succeeded = select_value(conn, rng, record).await;
}

async fn hold(conn: &PgPooledConnection, rng: &mut Rng, record: &mut OpRecord) {
    if !select_value(conn, rng, record).await {
        return;
    }
    sleep(rng.millis(50, 300)).await;
    record.succeeded = select_value(conn, rng, record).await;
}

/// A write: its fate is `NotWritten` until `COMMIT` is sent, then
/// `Unknown` until `COMMIT` answers Ok.
async fn write(conn: &mut PgPooledConnection, load: &Workload, task: i32, record: &mut OpRecord) {
    let id = load.next_id.fetch_add(1, Ordering::Relaxed);
    record.write = Some((id, task, Fate::NotWritten));
    let Some(tx) = query(record, "BEGIN", conn.transaction()).await else {
        return;
    };
    if query(record, "INSERT", tx.execute(INSERT, &[&id, &task]))
        .await
        .is_none()
    {
        return; // dropping `tx` rolls back
    }
    record.write = Some((id, task, Fate::Unknown));
    if query(record, "COMMIT", tx.commit()).await.is_some() {
        record.write = Some((id, task, Fate::Committed));
        record.succeeded = true;
    }
}

/// `pg_sleep(0.5)` under a 10–60 ms client timeout: the future is dropped
/// mid-query, so the pool must close the dirty connection.
async fn cancelled_query(conn: &PgPooledConnection, rng: &mut Rng, record: &mut OpRecord) {
    let patience = rng.millis(10, 60);
    match timeout(patience, conn.query_one("SELECT pg_sleep(0.5)", &[])).await {
        Err(_elapsed) => record.label = "query: dropped mid-query by the caller".to_owned(),
        Ok(Ok(_)) => record.fail(Err(format!(
            "SELECT pg_sleep(0.5) answered within {patience:?}"
        ))),
        Ok(Err(error)) => record.fail(classify_query("SELECT pg_sleep(0.5)", &error)),
    }
}
