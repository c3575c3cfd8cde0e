//! The Prometheus exporter of the examples, and the three numbers the pool
//! does not record itself.
//!
//! # Design
//!
//! pool-pg's `metrics` feature records every core metric at its source
//! through the [`metrics`] facade: connections by state, max/min, pending
//! requests, the wait/use/create time histograms, timeouts, connections
//! created and closed by reason, pool state and health, all labelled
//! `pool` = [`PoolConfig::name`](pool_pg::PoolConfig::name) (`POOL_NAME`,
//! default `default`); the names are the constants of [`pool_pg::metrics`].
//! The library never installs a recorder. This module does:
//! [`Exporter::install`] makes `metrics-exporter-prometheus` (default
//! features off: no HTTP listener, no runtime of its own) the process's
//! global recorder, with [`LATENCY_BUCKETS`] for the three `_seconds`
//! histograms so they render as real Prometheus histograms (`_bucket`,
//! `_sum`, `_count`; `histogram_quantile` gives any percentile, over any
//! window, across instances), and starts a thread that runs the recorder's
//! upkeep so histogram samples never pile up between scrapes.
//!
//! # Invariant: install before build
//!
//! The pool registers its metric handles once, in `Pool::build`; a handle
//! registered while no recorder is installed goes nowhere for the pool's
//! whole life. So every service calls [`Exporter::install`] **first**, then
//! builds its pool. [`Exporter::scrape`] checks that the pool's series are
//! there and logs one actionable warning (target `examples::metrics`) if
//! they are not.
//!
//! # Extras
//!
//! At each scrape [`publish`] reads one `statistics()` snapshot and one
//! `health_check()` (both lock-free, no query; both also republish the
//! pool's own gauges from a fresh reading) and sets what the library does
//! not record, under names it does not use:
//!
//! | Prometheus | type | from | OpenTelemetry |
//! |---|---|---|---|
//! | `db_client_connection_leaks_suspected{pool}` | gauge | `leaks_suspected` | (none) |
//! | `db_client_connection_leaks_reported_total{pool}` | counter | `leaks_reported_total` | (none) |
//! | `db_client_connection_acquire_errors_total{pool}` | counter | `acquire_errors` | (none) |
//!
//! Dropped, because the library's metrics already say it: the acquisition
//! count (the `_count` of `..._wait_time_seconds`), the 60-second wait p99
//! (`histogram_quantile(0.99, rate(..._wait_time_seconds_bucket[1m]))`,
//! which unlike a per-process gauge can be aggregated), the latency
//! quantile and max gauges (the histograms), and the available capacity
//! ratio (`1 - (used + opening) / max`, from the connection gauges).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use pool_pg::metrics::{CONNECTION_MAX, CREATE_TIME, USE_TIME, WAIT_TIME};
use pool_pg::PgPool;

/// `db_client_connection_leaks_suspected{pool}`: connections lent out
/// longer than `POOL_LEAK_DETECTION_TIMEOUT_MS` right now.
pub const LEAKS_SUSPECTED: &str = "db_client_connection_leaks_suspected";
/// `db_client_connection_leaks_reported_total{pool}`: leak reports since
/// the pool was built.
pub const LEAKS_REPORTED: &str = "db_client_connection_leaks_reported_total";
/// `db_client_connection_acquire_errors_total{pool}`: `acquire()` calls
/// that failed other than by timeout (unavailable, closed, fatal connect).
pub const ACQUIRE_ERRORS: &str = "db_client_connection_acquire_errors_total";
/// Every metric this module sets (the library records the others).
pub const EXTRAS: [&str; 3] = [LEAKS_SUSPECTED, LEAKS_REPORTED, ACQUIRE_ERRORS];

/// The upper bounds (seconds) of the buckets of the wait, use and create
/// time histograms: 100 µs to 30 s, about three per decade. A fast-path
/// checkout (0 s) and a connection reused at once land in the first; a
/// LAN connect in the 1–10 ms ones; a caller waiting out a 30 s
/// `acquire_timeout` in the last finite one.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// How often the upkeep thread drains histogram samples into their buckets
/// (a scrape also does).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The handle of the one recorder this process installed, shared by every
/// later [`Exporter::install`].
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The installed Prometheus recorder; cheap to clone.
#[derive(Debug, Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
    /// Whether the "pool built before the recorder" warning was logged.
    warned: Arc<AtomicBool>,
}

impl Exporter {
    /// Installs the Prometheus recorder as the process's global recorder
    /// (once; later calls return the same recorder), describes the extras
    /// and starts the upkeep thread. Call it **before** building a pool
    /// (see the module docs). Fails if another recorder was installed.
    pub fn install() -> Result<Self, BuildError> {
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        let handle = match installed.as_ref() {
            Some(handle) => handle.clone(),
            None => {
                let handle = builder()?.install_recorder()?;
                describe();
                spawn_upkeep(handle.clone());
                *installed = Some(handle.clone());
                handle
            }
        };
        Ok(Self {
            handle,
            warned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Publishes `pool`'s extras and renders every metric of the process in
    /// the Prometheus text format. Warns once if `pool` has no series.
    pub fn scrape(&self, pool: &PgPool) -> String {
        publish(pool);
        let text = self.handle.render();
        let name = &pool.config().name;
        if !has_series(&text, name) && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "examples::metrics",
                pool = %name,
                "pool {name:?} has no {CONNECTION_MAX} series: it was built before the Prometheus \
                 recorder was installed, so its metrics go nowhere. Suggestion: call \
                 Exporter::install() before building the pool"
            );
        }
        text
    }

    /// Whether `pool`'s metrics reach this recorder, i.e. it was built
    /// after [`install`](Exporter::install) (pools are told apart by name).
    pub fn records(&self, pool: &PgPool) -> bool {
        has_series(&self.handle.render(), &pool.config().name)
    }

    /// Renders every metric of the process, without publishing anything.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// The recorder's configuration: buckets for the three histograms, no
/// listener.
fn builder() -> Result<PrometheusBuilder, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for histogram in [WAIT_TIME, USE_TIME, CREATE_TIME] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(histogram.to_owned()), &LATENCY_BUCKETS)?;
    }
    Ok(builder)
}

/// Drains histogram samples every [`UPKEEP_INTERVAL`] for the life of the
/// process, so a service nobody scrapes keeps constant memory. A thread,
/// not a task: it outlives any one runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("prometheus-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(
            target: "examples::metrics",
            %error,
            "cannot start the Prometheus upkeep thread: histogram samples are drained only when /metrics is scraped"
        );
    }
}

/// Whether `text` holds the library's `db_client_connection_max` series of
/// the pool named `name` (names are `A-Z a-z 0-9 _ - .`: nothing to escape).
fn has_series(text: &str, name: &str) -> bool {
    let series = format!("{CONNECTION_MAX}{{pool=\"{name}\"}} ");
    text.lines().any(|line| line.starts_with(&series))
}

/// Sets the extras of `pool` from one statistics snapshot, and republishes
/// the pool's own gauges and health verdict (a side effect of
/// `statistics()` and `health_check()`), labelled with the pool's name.
pub fn publish(pool: &PgPool) {
    // Republishes the health gauge; the verdict itself is not needed here.
    let _verdict = pool.health_check();
    let stats = pool.statistics();
    let labels = [("pool", stats.pool.clone())];
    gauge!(LEAKS_SUSPECTED, &labels).set(stats.leaks_suspected as f64);
    counter!(LEAKS_REPORTED, &labels).absolute(stats.leaks_reported_total);
    counter!(ACQUIRE_ERRORS, &labels).absolute(stats.acquire_errors);
}

/// The `# HELP` lines of the extras (the library describes its own).
fn describe() {
    describe_gauge!(
        LEAKS_SUSPECTED,
        Unit::Count,
        "Connections lent out longer than the leak detection timeout right now."
    );
    describe_counter!(
        LEAKS_REPORTED,
        Unit::Count,
        "Potential connection leaks reported."
    );
    describe_counter!(
        ACQUIRE_ERRORS,
        Unit::Count,
        "acquire() calls that failed other than by timeout (unavailable, closed, fatal connect)."
    );
}
