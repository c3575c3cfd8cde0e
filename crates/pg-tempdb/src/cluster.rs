//! [`TempCluster`]: a primary and a streaming standby, for failover tests.
//!
//! Both nodes are ordinary [`TempDb`]s, each with its own directory, port
//! and log, started from the same builder (same user, password and
//! database). The standby is made the way an operator makes one:
//!
//! 1. the primary starts with `wal_level = replica` and WAL senders, and
//!    its `pg_hba.conf` gains `local replication all trust`, so the
//!    superuser may stream over the primary's private Unix socket (no
//!    password ever reaches a command line);
//! 2. the standby starts once (to get its directory and port), stops, and
//!    its data directory is replaced by `pg_basebackup -R` of the primary,
//!    run as the server user, which writes `standby.signal` and
//!    `primary_conninfo`;
//! 3. it starts again as a hot standby, and the cluster waits until the
//!    primary reports it `streaming`.
//!
//! Invariant: every wait is bounded, and dropping the cluster drops both
//! servers (each `TempDb` leaves nothing behind). The nodes keep their
//! names after a failover: [`standby`](TempCluster::standby) is the node
//! that *started* as the standby, also once it was promoted.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::builder::TempDbBuilder;
use crate::error::{Result, TempDbError};
use crate::exec::{self, Backoff};
use crate::server::{TempDb, HOST};
use crate::template::SUPERUSER;

/// Settings both nodes get: what the primary needs to feed a streaming
/// standby (PostgreSQL 10+ defaults already allow it; set anyway, so a
/// builder cannot drop them), and a prompt promotion.
const REPLICATION_SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "replica"),
    ("max_wal_senders", "4"),
    ("hot_standby", "on"),
    // A standby that lost its primary retries its WAL source this often,
    // and a promotion requested meanwhile may wait for the retry: with the
    // default (5 s), a promotion right after the primary stops took 5 s in
    // one run of three here.
    ("wal_retrieve_retry_interval", "100ms"),
];
/// Appended to the primary's `pg_hba.conf`: `all` does not match
/// replication connections, and a password-mode server has no such line.
const REPLICATION_HBA: &str =
    "\n# Added by pg-tempdb's TempCluster.\nlocal   replication   all   trust\n";
/// Bound for `pg_basebackup` (a fresh server holds ~30 MB).
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times `pg_basebackup` is tried: the first may race the
/// primary's reload of `pg_hba.conf`.
const BASEBACKUP_ATTEMPTS: u32 = 5;
/// Bound for the standby to report `streaming`, and for a promotion.
const ROLE_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for `pg_ctl promote` itself (it only signals; `-W` never waits).
const PG_CTL_TIMEOUT: Duration = Duration::from_secs(10);

/// A primary and a hot standby streaming from it, both throwaway.
///
/// ```no_run
/// # fn demo() -> Result<(), pg_tempdb::TempDbError> {
/// use pg_tempdb::{TempCluster, TempDb};
///
/// let cluster = TempCluster::start(TempDb::builder().user("app").password("secret"))?;
/// let url = cluster.url("read-write"); // postgres://app:secret@127.0.0.1:p1,127.0.0.1:p2/postgres?..
/// cluster.primary().stop()?;
/// let took = cluster.promote()?; // the standby is writable now
/// # let _ = (url, took);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TempCluster {
    primary: TempDb,
    standby: TempDb,
}

impl TempCluster {
    /// Starts the primary from `builder` (plus the replication settings),
    /// then a standby cloned from it with `pg_basebackup -R`, and waits
    /// until the standby streams. Blocking: about 1–2 s.
    pub fn start(builder: TempDbBuilder) -> Result<Self> {
        let mut primary_builder = builder.clone();
        for (name, value) in REPLICATION_SETTINGS {
            primary_builder = primary_builder.setting(*name, *value);
        }
        let primary = primary_builder.clone().start()?;
        allow_replication(&primary)?;
        let standby = primary_builder.start()?;
        standby.stop()?;
        clone_into(&primary, &standby)?;
        standby.start_again()?;
        let cluster = Self { primary, standby };
        cluster.wait_for_streaming()?;
        Ok(cluster)
    }

    /// The node that started as the primary.
    pub fn primary(&self) -> &TempDb {
        &self.primary
    }

    /// The node that started as the standby (the primary after
    /// [`promote`](Self::promote)).
    pub fn standby(&self) -> &TempDb {
        &self.standby
    }

    /// A multi-host URL naming both nodes, primary first:
    /// `postgres://user[:password]@127.0.0.1:p1,127.0.0.1:p2/db?target_session_attrs=..`.
    /// `target_session_attrs` is what tokio-postgres accepts: `any`,
    /// `read-write` or `read-only`.
    pub fn url(&self, target_session_attrs: &str) -> String {
        let single = self.primary.url();
        let first = format!("@{HOST}:{}/", self.primary.port());
        let both = format!(
            "@{HOST}:{},{HOST}:{}/",
            self.primary.port(),
            self.standby.port()
        );
        format!(
            "{}?target_session_attrs={target_session_attrs}",
            single.replacen(&first, &both, 1)
        )
    }

    /// Promotes the standby with `pg_ctl promote` and waits (bounded) until
    /// `pg_is_in_recovery()` is false on it. Returns how long that took.
    pub fn promote(&self) -> Result<Duration> {
        let started = Instant::now();
        {
            let _state = self.standby.lock_responsive("promote the standby")?;
            let install = &self.standby.template.install;
            let what = "pg_ctl promote";
            let mut cmd = install.command(&install.bindir.join("pg_ctl"));
            cmd.args(["promote", "-W", "-D"])
                .arg(&self.standby.data_dir);
            exec::run(&mut cmd, what, None, PG_CTL_TIMEOUT)?.success_or_error(
                what,
                None,
                || Some(self.standby.log_tail(20)),
            )?;
        }
        self.wait_until(&self.standby, "the promotion of the standby", |db| {
            Ok(db.query_scalar::<String>("SELECT pg_is_in_recovery()")? == "f")
        })?;
        Ok(started.elapsed())
    }

    /// Makes `node` refuse writes the way a demoted primary does:
    /// `ALTER SYSTEM SET default_transaction_read_only = on` and a reload.
    /// Returns once a new session sees it. Sessions already open see it
    /// from their next statement on.
    pub fn demote(&self, node: &TempDb) -> Result<()> {
        self.set_read_only(node, true)
    }

    /// Undoes [`demote`](Self::demote).
    pub fn undemote(&self, node: &TempDb) -> Result<()> {
        self.set_read_only(node, false)
    }

    fn set_read_only(&self, node: &TempDb, read_only: bool) -> Result<()> {
        let value = if read_only { "on" } else { "off" };
        // Two calls: ALTER SYSTEM may not run inside psql's implicit
        // transaction of a multi-statement string.
        node.execute(&format!(
            "ALTER SYSTEM SET default_transaction_read_only = {value}"
        ))?;
        node.execute("SELECT pg_reload_conf()")?;
        self.wait_until(node, "the reload of default_transaction_read_only", |db| {
            Ok(db.execute("SHOW default_transaction_read_only")? == value)
        })
    }

    fn wait_for_streaming(&self) -> Result<()> {
        self.wait_until(&self.primary, "the standby to stream", |db| {
            Ok(db.query_scalar::<u64>(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )? == 1)
        })
    }

    /// Polls `done` on `node` until it holds, for at most
    /// [`ROLE_CHANGE_TIMEOUT`].
    fn wait_until(
        &self,
        node: &TempDb,
        what: &str,
        mut done: impl FnMut(&TempDb) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + ROLE_CHANGE_TIMEOUT;
        let mut backoff = Backoff::new();
        loop {
            if done(node)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TempDbError::Timeout {
                    operation: format!("waiting for {what}"),
                    timeout: ROLE_CHANGE_TIMEOUT,
                    log_tail: Some(node.log_tail(20)),
                });
            }
            backoff.sleep_until_next(deadline);
        }
    }
}

/// Lets the superuser stream from `primary` over its Unix socket.
fn allow_replication(primary: &TempDb) -> Result<()> {
    let hba: PathBuf = primary.data_dir.join("pg_hba.conf");
    OpenOptions::new()
        .append(true)
        .open(&hba)
        .and_then(|mut file| file.write_all(REPLICATION_HBA.as_bytes()))
        .map_err(|e| TempDbError::io("adding a replication line to pg_hba.conf", e))?;
    primary.execute("SELECT pg_reload_conf()")?;
    Ok(())
}

/// Replaces `standby`'s (stopped) data directory with a base backup of
/// `primary`, configured to stream from it.
fn clone_into(primary: &TempDb, standby: &TempDb) -> Result<()> {
    std::fs::remove_dir_all(&standby.data_dir)
        .map_err(|e| TempDbError::io("removing the standby's data directory", e))?;
    let install = &primary.template.install;
    let what = "pg_basebackup -R";
    let deadline = Instant::now() + BASEBACKUP_TIMEOUT;
    let mut backoff = Backoff::new();
    for attempt in 1..=BASEBACKUP_ATTEMPTS {
        let mut cmd = install.command(&install.bindir.join("pg_basebackup"));
        cmd.arg("-D")
            .arg(&standby.data_dir)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-h"])
            .arg(&primary.socket_dir)
            .args(["-p", &primary.port().to_string(), "-U", SUPERUSER]);
        let left = deadline.saturating_duration_since(Instant::now());
        let done = exec::run(&mut cmd, what, None, left)?;
        match done.success_or_error(what, None, || Some(primary.log_tail(20))) {
            Ok(_) => return Ok(()),
            Err(error) if attempt < BASEBACKUP_ATTEMPTS && Instant::now() < deadline => {
                tracing::debug!(target: "pg_tempdb", %error, attempt, "pg_basebackup failed; retrying");
                // A failed run may leave a partial directory behind.
                if standby.data_dir.exists() {
                    std::fs::remove_dir_all(&standby.data_dir)
                        .map_err(|e| TempDbError::io("removing a partial base backup", e))?;
                }
                for _ in 0..6 {
                    backoff.sleep_until_next(deadline);
                }
            }
            Err(error) => return Err(error),
        }
    }
    Err(TempDbError::Timeout {
        operation: "pg_basebackup of the primary".into(),
        timeout: BASEBACKUP_TIMEOUT,
        log_tail: Some(primary.log_tail(20)),
    })
}
