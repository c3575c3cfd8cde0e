//! The HTTP service, as a load balancer and Prometheus see it: the
//! `http_server` binary on a free port against a password-protected
//! throwaway PostgreSQL, spoken to with plain HTTP/1.1 over `TcpStream`.
//! Every read is bounded; stderr (its JSON log) must never contain the
//! password. The pool is named by `POOL_NAME` ([`POOL`]): every metric and
//! every pool log event must carry that name.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{
    assert_no_password, collect_stderr, database, exit_status, next_line, sigterm, spawn,
    stdout_lines, stop, READ_TIMEOUT,
};
use examples::metrics::prometheus_name;
use pg_tempdb::TempDb;
use pool_pg::metrics::{
    CONNECTION_COUNT, CONNECTION_MAX, CREATED, CREATE_TIME, PENDING_REQUESTS, POOL_HEALTH,
    POOL_STATE, TIMEOUTS, USE_TIME, WAIT_TIME,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;

const BINARY: &str = env!("CARGO_BIN_EXE_http_server");
/// The pool's name (`POOL_NAME`): the `pool` label and log field.
const POOL: &str = "orders-api";
/// The `pool` label of every series.
const POOL_LABEL: &str = "db_client_connection_pool_name=\"orders-api\"";
/// Concurrent requests of the load phase.
const LOAD: usize = 200;

/// A response: status, headers (lower-cased names) and body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET` with `Connection: close`, read to the end under [`READ_TIMEOUT`].
async fn get(addr: SocketAddr, path: &str) -> Response {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(READ_TIMEOUT, exchange).await {
        Ok(Ok(raw)) => String::from_utf8(raw).expect("a UTF-8 response"),
        Ok(Err(e)) => panic!("GET {path}: {e}"),
        Err(_) => panic!("GET {path}: no response within {READ_TIMEOUT:?}"),
    };
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v == "chunked"),
        "this minimal client reads only sized bodies"
    );
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Starts the service against `db` on a free port; returns it with its
/// address (the first line of its stdout).
async fn start(db: &TempDb) -> (Child, SocketAddr) {
    let url = db.url();
    let mut child = spawn(
        BINARY,
        &[
            ("DATABASE_URL", url.as_str()),
            ("HTTP_ADDR", "127.0.0.1:0"),
            ("POOL_MIN_SIZE", "2"),
            ("POOL_MAX_SIZE", "4"),
            ("POOL_NAME", POOL),
            ("POOL_ACQUIRE_TIMEOUT_MS", "10000"),
            ("POOL_CREATE_TIMEOUT_MS", "1000"),
        ],
    );
    let mut stdout = stdout_lines(&mut child);
    let line = next_line(&mut stdout, "the listen address").await;
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    (child, addr)
}

/// The value of the one sample of `metric` whose labels contain all of
/// `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> f64 {
    let metric = prometheus_name(metric);
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} "))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .find_map(|line| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or_else(|| panic!("no sample {metric}{labels:?} in:\n{text}"))
}

/// The `q` quantile of histogram `metric` of our pool, interpolated within
/// its buckets as PromQL's `histogram_quantile` does.
fn quantile(text: &str, metric: &str, q: f64) -> f64 {
    let metric = prometheus_name(metric);
    let prefix = format!("{metric}_bucket{{{POOL_LABEL},le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(le, n)| {
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("a bound")
            };
            (le, n.parse().expect("a count"))
        })
        .collect();
    let total = buckets.last().expect("buckets").1;
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le == f64::INFINITY {
                return lower;
            }
            return lower + (le - lower) * (rank - below) / (count - below).max(1.0);
        }
        (lower, below) = (le, count);
    }
    lower
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_queries_and_metrics_are_served_and_sigterm_drains_gracefully() {
    let db = database();
    let (mut child, addr) = start(&db).await;
    let stderr = collect_stderr(&mut child);

    let health = get(addr, "/health").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json()["status"], "healthy", "{health:?}");
    assert_eq!(health.header("content-type"), Some("application/json"));

    let activity = get(addr, "/db/activity").await;
    assert_eq!(activity.status, 200, "{activity:?}");
    assert!(
        activity.json()["backend_pid"].as_i64().unwrap() > 0,
        "{activity:?}"
    );
    let wait_count = format!("{WAIT_TIME}_count");
    let before = get(addr, "/metrics").await;
    assert_eq!(before.status, 200, "{before:?}");
    // One request, one acquisition; /health and /metrics take no connection.
    assert_eq!(sample(&before.body, &wait_count, &[POOL_LABEL]), 1.0);

    let load: Vec<_> = (0..LOAD)
        .map(|_| tokio::spawn(async move { get(addr, "/db/activity").await.status }))
        .collect();
    for request in load {
        assert_eq!(request.await.unwrap(), 200);
    }

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = &metrics.body;
    println!("{text}"); // shown when a test fails

    // Every request acquired once and released before it answered.
    let acquisitions = sample(text, &wait_count, &[POOL_LABEL]);
    assert_eq!(acquisitions, (LOAD + 1) as f64, "{text}");
    for histogram in [WAIT_TIME, USE_TIME] {
        let inf = sample(
            text,
            &format!("{histogram}_bucket"),
            &[POOL_LABEL, "le=\"+Inf\""],
        );
        assert_eq!(inf, acquisitions, "{histogram}");
        let count = sample(text, &format!("{histogram}_count"), &[POOL_LABEL]);
        assert_eq!(count, acquisitions, "{histogram}");
    }
    assert!(sample(text, &format!("{USE_TIME}_sum"), &[POOL_LABEL]) > 0.0);
    // 200 requests on 4 connections: some callers waited (the fast path
    // records 0).
    assert!(sample(text, &format!("{WAIT_TIME}_sum"), &[POOL_LABEL]) > 0.0);
    let created = sample(text, CREATED, &[POOL_LABEL]);
    assert!(created >= 2.0, "{text}");
    assert_eq!(
        sample(text, &format!("{CREATE_TIME}_count"), &[POOL_LABEL]),
        created
    );
    assert!(sample(text, &format!("{CREATE_TIME}_sum"), &[POOL_LABEL]) > 0.0);
    let (p50, p99) = (
        quantile(text, WAIT_TIME, 0.5),
        quantile(text, WAIT_TIME, 0.99),
    );
    let use_p99 = quantile(text, USE_TIME, 0.99);
    println!(
        "after {LOAD} concurrent requests: wait p50 {:.3} ms, p99 {:.3} ms; use p99 {:.3} ms",
        p50 * 1e3,
        p99 * 1e3,
        use_p99 * 1e3
    );
    assert!(p50 <= p99 && p99 <= 10.0, "{p50} {p99}");
    assert_eq!(sample(text, TIMEOUTS, &[POOL_LABEL]), 0.0);
    assert_eq!(sample(text, CONNECTION_MAX, &[POOL_LABEL]), 4.0);
    assert_eq!(
        sample(
            text,
            CONNECTION_COUNT,
            &[POOL_LABEL, "db_client_connection_state=\"used\""]
        ),
        0.0
    );
    assert_eq!(sample(text, PENDING_REQUESTS, &[POOL_LABEL]), 0.0);
    assert_eq!(
        sample(text, POOL_HEALTH, &[POOL_LABEL, "status=\"healthy\""]),
        1.0
    );
    assert_eq!(
        sample(text, POOL_STATE, &[POOL_LABEL, "state=\"HEALTHY\""]),
        1.0
    );
    assert_eq!(
        sample(text, POOL_STATE, &[POOL_LABEL, "state=\"RECOVERING\""]),
        0.0
    );
    assert!(
        text.contains(&format!("# TYPE {} histogram", prometheus_name(WAIT_TIME))),
        "{text}"
    );
    // Every series of the pool carries its name, from POOL_NAME.
    for line in text
        .lines()
        .filter(|l| l.starts_with("db_client_connection") || l.starts_with("pool_core"))
    {
        assert!(line.contains(POOL_LABEL), "no {POOL_LABEL}: {line}");
    }

    sigterm(&child);
    let status = exit_status(&mut child, "SIGTERM").await;
    assert!(status.success(), "exit after SIGTERM: {status}");
    let log = stderr.await.unwrap();
    assert!(log.contains("draining HTTP connections"), "{log}");
    assert!(log.contains("connection pool shut down"), "{log}");
    assert_no_password(&log, "the HTTP server's log (stderr)");
    // The pool's own events name the pool.
    let init = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["target"] == "pool_core::init")
        .unwrap_or_else(|| panic!("no pool_core::init event in:\n{log}"));
    assert_eq!(init["pool"], POOL, "{init}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_answers_503_with_a_database_error_and_an_unhealthy_health() {
    let db = Arc::new(database());
    let (mut child, addr) = start(&db).await;
    let stderr = collect_stderr(&mut child);
    assert_eq!(get(addr, "/db/activity").await.status, 200);

    stop(&db).await;
    // The first request may meet the connection the server just closed;
    // then the pool reconnects in the background and turns callers away.
    let mut last = None;
    for _ in 0..5 {
        let failed = get(addr, "/db/activity").await;
        assert_eq!(failed.status, 503, "{failed:?}");
        assert_eq!(failed.header("retry-after"), Some("1"), "{failed:?}");
        let error = failed.json()["error"].clone();
        assert_eq!(error["code"], "DATABASE_ERROR", "{failed:?}");
        let kind = error["kind"].as_str().unwrap().to_owned();
        last = Some(kind.clone());
        if kind != "connection_lost" {
            break;
        }
    }
    let kind = last.unwrap();
    assert!(kind == "unavailable" || kind == "timeout", "{kind}");

    let health = get(addr, "/health").await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.json()["status"], "unhealthy", "{health:?}");

    sigterm(&child);
    let status = exit_status(&mut child, "SIGTERM during an outage").await;
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert_no_password(&stderr.await.unwrap(), "the HTTP server's log (stderr)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_listen_address_fails_fast_naming_http_addr() {
    let mut child = spawn(BINARY, &[("HTTP_ADDR", "localhost:http")]);
    let stderr = collect_stderr(&mut child);
    let status = exit_status(&mut child, "a bad HTTP_ADDR").await;
    assert_eq!(status.code(), Some(2), "{status}");
    let stderr = stderr.await.unwrap();
    assert!(
        stderr.contains("HTTP_ADDR (\"localhost:http\")"),
        "{stderr}"
    );
    assert!(stderr.contains("Suggestion"), "{stderr}");
}
