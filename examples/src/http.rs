//! An HTTP service (axum) with the pool's health, its Prometheus metrics,
//! and an endpoint that queries through the pool.
//!
//! ```text
//! cargo run -p examples --example http_server    # or the `http_server` binary
//! curl -i localhost:8080/health
//! ```
//!
//! | route | answers |
//! |---|---|
//! | `GET /health` | `pool.health_check()` as JSON: **200** for `healthy` and `degraded` (still serving), **503** for `unhealthy` or a pool shutting down or terminated — what a load balancer should act on |
//! | `GET /metrics` | the pool's metrics in the Prometheus text format ([`crate::metrics`]): recorded by the pool as they happen, labelled `pool` = `POOL_NAME`; the wait/use/create times as histograms |
//! | `GET /db/activity` | one query through the pool: this backend's pid and how many connections the pool holds on the server |
//!
//! A database failure in `/db/activity` is a JSON body
//! `{"error": {"code": "DATABASE_ERROR", "kind": ..., "message": ..., "hint": ..., ...}}`
//! ([`crate::db_error`]) with status **503** and `Retry-After: 1` when the
//! pool could not serve (timeout, unavailable, closed, lost connection), and
//! **500** when the statement itself failed.
//!
//! Configuration: `HTTP_ADDR` (default [`DEFAULT_ADDR`]; port 0 picks a free
//! port), `DATABASE_URL` and `POOL_*` as everywhere ([`Database::start`]),
//! `HTTP_LOG_FILE` (default stderr) and `RUST_LOG`. The Prometheus recorder
//! is installed before the pool is built, so its counters count from the
//! start (a pool built first would record from the install on). The first
//! line on stdout
//! is `listening on http://<address>`, so a script or a test can find the
//! port.
//!
//! Shutdown on SIGTERM or ctrl-c: stop accepting, let requests in flight
//! finish (axum's graceful shutdown), then `pool.shutdown(30 s)`, exit 0.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pool_pg::{HealthState, PgPool};
use serde_json::json;

use crate::database::{Database, SHUTDOWN_TIMEOUT};
use crate::db_error::{DatabaseError, Failure};
use crate::logging::{self, LogTarget};
use crate::metrics::Exporter;
use crate::query::QueryError;
use crate::signals::ShutdownSignal;

/// The variable with the listen address.
pub const ADDR_VAR: &str = "HTTP_ADDR";
/// The listen address when `HTTP_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// The variable naming the log file (`-` or unset: stderr).
pub const LOG_FILE_VAR: &str = "HTTP_LOG_FILE";
/// The one query of `/db/activity`.
pub const ACTIVITY_SQL: &str = "SELECT pg_backend_pid() AS backend_pid, \
     (SELECT count(*) FROM pg_stat_activity \
      WHERE application_name = current_setting('application_name')) AS pool_connections_on_server";

/// What every handler shares.
struct AppState {
    pool: PgPool,
    exporter: Exporter,
}

/// The service's routes over `pool`, publishing through `exporter` (installed
/// before `pool` was built, or the pool's own series are missing).
pub fn router(pool: PgPool, exporter: Exporter) -> Router {
    let state = Arc::new(AppState { pool, exporter });
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/db/activity", get(activity))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let health = state.pool.health_check();
    let serving = health.status != HealthState::Unhealthy && !health.pool_state.is_closing();
    let status = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.exporter.scrape(&state.pool);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn activity(State(state): State<Arc<AppState>>) -> Response {
    let pool = &state.pool;
    let conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(error) => return error_response(DatabaseError::from_pool(&error, pool)),
    };
    match conn.query_one(ACTIVITY_SQL, &[]).await {
        Ok(row) => Json(json!({
            "backend_pid": row.get::<_, i32>(0),
            "pool_connections_on_server": row.get::<_, i64>(1),
        }))
        .into_response(),
        Err(error) => match Failure::from_query(QueryError::Postgres(error), pool) {
            Failure::Database(error) => error_response(*error),
            Failure::Invalid(why) => (StatusCode::BAD_REQUEST, why).into_response(),
        },
    }
}

fn error_response(error: DatabaseError) -> Response {
    // The pool logs an outage or a saturation once, with its cause; one line
    // per turned-away request would flood the log.
    if error.kind.is_pool_side() {
        tracing::debug!(target: "examples::http", kind = error.kind.as_str(), "{}", error.message);
    } else {
        tracing::warn!(target: "examples::http", kind = error.kind.as_str(), "{}", error.message);
    }
    let status = if error.kind.is_pool_side() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut response = (status, Json(json!({ "error": error }))).into_response();
    if error.kind.is_retryable() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Runs the HTTP service; see the module docs. Returns the process exit code.
pub fn main() -> ExitCode {
    let target = LogTarget::from_env(LOG_FILE_VAR, LogTarget::Stderr);
    if let Err(error) = logging::init(&target, LOG_FILE_VAR) {
        eprintln!("http_server: {error}");
        return ExitCode::from(2);
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("http_server: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let mut signal = ShutdownSignal::install();
    let addr = match listen_address() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("http_server: {error}");
            return ExitCode::from(2);
        }
    };
    // Before the pool is built, so the counters count from its start.
    let exporter = match Exporter::install() {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("http_server: cannot install the Prometheus recorder: {error}");
            return ExitCode::FAILURE;
        }
    };
    let database = tokio::select! {
        started = Database::start() => match started {
            Ok(database) => database,
            Err(error) => {
                tracing::error!(target: "examples::http", %error, "cannot start");
                eprintln!("http_server: {error}");
                return error.exit_code();
            }
        },
        name = signal.recv() => {
            tracing::info!(target: "examples::http", signal = name, "stopped during start-up");
            return ExitCode::SUCCESS;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("http_server: cannot listen on {addr}: {error}. Suggestion: set {ADDR_VAR} to a free address, such as 127.0.0.1:0");
            database.shutdown(SHUTDOWN_TIMEOUT).await;
            return ExitCode::from(2);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    announce(local);
    tracing::info!(target: "examples::http", addr = %local, url = %database.redacted_url, "HTTP server listening on {local}");

    let app = router(database.pool.clone(), exporter);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let name = signal.recv().await;
            tracing::info!(target: "examples::http", signal = name, "{name} received: draining HTTP connections");
        })
        .await;
    let code = match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(target: "examples::http", %error, "the HTTP server failed");
            ExitCode::FAILURE
        }
    };
    let report = database.shutdown(SHUTDOWN_TIMEOUT).await;
    tracing::info!(
        target: "examples::http",
        forced = report.forced.len(),
        duration_ms = report.duration_ms,
        "HTTP server stopped"
    );
    code
}

fn listen_address() -> Result<SocketAddr, String> {
    let text = std::env::var(ADDR_VAR).unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    text.parse().map_err(|error| {
        format!("{ADDR_VAR} ({text:?}) is not a socket address: {error}. Suggestion: set {ADDR_VAR}=127.0.0.1:8080 (port 0 picks a free port)")
    })
}

/// The first line on stdout: where the service listens.
fn announce(addr: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on http://{addr}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        tracing::warn!(target: "examples::http", "cannot write the listen address to stdout");
    }
}
