//! `PoolConfig`: plain data, defaults as named constants, and `validate()`.
//!
//! Every setting has a default, a valid range and a reason, all documented on
//! the field. Nothing here panics on bad input and nothing is silently
//! replaced: [`PoolConfig::validate`] collects every problem into one
//! [`ConfigError`] whose lines name the setting, the value, and the
//! `POOL_*` variable to change. No timeout is infinite, by default or by
//! choice: every duration has an upper bound.
//!
//! Reading the configuration from the environment lives in `env.rs`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, ConfigIssue};

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
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            min_size: DEFAULT_MIN_SIZE,
            max_size: DEFAULT_MAX_SIZE,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            validation_timeout: DEFAULT_VALIDATION_TIMEOUT,
            validation_skip_window: DEFAULT_VALIDATION_SKIP_WINDOW,
        }
    }
}

impl PoolConfig {
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

    /// Checks every setting and every relation between settings, and
    /// reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        if self.max_size == 0 || self.max_size > MAX_POOL_SIZE {
            issues.push(ConfigIssue::new(
                "max_size",
                "POOL_MAX_SIZE",
                self.max_size.to_string(),
                format!(
                    "max_size ({}) must be between 1 and {MAX_POOL_SIZE}",
                    self.max_size
                ),
                format!("set POOL_MAX_SIZE to a value between 1 and {MAX_POOL_SIZE}"),
            ));
        }
        if self.min_size > self.max_size {
            issues.push(ConfigIssue::new(
                "max_size",
                "POOL_MAX_SIZE",
                self.max_size.to_string(),
                format!(
                    "max_size ({}) must be >= min_size ({})",
                    self.max_size, self.min_size
                ),
                "increase POOL_MAX_SIZE or reduce POOL_MIN_SIZE".to_owned(),
            ));
        }
        check_duration(&mut issues, "acquire_timeout", self.acquire_timeout, false);
        check_duration(&mut issues, "create_timeout", self.create_timeout, false);
        check_duration(
            &mut issues,
            "validation_timeout",
            self.validation_timeout,
            false,
        );
        check_duration(
            &mut issues,
            "validation_skip_window",
            self.validation_skip_window,
            true,
        );
        ConfigError::from_issues(issues)
    }
}

/// The `POOL_*` variable that sets a duration field.
pub(crate) fn duration_variable(field: &str) -> String {
    format!("POOL_{}_MS", field.to_ascii_uppercase())
}

fn check_duration(
    issues: &mut Vec<ConfigIssue>,
    field: &'static str,
    value: Duration,
    zero_ok: bool,
) {
    let variable = duration_variable(field);
    let too_small = !zero_ok && value.is_zero();
    if too_small || value > MAX_DURATION {
        let low = if zero_ok { 0 } else { 1 };
        issues.push(ConfigIssue::new(
            field,
            variable.clone(),
            format!("{}ms", value.as_millis()),
            format!(
                "{field} ({} ms) must be between {low} ms and {} ms",
                value.as_millis(),
                MAX_DURATION.as_millis()
            ),
            format!(
                "set {variable} to a number of milliseconds between {low} and {}",
                MAX_DURATION.as_millis()
            ),
        ));
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
