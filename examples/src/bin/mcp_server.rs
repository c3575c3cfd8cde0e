//! The MCP server (stdio) over the connection pool; see `examples::mcp`.

fn main() -> std::process::ExitCode {
    examples::mcp::main()
}
