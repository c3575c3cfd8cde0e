//! The prepared-statement contenders (issue 14): one operation is a
//! checkout, one repeated parameterised single-row query
//! ([`QUERY`], `SELECT id, name FROM bench_items WHERE id = $1`), the
//! decoding of both columns of its row, and a return. The id varies from
//! one operation to the next (see [`Keys`]), so every operation reads
//! another row of a real table of [`ROWS`] rows.
//!
//! How many round trips one operation costs is the whole point of these
//! cases, so each contender is pinned to the call it makes:
//!
//! * **ours**: `PgPool` (`min_size = max_size = 8`),
//!   `conn.query_one(QUERY, &[&id])` on the pooled connection, with the
//!   SQL as a `&str`. Today that is tokio-postgres's uncached path (two
//!   round trips, like deadpool_query below); with a per-connection
//!   statement cache in pool-pg it becomes one, without a change here.
//! * **dedicated_prepared**: the floor ([`Floor`]) of 8 plain tokio-postgres
//!   clients, each with [`QUERY`] prepared once at build time;
//!   `client.query_one(&its_statement, &[&id])`. One round trip and no
//!   cache lookup: what a cache can at best reach.
//! * **deadpool_query**: deadpool-postgres 0.14, pool of 8,
//!   `tokio_postgres::Client::query_one(&client, QUERY, &[&id])`. Named in
//!   full so deadpool's own wrappers cannot step in: in 0.14
//!   `ClientWrapper` has no `query_one` and `GenericClient::query_one`
//!   forwards to tokio-postgres without its cache, so this is the uncached
//!   `&str` path a user of `client.query_one(&str, ..)` gets: prepare
//!   (Parse, Describe, Sync), then execute (Bind, Execute, Sync), then the
//!   dropped statement's Close.
//! * **deadpool_cached**: the same pool, `client.prepare_cached(QUERY)`
//!   (deadpool's per-connection `StatementCache`) and
//!   `client.query_one(&statement, &[&id])`.
//! * **sqlx**: sqlx 0.8's `PgPool` with `PgPoolOptions::new()
//!   .max_connections(8).min_connections(8)` and nothing else,
//!   `sqlx::query(QUERY).bind(id).fetch_one(&pool)`: its idiomatic path,
//!   a checkout per `fetch_one`, the statement from its default
//!   per-connection cache (100 statements). Two more round trips per
//!   operation come with it (sqlx-core 0.8.6, `pool/inner.rs` and
//!   `pool/connection.rs`): its shipped default `test_before_acquire =
//!   true` sends a Sync and waits for the server's `ReadyForQuery` on
//!   **every checkout**, before the query (like bb8's `test_on_check_out`
//!   in [`pg`](crate::pg)); and dropping the connection spawns a task that
//!   does the same **on every return**, unconditionally, before the
//!   connection is idle again. The caller does not wait for the second, but
//!   the connection is busy with it, so it costs throughput once all 8 are
//!   in use. Measured as shipped.
//! * **sqlx_no_acquire_ping**: the same with `test_before_acquire(false)`:
//!   no ping on checkout; the one on return stays (no option turns it
//!   off). Not a contender of the goals; reported beside them.
//!
//! Every row is checked (its id must be the one asked for) after the
//! connection was handed back, the same for everyone: `fetch_one(&pool)`
//! has dropped sqlx's connection by the time it returns the row.
//!
//! All contenders connect to one [`TempDb`] over TCP on 127.0.0.1 without
//! TLS: 5 pools of 8 connections (the two deadpool contenders share one).

use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::future::try_join_all;
use pg_tempdb::TempDb;
use pool_pg::{PgPool, PoolConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::Row as _;
use tokio_postgres::{Client, NoTls, Statement};

use crate::pg::open_by_hand;
use crate::{Contender, Floor, OpError};

/// The pool size of every contender.
pub const SIZE: usize = 8;

/// The task counts of the matrix.
pub const TASKS: [usize; 3] = [1, 8, 64];

/// The query every contender repeats, with a different id each time.
pub const QUERY: &str = "SELECT id, name FROM bench_items WHERE id = $1";

/// Rows in `bench_items`, ids `1..=ROWS`.
pub const ROWS: u32 = 1000;

/// Creates `bench_items` with its [`ROWS`] rows, unless it exists; safe to
/// run again (every build of a [`CachedSet`] does).
fn setup_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO bench_items (id, name)
             SELECT g, 'item ' || g FROM generate_series(1, {ROWS}) AS g
             ON CONFLICT (id) DO NOTHING;
         ANALYZE bench_items;"
    )
}

/// Spacing of the first ids of successive clones (prime, so the tasks'
/// sequences do not line up on the same rows).
const CLONE_STRIDE: u32 = 97;

/// The ids one contender looks up: its counter modulo [`ROWS`], plus 1.
///
/// The workload clones a contender once per task, and each clone counts on
/// its own (an atomic only because a contender is `Sync`; no other task
/// touches it). A clone starts 97 ids (`CLONE_STRIDE`) further than the clone
/// before it, so tasks do not read the same rows in lockstep.
#[derive(Debug, Default)]
pub struct Keys(AtomicU32);

impl Keys {
    /// The next id, in `1..=ROWS`.
    pub fn next(&self) -> i32 {
        let n = self.0.fetch_add(1, Ordering::Relaxed) % ROWS;
        // `n < ROWS = 1000`: the cast is lossless.
        n as i32 + 1
    }
}

impl Clone for Keys {
    fn clone(&self) -> Self {
        Self(AtomicU32::new(
            self.0.fetch_add(CLONE_STRIDE, Ordering::Relaxed),
        ))
    }
}

/// Checks that the row read is the one asked for (and keeps the decoded
/// name alive, so decoding is part of every operation).
fn check_row(asked: i32, id: i32, name: &str) -> Result<(), OpError> {
    if id != asked || std::hint::black_box(name).is_empty() {
        return Err(format!("asked for row {asked}, got {id} ({name:?})").into());
    }
    Ok(())
}

/// Our `PgPool`, the query as a `&str`.
#[derive(Clone, Debug)]
pub struct CachedOurs {
    pool: PgPool,
    keys: Keys,
}

impl CachedOurs {
    /// Builds (and warms) a pool of [`SIZE`].
    pub async fn build(db: &TempDb) -> Result<Self, OpError> {
        let size = u32::try_from(SIZE)?;
        let config = PoolConfig::default().min_size(size).max_size(size);
        Ok(Self {
            pool: PgPool::connect(&db.url(), config).await?,
            keys: Keys::default(),
        })
    }

    /// The pool, for its statistics.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Contender for CachedOurs {
    async fn op(&self) -> Result<(), OpError> {
        let id = self.keys.next();
        let conn = self.pool.acquire().await?;
        let row = conn.query_one(QUERY, &[&id]).await?;
        drop(conn);
        check_row(id, row.try_get(0)?, row.try_get(1)?)
    }
}

/// A plain client with [`QUERY`] prepared on it.
#[derive(Debug)]
pub struct PreparedClient {
    client: Client,
    statement: Statement,
}

/// The dedicated floor: a [`Floor`] of clients, each with its statement.
#[derive(Clone, Debug)]
pub struct CachedDedicated {
    floor: Floor<PreparedClient>,
    keys: Keys,
}

impl CachedDedicated {
    /// Opens [`SIZE`] clients and prepares [`QUERY`] on each.
    pub async fn build(db: &TempDb) -> Result<Self, OpError> {
        let clients = open_by_hand(&db.config(), SIZE).await?;
        let prepared = try_join_all(clients.into_iter().map(|client| async move {
            let statement = client.prepare(QUERY).await?;
            Ok::<_, tokio_postgres::Error>(PreparedClient { client, statement })
        }))
        .await?;
        Ok(Self {
            floor: Floor::from_objects(prepared),
            keys: Keys::default(),
        })
    }
}

impl Contender for CachedDedicated {
    async fn op(&self) -> Result<(), OpError> {
        let id = self.keys.next();
        let held = self.floor.get().await?;
        let row = held.client.query_one(&held.statement, &[&id]).await?;
        drop(held);
        check_row(id, row.try_get(0)?, row.try_get(1)?)
    }
}

/// How a deadpool contender sends the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadpoolPath {
    /// `tokio_postgres::Client::query_one` with the `&str`: no cache.
    Query,
    /// `prepare_cached`, then `query_one` with the statement.
    PrepareCached,
}

/// deadpool-postgres, `RecyclingMethod::Fast` (the default).
#[derive(Clone)]
pub struct CachedDeadpool {
    pool: deadpool_postgres::Pool,
    path: DeadpoolPath,
    keys: Keys,
}

impl CachedDeadpool {
    /// Builds a pool of [`SIZE`] and opens all its connections (deadpool
    /// opens them lazily).
    pub async fn build(db: &TempDb) -> Result<deadpool_postgres::Pool, OpError> {
        let manager = deadpool_postgres::Manager::from_config(
            db.config(),
            NoTls,
            deadpool_postgres::ManagerConfig::default(),
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(SIZE)
            .build()?;
        drop(try_join_all((0..SIZE).map(|_| pool.get())).await?);
        Ok(pool)
    }

    /// A contender on `pool` (shared with the other path).
    pub fn on(pool: &deadpool_postgres::Pool, path: DeadpoolPath) -> Self {
        Self {
            pool: pool.clone(),
            path,
            keys: Keys::default(),
        }
    }
}

impl Contender for CachedDeadpool {
    async fn op(&self) -> Result<(), OpError> {
        let id = self.keys.next();
        let client = self.pool.get().await?;
        let row = match self.path {
            DeadpoolPath::Query => {
                tokio_postgres::Client::query_one(&client, QUERY, &[&id]).await?
            }
            DeadpoolPath::PrepareCached => {
                let statement = client.prepare_cached(QUERY).await?;
                client.query_one(&statement, &[&id]).await?
            }
        };
        drop(client);
        check_row(id, row.try_get(0)?, row.try_get(1)?)
    }
}

/// sqlx's `PgPool`, `sqlx::query(QUERY).bind(id).fetch_one(&pool)`.
#[derive(Clone, Debug)]
pub struct CachedSqlx {
    pool: sqlx::PgPool,
    keys: Keys,
}

impl CachedSqlx {
    /// Builds a pool of [`SIZE`] (`min_connections = max_connections`) and
    /// opens all its connections (sqlx opens those beyond the first in the
    /// background). With `test_before_acquire` false, checkout sends no
    /// ping (return still does); true is sqlx's default.
    pub async fn build(db: &TempDb, test_before_acquire: bool) -> Result<Self, OpError> {
        let size = u32::try_from(SIZE)?;
        let mut connect = PgConnectOptions::new_without_pgpass()
            .host(db.host())
            .port(db.port())
            .username(db.user())
            .database(db.dbname())
            .ssl_mode(PgSslMode::Disable);
        if let Some(password) = db.password() {
            connect = connect.password(password);
        }
        let mut options = PgPoolOptions::new()
            .max_connections(size)
            .min_connections(size);
        if !test_before_acquire {
            options = options.test_before_acquire(false);
        }
        let pool = options.connect_with(connect).await?;
        drop(try_join_all((0..SIZE).map(|_| pool.acquire())).await?);
        Ok(Self {
            pool,
            keys: Keys::default(),
        })
    }
}

impl Contender for CachedSqlx {
    async fn op(&self) -> Result<(), OpError> {
        let id = self.keys.next();
        let row = sqlx::query(QUERY).bind(id).fetch_one(&self.pool).await?;
        check_row(id, row.try_get(0)?, row.try_get(1)?)
    }
}

/// The contenders of the prepared-statement cases, on one server.
pub struct CachedSet {
    /// Our `PgPool`.
    pub ours: CachedOurs,
    /// The dedicated floor, statements prepared once.
    pub dedicated_prepared: CachedDedicated,
    /// deadpool-postgres, the uncached `&str` path.
    pub deadpool_query: CachedDeadpool,
    /// deadpool-postgres, `prepare_cached` (the same pool).
    pub deadpool_cached: CachedDeadpool,
    /// sqlx with its defaults (a ping on every checkout).
    pub sqlx: CachedSqlx,
    /// sqlx with `test_before_acquire(false)` (still a ping on return).
    pub sqlx_no_acquire_ping: CachedSqlx,
}

impl CachedSet {
    /// Creates the table (if need be), then builds every contender with
    /// all its connections open.
    pub async fn build(db: &TempDb) -> Result<Self, OpError> {
        let (setup, connection) = db.config().connect(NoTls).await?;
        let task = tokio::spawn(connection);
        setup.batch_execute(&setup_sql()).await?;
        drop(setup);
        task.await??;
        let deadpool = CachedDeadpool::build(db).await?;
        Ok(Self {
            ours: CachedOurs::build(db).await?,
            dedicated_prepared: CachedDedicated::build(db).await?,
            deadpool_query: CachedDeadpool::on(&deadpool, DeadpoolPath::Query),
            deadpool_cached: CachedDeadpool::on(&deadpool, DeadpoolPath::PrepareCached),
            sqlx: CachedSqlx::build(db, true).await?,
            sqlx_no_acquire_ping: CachedSqlx::build(db, false).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_within_the_table_and_clones_start_apart() {
        let keys = Keys::default();
        let first = keys.clone();
        let second = keys.clone();
        assert_eq!(first.next(), 1);
        assert_eq!(second.next(), 1 + CLONE_STRIDE as i32);
        for _ in 0..3 * ROWS {
            let id = first.next();
            assert!((1..=ROWS as i32).contains(&id), "{id}");
        }
    }
}
