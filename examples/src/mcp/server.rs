//! The MCP handler: three resources and two tools over one pool.
//!
//! Every handler reads the pool without blocking it: the resources are the
//! lock-free `health_check()` / `statistics()` snapshots and the
//! Prometheus text of the installed recorder ([`Exporter::scrape`]); `pool_statistics` returns the same snapshot as a tool
//! (for clients that only call tools); `query` runs one read-only statement
//! through [`crate::query::run_read_only`]. A request the client cancels
//! (`notifications/cancelled`) drops its query future; pool-pg then closes
//! that connection and cancels the statement on the server.
//!
//! Failures: a database failure is a JSON-RPC error with code
//! [`DATABASE_ERROR_CODE`] whose message starts with `DATABASE_ERROR` and
//! whose `data` is the [`DatabaseError`] as JSON; bad arguments are
//! `-32602` (invalid params); an unknown resource is MCP's resource-not-found.

use std::time::Instant;

use pool_pg::PgPool;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorCode, Implementation, JsonObject,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

use crate::db_error::{DatabaseError, Failure, DATABASE_ERROR, DATABASE_ERROR_CODE};
use crate::metrics::Exporter;
use crate::query::{run_read_only, Limits, MAX_ROWS_LIMIT, MAX_STATEMENT_TIMEOUT};

/// The pool's health verdict: `serde_json::to_value(pool.health_check())`.
pub const HEALTH_URI: &str = "health://connection-pool";
/// The pool's statistics snapshot: `serde_json::to_value(pool.statistics())`.
pub const STATS_URI: &str = "stats://connection-pool";
/// The pool's metrics in the Prometheus text format.
pub const METRICS_URI: &str = "metrics://connection-pool";
/// The read-only query tool.
pub const QUERY_TOOL: &str = "query";
/// The statistics tool.
pub const STATISTICS_TOOL: &str = "pool_statistics";

/// The MCP server's handler.
#[derive(Clone)]
pub struct PoolServer {
    pool: PgPool,
    exporter: Exporter,
}

impl PoolServer {
    /// A handler serving `pool`, with its metrics from `exporter` (installed
    /// before `pool` was built, or the pool's own series are missing).
    pub fn new(pool: PgPool, exporter: Exporter) -> Self {
        Self { pool, exporter }
    }

    fn resources() -> Vec<Resource> {
        vec![
            Resource::new(HEALTH_URI, "connection-pool-health")
                .with_title("Connection pool health")
                .with_description("The pool's health verdict (healthy, degraded, unhealthy), its state and connection counts, and why. No query runs.")
                .with_mime_type("application/json"),
            Resource::new(STATS_URI, "connection-pool-statistics")
                .with_title("Connection pool statistics")
                .with_description("Gauges, counters and wait/hold/connect time percentiles of the pool.")
                .with_mime_type("application/json"),
            Resource::new(METRICS_URI, "connection-pool-metrics")
                .with_title("Connection pool metrics")
                .with_description("The pool's Prometheus metrics (db_client_connection_* and pool_core_*, labelled db_client_connection_pool_name): connection counts, wait/use/create time histograms, timeouts, closes by reason, state and health.")
                .with_mime_type("text/plain"),
        ]
    }

    fn tools() -> Vec<Tool> {
        let query_schema = json!({
            "type": "object",
            "properties": {
                "sql": {
                    "type": "string",
                    "description": "One SQL statement. It runs in a READ ONLY transaction: writes fail with DATABASE_ERROR (kind read_only)."
                },
                "max_rows": {
                    "type": "integer", "minimum": 1, "maximum": MAX_ROWS_LIMIT, "default": 100,
                    "description": "Return at most this many rows; `truncated` says whether there were more."
                },
                "timeout_ms": {
                    "type": "integer", "minimum": 1, "maximum": MAX_STATEMENT_TIMEOUT.as_millis() as u64, "default": 5000,
                    "description": "statement_timeout for the query, in milliseconds."
                }
            },
            "required": ["sql"],
            "additionalProperties": false
        });
        vec![
            Tool::new(
                QUERY_TOOL,
                "Run one read-only SQL statement on the PostgreSQL database through the connection pool and return the rows as JSON objects.",
                object(query_schema),
            )
            .with_annotations(ToolAnnotations::new().read_only(true).open_world(false)),
            Tool::new(
                STATISTICS_TOOL,
                "The connection pool's statistics snapshot and health verdict.",
                object(json!({ "type": "object", "properties": {}, "additionalProperties": false })),
            )
            .with_annotations(ToolAnnotations::new().read_only(true).open_world(false)),
        ]
    }

    async fn query(&self, args: &JsonObject) -> Result<CallToolResult, ErrorData> {
        if let Some(unknown) = args
            .keys()
            .find(|key| !["sql", "max_rows", "timeout_ms"].contains(&key.as_str()))
        {
            return Err(invalid(&format!(
                "the query tool has no argument `{unknown}`; it takes `sql`, `max_rows` and `timeout_ms`"
            )));
        }
        let sql = args
            .get("sql")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the query tool needs a string argument `sql`"))?;
        let number = |key: &str| match args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(&format!("`{key}` must be a positive integer"))),
        };
        let limits = Limits::from_input(number("max_rows")?, number("timeout_ms")?)
            .map_err(|m| invalid(&m))?;
        let started = Instant::now();
        match run_read_only(&self.pool, sql, limits).await {
            Ok(output) => {
                tracing::info!(
                    target: "examples::mcp",
                    tool = QUERY_TOOL,
                    rows = output.row_count,
                    truncated = output.truncated,
                    elapsed_ms = started.elapsed().as_micros() as f64 / 1000.0,
                    "query returned {} rows", output.row_count
                );
                let value = serde_json::to_value(&output).map_err(internal)?;
                Ok(CallToolResult::structured(value))
            }
            Err(error) => match Failure::from_query(error, &self.pool) {
                Failure::Invalid(why) => Err(invalid(&why)),
                Failure::Database(error) => Err(database_error(&error)),
            },
        }
    }
}

impl ServerHandler for PoolServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_resources()
                .enable_tools()
                .build(),
        )
        .with_server_info(
            Implementation::new("pgpool-mcp", env!("CARGO_PKG_VERSION"))
                .with_title("PostgreSQL connection pool"),
        )
        .with_instructions(format!(
            "Read {HEALTH_URI} for the pool's health and {STATS_URI} for its statistics. \
             Call `{QUERY_TOOL}` with one read-only SQL statement. Database failures are \
             JSON-RPC errors with code {DATABASE_ERROR_CODE} and data.code = {DATABASE_ERROR}; \
             data.kind says what failed and data.hint what to do."
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(Self::resources()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let (text, mime) = match uri {
            HEALTH_URI => (json_text(&self.pool.health_check())?, "application/json"),
            STATS_URI => (json_text(&self.pool.statistics())?, "application/json"),
            METRICS_URI => (self.exporter.scrape(&self.pool), "text/plain"),
            _ => {
                return Err(ErrorData::resource_not_found(
                    format!("no resource {uri}. Suggestion: read {HEALTH_URI}, {STATS_URI} or {METRICS_URI}"),
                    None,
                ))
            }
        };
        let contents = ResourceContents::text(text, uri).with_mime_type(mime);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(Self::tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            QUERY_TOOL => {
                // Cancel-safe: a cancelled query drops its connection dirty;
                // pool-pg closes it and cancels the statement server-side.
                tokio::select! {
                    result = self.query(&args) => result,
                    () = context.ct.cancelled() => Err(ErrorData::new(
                        ErrorCode::INTERNAL_ERROR,
                        "the request was cancelled by the client",
                        None,
                    )),
                }
            }
            STATISTICS_TOOL => Ok(CallToolResult::structured(json!({
                "statistics": self.pool.statistics(),
                "health": self.pool.health_check(),
            }))),
            other => Err(invalid(&format!(
                "no tool named {other:?}. Suggestion: call {QUERY_TOOL} or {STATISTICS_TOOL}"
            ))),
        };
        result.map(CallToolResponse::from)
    }
}

/// A database failure as a JSON-RPC error: code [`DATABASE_ERROR_CODE`], the
/// message prefixed with `DATABASE_ERROR (<kind>)`, the whole description as
/// `data`.
pub fn database_error(error: &DatabaseError) -> ErrorData {
    tracing::warn!(
        target: "examples::mcp",
        kind = error.kind.as_str(),
        sqlstate = error.sqlstate.as_deref(),
        "{DATABASE_ERROR} ({}): {}", error.kind.as_str(), error.message
    );
    ErrorData::new(
        ErrorCode(DATABASE_ERROR_CODE),
        format!(
            "{DATABASE_ERROR} ({}): {}",
            error.kind.as_str(),
            error.message
        ),
        serde_json::to_value(error).ok(),
    )
}

fn invalid(message: &str) -> ErrorData {
    ErrorData::invalid_params(message.to_owned(), None)
}

fn internal(error: serde_json::Error) -> ErrorData {
    ErrorData::internal_error(format!("cannot serialize the result: {error}"), None)
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String, ErrorData> {
    serde_json::to_string(value).map_err(internal)
}

fn object(schema: Value) -> JsonObject {
    match schema {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}
