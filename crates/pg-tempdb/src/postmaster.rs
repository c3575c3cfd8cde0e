//! One run of the postmaster: spawn it, wait until it is ready, signal it,
//! shut it down.
//!
//! The postmaster is our direct child, spawned without `pg_ctl`. So we hold
//! its exact pid; its pid cannot be recycled while we hold the unreaped
//! [`Child`], which makes every signal we send safe; and we reap it ourselves,
//! leaving no zombie on machines whose init does not reap orphans. It shares
//! our process group, so a Ctrl-C of the test run reaches it too.
//!
//! Readiness is read from `postmaster.pid`, which PostgreSQL 10 and later
//! rewrite with the status `ready` once they accept connections; the file must
//! name our child's pid, so a stale file left by a killed run never counts.
//!
//! Each run is watched by a *guardian*: a tiny `sh` that blocks reading a pipe
//! whose only writer is this process. If this process dies without running
//! `Drop` (killed by a harness timeout, `std::process::exit`, a `TempDb` kept
//! in a `static`), the read returns end-of-file and the guardian shuts the
//! postmaster down (SIGQUIT, then SIGKILL after 5 s) and deletes the server's
//! directory. Every orderly stop disarms (kills and reaps) the guardian
//! *before* stopping the postmaster, so the guardian never signals a pid
//! after we reaped it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::binaries::Installation;
use crate::error::{tail_lines, Result, TempDbError, LOG_TAIL_LINES};
use crate::exec::{self, Backoff};

/// Bound for the server to become ready after it is spawned.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the guardian runs; `$1` is the postmaster pid, `$2` the directory.
const GUARDIAN_SCRIPT: &str = r#"trap '' INT HUP QUIT
read -r _ignored
kill -CONT "$1" 2>/dev/null
kill -QUIT "$1" 2>/dev/null
i=0
while [ "$i" -lt 100 ] && kill -0 "$1" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
kill -KILL "$1" 2>/dev/null
rm -rf -- "$2""#;

/// How PostgreSQL is asked to shut down.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shutdown {
    /// SIGINT: roll back open transactions, disconnect clients, checkpoint.
    Fast,
    /// SIGQUIT: exit at once; the next start runs crash recovery.
    Immediate,
}

impl Shutdown {
    fn signal(self) -> Signal {
        match self {
            Self::Fast => Signal::INT,
            Self::Immediate => Signal::QUIT,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Fast => "fast shutdown",
            Self::Immediate => "immediate shutdown",
        }
    }
}

/// Everything needed to spawn a postmaster for one server directory.
pub(crate) struct Launch<'a> {
    pub(crate) install: &'a Installation,
    /// The server's own directory; the guardian deletes it.
    pub(crate) root: &'a Path,
    pub(crate) data_dir: &'a Path,
    pub(crate) socket_dir: &'a Path,
    pub(crate) log_path: &'a Path,
    pub(crate) port: u16,
    pub(crate) settings: &'a [(String, String)],
}

/// Why a spawn did not produce a ready server.
pub(crate) struct LaunchFailure {
    pub(crate) error: TempDbError,
    /// The server could not bind its TCP port: retrying on another may work.
    pub(crate) port_taken: bool,
}

/// A running (or paused) postmaster that we spawned and have not reaped.
#[derive(Debug)]
pub(crate) struct Postmaster {
    child: Child,
    guardian: Option<Guardian>,
    /// The server directory the guardian deletes.
    root: PathBuf,
    paused: bool,
}

impl Postmaster {
    /// Spawns the server and waits (bounded) until it accepts connections.
    pub(crate) fn launch(launch: &Launch<'_>) -> Result<Self, LaunchFailure> {
        let other = |error| LaunchFailure {
            error,
            port_taken: false,
        };
        let log_start = fs::metadata(launch.log_path).map_or(0, |m| m.len());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.log_path)
            .map_err(|e| other(TempDbError::io("opening the server log", e)))?;
        let log_err = log
            .try_clone()
            .map_err(|e| other(TempDbError::io("opening the server log", e)))?;

        let mut cmd = launch.install.command(&launch.install.postgres);
        cmd.arg("-D").arg(launch.data_dir);
        for (name, value) in launch.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.arg("-c").arg(format!("port={}", launch.port));
        // A quoted list entry, so a comma or space in the path is literal.
        let mut sockets = std::ffi::OsString::from("unix_socket_directories=\"");
        sockets.push(launch.socket_dir.as_os_str());
        sockets.push("\"");
        cmd.arg("-c").arg(sockets);
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = cmd
            .spawn()
            .map_err(|e| other(TempDbError::io("starting the postgres server process", e)))?;
        let mut postmaster = Self {
            guardian: Guardian::arm(child.id(), launch.root),
            child,
            root: launch.root.to_path_buf(),
            paused: false,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        let mut backoff = Backoff::new();
        loop {
            match postmaster.child.try_wait() {
                Ok(Some(status)) => {
                    postmaster.disarm_guardian();
                    let new_log = read_from(launch.log_path, log_start);
                    return Err(LaunchFailure {
                        port_taken: new_log.contains("Address already in use"),
                        error: TempDbError::StartFailed {
                            status: status.to_string(),
                            log_tail: Some(tail_lines(&new_log, LOG_TAIL_LINES)),
                        },
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    postmaster.kill_now();
                    return Err(other(TempDbError::io("waiting for the server to start", e)));
                }
            }
            if is_ready(launch.data_dir, postmaster.child.id()) {
                return Ok(postmaster);
            }
            if Instant::now() >= deadline {
                postmaster.kill_now();
                return Err(other(TempDbError::Timeout {
                    operation: "server startup".into(),
                    timeout: START_TIMEOUT,
                    log_tail: Some(tail_lines(
                        &read_from(launch.log_path, log_start),
                        LOG_TAIL_LINES,
                    )),
                }));
            }
            backoff.sleep_until_next(deadline);
        }
    }

    /// The postmaster's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// `Some(status)` if the postmaster has exited (it is reaped then).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGSTOP: the postmaster stops accepting (new connections hang in the
    /// listen queue); existing backends keep running.
    pub(crate) fn pause(&mut self) -> Result<()> {
        exec::signal(&self.child, Signal::STOP)
            .map_err(|e| TempDbError::io("sending SIGSTOP to the postmaster", e))?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT: undoes [`pause`](Self::pause).
    pub(crate) fn resume(&mut self) -> Result<()> {
        exec::signal(&self.child, Signal::CONT)
            .map_err(|e| TempDbError::io("sending SIGCONT to the postmaster", e))?;
        self.paused = false;
        Ok(())
    }

    /// Asks for `mode` and waits up to `timeout` for the postmaster to exit.
    ///
    /// On timeout the server is still running (and guarded again); the error
    /// says so and the caller keeps this value.
    pub(crate) fn shutdown(&mut self, mode: Shutdown, timeout: Duration) -> Result<ExitStatus> {
        if self.paused {
            self.resume()?;
        }
        self.disarm_guardian();
        // ESRCH means it already exited; the wait below reaps it.
        if let Err(e) = exec::signal(&self.child, mode.signal()) {
            tracing::debug!(target: "pg_tempdb", error = %e, "signalling the postmaster failed");
        }
        let deadline = Instant::now() + timeout;
        match exec::wait_exit(&mut self.child, deadline) {
            Ok(Some(status)) => Ok(status),
            Ok(None) => {
                self.guardian = Guardian::arm(self.pid(), &self.root);
                Err(TempDbError::Timeout {
                    operation: format!("{} of the server", mode.describe()),
                    timeout,
                    log_tail: None,
                })
            }
            Err(e) => Err(TempDbError::io("waiting for the server to stop", e)),
        }
    }

    /// A crash, as `kill -9` of the postmaster would be: SIGKILL, no
    /// shutdown, no checkpoint. Its children (backends, checkpointer,
    /// writers) notice the postmaster's death and exit on their own,
    /// closing their clients' connections; this waits up to `timeout` for
    /// all of them to be gone, so that a new postmaster can start on the
    /// same data directory (it runs crash recovery), and SIGKILLs any left
    /// after that.
    pub(crate) fn crash(&mut self, timeout: Duration) -> Result<()> {
        if self.paused {
            self.resume()?;
        }
        let children = exec::children_of(self.pid());
        self.disarm_guardian();
        exec::kill_and_reap(&mut self.child, "postgres");
        let deadline = Instant::now() + timeout;
        if !exec::wait_gone(&children, deadline) {
            tracing::warn!(target: "pg_tempdb", left = ?children,
                "server processes outlived their postmaster; killing them");
            exec::kill_pids(&children);
            if !exec::wait_gone(&children, Instant::now() + timeout) {
                return Err(TempDbError::Timeout {
                    operation: "the exit of the killed server's processes".to_owned(),
                    timeout,
                    log_tail: None,
                });
            }
        }
        Ok(())
    }

    /// Stops the server no matter what, for `Drop`: resume, immediate
    /// shutdown for up to `timeout`, then SIGKILL. Never fails; logs.
    pub(crate) fn stop_for_drop(&mut self, timeout: Duration) {
        match self.shutdown(Shutdown::Immediate, timeout) {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "pg_tempdb", pid = self.pid(), error = %e,
                    "the server did not stop in time; killing it");
                self.kill_now();
            }
        }
    }

    fn kill_now(&mut self) {
        self.disarm_guardian();
        exec::kill_and_reap(&mut self.child, "postgres");
    }

    fn disarm_guardian(&mut self) {
        if let Some(mut guardian) = self.guardian.take() {
            exec::kill_and_reap(&mut guardian.child, "guardian");
        }
    }
}

impl Drop for Postmaster {
    /// Normally the server has been stopped and reaped by now; if not (an
    /// unexpected early drop), it is killed rather than leaked.
    fn drop(&mut self) {
        self.disarm_guardian();
        if self.exited().is_none() {
            exec::kill_and_reap(&mut self.child, "postgres");
        }
    }
}

/// The watcher that cleans up if this process dies without `Drop`.
#[derive(Debug)]
struct Guardian {
    child: Child,
}

impl Guardian {
    /// Starts a guardian for `pid`; failure only loses the crash cleanup, so
    /// it is logged and the server runs unguarded.
    fn arm(pid: u32, root: &Path) -> Option<Self> {
        let pid = pid.to_string();
        match exec::spawn_guardian(
            GUARDIAN_SCRIPT,
            "pg-tempdb-guardian",
            &[pid.as_ref(), root.as_os_str()],
        ) {
            Ok(child) => Some(Self { child }),
            Err(e) => {
                tracing::warn!(target: "pg_tempdb", error = %e,
                    "could not start the guardian; a crash of this process would leak the server");
                None
            }
        }
    }
}

/// True once `postmaster.pid` names `pid` and reports `ready`.
fn is_ready(data_dir: &Path, pid: u32) -> bool {
    let Ok(text) = fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines.first() == Some(&pid.to_string().as_str()) && lines.get(7) == Some(&"ready")
}

/// The server log from byte `start` on (lossy; empty if unreadable).
fn read_from(log_path: &Path, start: u64) -> String {
    let mut bytes = Vec::new();
    let read = File::open(log_path).and_then(|mut file| {
        file.seek(SeekFrom::Start(start))?;
        file.read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        tracing::debug!(target: "pg_tempdb", error = %e, "could not read the server log");
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
