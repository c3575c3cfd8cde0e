//! Service integrations of the pool: an MCP server and an HTTP service,
//! and the pieces they share.
//!
//! Each service is a function in this library (`mcp::main`, `http::main`)
//! behind two thin entry points: a binary (`src/bin/`, which the
//! integration tests start through `CARGO_BIN_EXE_*`) and an example
//! (`cargo run -p examples --example mcp_server`). The shared pieces, one
//! concern per module:
//!
//! | module | concern |
//! |---|---|
//! | [`database`] | the pool from `DATABASE_URL` + `POOL_*`, or a throwaway PostgreSQL; fail fast; graceful shutdown |
//! | [`query`] | one read-only statement through the pool, with a row limit and a statement timeout |
//! | [`pgjson`] | PostgreSQL values as JSON |
//! | [`db_error`] | every database failure as `DATABASE_ERROR` with a kind, a hint and statistics |
//! | [`metrics`] | the pool's statistics and health as Prometheus metrics |
//! | [`logging`] | JSON logs to a file or stderr |
//! | [`signals`] | SIGTERM and ctrl-c |

pub mod database;
pub mod db_error;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod pgjson;
pub mod query;
mod readme;
pub mod signals;
