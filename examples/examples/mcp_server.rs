//! `cargo run -p examples --example mcp_server`: an MCP server on stdio that
//! exposes the pool's health and statistics as resources and a read-only
//! `query` tool. Logs go to `MCP_LOG_FILE` (default `/tmp/codebase-mcp.log`).
//! The implementation is `examples::mcp` (also built as the `mcp_server`
//! binary, which the integration tests start).

fn main() -> std::process::ExitCode {
    examples::mcp::main()
}
