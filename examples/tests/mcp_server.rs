//! The MCP server, as a client sees it: the `mcp_server` binary started
//! against a password-protected throwaway PostgreSQL, spoken to in
//! newline-delimited JSON-RPC 2.0 over its stdio. Every line it writes to
//! stdout must be a JSON-RPC message; every read is bounded; the log file
//! must never contain the password.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{
    assert_no_password, database, exit_status, next_line, read_log, sigterm, spawn, stdout_lines,
    stop,
};
use pg_tempdb::TempDb;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const BINARY: &str = env!("CARGO_BIN_EXE_mcp_server");

/// A minimal MCP client over the child's stdio.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Client {
    /// Starts the server against `db` and completes the MCP handshake.
    async fn start(db: &TempDb) -> Client {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("mcp.log");
        let url = db.url();
        let mut child = spawn(
            BINARY,
            &[
                ("DATABASE_URL", url.as_str()),
                (
                    "MCP_LOG_FILE",
                    log.to_str().expect("a UTF-8 temporary path"),
                ),
                ("POOL_MIN_SIZE", "1"),
                ("POOL_MAX_SIZE", "4"),
                ("POOL_ACQUIRE_TIMEOUT_MS", "2000"),
                ("POOL_CREATE_TIMEOUT_MS", "1000"),
            ],
        );
        let stdin = child.stdin.take();
        let stdout = stdout_lines(&mut child);
        let mut client = Client {
            child,
            stdin,
            stdout,
            next_id: 1,
            log,
            _dir: dir,
        };
        let init = client
            .request(
                "initialize",
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": { "name": "pool-test", "version": "1.0" }
                }),
            )
            .await;
        let result = &init["result"];
        assert_eq!(result["serverInfo"]["name"], "pgpool-mcp", "{init}");
        assert!(result["capabilities"]["resources"].is_object(), "{init}");
        assert!(result["capabilities"]["tools"].is_object(), "{init}");
        client.notify("notifications/initialized").await;
        client
    }

    async fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        let mut line = message.to_string();
        println!(">>> {line}"); // the transcript, shown when a test fails
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the server's stdin");
        stdin.flush().await.expect("flush the server's stdin");
    }

    async fn notify(&mut self, method: &str) {
        self.send(json!({ "jsonrpc": "2.0", "method": method }))
            .await;
    }

    /// Sends a request and returns its response (a `result` or an `error`),
    /// skipping server notifications; every line must be JSON-RPC 2.0.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        loop {
            let line = next_line(&mut self.stdout, &format!("the response to {method}")).await;
            println!("<<< {line}");
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"));
            assert_eq!(message["jsonrpc"], "2.0", "not JSON-RPC: {line}");
            if message["id"] == json!(id) {
                return message;
            }
            assert!(
                message.get("method").is_some(),
                "a response to another request: {line}"
            );
        }
    }

    async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await
    }

    async fn read_resource(&mut self, uri: &str) -> Value {
        let response = self.request("resources/read", json!({ "uri": uri })).await;
        let contents = &response["result"]["contents"][0];
        assert_eq!(contents["uri"], uri, "{response}");
        let text = contents["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{response}"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{uri} is not JSON ({e}): {text}"))
    }

    /// Closes stdin (the client disconnects) and returns the exit status.
    async fn disconnect(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let status = exit_status(&mut self.child, "stdin EOF").await;
        (status, read_log(&self.log))
    }
}

/// The `data` of a DATABASE_ERROR response, after checking its shape.
fn database_error(response: &Value) -> &Value {
    let error = &response["error"];
    assert_eq!(error["code"], -31001, "{response}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("DATABASE_ERROR (")),
        "{response}"
    );
    let data = &error["data"];
    assert_eq!(data["code"], "DATABASE_ERROR", "{response}");
    assert!(
        data["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{response}"
    );
    assert!(data["statistics"]["max_size"].is_u64(), "{response}");
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_resource_is_the_pools_health_check_and_sigterm_exits_cleanly() {
    let db = database();
    let mut client = Client::start(&db).await;

    let listed = client.request("resources/list", json!({})).await;
    let uris: Vec<&str> = listed["result"]["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "health://connection-pool",
            "stats://connection-pool",
            "metrics://connection-pool"
        ]
    );

    let health = client.read_resource("health://connection-pool").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["pool_state"], "HEALTHY", "{health}");
    assert_eq!(health["database"]["status"], "up", "{health}");
    assert_eq!(health["database"]["pool"]["max"], 4, "{health}");
    for field in ["timestamp", "uptime_seconds", "reasons"] {
        assert!(health.get(field).is_some(), "{field} missing: {health}");
    }

    let stats = client.read_resource("stats://connection-pool").await;
    assert_eq!(stats["max_size"], 4, "{stats}");
    assert!(
        stats["connections_created"].as_u64().unwrap() >= 1,
        "{stats}"
    );

    let metrics = client
        .request(
            "resources/read",
            json!({ "uri": "metrics://connection-pool" }),
        )
        .await;
    let text = metrics["result"]["contents"][0]["text"].as_str().unwrap();
    // No POOL_NAME: the pool is named `default`, in every series.
    assert!(
        text.contains("db_client_connection_max{db_client_connection_pool_name=\"default\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE db_client_connection_wait_time histogram"),
        "{text}"
    );

    let unknown = client
        .request("resources/read", json!({ "uri": "nope://x" }))
        .await;
    assert!(unknown["error"]["code"].as_i64().is_some(), "{unknown}");

    sigterm(&client.child);
    let status = exit_status(&mut client.child, "SIGTERM").await;
    assert!(status.success(), "exit after SIGTERM: {status}");
    let log = read_log(&client.log);
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("connection pool shut down"), "{log}");
    assert_no_password(&log, "the MCP log");
    // The pool's own events (JSON lines) name the pool.
    let events: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let pool_events: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("pool_core::"))
        })
        .collect();
    assert!(
        pool_events.iter().any(|e| e["target"] == "pool_core::init"),
        "{log}"
    );
    for event in pool_events {
        assert_eq!(event["pool"], "default", "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_tool_returns_rows_as_json_and_refuses_writes() {
    let db = database();
    let mut client = Client::start(&db).await;

    let tools = client.request("tools/list", json!({})).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["query", "pool_statistics"]);

    let one = client
        .call_tool("query", json!({ "sql": "SELECT 1 AS one" }))
        .await;
    let output = &one["result"]["structuredContent"];
    assert_eq!(output["rows"], json!([{ "one": 1 }]), "{one}");
    assert_eq!(
        output["columns"],
        json!([{ "name": "one", "type": "int4" }]),
        "{one}"
    );
    assert_eq!(output["truncated"], false, "{one}");
    assert_eq!(one["result"]["isError"], false, "{one}");

    let limited = client
        .call_tool(
            "query",
            json!({ "sql": "SELECT g FROM generate_series(1, 50) AS g", "max_rows": 3 }),
        )
        .await;
    let output = &limited["result"]["structuredContent"];
    assert_eq!(
        output["rows"],
        json!([{ "g": 1 }, { "g": 2 }, { "g": 3 }]),
        "{limited}"
    );
    assert_eq!(output["truncated"], true, "{limited}");

    let write = client
        .call_tool("query", json!({ "sql": "CREATE TABLE x()" }))
        .await;
    let data = database_error(&write);
    assert_eq!(data["kind"], "read_only", "{write}");
    assert_eq!(data["sqlstate"], "25006", "{write}");

    let slow = client
        .call_tool(
            "query",
            json!({ "sql": "SELECT pg_sleep(10)", "timeout_ms": 100 }),
        )
        .await;
    assert_eq!(database_error(&slow)["kind"], "statement_timeout", "{slow}");

    let commit = client.call_tool("query", json!({ "sql": "COMMIT" })).await;
    assert_eq!(commit["error"]["code"], -32602, "{commit}");
    let missing = client.call_tool("query", json!({ "max_rows": 5 })).await;
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
    let unknown = client
        .call_tool("query", json!({ "sql": "SELECT 1", "limit": 5 }))
        .await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let too_many = client
        .call_tool("query", json!({ "sql": "SELECT 1", "max_rows": 1001 }))
        .await;
    assert_eq!(too_many["error"]["code"], -32602, "{too_many}");

    // A connection returned right after an error can still have the
    // server's ReadyForQuery on the wire: the pool settles it in the
    // background before it is idle again. Ask until it is.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stats = loop {
        let stats = client.call_tool("pool_statistics", json!({})).await;
        let active = &stats["result"]["structuredContent"]["statistics"]["active_connections"];
        if *active == 0 || std::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let snapshot = &stats["result"]["structuredContent"];
    assert!(
        snapshot["statistics"]["total_acquisitions"]
            .as_u64()
            .unwrap()
            >= 4,
        "{stats}"
    );
    assert_eq!(snapshot["statistics"]["active_connections"], 0, "{stats}");
    assert_eq!(snapshot["health"]["status"], "healthy", "{stats}");

    let (status, log) = client.disconnect().await;
    assert!(status.success(), "exit after stdin EOF: {status}");
    assert!(log.contains("the client disconnected"), "{log}");
    assert_no_password(&log, "the MCP log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_a_database_error_and_stdin_eof_still_exits_cleanly() {
    let db = Arc::new(database());
    let mut client = Client::start(&db).await;
    let ok = client
        .call_tool("query", json!({ "sql": "SELECT 1 AS one" }))
        .await;
    assert_eq!(
        ok["result"]["structuredContent"]["rows"],
        json!([{ "one": 1 }]),
        "{ok}"
    );

    stop(&db).await;
    // The first call may meet the connection the server just closed
    // (connection_lost); the pool then enters RECOVERING and turns callers
    // away at once (unavailable), or times out connecting (timeout).
    let mut kinds = Vec::new();
    for _ in 0..5 {
        let failed = client
            .call_tool("query", json!({ "sql": "SELECT 1" }))
            .await;
        let data = database_error(&failed);
        let kind = data["kind"].as_str().unwrap().to_owned();
        assert!(
            ["unavailable", "timeout", "connection_lost"].contains(&kind.as_str()),
            "{failed}"
        );
        assert_eq!(data["retryable"], true, "{failed}");
        kinds.push(kind);
        if kinds.last().is_some_and(|k| k != "connection_lost") {
            break;
        }
    }
    assert!(
        kinds.iter().any(|k| k == "unavailable" || k == "timeout"),
        "the pool never reported the outage: {kinds:?}"
    );
    let health = client.read_resource("health://connection-pool").await;
    assert_eq!(health["status"], "unhealthy", "{health}");

    let (status, log) = client.disconnect().await;
    assert!(
        status.success(),
        "exit after stdin EOF during an outage: {status}"
    );
    assert!(log.contains("DATABASE_ERROR"), "{log}");
    assert_no_password(&log, "the MCP log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_fails_fast_with_the_variable_named_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mcp.log");
    let mut child = spawn(
        BINARY,
        &[
            ("DATABASE_URL", "postgres://app:s3cr3t-mcp@127.0.0.1:1/app"),
            ("MCP_LOG_FILE", log.to_str().unwrap()),
            ("POOL_MAX_SIZE", "ten"),
        ],
    );
    let stderr = common::collect_stderr(&mut child);
    let mut stdout = stdout_lines(&mut child);
    let status = exit_status(&mut child, "a bad configuration").await;
    assert_eq!(status.code(), Some(2), "{status}");
    let stderr = stderr.await.unwrap();
    assert!(stderr.contains("POOL_MAX_SIZE (\"ten\")"), "{stderr}");
    assert!(stderr.contains("Suggestion"), "{stderr}");
    assert!(!stderr.contains(common::PASSWORD), "{stderr}");
    let nothing = tokio::time::timeout(common::READ_TIMEOUT, stdout.next_line()).await;
    assert!(
        matches!(nothing, Ok(Ok(None))),
        "stdout must stay empty: {nothing:?}"
    );
    assert_no_password(&read_log(&log), "the MCP log");
}
