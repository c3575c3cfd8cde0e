//! Shared by the service tests: a password-protected throwaway PostgreSQL,
//! the service binaries started as child processes, and bounded reads of
//! their output. Nothing here sleeps to wait: every wait is for a line, an
//! exit or a state, under a deadline.

#![allow(dead_code, unreachable_pub)] // each test binary uses a subset

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use pg_tempdb::TempDb;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// The password of every test database; it must never reach a log.
pub const PASSWORD: &str = "s3cr3t-mcp";
/// The bound on one line of output from a service.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// The bound on a service's exit after SIGTERM or stdin EOF.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A throwaway PostgreSQL with user `app` and [`PASSWORD`].
pub fn database() -> TempDb {
    TempDb::builder()
        .user("app")
        .password(PASSWORD)
        .start()
        .expect("start a throwaway PostgreSQL (are the server binaries installed?)")
}

/// A service binary started with exactly `vars` as its environment (plus
/// `PATH`), stdin/stdout/stderr piped, killed if the test panics.
pub fn spawn(binary: &str, vars: &[(&str, &str)]) -> Child {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"))
}

/// The next line of `lines`, or a panic naming `what` after [`READ_TIMEOUT`].
pub async fn next_line<R: AsyncRead + Unpin>(
    lines: &mut Lines<BufReader<R>>,
    what: &str,
) -> String {
    match tokio::time::timeout(READ_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => panic!("the service closed its stdout while we waited for {what}"),
        Ok(Err(e)) => panic!("reading {what}: {e}"),
        Err(_) => panic!("no {what} within {READ_TIMEOUT:?}"),
    }
}

/// Lines of a child's stdout.
pub fn stdout_lines(child: &mut Child) -> Lines<BufReader<ChildStdout>> {
    BufReader::new(child.stdout.take().expect("stdout is piped")).lines()
}

/// Collects a child's stderr in the background until it closes.
pub fn collect_stderr(child: &mut Child) -> tokio::task::JoinHandle<String> {
    let mut stderr: ChildStderr = child.stderr.take().expect("stderr is piped");
    tokio::spawn(async move {
        let mut text = String::new();
        // A read error ends the capture; what was read is kept.
        if let Err(e) = stderr.read_to_string(&mut text).await {
            text.push_str(&format!("\n<stderr read failed: {e}>"));
        }
        text
    })
}

/// Waits for the child to exit, bounded by [`EXIT_TIMEOUT`].
pub async fn exit_status(child: &mut Child, after: &str) -> ExitStatus {
    match tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => panic!("waiting for the service: {e}"),
        Err(_) => panic!("the service did not exit within {EXIT_TIMEOUT:?} after {after}"),
    }
}

/// Sends SIGTERM to the child this test started.
pub fn sigterm(child: &Child) {
    let pid = child.id().expect("the service is still running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// Stops `db` from inside the runtime (the control blocks briefly).
pub async fn stop(db: &std::sync::Arc<TempDb>) {
    let db = std::sync::Arc::clone(db);
    tokio::task::spawn_blocking(move || db.stop())
        .await
        .expect("stop task")
        .expect("stop PostgreSQL");
}

/// Asserts that `text` (a log) never contains the database password.
pub fn assert_no_password(text: &str, what: &str) {
    assert!(!text.is_empty(), "{what} is empty: nothing was logged");
    assert!(
        !text.contains(PASSWORD),
        "{what} contains the database password:\n{text}"
    );
}

/// The log file's contents (empty if it was never created).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
