# Tasks for this workspace. `just --list` shows them.

# Run the demo (starts a throwaway PostgreSQL unless DATABASE_URL is set).
demo:
    cargo run -p examples --example demo

# The test suite (starts its own PostgreSQL servers).
test:
    cargo test --workspace

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks (criterion).
bench:
    cargo bench -p benches

# API docs, warnings are errors.
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Everything CI runs.
ci:
    .ci/run
