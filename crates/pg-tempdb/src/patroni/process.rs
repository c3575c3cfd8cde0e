//! One Patroni process (a member, or the Raft witness), run under a reaper
//! that we spawned and hold.
//!
//! Why a reaper: Patroni starts the postmaster through a helper that exits
//! at once, so the postmaster is orphaned and re-parented to the nearest
//! *child subreaper*, else to PID 1. Where PID 1 does not reap orphans (a
//! container's or a micro-VM's init; this machine's is one), a postmaster
//! killed with `kill -9` stays a zombie, and Patroni, which asks `psutil`
//! whether its postmaster runs, takes the zombie for a live server and never
//! fails over. So each Patroni runs under [`REAPER_SCRIPT`], a few lines of
//! Python that declare themselves a child subreaper (`prctl`), run Patroni
//! as their child, and reap every process that lands on them: the
//! postmaster, and the backends of a killed one.
//!
//! The reaper is our direct child, so its pid is safe to signal until we
//! reap it, and every pid we signal besides is checked to be the reaper's
//! child at that moment (so ours, never a recycled pid).
//!
//! Stopping is quick on purpose (a throwaway cluster keeps nothing): on
//! SIGTERM the reaper SIGKILLs Patroni, asks each `postgres` child for an
//! immediate shutdown (SIGQUIT) and SIGKILLs anything else, then exits once
//! every child is reaped. [`Supervised::stop`] waits for that, bounded, and
//! SIGKILLs what is left after the deadline. A guardian (see
//! `postmaster.rs`) sends the same SIGTERM if this process dies without
//! `Drop`, and deletes the cluster's directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::binaries::Installation;
use crate::error::{Result, TempDbError};
use crate::exec;

/// Bound for the reaper to exit after SIGTERM, before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for a killed postmaster to be gone (reaped).
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// `python3 reaper.py PROGRAM ARGS...`: runs PROGRAM as a child subreaper's
/// child (see the module docs).
pub(crate) const REAPER_SCRIPT: &str = r#""""pg-tempdb's reaper: runs a program as its child and reaps every
orphan that lands on it (see crates/pg-tempdb/src/patroni/process.rs)."""
import ctypes, os, signal, sys

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("pg-tempdb reaper: prctl(PR_SET_CHILD_SUBREAPER) failed, errno %d" % ctypes.get_errno())
child = os.fork()
if child == 0:
    os.execv(sys.argv[1], sys.argv[1:])

def children():
    mine = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == os.getpid() and fields[0] != "Z":
                    mine.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return mine

def stop(_signo, _frame):
    for pid in children():
        try:
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
            os.kill(pid, signal.SIGQUIT if pid != child and comm == "postgres" else signal.SIGKILL)
        except OSError:
            pass

for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signo, stop)
code = 1
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"#;

/// What the guardian runs; `$1` is the reaper's pid, `$2` the cluster's
/// directory.
const GUARDIAN_SCRIPT: &str = r#"trap '' INT HUP QUIT
read -r _ignored
kill -TERM "$1" 2>/dev/null
i=0
while [ "$i" -lt 100 ] && kill -0 "$1" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$1" 2>/dev/null
rm -rf -- "$2""#;

/// A program running under our reaper, with its output in `log_path`.
#[derive(Debug)]
pub(crate) struct Supervised {
    /// The reaper: our direct child.
    reaper: Child,
    guardian: Option<Child>,
    /// What runs (for logs and errors), e.g. `patroni m0`.
    what: String,
    pub(crate) log_path: PathBuf,
}

/// How to start one supervised program.
pub(crate) struct Spawn<'a> {
    pub(crate) install: &'a Installation,
    pub(crate) python: &'a Path,
    pub(crate) reaper_script: &'a Path,
    pub(crate) program: &'a Path,
    pub(crate) config: &'a Path,
    /// The program's own directory: its `HOME` and working directory.
    pub(crate) home: &'a Path,
    pub(crate) log_path: PathBuf,
    /// The directory the guardian deletes if we die without `Drop`.
    pub(crate) cluster_root: &'a Path,
    pub(crate) what: String,
}

impl Supervised {
    /// Starts `program config` under the reaper, as the server user.
    pub(crate) fn spawn(spawn: Spawn<'_>) -> Result<Self> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spawn.log_path)
            .map_err(|e| TempDbError::io(format!("opening {}", spawn.log_path.display()), e))?;
        spawn.install.chown(&spawn.log_path)?;
        let log_err = log
            .try_clone()
            .map_err(|e| TempDbError::io("opening the Patroni log", e))?;
        let mut cmd = spawn.install.command(spawn.python);
        cmd.arg(spawn.reaper_script)
            .arg(spawn.program)
            .arg(spawn.config)
            .current_dir(spawn.home)
            .env("HOME", spawn.home)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let reaper = cmd
            .spawn()
            .map_err(|e| TempDbError::io(format!("starting {}", spawn.what), e))?;
        let guardian = arm_guardian(reaper.id(), spawn.cluster_root);
        Ok(Self {
            reaper,
            guardian,
            what: spawn.what,
            log_path: spawn.log_path,
        })
    }

    /// `Some(status)` once the reaper has exited (Patroni ended or never
    /// started); the caller reports the log.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.reaper.try_wait().ok().flatten()
    }

    /// SIGKILLs the postmaster whose pid `data_dir/postmaster.pid` names,
    /// after checking it is this reaper's child, and waits until it is gone
    /// (reaped). Returns its pid.
    pub(crate) fn kill_postmaster(&self, data_dir: &Path) -> Result<u32> {
        let pid_file = data_dir.join("postmaster.pid");
        let text = fs::read_to_string(&pid_file)
            .map_err(|e| TempDbError::io(format!("reading {}", pid_file.display()), e))?;
        let pid: u32 = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| TempDbError::UnexpectedOutput {
                command: format!("the first line of {}", pid_file.display()),
                output: text.lines().next().unwrap_or_default().to_owned(),
            })?;
        if !exec::children_of(self.reaper.id()).contains(&pid) {
            return Err(TempDbError::UnexpectedOutput {
                command: format!("the postmaster of {} (pid {pid})", self.what),
                output: "not running under this member's reaper (stopped or restarting?)".into(),
            });
        }
        let target = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| TempDbError::UnexpectedOutput {
                command: pid_file.display().to_string(),
                output: pid.to_string(),
            })?;
        kill_process(target, Signal::KILL)
            .map_err(|e| TempDbError::io("sending SIGKILL to the postmaster", e.into()))?;
        if !exec::wait_gone(&[pid], Instant::now() + KILL_TIMEOUT) {
            return Err(TempDbError::Timeout {
                operation: format!("the exit of the killed postmaster {pid}"),
                timeout: KILL_TIMEOUT,
                log_tail: None,
            });
        }
        Ok(pid)
    }

    /// Stops everything under the reaper (see the module docs). Never
    /// fails; logs what it could not do.
    pub(crate) fn stop(&mut self) {
        if let Some(mut guardian) = self.guardian.take() {
            exec::kill_and_reap(&mut guardian, "patroni guardian");
        }
        if self.exited().is_some() {
            return;
        }
        if let Err(e) = exec::signal(&self.reaper, Signal::TERM) {
            tracing::debug!(target: "pg_tempdb", what = %self.what, error = %e, "signalling the reaper failed");
        }
        match exec::wait_exit(&mut self.reaper, Instant::now() + STOP_TIMEOUT) {
            Ok(Some(_)) => {}
            _ => {
                let left = exec::children_of(self.reaper.id());
                tracing::warn!(target: "pg_tempdb", what = %self.what, ?left,
                    "Patroni did not stop in time; killing it");
                exec::kill_pids(&left);
                exec::kill_and_reap(&mut self.reaper, &self.what);
            }
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A watcher that stops the reaper if this process dies without `Drop`;
/// failure only loses that cleanup, so it is logged.
fn arm_guardian(pid: u32, root: &Path) -> Option<Child> {
    let pid = pid.to_string();
    match exec::spawn_guardian(
        GUARDIAN_SCRIPT,
        "pg-tempdb-patroni-guardian",
        &[pid.as_ref(), root.as_os_str()],
    ) {
        Ok(child) => Some(child),
        Err(e) => {
            tracing::warn!(target: "pg_tempdb", error = %e,
                "could not start the Patroni guardian; a crash of this process would leak the cluster");
            None
        }
    }
}
