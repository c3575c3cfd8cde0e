//! `PoolConfig::validate`: the range of every setting and the relations
//! between settings, all reported at once.
//!
//! Each problem becomes one [`ConfigIssue`] naming the setting, the value,
//! and the `POOL_*` variable to change; nothing is clamped or replaced.

use std::time::Duration;

use crate::config::{
    PoolConfig, MAX_DURATION, MAX_LIFETIME_JITTER_PERCENT, MAX_NAME_LEN, MAX_POOL_SIZE,
};
use crate::error::{ConfigError, ConfigIssue};

impl PoolConfig {
    /// Checks every setting and every relation between settings, and
    /// reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        if !is_valid_name(&self.name) {
            issues.push(ConfigIssue::new(
                "name",
                "POOL_NAME",
                format!("{:?}", self.name.chars().take(80).collect::<String>()),
                format!(
                    "name must be 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 _ - . (it is a metrics label and a log field)"
                ),
                "set POOL_NAME to a short identifier such as `primary` or `replica`".to_owned(),
            ));
        }
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
        check_duration(&mut issues, "max_lifetime", self.max_lifetime, false);
        check_duration(&mut issues, "max_idle_time", self.max_idle_time, false);
        check_duration(
            &mut issues,
            "maintenance_interval",
            self.maintenance_interval,
            false,
        );
        check_duration(
            &mut issues,
            "reconnect_initial_delay",
            self.reconnect_initial_delay,
            false,
        );
        check_duration(
            &mut issues,
            "reconnect_max_delay",
            self.reconnect_max_delay,
            false,
        );
        if self.reconnect_max_delay < self.reconnect_initial_delay
            && !self.reconnect_max_delay.is_zero()
            && self.reconnect_initial_delay <= MAX_DURATION
        {
            issues.push(ConfigIssue::new(
                "reconnect_max_delay",
                "POOL_RECONNECT_MAX_DELAY_MS",
                format!("{}ms", self.reconnect_max_delay.as_millis()),
                format!(
                    "reconnect_max_delay ({} ms) must be >= reconnect_initial_delay ({} ms)",
                    self.reconnect_max_delay.as_millis(),
                    self.reconnect_initial_delay.as_millis()
                ),
                "increase POOL_RECONNECT_MAX_DELAY_MS or reduce POOL_RECONNECT_INITIAL_DELAY_MS"
                    .to_owned(),
            ));
        }
        // Zero documentedly turns leak detection off.
        check_duration(
            &mut issues,
            "leak_detection_timeout",
            self.leak_detection_timeout,
            true,
        );
        if self.max_lifetime_jitter_percent > MAX_LIFETIME_JITTER_PERCENT {
            issues.push(ConfigIssue::new(
                "max_lifetime_jitter_percent",
                "POOL_MAX_LIFETIME_JITTER_PERCENT",
                self.max_lifetime_jitter_percent.to_string(),
                format!(
                    "max_lifetime_jitter_percent ({}) must be between 0 and {MAX_LIFETIME_JITTER_PERCENT}",
                    self.max_lifetime_jitter_percent
                ),
                format!("set POOL_MAX_LIFETIME_JITTER_PERCENT between 0 and {MAX_LIFETIME_JITTER_PERCENT}"),
            ));
        }
        if self.health_healthy_percent == 0 || self.health_healthy_percent > 100 {
            issues.push(ConfigIssue::new(
                "health_healthy_percent",
                "POOL_HEALTH_HEALTHY_PERCENT",
                self.health_healthy_percent.to_string(),
                format!(
                    "health_healthy_percent ({}) must be between 1 and 100",
                    self.health_healthy_percent
                ),
                "set POOL_HEALTH_HEALTHY_PERCENT between 1 and 100 (default 80)".to_owned(),
            ));
        } else if self.health_degraded_percent > self.health_healthy_percent {
            issues.push(ConfigIssue::new(
                "health_degraded_percent",
                "POOL_HEALTH_DEGRADED_PERCENT",
                self.health_degraded_percent.to_string(),
                format!(
                    "health_degraded_percent ({}) must be <= health_healthy_percent ({})",
                    self.health_degraded_percent, self.health_healthy_percent
                ),
                "reduce POOL_HEALTH_DEGRADED_PERCENT or increase POOL_HEALTH_HEALTHY_PERCENT"
                    .to_owned(),
            ));
        }
        ConfigError::from_issues(issues)
    }
}

/// The `POOL_*` variable that sets a duration field.
pub(crate) fn duration_variable(field: &str) -> String {
    match field {
        "max_lifetime" => "POOL_MAX_CONNECTION_LIFETIME_MS".to_owned(),
        _ => format!("POOL_{}_MS", field.to_ascii_uppercase()),
    }
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

/// A name that is safe as a Prometheus label value and in a log line.
fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
