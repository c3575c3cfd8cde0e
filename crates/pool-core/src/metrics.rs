//! Metrics at the source, through the [`metrics`](https://docs.rs/metrics)
//! facade (cargo feature `metrics`; without it every recording method is an
//! empty inline function and this module only holds the names below).
//!
//! # Names
//!
//! The pool's own series follow OpenTelemetry's semantic conventions for
//! database client connection pools (`db.client.connection.*`), with their
//! attributes: [`ATTR_POOL_NAME`] (`db.client.connection.pool.name`, the
//! pool's [`name`](crate::PoolConfig::name)) on every series, and
//! [`ATTR_STATE`] (`db.client.connection.state` = `idle` | `used`) on
//! [`CONNECTION_COUNT`]. What the conventions do not define is recorded in
//! this crate's own namespace, `pool_core.*`, with the same pool-name
//! attribute: connections being opened, connects, closes by reason, the
//! pool's state and health, and a few rare events. A Prometheus exporter
//! replaces the dots with underscores (`db_client_connection_count`); with
//! its recommended naming it also appends `_seconds` to the three
//! histograms and `_total` to the counters.
//!
//! # Design
//!
//! Every handle is registered with the labels it always carries, so
//! recording is one call on a ready handle: no registry lookup and no
//! allocation on the hot path. The pool never installs a recorder; the
//! service does (e.g. `metrics-exporter-prometheus`), before or after
//! building the pool:
//!
//! * The handles are registered when the pool is built, with the recorder
//!   current then. Each recording first asks the facade which recorder is
//!   current (a thread-local read and an atomic load) and, if it is another
//!   one (a recorder installed after the pool was built, or a thread's
//!   local recorder), registers a second set with it once, replays the
//!   sizes, the state and the health verdict, and records there from then
//!   on. A third recorder replaces the second set.
//! * Counters and histograms are recorded where the event happens, so they
//!   are exact: [`CREATED`] moves in the same step as
//!   `Statistics::connections_created`. On a recorder installed after the
//!   pool was built they count from the moment it is first seen, as after
//!   a process restart.
//! * The connection gauges are published from the one atomic word that
//!   holds them, right after every change. Two threads changing it at once
//!   may publish in the opposite order, leaving a gauge one step stale until
//!   the next change; every maintenance round, `statistics()` and
//!   `health_check()` republish them from a fresh reading, which bounds
//!   that. The same rounds publish the rare events ([`LEAKS_REPORTED`],
//!   [`ACQUIRE_ERRORS`], [`MANAGER_PANICS`], [`BACKGROUND_RESTARTS`]) as
//!   totals from the statistics, and [`LEAKS_SUSPECTED`].
//!
//! `docs/operations/connection_pool_monitoring.md` lists every series with
//! its Prometheus name and the statistic it agrees with.

/// Attribute on every series: the pool's
/// [`name`](crate::PoolConfig::name) (`POOL_NAME`).
pub const ATTR_POOL_NAME: &str = "db.client.connection.pool.name";
/// Attribute of [`CONNECTION_COUNT`]: `idle` or `used`.
pub const ATTR_STATE: &str = "db.client.connection.state";

/// `db.client.connection.count{pool.name, state}` (gauge, connections):
/// open connections by [`ATTR_STATE`], `idle` (in the idle queue) or
/// `used` (lent out). Connections still opening are in
/// [`CONNECTION_OPENING`].
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// `db.client.connection.idle.max{pool.name}` (gauge): the most idle
/// connections the pool keeps, `max_size` (nothing caps idle connections
/// below the pool's size).
pub const CONNECTION_IDLE_MAX: &str = "db.client.connection.idle.max";
/// `db.client.connection.idle.min{pool.name}` (gauge): `min_size`, the
/// connections maintenance keeps open.
pub const CONNECTION_IDLE_MIN: &str = "db.client.connection.idle.min";
/// `db.client.connection.max{pool.name}` (gauge): `max_size`.
pub const CONNECTION_MAX: &str = "db.client.connection.max";
/// `db.client.connection.pending_requests{pool.name}` (gauge): callers
/// queued in `acquire()`.
pub const PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
/// `db.client.connection.timeouts{pool.name}` (counter): `acquire()` calls
/// that timed out, any phase.
pub const TIMEOUTS: &str = "db.client.connection.timeouts";
/// `db.client.connection.create_time{pool.name}` (histogram, seconds):
/// successful connects.
pub const CREATE_TIME: &str = "db.client.connection.create_time";
/// `db.client.connection.wait_time{pool.name}` (histogram, seconds): the
/// time each successful `acquire()` took (0 on the lock-free fast path).
pub const WAIT_TIME: &str = "db.client.connection.wait_time";
/// `db.client.connection.use_time{pool.name}` (histogram, seconds): how
/// long callers held a connection, from checkout to return.
pub const USE_TIME: &str = "db.client.connection.use_time";

/// `pool_core.connection.opening{pool.name}` (gauge): connections being
/// opened (reserved capacity, not yet idle or used).
pub const CONNECTION_OPENING: &str = "pool_core.connection.opening";
/// `pool_core.connection.created{pool.name}` (counter): connections opened.
pub const CREATED: &str = "pool_core.connection.created";
/// `pool_core.connection.create_failures{pool.name}` (counter): connects
/// that failed or timed out.
pub const CREATE_FAILURES: &str = "pool_core.connection.create_failures";
/// `pool_core.connection.closed{pool.name, reason}` (counter): connections
/// closed, by [`RetireReason`](crate::RetireReason) name.
pub const CLOSED: &str = "pool_core.connection.closed";
/// `pool_core.state{pool.name, state}` (gauge): 1 for the current
/// [`PoolState`](crate::PoolState), 0 for the others.
pub const POOL_STATE: &str = "pool_core.state";
/// `pool_core.health{pool.name, status}` (gauge): 1 for the last health
/// verdict (`healthy` | `degraded` | `unhealthy`), 0 for the others.
pub const POOL_HEALTH: &str = "pool_core.health";
/// `pool_core.leaks.reported{pool.name}` (counter): potential leaks
/// reported (`Statistics::leaks_reported_total`).
pub const LEAKS_REPORTED: &str = "pool_core.leaks.reported";
/// `pool_core.leaks.suspected{pool.name}` (gauge): connections lent out
/// longer than the leak detection timeout right now
/// (`Statistics::leaks_suspected`).
pub const LEAKS_SUSPECTED: &str = "pool_core.leaks.suspected";
/// `pool_core.acquire.errors{pool.name}` (counter): `acquire()` failures
/// other than timeouts (`Statistics::acquire_errors`).
pub const ACQUIRE_ERRORS: &str = "pool_core.acquire.errors";
/// `pool_core.manager.panics{pool.name}` (counter): panics caught in the
/// manager's methods (`Statistics::manager_panics`).
pub const MANAGER_PANICS: &str = "pool_core.manager.panics";
/// `pool_core.background.restarts{pool.name}` (counter): background tasks
/// started again after their runtime was lost
/// (`Statistics::background_restarts`).
pub const BACKGROUND_RESTARTS: &str = "pool_core.background.restarts";

/// The rare events' totals and the suspected leaks, published at each
/// republishing round.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read only with the feature
pub(crate) struct Totals {
    pub(crate) leaks_reported: u64,
    pub(crate) leaks_suspected: u64,
    pub(crate) acquire_errors: u64,
    pub(crate) manager_panics: u64,
    pub(crate) background_restarts: u64,
}

#[cfg(feature = "metrics")]
mod enabled;
#[cfg(feature = "metrics")]
mod handles;
#[cfg(feature = "metrics")]
pub(crate) use enabled::Metrics;

#[cfg(not(feature = "metrics"))]
mod disabled;
#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Metrics;
