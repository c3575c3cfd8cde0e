//! `PoolConfig`: plain data, defaults as named constants, and `validate()`.
//!
//! Every setting has a default, a valid range and a reason, all documented on
//! the field. Nothing here panics on bad input and nothing is silently
//! replaced: [`PoolConfig::validate`] collects every problem into one
//! [`ConfigError`](crate::ConfigError) whose lines name the setting, the
//! value, and the `POOL_*` variable to change. No timeout is infinite, by
//! default or by choice: every duration has an upper bound.
//!
//! Reading the configuration from the environment lives in `env.rs`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default [`PoolConfig::name`].
pub const DEFAULT_NAME: &str = "default";
/// Longest accepted [`PoolConfig::name`], in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Default [`PoolConfig::min_size`].
pub const DEFAULT_MIN_SIZE: u32 = 2;
/// Default [`PoolConfig::max_size`].
pub const DEFAULT_MAX_SIZE: u32 = 10;
/// Largest accepted [`PoolConfig::max_size`].
pub const MAX_POOL_SIZE: u32 = 10_000;
/// Default [`PoolConfig::acquire_timeout`]: 30 s.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`PoolConfig::create_timeout`]: 10 s.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`PoolConfig::validation_timeout`]: 5 s.
pub const DEFAULT_VALIDATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`PoolConfig::validation_skip_window`]: 500 ms.
pub const DEFAULT_VALIDATION_SKIP_WINDOW: Duration = Duration::from_millis(500);
/// Default [`PoolConfig::max_lifetime`]: 30 min.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Default [`PoolConfig::max_lifetime_jitter_percent`]: 10 %.
pub const DEFAULT_MAX_LIFETIME_JITTER_PERCENT: u32 = 10;
/// Largest accepted [`PoolConfig::max_lifetime_jitter_percent`].
pub const MAX_LIFETIME_JITTER_PERCENT: u32 = 50;
/// Default [`PoolConfig::max_idle_time`]: 10 min.
pub const DEFAULT_MAX_IDLE_TIME: Duration = Duration::from_secs(10 * 60);
/// Default [`PoolConfig::max_queries`]: 50,000 statements.
pub const DEFAULT_MAX_QUERIES: u64 = 50_000;
/// Default [`PoolConfig::maintenance_interval`]: 60 s.
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// Default [`PoolConfig::health_healthy_percent`]: 80 %.
pub const DEFAULT_HEALTH_HEALTHY_PERCENT: u32 = 80;
/// Default [`PoolConfig::health_degraded_percent`]: 50 %.
pub const DEFAULT_HEALTH_DEGRADED_PERCENT: u32 = 50;
/// Default [`PoolConfig::reconnect_initial_delay`]: 1 s.
pub const DEFAULT_RECONNECT_INITIAL_DELAY: Duration = Duration::from_secs(1);
/// Default [`PoolConfig::reconnect_max_delay`]: 16 s.
pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(16);
/// Default grace period of `Pool::shutdown`: 30 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`PoolConfig::leak_detection_timeout`]: 30 s.
pub const DEFAULT_LEAK_DETECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest accepted duration for any timeout or window: 24 hours.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The pool's settings. Plain data: build it with [`Default`] and the
/// chainable setters, from `POOL_*` variables with
/// [`PoolConfig::from_env`], or deserialize it (durations in milliseconds,
/// field names suffixed `_ms`).
///
/// ```
/// use std::time::Duration;
/// use pool_core::PoolConfig;
///
/// let config = PoolConfig::default()
///     .max_size(20)
///     .acquire_timeout(Duration::from_secs(2));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolConfig {
    /// The pool's name in logs (the `pool` field of every event),
    /// statistics and metrics (the `db.client.connection.pool.name`
    /// attribute). Default `"default"`;
    /// 1 to 64 characters from `A-Z a-z 0-9 _ - .`, so it is safe as a
    /// label and in a log line. Name each pool when a service has several
    /// (e.g. `primary`, `replica`). Variable: `POOL_NAME`.
    pub name: String,
    /// Connections opened by `build()` and kept open. Default 2, range
    /// `0..=max_size`. Warm connections spare the first requests a connect.
    /// Variable: `POOL_MIN_SIZE`.
    pub min_size: u32,
    /// Upper bound on open connections, counting those still opening.
    /// Default 10, range `1..=10000`. Keep it under the server's
    /// `max_connections` divided by the number of service instances.
    /// Variable: `POOL_MAX_SIZE`.
    pub max_size: u32,
    /// How long `acquire()` may take in all: waiting for a slot, connecting
    /// and validating. Default 30 s, range 1 ms to 24 h. Variable:
    /// `POOL_ACQUIRE_TIMEOUT_MS`.
    #[serde(rename = "acquire_timeout_ms", with = "millis")]
    pub acquire_timeout: Duration,
    /// How long one whole connect may take: TCP, TLS, startup and
    /// authentication. Default 10 s, range 1 ms to 24 h. Also bounds each
    /// warm-up connection in `build()`. Variable: `POOL_CREATE_TIMEOUT_MS`.
    #[serde(rename = "create_timeout_ms", with = "millis")]
    pub create_timeout: Duration,
    /// How long the liveness check (`SELECT 1`) may take before the
    /// connection is closed as dead. Default 5 s, range 1 ms to 24 h. A ping
    /// can hang forever on a half-open socket; this is what stops it.
    /// Variable: `POOL_VALIDATION_TIMEOUT_MS`.
    #[serde(rename = "validation_timeout_ms", with = "millis")]
    pub validation_timeout: Duration,
    /// A connection last used within this window is handed out without the
    /// liveness check; one idle longer is validated first. Default 500 ms,
    /// range 0 (always validate) to 24 h. Skipping the round trip for hot
    /// connections is what keeps checkout cheap under load. Variable:
    /// `POOL_VALIDATION_SKIP_WINDOW_MS`.
    #[serde(rename = "validation_skip_window_ms", with = "millis")]
    pub validation_skip_window: Duration,
    /// A connection older than this is closed instead of being handed out
    /// or kept, checked on checkout, on return and by maintenance. Each
    /// connection's own limit is shortened by a random jitter (below) so
    /// connections opened together do not all expire together. Default
    /// 30 min, range 1 ms to 24 h: an endless lifetime keeps server-side
    /// memory bloat and stale routing (a demoted primary) forever.
    /// Variable: `POOL_MAX_CONNECTION_LIFETIME_MS`.
    #[serde(rename = "max_lifetime_ms", with = "millis")]
    pub max_lifetime: Duration,
    /// Each connection's lifetime is `max_lifetime` minus a random share of
    /// up to this many percent, so a connection never outlives
    /// `max_lifetime`. Default 10, range 0 to 50. Variable:
    /// `POOL_MAX_LIFETIME_JITTER_PERCENT`.
    pub max_lifetime_jitter_percent: u32,
    /// Idle connections beyond `min_size` that sat unused this long are
    /// closed by maintenance; the pool never shrinks below `min_size`
    /// because of idleness. Default 10 min, range 1 ms to 24 h. Variable:
    /// `POOL_MAX_IDLE_TIME_MS`.
    #[serde(rename = "max_idle_time_ms", with = "millis")]
    pub max_idle_time: Duration,
    /// A connection that has run this many statements is closed when it is
    /// returned (bounds per-session server memory such as cached plans).
    /// Default 50,000; 0 means no limit. Variable: `POOL_MAX_QUERIES`.
    pub max_queries: u64,
    /// How often the background maintenance runs: it retires expired and
    /// idle-beyond-`min_size` connections and opens connections back up to
    /// `min_size`. Default 60 s, range 1 ms to 24 h. Variable:
    /// `POOL_MAINTENANCE_INTERVAL_MS`.
    #[serde(rename = "maintenance_interval_ms", with = "millis")]
    pub maintenance_interval: Duration,
    /// `health_check()` says `healthy` when the available capacity (idle
    /// connections plus room to grow, over `max_size`) is at least this many
    /// percent and nothing failed recently. Default 80, range 1 to 100.
    /// Variable: `POOL_HEALTH_HEALTHY_PERCENT`.
    pub health_healthy_percent: u32,
    /// `health_check()` says `unhealthy` when the available capacity is
    /// under this many percent; between the two thresholds it says
    /// `degraded`. Default 50, range 0 to `health_healthy_percent`.
    /// Variable: `POOL_HEALTH_DEGRADED_PERCENT`.
    pub health_degraded_percent: u32,
    /// While the pool is `RECOVERING` (the database was lost) and no idle
    /// connection is usable, `acquire()` fails at once with
    /// `PoolError::Unavailable` (the default, `false`): a caller learns in
    /// microseconds that the database is down instead of holding a request
    /// for `acquire_timeout`. With `true` it waits for the recovery up to its
    /// deadline instead. Variable: `POOL_WAIT_FOR_RECOVERY`.
    pub wait_for_recovery: bool,
    /// First delay of the reconnect backoff after the database was lost;
    /// it doubles per attempt (±10 % jitter) up to `reconnect_max_delay`,
    /// and retries go on forever. Callers asking for connections trigger an
    /// earlier probe (at most one per 250 ms), so recovery is not bound to
    /// the backoff. Default 1 s, range 1 ms to 24 h. Variable:
    /// `POOL_RECONNECT_INITIAL_DELAY_MS`.
    #[serde(rename = "reconnect_initial_delay_ms", with = "millis")]
    pub reconnect_initial_delay: Duration,
    /// Longest delay between reconnect attempts. Default 16 s, range
    /// `reconnect_initial_delay` to 24 h. Variable:
    /// `POOL_RECONNECT_MAX_DELAY_MS`.
    #[serde(rename = "reconnect_max_delay_ms", with = "millis")]
    pub reconnect_max_delay: Duration,
    /// Whether to report connections held longer than
    /// `leak_detection_timeout` (with the file and line that acquired
    /// them). Default `true`: recording the site costs a few nanoseconds.
    /// Variable: `POOL_ENABLE_LEAK_DETECTION`.
    pub enable_leak_detection: bool,
    /// A connection held longer than this is reported once as a potential
    /// leak (never closed). Default 30 s, range 0 (off) to 24 h. Variable:
    /// `POOL_LEAK_DETECTION_TIMEOUT_MS`.
    #[serde(rename = "leak_detection_timeout_ms", with = "millis")]
    pub leak_detection_timeout: Duration,
    /// Also capture a full backtrace at each acquisition, shown in leak
    /// reports. Default `false`: capturing costs microseconds per
    /// acquisition (symbols are resolved only when a leak is reported).
    /// Variable: `POOL_LEAK_BACKTRACE`.
    pub leak_backtrace: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            min_size: DEFAULT_MIN_SIZE,
            max_size: DEFAULT_MAX_SIZE,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            validation_timeout: DEFAULT_VALIDATION_TIMEOUT,
            validation_skip_window: DEFAULT_VALIDATION_SKIP_WINDOW,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            max_lifetime_jitter_percent: DEFAULT_MAX_LIFETIME_JITTER_PERCENT,
            max_idle_time: DEFAULT_MAX_IDLE_TIME,
            max_queries: DEFAULT_MAX_QUERIES,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            health_healthy_percent: DEFAULT_HEALTH_HEALTHY_PERCENT,
            health_degraded_percent: DEFAULT_HEALTH_DEGRADED_PERCENT,
            wait_for_recovery: false,
            reconnect_initial_delay: DEFAULT_RECONNECT_INITIAL_DELAY,
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
            enable_leak_detection: true,
            leak_detection_timeout: DEFAULT_LEAK_DETECTION_TIMEOUT,
            leak_backtrace: false,
        }
    }
}

impl PoolConfig {
    /// Sets [`name`](PoolConfig::name).
    #[must_use]
    pub fn name(mut self, value: impl Into<String>) -> Self {
        self.name = value.into();
        self
    }

    /// Sets [`min_size`](PoolConfig::min_size).
    #[must_use]
    pub fn min_size(mut self, value: u32) -> Self {
        self.min_size = value;
        self
    }

    /// Sets [`max_size`](PoolConfig::max_size).
    #[must_use]
    pub fn max_size(mut self, value: u32) -> Self {
        self.max_size = value;
        self
    }

    /// Sets [`acquire_timeout`](PoolConfig::acquire_timeout).
    #[must_use]
    pub fn acquire_timeout(mut self, value: Duration) -> Self {
        self.acquire_timeout = value;
        self
    }

    /// Sets [`create_timeout`](PoolConfig::create_timeout).
    #[must_use]
    pub fn create_timeout(mut self, value: Duration) -> Self {
        self.create_timeout = value;
        self
    }

    /// Sets [`validation_timeout`](PoolConfig::validation_timeout).
    #[must_use]
    pub fn validation_timeout(mut self, value: Duration) -> Self {
        self.validation_timeout = value;
        self
    }

    /// Sets [`validation_skip_window`](PoolConfig::validation_skip_window).
    #[must_use]
    pub fn validation_skip_window(mut self, value: Duration) -> Self {
        self.validation_skip_window = value;
        self
    }

    /// Sets [`max_lifetime`](PoolConfig::max_lifetime).
    #[must_use]
    pub fn max_lifetime(mut self, value: Duration) -> Self {
        self.max_lifetime = value;
        self
    }

    /// Sets [`max_lifetime_jitter_percent`](PoolConfig::max_lifetime_jitter_percent).
    #[must_use]
    pub fn max_lifetime_jitter_percent(mut self, value: u32) -> Self {
        self.max_lifetime_jitter_percent = value;
        self
    }

    /// Sets [`max_idle_time`](PoolConfig::max_idle_time).
    #[must_use]
    pub fn max_idle_time(mut self, value: Duration) -> Self {
        self.max_idle_time = value;
        self
    }

    /// Sets [`max_queries`](PoolConfig::max_queries).
    #[must_use]
    pub fn max_queries(mut self, value: u64) -> Self {
        self.max_queries = value;
        self
    }

    /// Sets [`maintenance_interval`](PoolConfig::maintenance_interval).
    #[must_use]
    pub fn maintenance_interval(mut self, value: Duration) -> Self {
        self.maintenance_interval = value;
        self
    }

    /// Sets both health thresholds, in percent of available capacity.
    #[must_use]
    pub fn health_thresholds(mut self, healthy_percent: u32, degraded_percent: u32) -> Self {
        self.health_healthy_percent = healthy_percent;
        self.health_degraded_percent = degraded_percent;
        self
    }

    /// Sets [`wait_for_recovery`](PoolConfig::wait_for_recovery).
    #[must_use]
    pub fn wait_for_recovery(mut self, value: bool) -> Self {
        self.wait_for_recovery = value;
        self
    }

    /// Sets the reconnect backoff's first and longest delay.
    #[must_use]
    pub fn reconnect_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_initial_delay = initial;
        self.reconnect_max_delay = max;
        self
    }

    /// Sets [`leak_detection_timeout`](PoolConfig::leak_detection_timeout)
    /// (zero turns leak detection off).
    #[must_use]
    pub fn leak_detection_timeout(mut self, value: Duration) -> Self {
        self.leak_detection_timeout = value;
        self
    }

    /// Sets [`enable_leak_detection`](PoolConfig::enable_leak_detection).
    #[must_use]
    pub fn enable_leak_detection(mut self, value: bool) -> Self {
        self.enable_leak_detection = value;
        self
    }

    /// Sets [`leak_backtrace`](PoolConfig::leak_backtrace).
    #[must_use]
    pub fn leak_backtrace(mut self, value: bool) -> Self {
        self.leak_backtrace = value;
        self
    }

    /// Whether leak detection is on: enabled, with a non-zero timeout.
    pub fn leak_detection_active(&self) -> bool {
        self.enable_leak_detection && !self.leak_detection_timeout.is_zero()
    }
}

/// Serde adapter: a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
