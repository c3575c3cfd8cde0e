# Tasks for this workspace. `just --list` shows them.

# Run the demo (starts a throwaway PostgreSQL unless DATABASE_URL is set).
demo:
    cargo run -p examples --example demo

# The MCP server example (stdio; logs to MCP_LOG_FILE, default /tmp/codebase-mcp.log).
mcp:
    cargo run -p examples --example mcp_server

# The HTTP service example (GET /health, /metrics, /db/activity on HTTP_ADDR).
http:
    cargo run -p examples --example http_server

# docs/examples/usage.md, end to end.
usage:
    cargo run -p examples --example usage

# The test suite (starts its own PostgreSQL servers).
test:
    cargo test --workspace

# loom models of the semaphore and the slot gauges.
loom:
    RUSTFLAGS="--cfg pool_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test -p pool-core --lib --release loom_models

# The state-machine property test with many more cases.
proptest-long:
    PROPTEST_CASES=20000 cargo test -p pool-core --release --test model

# The chaos soak: faults against a throwaway PostgreSQL under load (SOAK_SEED=<n> replays a run's choices).
soak secs="300":
    SOAK_SECS={{secs}} cargo test -p pool-pg --test soak -- --nocapture

# Failover across a primary and a streaming standby, with timings.
failover:
    cargo run -p examples --example failover

# Failover behind Patroni: five kill -9 failovers and a switchover under load, with the figures (~1.5 min; .ci/run installs Patroni).
patroni:
    POOL_REQUIRE_PATRONI=1 cargo test -p pool-pg --test patroni -- --nocapture --test-threads 1

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks (criterion).
bench:
    cargo bench -p benches

# Performance baseline: interleaved rounds against the floor and the peers (~3 min; writes performance_baselines/).
baseline *ARGS:
    scripts/collect_baseline.sh {{ARGS}}

# API docs, warnings are errors.
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Everything CI runs.
ci:
    .ci/run
