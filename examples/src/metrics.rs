//! The pool's statistics and health as Prometheus metrics.
//!
//! The library has no `metrics` feature yet, so the examples publish from
//! the outside: [`PoolMetrics::record`] reads one `statistics()` snapshot and
//! one `health_check()` (both lock-free, no query) and sets every metric
//! below through the [`metrics`] facade; [`Exporter`] installs
//! `metrics-exporter-prometheus` as the global recorder (no HTTP listener of
//! its own) and renders the text format. Recording happens on every scrape,
//! so the values are exactly those of one snapshot, and a pool that nobody
//! scrapes costs nothing. Counters are set with `absolute` from the pool's
//! own monotonic counters.
//!
//! Names follow Prometheus conventions (base units, `_total` for counters);
//! each maps to the OpenTelemetry database client semantic convention where
//! one exists (`db.client.connection.*`). Every series carries
//! `pool_name` (OpenTelemetry `db.client.connection.pool.name`).
//!
//! | Prometheus | type | OpenTelemetry | source |
//! |---|---|---|---|
//! | `db_client_connections{state="idle"\|"used"}` | gauge | `db.client.connection.count{db.client.connection.state}` | `idle_connections`, `active_connections` |
//! | `db_client_connections{state="opening"}` | gauge | (none: an extension) | `opening_connections` |
//! | `db_client_connections_max` | gauge | `db.client.connection.max` | `max_size` |
//! | `db_client_connections_idle_min` | gauge | `db.client.connection.idle.min` | `min_size` |
//! | `db_client_connections_pending_requests` | gauge | `db.client.connection.pending_requests` | `waiting_requests` |
//! | `db_client_connection_timeouts_total` | counter | `db.client.connection.timeouts` | `total_timeouts` |
//! | `db_client_connection_created_total` | counter | (count of `db.client.connection.create_time`) | `connections_created` |
//! | `db_client_connection_create_failures_total` | counter | (none) | `connection_failures` |
//! | `db_client_connection_closed_total{reason}` | counter | (none) | `closed_by_reason.*` |
//! | `db_client_connection_acquisitions_total` | counter | (count of `db.client.connection.wait_time`) | `total_acquisitions` |
//! | `db_client_connection_acquire_errors_total` | counter | (none) | `acquire_errors` |
//! | `db_client_connection_wait_time_seconds{quantile}` | gauge | `db.client.connection.wait_time` | `wait_time` p50/p95/p99 |
//! | `db_client_connection_wait_time_recent_seconds{quantile}` | gauge | (the same over the last 60 s) | `wait_time_recent` p50/p95/p99 |
//! | `db_client_connection_use_time_seconds{quantile}` | gauge | `db.client.connection.use_time` | `hold_time` p50/p95/p99 |
//! | `db_client_connection_create_time_seconds{quantile}` | gauge | `db.client.connection.create_time` | `create_time` p50/p95/p99 |
//! | `..._time_seconds_max`, `..._time_seconds_count` | gauge, counter | (histogram max and count) | `max_ms`, `count` |
//! | `db_client_connection_leaks_suspected` | gauge | (none) | `leaks_suspected` |
//! | `db_client_connection_leaks_reported_total` | counter | (none) | `leaks_reported_total` |
//! | `pool_health_status{status}` | gauge, 1 for the current verdict | (none) | `health_check().status` |
//! | `pool_state{state}` | gauge, 1 for the current state | (none) | `state` |
//! | `pool_available_capacity_ratio` | gauge, 0..1 | (none) | `health_check().database.pool.available_percent` |
//!
//! The latency percentiles are gauges with a `quantile` label rather than
//! Prometheus summaries: they come from the pool's own log-linear histograms
//! (within about 12 %) over its whole life — except
//! `..._wait_time_recent_seconds`, over the last 60 s, which is the one to
//! alert on — and the wait times include the lock-free fast path as 0.

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::{
    BuildError, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use pool_pg::{LatencySummary, PgPool, Statistics};

/// `db_client_connections{state}`; OpenTelemetry `db.client.connection.count`
/// with `db.client.connection.state` = `idle` | `used` (`opening` is ours).
pub const CONNECTIONS: &str = "db_client_connections";
/// `db_client_connections_max`; OpenTelemetry `db.client.connection.max`.
pub const CONNECTIONS_MAX: &str = "db_client_connections_max";
/// `db_client_connections_idle_min`; OpenTelemetry `db.client.connection.idle.min`.
pub const CONNECTIONS_IDLE_MIN: &str = "db_client_connections_idle_min";
/// `db_client_connections_pending_requests`; OpenTelemetry
/// `db.client.connection.pending_requests`.
pub const PENDING_REQUESTS: &str = "db_client_connections_pending_requests";
/// `db_client_connection_timeouts_total`; OpenTelemetry `db.client.connection.timeouts`.
pub const TIMEOUTS: &str = "db_client_connection_timeouts_total";
/// `db_client_connection_created_total`; the count of OpenTelemetry
/// `db.client.connection.create_time`.
pub const CREATED: &str = "db_client_connection_created_total";
/// `db_client_connection_create_failures_total`; no OpenTelemetry equivalent.
pub const CREATE_FAILURES: &str = "db_client_connection_create_failures_total";
/// `db_client_connection_closed_total{reason}`; no OpenTelemetry equivalent.
pub const CLOSED: &str = "db_client_connection_closed_total";
/// `db_client_connection_acquisitions_total`; the count of OpenTelemetry
/// `db.client.connection.wait_time`.
pub const ACQUISITIONS: &str = "db_client_connection_acquisitions_total";
/// `db_client_connection_acquire_errors_total`; no OpenTelemetry equivalent.
pub const ACQUIRE_ERRORS: &str = "db_client_connection_acquire_errors_total";
/// `db_client_connection_wait_time_seconds{quantile}`; OpenTelemetry
/// `db.client.connection.wait_time` (a histogram there).
pub const WAIT_TIME: &str = "db_client_connection_wait_time_seconds";
/// `db_client_connection_wait_time_recent_seconds{quantile}`: the same over
/// the last 60 s; no OpenTelemetry equivalent.
pub const WAIT_TIME_RECENT: &str = "db_client_connection_wait_time_recent_seconds";
/// `db_client_connection_use_time_seconds{quantile}`; OpenTelemetry
/// `db.client.connection.use_time`.
pub const USE_TIME: &str = "db_client_connection_use_time_seconds";
/// `db_client_connection_create_time_seconds{quantile}`; OpenTelemetry
/// `db.client.connection.create_time`.
pub const CREATE_TIME: &str = "db_client_connection_create_time_seconds";
/// `db_client_connection_leaks_suspected`; no OpenTelemetry equivalent.
pub const LEAKS_SUSPECTED: &str = "db_client_connection_leaks_suspected";
/// `db_client_connection_leaks_reported_total`; no OpenTelemetry equivalent.
pub const LEAKS_REPORTED: &str = "db_client_connection_leaks_reported_total";
/// `pool_health_status{status}`, one-hot; no OpenTelemetry equivalent.
pub const HEALTH_STATUS: &str = "pool_health_status";
/// `pool_state{state}`, one-hot; no OpenTelemetry equivalent.
pub const POOL_STATE: &str = "pool_state";
/// `pool_available_capacity_ratio`; no OpenTelemetry equivalent.
pub const AVAILABLE_CAPACITY: &str = "pool_available_capacity_ratio";

/// Every verdict of `health_check()`, for the one-hot `pool_health_status`.
const HEALTH_STATES: [&str; 3] = ["healthy", "degraded", "unhealthy"];
/// Every pool state, for the one-hot `pool_state`.
const POOL_STATES: [&str; 7] = [
    "INITIALIZING",
    "HEALTHY",
    "DEGRADED",
    "UNHEALTHY",
    "RECOVERING",
    "SHUTTING_DOWN",
    "TERMINATED",
];

/// Publishes one pool's statistics and health; see the module docs.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    pool: PgPool,
    pool_name: String,
}

impl PoolMetrics {
    /// A publisher for `pool`, labelled `pool_name`. Describes the metrics
    /// (their `# HELP` lines) to the current recorder.
    pub fn new(pool: PgPool, pool_name: impl Into<String>) -> Self {
        describe();
        Self {
            pool,
            pool_name: pool_name.into(),
        }
    }

    /// Sets every metric from one statistics snapshot and one health check.
    pub fn record(&self) {
        let stats = self.pool.statistics();
        let health = self.pool.health_check();
        let name = self.pool_name.as_str();
        let pool_name = || ("pool_name", name.to_owned());

        for (state, value) in [
            ("idle", stats.idle_connections),
            ("used", stats.active_connections),
            ("opening", stats.opening_connections),
        ] {
            gauge!(CONNECTIONS, &[pool_name(), ("state", state.to_owned())]).set(value as f64);
        }
        gauge!(CONNECTIONS_MAX, &[pool_name()]).set(stats.max_size as f64);
        gauge!(CONNECTIONS_IDLE_MIN, &[pool_name()]).set(stats.min_size as f64);
        gauge!(PENDING_REQUESTS, &[pool_name()]).set(stats.waiting_requests as f64);
        gauge!(LEAKS_SUSPECTED, &[pool_name()]).set(stats.leaks_suspected as f64);

        for (metric, value) in [
            (TIMEOUTS, stats.total_timeouts),
            (CREATED, stats.connections_created),
            (CREATE_FAILURES, stats.connection_failures),
            (ACQUISITIONS, stats.total_acquisitions),
            (ACQUIRE_ERRORS, stats.acquire_errors),
            (LEAKS_REPORTED, stats.leaks_reported_total),
        ] {
            counter!(metric, &[pool_name()]).absolute(value);
        }
        for (reason, value) in closed_by_reason(&stats) {
            counter!(CLOSED, &[pool_name(), ("reason", reason)]).absolute(value);
        }

        for (metric, summary) in [
            (WAIT_TIME, &stats.wait_time),
            (WAIT_TIME_RECENT, &stats.wait_time_recent),
            (USE_TIME, &stats.hold_time),
            (CREATE_TIME, &stats.create_time),
        ] {
            record_latency(metric, summary, name);
        }

        let status = health.status.as_str();
        for candidate in HEALTH_STATES {
            let labels = [pool_name(), ("status", candidate.to_owned())];
            gauge!(HEALTH_STATUS, &labels).set(f64::from(u8::from(candidate == status)));
        }
        let state = stats.state.as_str();
        for candidate in POOL_STATES {
            let labels = [pool_name(), ("state", candidate.to_owned())];
            gauge!(POOL_STATE, &labels).set(f64::from(u8::from(candidate == state)));
        }
        gauge!(AVAILABLE_CAPACITY, &[pool_name()])
            .set(health.database.pool.available_percent as f64 / 100.0);
    }
}

/// The `closed_by_reason` counters by name, read through their JSON form so
/// a reason added to the library shows up without a change here.
fn closed_by_reason(stats: &Statistics) -> Vec<(String, u64)> {
    match serde_json::to_value(&stats.closed_by_reason) {
        Ok(serde_json::Value::Object(reasons)) => reasons
            .into_iter()
            .filter_map(|(reason, value)| value.as_u64().map(|n| (reason, n)))
            .collect(),
        _ => Vec::new(),
    }
}

fn record_latency(metric: &'static str, summary: &LatencySummary, pool_name: &str) {
    for (quantile, ms) in [
        ("0.5", summary.p50_ms),
        ("0.95", summary.p95_ms),
        ("0.99", summary.p99_ms),
    ] {
        let labels = [
            ("pool_name", pool_name.to_owned()),
            ("quantile", quantile.to_owned()),
        ];
        gauge!(metric, &labels).set(seconds(ms));
    }
    let labels = [("pool_name", pool_name.to_owned())];
    gauge!(format!("{metric}_max"), &labels).set(seconds(summary.max_ms));
    counter!(format!("{metric}_count"), &labels).absolute(summary.count);
}

/// Milliseconds as seconds, rounded to the microsecond (the histograms'
/// resolution), so the text format shows `0.180223`, not `0.18022300000000002`.
fn seconds(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1_000_000.0
}

/// The `# HELP` text of every metric, with its OpenTelemetry name.
fn describe() {
    describe_gauge!(CONNECTIONS, "Open connections by state: idle, used (lent out), opening. OTel db.client.connection.count");
    describe_gauge!(
        CONNECTIONS_MAX,
        "The pool's max_size. OTel db.client.connection.max"
    );
    describe_gauge!(
        CONNECTIONS_IDLE_MIN,
        "The pool's min_size. OTel db.client.connection.idle.min"
    );
    describe_gauge!(
        PENDING_REQUESTS,
        "Callers queued for a connection. OTel db.client.connection.pending_requests"
    );
    describe_counter!(
        TIMEOUTS,
        "acquire() calls that timed out. OTel db.client.connection.timeouts"
    );
    describe_counter!(CREATED, "Connections opened successfully");
    describe_counter!(CREATE_FAILURES, "Connects that failed or timed out");
    describe_counter!(CLOSED, "Connections closed, by reason");
    describe_counter!(ACQUISITIONS, "Successful acquisitions");
    describe_counter!(
        ACQUIRE_ERRORS,
        "acquire() calls that failed other than by timeout"
    );
    describe_gauge!(
        WAIT_TIME,
        Unit::Seconds,
        "Time to get a connection, by quantile. OTel db.client.connection.wait_time"
    );
    describe_gauge!(
        WAIT_TIME_RECENT,
        Unit::Seconds,
        "Time to get a connection over the last 60 s, by quantile (alert on this one)"
    );
    describe_gauge!(
        USE_TIME,
        Unit::Seconds,
        "Time connections were held, by quantile. OTel db.client.connection.use_time"
    );
    describe_gauge!(
        CREATE_TIME,
        Unit::Seconds,
        "Time to open a connection, by quantile. OTel db.client.connection.create_time"
    );
    describe_gauge!(
        LEAKS_SUSPECTED,
        "Connections lent out longer than the leak detection timeout"
    );
    describe_counter!(LEAKS_REPORTED, "Potential leaks reported");
    describe_gauge!(
        HEALTH_STATUS,
        "1 for the current health verdict (healthy, degraded, unhealthy)"
    );
    describe_gauge!(POOL_STATE, "1 for the pool's current state");
    describe_gauge!(
        AVAILABLE_CAPACITY,
        "Share of max_size a new caller could get without waiting"
    );
}

/// A Prometheus recorder and the pool it publishes.
///
/// [`install`](Exporter::install) makes the recorder the process's global
/// one, so the service's own `metrics::counter!` calls land in the same
/// output; [`local`](Exporter::local) keeps it private (the MCP server, and
/// tests that build several).
pub struct Exporter {
    handle: PrometheusHandle,
    metrics: PoolMetrics,
    /// The recorder, when it is not the global one.
    local: Option<PrometheusRecorder>,
}

impl Exporter {
    /// Installs the Prometheus recorder globally (once per process) and
    /// describes the pool's metrics to it.
    pub fn install(pool: PgPool, pool_name: &str) -> Result<Self, BuildError> {
        let handle = PrometheusBuilder::new().install_recorder()?;
        Ok(Self {
            handle,
            metrics: PoolMetrics::new(pool, pool_name),
            local: None,
        })
    }

    /// A recorder of its own, not installed globally.
    pub fn local(pool: PgPool, pool_name: &str) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let metrics = metrics::with_local_recorder(&recorder, || PoolMetrics::new(pool, pool_name));
        Self {
            handle,
            metrics,
            local: Some(recorder),
        }
    }

    /// Records the pool's current values and renders every metric in the
    /// Prometheus text format.
    pub fn scrape(&self) -> String {
        match &self.local {
            Some(recorder) => metrics::with_local_recorder(recorder, || self.metrics.record()),
            None => self.metrics.record(),
        }
        self.handle.render()
    }
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("metrics", &self.metrics)
            .field("global", &self.local.is_none())
            .finish_non_exhaustive()
    }
}
