//! `cargo run -p examples --example http_server`: an axum service with
//! `GET /health`, `GET /metrics` (Prometheus) and `GET /db/activity`,
//! listening on `HTTP_ADDR` (default 127.0.0.1:8080). The implementation is
//! `examples::http` (also built as the `http_server` binary, which the
//! integration tests start).

fn main() -> std::process::ExitCode {
    examples::http::main()
}
