//! An MCP server over stdio that exposes the connection pool to an AI
//! client: its health, its statistics, and read-only SQL.
//!
//! ```text
//! cargo run -p examples --example mcp_server     # or the `mcp_server` binary
//! ```
//!
//! # Life cycle
//!
//! 1. **Logs first.** JSON lines go to `MCP_LOG_FILE` (default
//!    [`DEFAULT_LOG_FILE`]; `-` for stderr). Stdout carries the protocol and
//!    nothing else: one JSON-RPC 2.0 message per line.
//! 2. **Metrics recorder, then the pool.** The Prometheus recorder
//!    ([`Exporter::install`]) comes first, so the pool's counters count
//!    from its build. Then the pool from the environment
//!    ([`Database::start`]): `DATABASE_URL` and
//!    `POOL_*`, or a throwaway PostgreSQL when `DATABASE_URL` is unset. A bad
//!    configuration fails fast: the actionable message on stderr, exit code
//!    2 (1 if the database cannot be reached).
//! 3. **Serve** until the client disconnects (stdin reaches EOF), or SIGTERM
//!    or ctrl-c arrives.
//! 4. **Shut down gracefully**: `pool.shutdown(30 s)` waits for queries in
//!    flight, the report is logged, exit code 0.
//!
//! # What it offers
//!
//! | kind | name | returns |
//! |---|---|---|
//! | resource | `health://connection-pool` | `serde_json::to_value(pool.health_check())` |
//! | resource | `stats://connection-pool` | `serde_json::to_value(pool.statistics())` |
//! | resource | `metrics://connection-pool` | Prometheus text ([`crate::metrics`]) |
//! | tool | `query` `{sql, max_rows?, timeout_ms?}` | `{columns, rows, row_count, truncated, cast_to_text, elapsed_ms}` ([`crate::query`]) |
//! | tool | `pool_statistics` | `{statistics, health}` |
//!
//! # Errors
//!
//! Every database failure — the pool's (timeout, unavailable, closed, ...)
//! and the statement's (read-only violation, statement timeout, syntax, lost
//! connection) — is a JSON-RPC error with code **-31001**
//! ([`DATABASE_ERROR_CODE`]), chosen outside JSON-RPC's reserved range
//! (-32768 ..= -32000) and the codes MCP uses. Its message starts with
//! `DATABASE_ERROR (<kind>)` and its `data` is:
//!
//! ```json
//! {"code": "DATABASE_ERROR", "kind": "unavailable", "message": "database unavailable: ...",
//!  "hint": "the pool lost the database and is reconnecting in the background: retry in a few seconds",
//!  "retryable": true, "statistics": {"state": "RECOVERING", "...": "..."}}
//! ```
//!
//! with `phase` for timeouts and `sqlstate` when PostgreSQL sent one; the
//! kinds are listed in [`crate::db_error`]. Bad tool arguments are `-32602`.

mod server;

use std::process::ExitCode;
use std::time::Duration;

use rmcp::service::ServerInitializeError;
use rmcp::ServiceExt;

use crate::database::{Database, SHUTDOWN_TIMEOUT};
use crate::logging::{self, LogTarget};
use crate::metrics::Exporter;
use crate::signals::ShutdownSignal;

pub use crate::db_error::DATABASE_ERROR_CODE;
pub use server::{
    database_error, PoolServer, HEALTH_URI, METRICS_URI, QUERY_TOOL, STATISTICS_TOOL, STATS_URI,
};

/// The variable naming the log file (`-` for stderr).
pub const LOG_FILE_VAR: &str = "MCP_LOG_FILE";
/// Where logs go when `MCP_LOG_FILE` is unset.
pub const DEFAULT_LOG_FILE: &str = "/tmp/codebase-mcp.log";
/// How long the service loop may take to stop after a signal.
const SERVICE_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the MCP server; see the module docs. Returns the process exit code.
pub fn main() -> ExitCode {
    let target = LogTarget::from_env(LOG_FILE_VAR, LogTarget::File(DEFAULT_LOG_FILE.into()));
    if let Err(error) = logging::init(&target, LOG_FILE_VAR) {
        eprintln!("mcp_server: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mcp_server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    // A read blocked on a terminal's stdin cannot be cancelled; do not wait
    // for it after a signal.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run() -> ExitCode {
    let mut signal = ShutdownSignal::install();
    tracing::info!(target: "examples::mcp", pid = std::process::id(), "MCP server starting");
    // Before the pool is built, so the counters count from its start.
    let exporter = match Exporter::install() {
        Ok(exporter) => exporter,
        Err(error) => {
            tracing::error!(target: "examples::mcp", %error, "cannot install the Prometheus recorder");
            eprintln!("mcp_server: cannot install the Prometheus recorder: {error}");
            return ExitCode::FAILURE;
        }
    };
    let database = tokio::select! {
        started = Database::start() => match started {
            Ok(database) => database,
            Err(error) => {
                tracing::error!(target: "examples::mcp", %error, "cannot start");
                eprintln!("mcp_server: {error}");
                return error.exit_code();
            }
        },
        name = signal.recv() => {
            tracing::info!(target: "examples::mcp", signal = name, "stopped during start-up");
            return ExitCode::SUCCESS;
        }
    };
    tracing::info!(target: "examples::mcp", url = %database.redacted_url, "serving MCP on stdio");

    let transport = rmcp::transport::stdio_pipes();
    let served = tokio::select! {
        served = PoolServer::new(database.pool.clone(), exporter).serve(transport) => Ok(served),
        name = signal.recv() => Err(name),
    };
    let (reason, code) = match served {
        Err(signal_name) => (
            format!("{signal_name} before the client initialized"),
            ExitCode::SUCCESS,
        ),
        Ok(Err(ServerInitializeError::ConnectionClosed(_))) => (
            "the client disconnected before initializing".to_owned(),
            ExitCode::SUCCESS,
        ),
        Ok(Err(error)) => {
            tracing::error!(target: "examples::mcp", %error, "MCP initialization failed");
            eprintln!("mcp_server: MCP initialization failed: {error}");
            (format!("initialization failed: {error}"), ExitCode::FAILURE)
        }
        Ok(Ok(running)) => {
            let token = running.cancellation_token();
            let waiting = running.waiting();
            tokio::pin!(waiting);
            let reason = tokio::select! {
                quit = &mut waiting => match quit {
                    Ok(quit) => format!("the client disconnected ({quit:?})"),
                    Err(error) => format!("the service task failed: {error}"),
                },
                name = signal.recv() => {
                    token.cancel();
                    if tokio::time::timeout(SERVICE_STOP_TIMEOUT, &mut waiting).await.is_err() {
                        tracing::warn!(target: "examples::mcp", "the MCP service did not stop within {SERVICE_STOP_TIMEOUT:?}");
                    }
                    format!("{name} received")
                }
            };
            (reason, ExitCode::SUCCESS)
        }
    };
    tracing::info!(target: "examples::mcp", reason = %reason, "shutting down: {reason}");
    let report = database.shutdown(SHUTDOWN_TIMEOUT).await;
    tracing::info!(
        target: "examples::mcp",
        forced = report.forced.len(),
        duration_ms = report.duration_ms,
        "MCP server stopped"
    );
    code
}
