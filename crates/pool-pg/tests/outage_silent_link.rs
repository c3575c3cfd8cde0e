//! A half-open network: the link to the server goes silent (no reset, no
//! segment delivered) while the pool holds a connection. A request on it
//! must fail in bounded time, through the TCP user timeout (pool-pg's
//! default or the URL's), and the pool must recover once the link is back.
//! Without a user timeout the request would wait for Linux's retransmission
//! limit, about 15 minutes: the test of the *default* is the one that fails
//! on a pool-pg that sets none.
//!
//! How the link goes silent: in a private network namespace, bringing `lo`
//! down after a TCP connection to 127.0.0.1 is established makes the
//! kernel drop every segment of it without a reset, and a socket with
//! `TCP_USER_TIMEOUT` then fails with `ETIMEDOUT`. The throwaway server runs
//! in the same namespace (its processes are our children) and is still
//! controlled through signals and its Unix socket, which `lo` does not
//! carry.
//!
//! Each scenario is two tests. The outer one checks that it can run (root,
//! `unshare` from util-linux, `ip` from iproute2, and the right to create a
//! network namespace; otherwise it prints `skipped: <why>` to stderr and
//! returns), re-runs this test binary under `unshare -n` for the inner one,
//! forwards the child's output (the measured times) and asserts that it
//! passed, having run exactly one test, within a bound. The inner one does
//! nothing, saying so, unless [`CHILD`] is set; and because it takes `lo`
//! down, it refuses to run in a namespace holding any other interface,
//! which the machine's own namespace always does.

mod common;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use common::{
    backend_pid, capture_logs, connect, start_db, url_for, url_with_app, wait_until, WAIT,
};
use pool_pg::defaults::DEFAULT_TCP_USER_TIMEOUT;
use pool_pg::PoolConfig;
use tokio::time::{timeout, Instant};

/// Set (to `1`) in the environment of the child that runs in the private
/// network namespace.
const CHILD: &str = "SILENT_LINK_TEST_CHILD";
/// The user timeout the URL sets in the first scenario. tokio-postgres
/// reads the URL's `tcp_user_timeout` in seconds (libpq: milliseconds).
const URL_TCP_USER_TIMEOUT: Duration = Duration::from_secs(2);
/// How late after the user timeout the failure may come: the kernel checks
/// the timeout when a retransmission is due, and the error then has to
/// travel through the connection task to the caller.
const SLACK: Duration = Duration::from_secs(5);
/// How long past the user timeout a query may hang before the test gives
/// up on it (so the test itself never hangs).
const HANG: Duration = Duration::from_secs(15);
/// The bound on one child run: server start, the scenario, the cleanup.
const CHILD_BOUND: Duration = Duration::from_secs(120);

#[test]
fn a_query_on_a_silent_link_fails_after_the_url_tcp_user_timeout() {
    run_in_private_network_namespace("in_namespace_a_query_fails_after_the_url_tcp_user_timeout");
}

#[test]
fn a_query_on_a_silent_link_fails_after_the_default_tcp_user_timeout() {
    run_in_private_network_namespace(
        "in_namespace_a_query_fails_after_the_default_tcp_user_timeout",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_namespace_a_query_fails_after_the_url_tcp_user_timeout() {
    if !is_the_namespace_child() {
        return;
    }
    let setting = format!("&tcp_user_timeout={}", URL_TCP_USER_TIMEOUT.as_secs());
    silent_link_scenario("silent-link-url", &setting, URL_TCP_USER_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_namespace_a_query_fails_after_the_default_tcp_user_timeout() {
    if !is_the_namespace_child() {
        return;
    }
    silent_link_scenario("silent-link-default", "", DEFAULT_TCP_USER_TIMEOUT).await;
}

/// Connects (URL query `extra` appended), silences the link under a
/// checked-out connection, and checks that a query fails after
/// `user_timeout` (not before, not much later) and that the pool then hands
/// out a fresh connection, never the broken one.
async fn silent_link_scenario(app: &str, extra: &str, user_timeout: Duration) {
    let logs = capture_logs();
    ip(&["link", "set", "lo", "up"]);
    let db = start_db();
    let url = url_with_app(&url_for(&db, None, db.dbname()), app) + extra;
    let config = PoolConfig::default()
        .min_size(1)
        .max_size(2)
        .acquire_timeout(Duration::from_secs(5))
        .create_timeout(Duration::from_secs(2));
    let pool = connect(&url, config).await;
    assert_eq!(
        pool.manager().pg_config().get_tcp_user_timeout(),
        Some(&user_timeout),
        "the setting under test is in effect"
    );
    let conn = timeout(WAIT, pool.acquire())
        .await
        .expect("no hang")
        .expect("a connection while the link is up");
    let pid = backend_pid(&conn).await;

    ip(&["link", "set", "lo", "down"]);
    let silenced_at = Instant::now();
    let outcome = timeout(user_timeout + HANG, conn.simple_query("SELECT 1")).await;
    let took = silenced_at.elapsed();
    let Ok(result) = outcome else {
        panic!(
            "the query on a silent link still hung after {took:?} (user timeout {user_timeout:?})"
        );
    };
    let error = result.expect_err("a query cannot succeed on a silent link");
    eprintln!(
        "silent link: the query failed after {took:?} (tcp_user_timeout {user_timeout:?}): {error}"
    );
    assert!(
        took >= user_timeout,
        "failed after {took:?}, before the user timeout {user_timeout:?}: the link was not silent"
    );
    assert!(
        took < user_timeout + SLACK,
        "failed after {took:?}, long after the user timeout {user_timeout:?}"
    );
    // The caller may hear "connection closed" before the connection's task
    // has logged why.
    wait_until("the connection's task logs its error", || {
        logs.text().contains("ended with an error")
    })
    .await;
    let log = logs.text();
    assert!(
        log.contains("timed out"),
        "the connection ended on the user timeout (ETIMEDOUT): {log}"
    );
    assert_eq!(pool.manager().connection_errors(), 1);

    drop(conn);
    let stats = pool.statistics();
    assert_eq!(
        (stats.closed_by_reason.broken, stats.idle_connections),
        (1, 0),
        "the broken connection is closed, not returned: {stats:?}"
    );

    ip(&["link", "set", "lo", "up"]);
    let conn = timeout(WAIT, pool.acquire())
        .await
        .expect("no hang")
        .expect("a fresh connection once the link is back");
    assert_ne!(backend_pid(&conn).await, pid, "a new backend");
    conn.simple_query("SELECT 1")
        .await
        .expect("a query on the fresh connection");
    drop(conn);
    pool.close();
}

/// Runs `inner` (a test of this binary) in a private network namespace,
/// forwarding its output; or says why it cannot and returns.
fn run_in_private_network_namespace(inner: &str) {
    if let Some(why) = why_no_namespace() {
        eprintln!("skipped: {why}");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new("unshare");
    command
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args(["--exact", inner, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    let (status, stdout, stderr) = run_bounded(command, CHILD_BOUND);
    eprintln!("---- {inner} (in a private network namespace) ----\n{stdout}{stderr}----");
    let status = status.unwrap_or_else(|| panic!("the child ran longer than {CHILD_BOUND:?}"));
    assert!(status.success(), "the child failed: {status}");
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child ran exactly {inner}: {stdout}"
    );
}

/// Why this machine cannot run the scenarios, if it cannot.
fn why_no_namespace() -> Option<String> {
    if !is_root() {
        return Some("needs root (a network namespace, and `ip link` inside it)".into());
    }
    for (tool, package) in [("unshare", "util-linux"), ("ip", "iproute2")] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if found.is_err() {
            return Some(format!("`{tool}` not found (install {package})"));
        }
    }
    let probe = Command::new("unshare")
        .args(["-n", "--", "ip", "link", "set", "lo", "up"])
        .output();
    match probe {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "cannot create a network namespace here: `unshare -n ip link set lo up` said {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

/// Whether the effective user is root, from `/proc/self/status`.
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// True in the child; false (saying so) in an ordinary run. Panics if the
/// child is not in a namespace of its own, where taking `lo` down would cut
/// the machine's loopback.
fn is_the_namespace_child() -> bool {
    if std::env::var_os(CHILD).is_none() {
        eprintln!(
            "nothing to do: this runs in a private network namespace, started by its outer test"
        );
        return false;
    }
    let interfaces =
        std::fs::read_to_string("/proc/self/net/dev").expect("read /proc/self/net/dev");
    let names: Vec<&str> = interfaces
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(
        names,
        ["lo"],
        "{CHILD} is set, but this network namespace has other interfaces: refusing to take lo down"
    );
    true
}

/// Runs `ip` with `args`, or fails the test.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `command` with its output captured, killing it after `bound`:
/// `(status, or None if killed; stdout; stderr)`.
fn run_bounded(mut command: Command, bound: Duration) -> (Option<ExitStatus>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = read_to_end_in_background(child.stdout.take());
    let stderr = read_to_end_in_background(child.stderr.take());
    let deadline = std::time::Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            // The kit's guardian stops the child's server when it dies.
            child.kill().expect("kill the child");
            child.wait().expect("reap the child");
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let text = |reader: thread::JoinHandle<String>| reader.join().unwrap_or_default();
    (status, text(stdout), text(stderr))
}

/// A thread that reads `pipe` to its end.
fn read_to_end_in_background(
    pipe: Option<impl Read + Send + 'static>,
) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error ends the capture; what was read is still shown.
            if let Err(e) = pipe.read_to_end(&mut bytes) {
                bytes.extend_from_slice(
                    format!("\n<reading the child's output failed: {e}>").as_bytes(),
                );
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
