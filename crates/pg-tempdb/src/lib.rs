//! Throwaway PostgreSQL servers for tests, examples and benchmarks, with the
//! fault controls a connection pool needs to be tested against: stop, start,
//! restart, pause (the server stops answering), and killing client
//! connections. A [`FaultProxy`] in front of a server adds network faults:
//! delays, stalls, refused or silently accepted connects, resets and clean
//! closes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pg_tempdb::TempDb;
//!
//! let db = TempDb::builder().user("app").password("secret").start()?;
//! let (client, connection) = db.config().connect(tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//!
//! db.terminate_backends()?; // the client's next query fails
//! assert!(client.simple_query("SELECT 1").await.is_err());
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **One `initdb` per machine.** The first server builds a template data
//!   directory, cached under the system temp directory and shared by every
//!   process (see `template.rs` for why the cache is never seen half
//!   written); each server starts from a copy. Starting a server takes about
//!   0.15–0.25 s; the first one on a machine about 1–2 s more.
//! - **Isolated.** Each server has its own directory, a free TCP port on
//!   127.0.0.1, and a private Unix socket directory, so it never collides
//!   with other PostgreSQL servers on the machine. Durability is off
//!   (`fsync`, `synchronous_commit`, `full_page_writes`).
//! - **In memory when possible.** Server directories go to `/dev/shm` when
//!   it has at least 1 GiB free (creating a data directory's ~1,000 files
//!   there is several times faster than on a disk), else to the system temp
//!   directory. Set `PG_TEMPDB_DIR` to choose the directory yourself.
//! - **Bounded.** Every control blocks, and every wait has a deadline, so a
//!   test can fail but never hang. The controls are safe to call from inside
//!   a tokio runtime.
//! - **Leaves nothing behind.** Dropping a [`TempDb`] (also while a test
//!   panics) resumes, stops and deletes the server. If the process dies
//!   without dropping it, a watcher process does the same.
//! - **Runs as root too.** PostgreSQL refuses to run as root; as root, the
//!   kit runs every PostgreSQL process as the `postgres` user.
//!
//! # Finding PostgreSQL
//!
//! In order: `PG_BINDIR`; the first `PATH` directory with `initdb` and
//! `pg_ctl`; `pg_config --bindir`; the newest `/usr/lib/postgresql/*/bin`.
//! PostgreSQL 10 or later is needed. On Debian and Ubuntu:
//! `apt-get install postgresql`.

mod admin;
mod binaries;
mod builder;
mod cluster;
mod control;
mod error;
mod exec;
mod layout;
mod patroni;
mod pgbouncer;
mod postmaster;
mod proxy;
mod server;
mod template;
mod tls;

pub use builder::{TempDbBuilder, DEFAULT_DBNAME, DEFAULT_USER};
pub use cluster::TempCluster;
pub use error::TempDbError;
pub use patroni::{MemberStatus, PatroniBuilder, PatroniCluster, PatroniMember};
pub use pgbouncer::PgBouncer;
pub use proxy::{FaultProxy, Mode};
pub use server::{TempDb, HOST};

/// The crate's result type.
pub type Result<T, E = TempDbError> = std::result::Result<T, E>;
