//! The Prometheus exporter of the examples.
//!
//! # Design
//!
//! pool-pg's `metrics` feature records every metric at its source through
//! the [`metrics`] facade, under OpenTelemetry's `db.client.connection.*`
//! names and the library's own `pool_core.*` ones, each labelled with the
//! pool's name (`db.client.connection.pool.name` =
//! [`PoolConfig::name`](pool_pg::PoolConfig::name), `POOL_NAME`, default
//! `default`); the names are the constants of [`pool_pg::metrics`]. The
//! library never installs a recorder. This module does:
//! [`Exporter::install`] makes `metrics-exporter-prometheus` (default
//! features off: no HTTP listener, no runtime of its own) the process's
//! global recorder, with [`LATENCY_BUCKETS`] for the three time histograms
//! so they render as real Prometheus histograms (`_bucket`, `_sum`,
//! `_count`; `histogram_quantile` gives any percentile, over any window,
//! across instances), and starts a thread that runs the recorder's upkeep
//! so histogram samples never pile up between scrapes.
//!
//! The exporter renders a name with its dots as underscores
//! ([`prometheus_name`]): `db.client.connection.count{db.client.connection.pool.name}`
//! is scraped as `db_client_connection_count{db_client_connection_pool_name}`.
//!
//! # Order
//!
//! A pool built before [`Exporter::install`] records into the exporter
//! too: its first recording after the install registers its series there
//! (see `pool_core::metrics`). Its counters count from that moment.
//!
//! # Republishing
//!
//! At each scrape [`publish`] reads one `statistics()` snapshot and one
//! `health_check()` (both lock-free, no query): both republish the pool's
//! gauges from a fresh reading, and its rare-event totals (leaks, acquire
//! errors, manager panics).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use pool_pg::metrics::{ATTR_POOL_NAME, CONNECTION_MAX, CREATE_TIME, USE_TIME, WAIT_TIME};
use pool_pg::PgPool;

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
}

impl Exporter {
    /// Installs the Prometheus recorder as the process's global recorder
    /// (once; later calls return the same recorder) and starts the upkeep
    /// thread. Pools built before or after it record into it (see the
    /// module docs). Fails if another recorder was installed.
    pub fn install() -> Result<Self, BuildError> {
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        let handle = match installed.as_ref() {
            Some(handle) => handle.clone(),
            None => {
                let handle = builder()?.install_recorder()?;
                spawn_upkeep(handle.clone());
                *installed = Some(handle.clone());
                handle
            }
        };
        Ok(Self { handle })
    }

    /// Republishes `pool`'s gauges and totals and renders every metric of
    /// the process in the Prometheus text format.
    pub fn scrape(&self, pool: &PgPool) -> String {
        publish(pool);
        self.handle.render()
    }

    /// Whether `pool`'s series are in this recorder (pools are told apart
    /// by name): true once the pool recorded anything after
    /// [`install`](Exporter::install).
    pub fn records(&self, pool: &PgPool) -> bool {
        has_series(&self.handle.render(), &pool.config().name)
    }

    /// Renders every metric of the process, without publishing anything.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// `name` as the exporter renders it: every character Prometheus does not
/// allow in a name (the dots) becomes `_`.
pub fn prometheus_name(name: &str) -> String {
    name.replace('.', "_")
}

/// The Prometheus label of the pool named `pool`:
/// `db_client_connection_pool_name="<pool>"` (names are
/// `A-Z a-z 0-9 _ - .`: nothing to escape).
pub fn pool_label(pool: &str) -> String {
    format!("{}=\"{pool}\"", prometheus_name(ATTR_POOL_NAME))
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
/// the pool named `name`.
fn has_series(text: &str, name: &str) -> bool {
    let series = format!(
        "{}{{{}}} ",
        prometheus_name(CONNECTION_MAX),
        pool_label(name)
    );
    text.lines().any(|line| line.starts_with(&series))
}

/// Republishes the pool's own gauges, rare-event totals and health verdict
/// from fresh readings (a side effect of `statistics()` and
/// `health_check()`).
pub fn publish(pool: &PgPool) {
    // Republishes the health gauge; the verdict itself is not needed here.
    let _verdict = pool.health_check();
    let _statistics = pool.statistics();
}
