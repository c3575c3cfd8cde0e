//! [`PgBouncer`]: a throwaway PgBouncer in transaction pooling mode in
//! front of a [`TempDb`], with stop, start and restart.
//!
//! The binary is found like the PostgreSQL ones: `PGBOUNCER` (a path), the
//! first `pgbouncer` on `PATH`, then `/usr/sbin/pgbouncer` (Debian's
//! `pgbouncer` package). When it is missing, [`PgBouncer::start`] returns
//! `Ok(None)` so a test can say so and skip; nothing is installed here.
//!
//! Each instance has a private directory (config, auth file, log) owned by
//! the server user, listens on a free port on 127.0.0.1 only, and runs in
//! the foreground as our direct child, as the server user when we are root
//! (PgBouncer refuses to run as root). The auth file holds the database
//! user's password in plain text (PgBouncer needs it to log in to the
//! server with SCRAM); the directory is mode 0700 and deleted on drop.
//!
//! Invariant: like a `TempDb`, every wait is bounded and dropping a
//! `PgBouncer` leaves nothing behind: the process is stopped (SIGTERM, then
//! SIGKILL after a deadline) and reaped, the directory deleted. A guardian
//! process stops it if this process dies without running `Drop`.

use std::fmt;
use std::fs::{self, File};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tempfile::TempDir;

use crate::binaries::{is_executable, Installation};
use crate::error::{Result, TempDbError};
use crate::exec::{self, Backoff};
use crate::server::{TempDb, HOST};
use crate::template::Template;

/// Environment variable naming the `pgbouncer` binary.
const BINARY_ENV: &str = "PGBOUNCER";
/// Where Debian and Ubuntu install it.
const DEBIAN_BINARY: &str = "/usr/sbin/pgbouncer";
/// Bound for PgBouncer to accept TCP connections after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for PgBouncer to exit after SIGTERM, before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Server connections per (user, database) pair.
const DEFAULT_POOL_SIZE: u32 = 10;

/// What the guardian runs; `$1` is the PgBouncer pid.
const GUARDIAN_SCRIPT: &str = r#"trap '' INT HUP QUIT
read -r _ignored
kill -TERM "$1" 2>/dev/null
sleep 2
kill -KILL "$1" 2>/dev/null"#;

/// A PgBouncer in transaction mode in front of one `TempDb`.
///
/// ```no_run
/// # fn demo() -> Result<(), pg_tempdb::TempDbError> {
/// let db = pg_tempdb::TempDb::builder().user("app").password("secret").start()?;
/// let Some(bouncer) = pg_tempdb::PgBouncer::start(&db)? else {
///     println!("pgbouncer is not installed (apt-get install pgbouncer)");
///     return Ok(());
/// };
/// let url = bouncer.url(); // postgres://app:secret@127.0.0.1:<port>/postgres
/// bouncer.restart()?;
/// # let _ = url;
/// # Ok(()) }
/// ```
pub struct PgBouncer {
    binary: PathBuf,
    dir: TempDir,
    config_path: PathBuf,
    port: u16,
    /// The database's URL with the port replaced by ours.
    url: String,
    /// The PostgreSQL installation: who runs PgBouncer (its server user).
    template: Arc<Template>,
    state: Mutex<Option<Running>>,
    password: Option<String>,
}

struct Running {
    child: Child,
    guardian: Option<Child>,
}

impl PgBouncer {
    /// The `pgbouncer` binary, if installed (see the module docs).
    pub fn binary() -> Option<PathBuf> {
        let from_env = std::env::var_os(BINARY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let from_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join("pgbouncer"));
        from_env
            .into_iter()
            .chain(from_path)
            .chain([PathBuf::from(DEBIAN_BINARY)])
            .find(|path| is_executable(path))
    }

    /// Starts PgBouncer in transaction mode in front of `db`, for `db`'s
    /// user and database, and waits (bounded) until it accepts
    /// connections. `Ok(None)` when the binary is not installed.
    pub fn start(db: &TempDb) -> Result<Option<Self>> {
        let Some(binary) = Self::binary() else {
            return Ok(None);
        };
        let template = Arc::clone(&db.template);
        let install = &template.install;
        let dir = tempfile::Builder::new()
            .prefix("pg-tempdb-pgbouncer-")
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| TempDbError::io("creating the PgBouncer directory", e))?;
        install.chown(dir.path())?;
        let port = exec::free_port()?;
        let config_path = dir.path().join("pgbouncer.ini");
        write_owned(install, &config_path, &config(db, dir.path(), port))?;
        write_owned(
            install,
            &dir.path().join("userlist.txt"),
            &format!(
                "{} {}\n",
                quote(db.user()),
                quote(db.password().unwrap_or(""))
            ),
        )?;
        let bouncer = Self {
            binary,
            url: db.url_at(port),
            config_path,
            port,
            template,
            state: Mutex::new(None),
            password: db.password().map(str::to_owned),
            dir,
        };
        bouncer.start_again()?;
        Ok(Some(bouncer))
    }

    /// The URL clients use: the database's, with PgBouncer's port.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The TCP port PgBouncer listens on; kept across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PgBouncer's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }

    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        let mut state = self.lock();
        if let Some(running) = state.as_mut() {
            if running.child.try_wait().ok().flatten().is_some() {
                disarm(running);
                *state = None;
            }
        }
        state.is_some()
    }

    /// Stops PgBouncer (SIGTERM: every client and server connection is
    /// closed at once), waiting up to 10 s before SIGKILL. A no-op when
    /// stopped.
    pub fn stop(&self) -> Result<()> {
        let mut state = self.lock();
        if let Some(mut running) = state.take() {
            stop(&mut running);
        }
        Ok(())
    }

    /// Starts a stopped PgBouncer again on the same port and waits until it
    /// accepts connections. A no-op when it runs.
    pub fn start_again(&self) -> Result<()> {
        let mut state = self.lock();
        if state.is_some() {
            return Ok(());
        }
        let mut cmd = self.template.install.command(&self.binary);
        cmd.arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| TempDbError::io("starting pgbouncer", e))?;
        let mut running = Running {
            guardian: arm_guardian(child.id()),
            child,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut backoff = Backoff::new();
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                disarm(&mut running);
                return Err(TempDbError::StartFailed {
                    status: format!("pgbouncer: {status}"),
                    log_tail: Some(self.log_tail()),
                });
            }
            if TcpStream::connect((HOST, self.port)).is_ok() {
                *state = Some(running);
                return Ok(());
            }
            if Instant::now() >= deadline {
                stop(&mut running);
                return Err(TempDbError::Timeout {
                    operation: "pgbouncer startup".into(),
                    timeout: START_TIMEOUT,
                    log_tail: Some(self.log_tail()),
                });
            }
            backoff.sleep_until_next(deadline);
        }
    }

    /// Stops and starts again on the same port.
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        crate::error::redact(
            &crate::error::tail_lines(&text, 20),
            self.password.as_deref(),
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(mut running) = self.lock().take() {
            stop(&mut running);
        }
    }
}

impl fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBouncer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// The configuration: transaction pooling, 127.0.0.1 only, no Unix socket.
fn config(db: &TempDb, dir: &Path, port: u16) -> String {
    let auth_type = if db.password().is_some() {
        "scram-sha-256"
    } else {
        "trust"
    };
    format!(
        "[databases]\n\
         {dbname} = host={HOST} port={db_port} dbname={dbname}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = {HOST}\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = {auth_type}\n\
         auth_file = {dir}/userlist.txt\n\
         logfile = {dir}/pgbouncer.log\n\
         pool_mode = transaction\n\
         default_pool_size = {DEFAULT_POOL_SIZE}\n\
         max_client_conn = 500\n\
         server_login_retry = 1\n\
         ignore_startup_parameters = extra_float_digits,options\n",
        dbname = db.dbname(),
        db_port = db.port(),
        dir = dir.display(),
    )
}

/// `"text"` for the auth file, with `"` doubled.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn write_owned(install: &Installation, path: &Path, text: &str) -> Result<()> {
    let what = format!("writing {}", path.display());
    File::create(path)
        .and_then(|file| {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            fs::write(path, text)
        })
        .map_err(|e| TempDbError::io(what, e))?;
    install.chown(path)
}

/// Stops our own, unreaped child: SIGTERM, then SIGKILL after the deadline.
fn stop(running: &mut Running) {
    disarm(running);
    if let Err(e) = exec::signal(&running.child, Signal::TERM) {
        tracing::debug!(target: "pg_tempdb", error = %e, "signalling pgbouncer failed");
    }
    match exec::wait_exit(&mut running.child, Instant::now() + STOP_TIMEOUT) {
        Ok(Some(_)) => {}
        _ => exec::kill_and_reap(&mut running.child, "pgbouncer"),
    }
}

fn disarm(running: &mut Running) {
    if let Some(mut guardian) = running.guardian.take() {
        exec::kill_and_reap(&mut guardian, "pgbouncer guardian");
    }
}

/// A watcher that stops PgBouncer if this process dies without `Drop`
/// (its stdin pipe closes); failure only loses that cleanup, so it is
/// logged.
fn arm_guardian(pid: u32) -> Option<Child> {
    let pid = pid.to_string();
    match exec::spawn_guardian(
        GUARDIAN_SCRIPT,
        "pg-tempdb-pgbouncer-guardian",
        &[pid.as_ref()],
    ) {
        Ok(child) => Some(child),
        Err(e) => {
            tracing::warn!(target: "pg_tempdb", error = %e,
                "could not start the pgbouncer guardian; a crash would leak the process");
            None
        }
    }
}
