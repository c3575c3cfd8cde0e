//! The load the Patroni tests put through the pool while Patroni fails
//! over: writers that insert unique ids into a ledger, readers that ask
//! which server answered, and the ledger check at the end.
//!
//! Every request is one record: when it started and ended, which server
//! answered (`inet_server_port()`), or how it failed. Nothing panics in a
//! task; the test judges the records afterwards. The pool is reached only
//! through [`Target`], so an API change touches two functions.
//!
//! The ledger's promise (as in the soak, `soak/ledger.rs`): every write the
//! server acknowledged is in the table after every failover; no write that
//! was refused is; no row was never attempted. A write whose statement
//! failed after it was sent is `Unknown` (the commit may or may not have
//! happened before the connection died) and may be either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pool_pg::tokio_postgres::error::SqlState;
use pool_pg::tokio_postgres::types::ToSql;
use pool_pg::{Error, PgPool, PgPooledConnection, ReadWritePools};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// The table every write goes to.
pub(crate) const CREATE_LEDGER: &str = "CREATE TABLE ledger (op_id bigint PRIMARY KEY, \
     task int NOT NULL, port int NOT NULL); ALTER TABLE ledger OWNER TO app";
/// The bound of one request (acquire and statement) before it is a hang.
const HANG: Duration = Duration::from_secs(8);
/// The pause between two requests of one task.
const PAUSE: Duration = Duration::from_millis(10);

/// How the pool is reached: the two helpers to adapt if its API changes.
#[derive(Clone)]
pub(crate) enum Target {
    /// One pool on a `read-write` multi-host URL: reads and writes.
    Pool(PgPool),
    /// Writes to `write()`, reads to `read()`.
    Pools(Arc<ReadWritePools>),
}

impl Target {
    async fn for_write(&self) -> Result<PgPooledConnection, Error> {
        match self {
            Target::Pool(pool) => pool.acquire().await,
            Target::Pools(pools) => pools.write().await,
        }
    }

    async fn for_read(&self) -> Result<PgPooledConnection, Error> {
        match self {
            Target::Pool(pool) => pool.acquire().await,
            Target::Pools(pools) => pools.read().await,
        }
    }
}

/// What a write's failure says about the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Committed,
    /// Refused before anything was written (acquire failed, or the server
    /// refused the statement as read-only).
    NotWritten,
    /// The statement was sent and failed or hung: either way.
    Unknown,
}

/// One request and how it went.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) task: i32,
    pub(crate) op_id: i64,
    pub(crate) write: bool,
    pub(crate) started: Instant,
    pub(crate) ended: Instant,
    /// The answering server's port, and whether it was in recovery.
    pub(crate) outcome: Result<(u16, bool), String>,
    pub(crate) fate: Fate,
    /// The server refused a write as read-only (SQLSTATE 25006): the pool
    /// handed out a connection to a server that is not the primary.
    pub(crate) read_only_refusal: bool,
}

/// Writers and readers running until [`Load::stop`].
pub(crate) struct Load {
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(target: &Target, writers: i32, readers: i32) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..writers + readers)
            .map(|task| {
                let (target, log, stop) = (target.clone(), Arc::clone(&log), Arc::clone(&stop));
                tokio::spawn(run(target, task, task < writers, log, stop))
            })
            .collect();
        Self { log, stop, tasks }
    }

    pub(crate) fn requests(&self) -> MutexGuard<'_, Vec<Request>> {
        lock(&self.log)
    }

    /// The first successful write on the server at `port` that ended after
    /// `after`, if any.
    pub(crate) fn first_write_after(&self, after: Instant, port: u16) -> Option<Request> {
        self.requests()
            .iter()
            .filter(|r| r.write && r.ended > after)
            .filter(|r| matches!(r.outcome, Ok((p, _)) if p == port))
            .min_by_key(|r| r.ended)
            .cloned()
    }

    /// Waits (bounded) for a successful write on the server at `port` that
    /// ended after `after`.
    pub(crate) async fn next_write_after(
        &self,
        after: Instant,
        port: u16,
        bound: Duration,
    ) -> Request {
        test_support::wait_until_or(
            "a write through the pool succeeded on the primary",
            bound,
            || self.first_write_after(after, port).is_some(),
            || {
                self.requests()
                    .iter()
                    .rev()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
            },
        )
        .await;
        self.first_write_after(after, port)
            .expect("the write the wait saw")
    }

    /// Stops every task (each finishes its request) and returns the log.
    pub(crate) async fn stop(self, bound: Duration) -> Vec<Request> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            timeout(bound, task)
                .await
                .expect("a load task hung")
                .expect("a load task panicked");
        }
        let requests = lock(&self.log).clone();
        requests
    }
}

async fn run(
    target: Target,
    task: i32,
    write: bool,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let op_id = i64::from(task) * 1_000_000_000 + n;
        let started = Instant::now();
        let (outcome, fate, read_only_refusal) = if write {
            one_write(&target, task, op_id).await
        } else {
            let read = one_read(&target).await;
            let fate = if read.is_ok() {
                Fate::Committed
            } else {
                Fate::NotWritten
            };
            (read, fate, false)
        };
        lock(&log).push(Request {
            task,
            op_id,
            write,
            started,
            ended: Instant::now(),
            outcome,
            fate,
            read_only_refusal,
        });
        tokio::time::sleep(PAUSE).await;
    }
}

type Outcome = (Result<(u16, bool), String>, Fate, bool);

async fn one_write(target: &Target, task: i32, op_id: i64) -> Outcome {
    let conn = match timeout(HANG, target.for_write()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return (Err(format!("acquire: {error}")), Fate::NotWritten, false),
        Err(_) => return (Err("acquire hung".into()), Fate::NotWritten, false),
    };
    let params: [&(dyn ToSql + Sync); 2] = [&op_id, &task];
    let insert = conn.query_one(
        "INSERT INTO ledger (op_id, task, port) VALUES ($1, $2, inet_server_port()) \
         RETURNING port",
        &params,
    );
    match timeout(HANG, insert).await {
        Ok(Ok(row)) => (Ok((port_of(row.get(0)), false)), Fate::Committed, false),
        Ok(Err(error)) if error.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => {
            (Err(format!("write: {error}")), Fate::NotWritten, true)
        }
        Ok(Err(error)) => (Err(format!("write: {error}")), Fate::Unknown, false),
        Err(_) => (Err("write hung".into()), Fate::Unknown, false),
    }
}

async fn one_read(target: &Target) -> Result<(u16, bool), String> {
    let read = async {
        let conn = target
            .for_read()
            .await
            .map_err(|e| format!("acquire: {e}"))?;
        let row = conn
            .query_one("SELECT inet_server_port(), pg_is_in_recovery()", &[])
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok((port_of(row.get(0)), row.get(1)))
    };
    timeout(HANG, read)
        .await
        .unwrap_or_else(|_| Err("read hung".into()))
}

fn port_of(port: i32) -> u16 {
    u16::try_from(port).expect("a TCP port")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks the table's `(op_id, task)` rows against the writes; returns the
/// broken promises and how the `Unknown` writes fell (present, absent).
pub(crate) fn check_ledger(writes: &[Request], rows: &[(i64, i32)]) -> (Vec<String>, (u64, u64)) {
    let table: HashMap<i64, i32> = rows.iter().copied().collect();
    let mut problems = Vec::new();
    if table.len() != rows.len() {
        problems.push(format!("{} duplicate op_ids", rows.len() - table.len()));
    }
    let mut unknown = (0, 0);
    for write in writes.iter().filter(|r| r.write) {
        match (write.fate, table.get(&write.op_id)) {
            (Fate::Committed, Some(&task)) if task == write.task => {}
            (Fate::Committed, _) => problems.push(format!(
                "acknowledged write {} (task {}) is missing: a write was lost",
                write.op_id, write.task
            )),
            (Fate::NotWritten, Some(_)) => problems.push(format!(
                "refused write {} is in the table: {:?}",
                write.op_id, write.outcome
            )),
            (Fate::NotWritten, None) => {}
            (Fate::Unknown, Some(_)) => unknown.0 += 1,
            (Fate::Unknown, None) => unknown.1 += 1,
        }
    }
    let attempted: std::collections::HashSet<i64> =
        writes.iter().filter(|r| r.write).map(|r| r.op_id).collect();
    problems.extend(
        table
            .keys()
            .filter(|id| !attempted.contains(id))
            .map(|id| format!("row {id} was never attempted")),
    );
    (problems, unknown)
}

/// Every row of the ledger, read through a write connection (the primary).
pub(crate) async fn read_ledger(target: &Target) -> Vec<(i64, i32)> {
    let conn = target
        .for_write()
        .await
        .expect("acquire to read the ledger");
    conn.query("SELECT op_id, task FROM ledger", &[])
        .await
        .expect("read the ledger")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[test]
fn the_ledger_check_catches_a_lost_write_a_resurrected_refusal_and_an_invented_row() {
    let at = Instant::now();
    let write = |op_id, fate| Request {
        task: 1,
        op_id,
        write: true,
        started: at,
        ended: at,
        outcome: Err(String::new()),
        fate,
        read_only_refusal: false,
    };
    let writes = [
        write(1, Fate::Committed),
        write(2, Fate::NotWritten),
        write(3, Fate::Unknown),
        write(4, Fate::Unknown),
        write(5, Fate::Committed),
    ];
    let (problems, unknown) = check_ledger(&writes, &[(2, 1), (3, 1), (5, 1), (9, 1)]);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].contains("write 1 (task 1) is missing"),
        "{problems:#?}"
    );
    assert!(problems[1].contains("refused write 2"), "{problems:#?}");
    assert!(problems[2].contains("row 9"), "{problems:#?}");
    assert_eq!(unknown, (1, 1));
}
