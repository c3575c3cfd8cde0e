//! The HTTP service over the connection pool; see `examples::http`.

fn main() -> std::process::ExitCode {
    examples::http::main()
}
