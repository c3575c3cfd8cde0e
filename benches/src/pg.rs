//! The PostgreSQL contenders: one operation is a checkout, one
//! `simple_query("SELECT 1")` (one round trip, no prepared statement, the
//! same for everyone), and a return.
//!
//! * **ours**: `PgPool` with the defaults (`min_size = max_size = size`).
//!   The query goes through the pooled connection's counting method, as a
//!   user's would. Checkout does no round trip for a connection used within
//!   `validation_skip_window` (500 ms).
//! * **dedicated**: the floor ([`Floor`]) holding `size` plain
//!   tokio-postgres clients: what a hand-written, bookkeeping-free pool
//!   costs.
//! * **deadpool**: deadpool-postgres with its default `RecyclingMethod::Fast`
//!   (`is_closed()` only, no round trip).
//! * **bb8**: bb8-postgres with bb8's default `test_on_check_out = true`:
//!   every checkout first sends `simple_query("")`, an extra round trip.
//!   That is bb8's documented default, so it is measured as shipped.
//!
//! All four connect to one [`TempDb`] started by the bench, over TCP on
//! 127.0.0.1, without TLS.

use std::time::{Duration, Instant};

use futures_util::future::{join_all, try_join_all};
use pg_tempdb::TempDb;
use pool_pg::{PgPool, PoolConfig};
use tokio_postgres::{Client, NoTls};

use crate::{Contender, Floor, OpError};

/// The pool sizes of the matrix.
pub const SIZES: [usize; 2] = [8, 16];

/// The task counts of the matrix, for each pool size.
pub const TASKS: [usize; 3] = [1, 8, 64];

/// The name of a matrix case, `s{size}w{tasks}`.
pub fn case_name(size: usize, tasks: usize) -> String {
    format!("s{size}w{tasks}")
}

/// How many connections the warm-up case opens.
pub const WARM_UP_CONNECTIONS: u32 = 10;

/// The query every contender runs.
const QUERY: &str = "SELECT 1";

/// Starts the benchmarks' PostgreSQL server. `max_connections` leaves room
/// for four pools of 16 plus the warm-up case's connections, which close
/// asynchronously, and for the five pools of 8 of the prepared-statement
/// cases ([`cached`](crate::cached)).
pub fn start_server() -> Result<TempDb, OpError> {
    Ok(TempDb::builder().max_connections(300).start()?)
}

/// Our `PgPool`.
#[derive(Clone, Debug)]
pub struct PgOurs(PgPool);

impl PgOurs {
    /// Builds (and warms) a pool of `size`.
    pub async fn build(db: &TempDb, size: usize) -> Result<Self, OpError> {
        let size = u32::try_from(size)?;
        let config = PoolConfig::default().min_size(size).max_size(size);
        Ok(Self(PgPool::connect(&db.url(), config).await?))
    }

    /// The pool, for its statistics.
    pub fn pool(&self) -> &PgPool {
        &self.0
    }
}

impl Contender for PgOurs {
    async fn op(&self) -> Result<(), OpError> {
        let conn = self.0.acquire().await?;
        conn.simple_query(QUERY).await?;
        Ok(())
    }
}

/// The dedicated floor: a [`Floor`] of plain clients.
#[derive(Clone, Debug)]
pub struct PgDedicated(Floor<Client>);

impl PgDedicated {
    /// Opens `size` clients.
    pub async fn build(db: &TempDb, size: usize) -> Result<Self, OpError> {
        let clients = open_by_hand(&db.config(), size).await?;
        Ok(Self(Floor::from_objects(clients)))
    }
}

impl Contender for PgDedicated {
    async fn op(&self) -> Result<(), OpError> {
        let client = self.0.get().await?;
        client.simple_query(QUERY).await?;
        Ok(())
    }
}

/// deadpool-postgres, `RecyclingMethod::Fast` (the default).
#[derive(Clone)]
pub struct PgDeadpool(deadpool_postgres::Pool);

impl PgDeadpool {
    /// Builds a pool of `size` and opens all its connections (deadpool
    /// opens them lazily).
    pub async fn build(db: &TempDb, size: usize) -> Result<Self, OpError> {
        let manager = deadpool_postgres::Manager::from_config(
            db.config(),
            NoTls,
            deadpool_postgres::ManagerConfig::default(),
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(size)
            .build()?;
        let clients = join_all((0..size).map(|_| pool.get())).await;
        for client in clients {
            drop(client?);
        }
        Ok(Self(pool))
    }
}

impl Contender for PgDeadpool {
    async fn op(&self) -> Result<(), OpError> {
        let client = self.0.get().await?;
        client.simple_query(QUERY).await?;
        Ok(())
    }
}

/// bb8-postgres with bb8's defaults (`test_on_check_out = true`).
#[derive(Clone)]
pub struct PgBb8(bb8::Pool<bb8_postgres::PostgresConnectionManager<NoTls>>);

impl PgBb8 {
    /// Builds a pool of `size` with `size` idle connections.
    pub async fn build(db: &TempDb, size: usize) -> Result<Self, OpError> {
        let size = u32::try_from(size)?;
        let manager = bb8_postgres::PostgresConnectionManager::new(db.config(), NoTls);
        let pool = bb8::Pool::builder()
            .max_size(size)
            .min_idle(size)
            .build(manager)
            .await?;
        Ok(Self(pool))
    }
}

impl Contender for PgBb8 {
    async fn op(&self) -> Result<(), OpError> {
        let conn = self.0.get().await?;
        conn.simple_query(QUERY).await?;
        Ok(())
    }
}

/// The four contenders of one pool size.
pub struct PgSet {
    /// Our `PgPool`.
    pub ours: PgOurs,
    /// The dedicated floor.
    pub dedicated: PgDedicated,
    /// deadpool-postgres.
    pub deadpool: PgDeadpool,
    /// bb8-postgres.
    pub bb8: PgBb8,
}

impl PgSet {
    /// Builds the four, each with `size` open connections.
    pub async fn build(db: &TempDb, size: usize) -> Result<Self, OpError> {
        Ok(Self {
            ours: PgOurs::build(db, size).await?,
            dedicated: PgDedicated::build(db, size).await?,
            deadpool: PgDeadpool::build(db, size).await?,
            bb8: PgBb8::build(db, size).await?,
        })
    }
}

/// Opens `count` plain clients in parallel, each with its connection task
/// spawned (a client whose task is dropped stops working).
pub async fn open_by_hand(
    config: &tokio_postgres::Config,
    count: usize,
) -> Result<Vec<Client>, OpError> {
    let pairs = try_join_all((0..count).map(|_| config.connect(NoTls))).await?;
    Ok(pairs
        .into_iter()
        .map(|(client, connection)| {
            // The task ends when the client is dropped; its error, if any,
            // would surface as a failed query in the benchmark.
            drop(tokio::spawn(connection));
            client
        })
        .collect())
}

/// The time `PgPool::connect` takes to return a pool of
/// [`WARM_UP_CONNECTIONS`] validated connections (`min_size = max_size =
/// 10`). The pool is closed afterwards, outside the measured time.
pub async fn warm_up_ours(db: &TempDb) -> Result<Duration, OpError> {
    let config = PoolConfig::default()
        .min_size(WARM_UP_CONNECTIONS)
        .max_size(WARM_UP_CONNECTIONS);
    let url = db.url();
    let started = Instant::now();
    let pool = PgPool::connect(&url, config).await?;
    let elapsed = started.elapsed();
    pool.close();
    Ok(elapsed)
}

/// The time it takes to open [`WARM_UP_CONNECTIONS`] clients in parallel
/// by hand; with `validate`, each client also runs `SELECT 1` once open
/// (what the pool's warm-up does). They are closed afterwards, outside the
/// measured time.
pub async fn warm_up_by_hand(db: &TempDb, validate: bool) -> Result<Duration, OpError> {
    let config = db.config();
    let started = Instant::now();
    let clients = try_join_all((0..WARM_UP_CONNECTIONS).map(|_| async {
        let (client, connection) = config.connect(NoTls).await?;
        drop(tokio::spawn(connection));
        if validate {
            client.simple_query(QUERY).await?;
        }
        Ok::<_, tokio_postgres::Error>(client)
    }))
    .await?;
    let elapsed = started.elapsed();
    drop(clients);
    Ok(elapsed)
}
