//! Running helper commands under a deadline, and polling without spinning.
//!
//! Invariant: nothing in this crate waits on another process without a
//! deadline. [`run`] kills its child when the deadline passes; [`wait_exit`]
//! gives up and reports the still-running child to its caller, which decides
//! whether to escalate. Both poll with [`Backoff`], which starts at 1 ms (most
//! commands finish in a few milliseconds) and backs off to 20 ms, so a wait
//! costs little CPU and adds little latency.
//!
//! Only our own children are waited for or signalled, and only before they are
//! reaped, so a pid can never have been recycled under us.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::error::{redact, tail_lines, Result, TempDbError};

/// How many lines of a failed command's standard error an error keeps.
const STDERR_TAIL_LINES: usize = 20;

/// A sleep schedule for bounded polling loops: 1 ms, doubling up to 20 ms.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(20);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// Sleeps for the next step, never past `deadline`.
    pub(crate) fn sleep_until_next(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        thread::sleep(self.next.min(left));
        self.next = (self.next * 2).min(Self::MAX);
    }
}

/// A finished command: exit status and captured output.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    /// Turns an unsuccessful exit into [`TempDbError::CommandFailed`].
    ///
    /// `secret` is redacted from the captured standard error; `log_tail` is
    /// only called on failure (it reads the server log).
    pub(crate) fn success_or_error(
        self,
        command: &str,
        secret: Option<&str>,
        log_tail: impl FnOnce() -> Option<String>,
    ) -> Result<Self> {
        if self.status.success() {
            return Ok(self);
        }
        Err(TempDbError::CommandFailed {
            command: command.to_owned(),
            status: self.status.to_string(),
            stderr: redact(&tail_lines(&self.stderr, STDERR_TAIL_LINES), secret),
            log_tail: log_tail(),
        })
    }
}

/// Runs `cmd` to completion, feeding it `stdin` (if any) and capturing its
/// output; kills it if it is still running after `timeout`.
///
/// `what` names the command in errors and must not contain secrets.
pub(crate) fn run(
    cmd: &mut Command,
    what: &str,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Finished> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| TempDbError::io(format!("starting `{what}`"), e))?;

    // Pipes are drained (and fed) on their own threads so a chatty child can
    // never block on a full pipe while we poll for its exit.
    let writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => Some(thread::spawn(move || pipe.write_all(&input))),
        _ => None,
    };
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);

    let deadline = Instant::now() + timeout;
    let status = match wait_exit(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_and_reap(&mut child, what);
            return Err(TempDbError::Timeout {
                operation: format!("`{what}`"),
                timeout,
                log_tail: None,
            });
        }
        Err(e) => {
            kill_and_reap(&mut child, what);
            return Err(TempDbError::io(format!("waiting for `{what}`"), e));
        }
    };

    let finished = Finished {
        status,
        stdout: stdout.map(join_output).unwrap_or_default(),
        stderr: stderr.map(join_output).unwrap_or_default(),
    };
    if let Some(writer) = writer {
        match writer.join() {
            Ok(Ok(())) => {}
            // A child that exits without reading all its input has already
            // explained why on stderr; only a successful exit makes a failed
            // write worth reporting.
            Ok(Err(e)) if finished.status.success() => {
                return Err(TempDbError::io(format!("writing to `{what}`"), e));
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
    Ok(finished)
}

/// Polls our own child until it exits or `deadline` passes (`Ok(None)`).
pub(crate) fn wait_exit(
    child: &mut Child,
    deadline: Instant,
) -> std::io::Result<Option<ExitStatus>> {
    let mut backoff = Backoff::new();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        backoff.sleep_until_next(deadline);
    }
}

/// Starts a guardian: `sh -c script name args...` with a piped stdin, so
/// the script's `read` returns (and it cleans up) when this process dies
/// without closing the pipe itself. The caller keeps the `Child`.
pub(crate) fn spawn_guardian(
    script: &str,
    name: &str,
    args: &[&std::ffi::OsStr],
) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(name)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// A port that was free a moment ago (the kernel's pick for port 0).
pub(crate) fn free_port() -> Result<u16> {
    std::net::TcpListener::bind((crate::server::HOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| TempDbError::io("finding a free TCP port", e))
}

/// Sends `signal` to our own, not yet reaped, child.
pub(crate) fn signal(child: &Child, signal: Signal) -> std::io::Result<()> {
    kill_process(Pid::from_child(child), signal).map_err(std::io::Error::from)
}

/// SIGKILLs our own child and reaps it; failures are logged, not returned,
/// because every caller is already on an error or cleanup path.
pub(crate) fn kill_and_reap(child: &mut Child, what: &str) {
    if let Err(e) = child.kill() {
        tracing::warn!(target: "pg_tempdb", command = what, error = %e, "could not kill child process");
    }
    if let Err(e) = child.wait() {
        tracing::warn!(target: "pg_tempdb", command = what, error = %e, "could not reap child process");
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error only truncates diagnostics; what was read is kept.
        if let Err(e) = pipe.read_to_end(&mut bytes) {
            tracing::debug!(target: "pg_tempdb", error = %e, "reading a child's output failed");
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_output(handle: thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

/// The pids whose parent is `parent` right now (from `/proc`). Empty where
/// `/proc` cannot be read.
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

/// The parent pid of `pid`, from `/proc/<pid>/stat` (the field after the
/// command name, which may itself contain spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Whether process `pid` still exists (a zombie counts as gone: it runs
/// nothing and holds no shared memory).
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive, or `deadline`; true if all are gone.
pub(crate) fn wait_gone(pids: &[u32], deadline: Instant) -> bool {
    let mut backoff = Backoff::new();
    loop {
        if !pids.iter().any(|pid| is_alive(*pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        backoff.sleep_until_next(deadline);
    }
}

/// SIGKILLs each of `pids` that still runs (processes of a server this kit
/// started); failures are logged.
pub(crate) fn kill_pids(pids: &[u32]) {
    for pid in pids.iter().copied().filter(|pid| is_alive(*pid)) {
        let Some(target) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            continue;
        };
        if let Err(e) = kill_process(target, Signal::KILL) {
            tracing::warn!(target: "pg_tempdb", pid, error = %e, "could not kill a server process");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo oops >&2; exit 3"]);
        let done = run(
            &mut cmd,
            "sh",
            Some(b"hello".to_vec()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.stdout, "hello");
        assert_eq!(done.stderr.trim(), "oops");
        assert_eq!(done.status.code(), Some(3));
        let err = done.success_or_error("sh", None, || None).unwrap_err();
        assert!(err.to_string().contains("oops"), "{err}");
    }

    #[test]
    fn run_kills_a_command_that_outlives_its_timeout() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let started = Instant::now();
        let err = run(&mut cmd, "sleep 30", None, Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
