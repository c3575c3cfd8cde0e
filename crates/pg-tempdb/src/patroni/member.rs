//! [`PatroniMember`]: one Patroni process and the PostgreSQL it runs.
//!
//! A member is its name, its two ports (PostgreSQL's, the REST API's), its
//! directory, and the supervised Patroni process (`process.rs`). Which
//! member leads changes with every failover; the members keep their names
//! and ports, so tests name a member by its port (`inet_server_port()`).
//!
//! Invariant: the member's process is stopped when the member is dropped
//! (the cluster stops them in order first); anything read from its log
//! for an error or a test has the application role's password redacted.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::binaries::Installation;
use crate::error::{redact, tail_lines, Result, TempDbError, LOG_TAIL_LINES};
use crate::exec;
use crate::template::SUPERUSER;

use super::process::Supervised;

/// Bound for one `psql` run on a member.
const SQL_TIMEOUT: Duration = Duration::from_secs(30);

/// One member of a [`PatroniCluster`](super::PatroniCluster).
pub struct PatroniMember {
    name: String,
    pg_port: u16,
    api_port: u16,
    dir: PathBuf,
    process: Mutex<Supervised>,
    /// Redacted from log tails and errors.
    password: Option<String>,
}

impl PatroniMember {
    pub(super) fn new(
        name: &str,
        [pg_port, api_port]: [u16; 2],
        dir: &Path,
        process: Supervised,
        password: Option<String>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            pg_port,
            api_port,
            dir: dir.to_path_buf(),
            process: Mutex::new(process),
            password,
        }
    }

    /// Patroni's name for the member: `m0`, `m1`, ...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// PostgreSQL's TCP port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.pg_port
    }

    /// The REST API's TCP port on `127.0.0.1`.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// The data directory (PGDATA) Patroni manages.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The log: Patroni's output and PostgreSQL's, across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.lock().log_path.clone()
    }

    /// The last `lines` lines of the log, the password redacted; empty if
    /// it cannot be read.
    pub fn log_tail(&self, lines: usize) -> String {
        const MAX_READ: u64 = 1 << 20;
        let mut bytes = Vec::new();
        let read = File::open(self.log_path()).and_then(|mut file| {
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(MAX_READ)))?;
            file.read_to_end(&mut bytes)
        });
        if let Err(e) = read {
            tracing::debug!(target: "pg_tempdb", error = %e, "could not read a Patroni log");
        }
        redact(
            &tail_lines(&String::from_utf8_lossy(&bytes), lines),
            self.password.as_deref(),
        )
    }

    /// `Some(how)` once the member's Patroni has exited.
    pub(super) fn exited(&self) -> Option<String> {
        self.lock().exited().map(|status| status.to_string())
    }

    pub(super) fn kill_postmaster(&self) -> Result<u32> {
        self.lock().kill_postmaster(&self.data_dir())
    }

    pub(super) fn stop(&mut self) {
        self.process
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .stop();
    }

    /// Runs `sql` (fed on standard input, so a password in it never reaches
    /// a command line) as the superuser over the private socket.
    pub(super) fn run_sql(
        &self,
        install: &Installation,
        what: &str,
        sql: String,
        secret: Option<&str>,
    ) -> Result<String> {
        let what = format!("{what} on {} (psql)", self.name);
        let mut cmd = install.command(&install.psql);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.join("socket"))
            .arg("-p")
            .arg(self.pg_port.to_string())
            .args(["-U", SUPERUSER, "-d", "postgres"])
            .env("PGCONNECT_TIMEOUT", "10");
        let done = exec::run(&mut cmd, &what, Some(sql.into_bytes()), SQL_TIMEOUT)?
            .success_or_error(&what, secret, || Some(self.log_tail(LOG_TAIL_LINES)))?;
        Ok(done.stdout.trim().to_owned())
    }

    fn lock(&self) -> MutexGuard<'_, Supervised> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error for a member whose Patroni is gone.
    pub(super) fn exited_error(&self, status: String) -> TempDbError {
        TempDbError::StartFailed {
            status: format!("Patroni of member {} exited ({status})", self.name),
            log_tail: Some(self.log_tail(LOG_TAIL_LINES)),
        }
    }
}

impl fmt::Debug for PatroniMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatroniMember")
            .field("name", &self.name)
            .field("port", &self.pg_port)
            .field("api_port", &self.api_port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
