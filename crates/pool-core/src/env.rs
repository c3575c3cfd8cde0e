//! Reading [`PoolConfig`] from `POOL_*` variables.
//!
//! Durations are plain numbers with the unit in the name
//! (`POOL_ACQUIRE_TIMEOUT_MS=2000`). Every bad variable is reported, not only
//! the first, and an unknown `POOL_*` variable is an error (with the nearest
//! known name suggested): a typo must not silently fall back to a default.
//! Tests use [`PoolConfig::from_vars`] so they never touch the process
//! environment.

use std::time::Duration;

use crate::config::{PoolConfig, MAX_DURATION};
use crate::error::{ConfigError, ConfigIssue};

/// How one variable is parsed into one field.
enum Kind {
    Count(fn(&mut PoolConfig, u64)),
    Millis(fn(&mut PoolConfig, Duration)),
    /// Whole seconds: the older spelling of a `_MS` variable, kept as an
    /// alias (see the note on [`POOL_VARIABLES`]).
    Secs(fn(&mut PoolConfig, Duration)),
    Flag(fn(&mut PoolConfig, bool)),
    Text(fn(&mut PoolConfig, String)),
}

/// Every `POOL_*` variable: name, field, parser. The one table to extend.
const SETTINGS: &[(&str, &str, Kind)] = &[
    ("POOL_NAME", "name", Kind::Text(|c, v| c.name = v)),
    (
        "POOL_MIN_SIZE",
        "min_size",
        Kind::Count(|c, v| c.min_size = saturate(v)),
    ),
    (
        "POOL_MAX_SIZE",
        "max_size",
        Kind::Count(|c, v| c.max_size = saturate(v)),
    ),
    (
        "POOL_ACQUIRE_TIMEOUT_MS",
        "acquire_timeout",
        Kind::Millis(|c, v| c.acquire_timeout = v),
    ),
    (
        "POOL_CREATE_TIMEOUT_MS",
        "create_timeout",
        Kind::Millis(|c, v| c.create_timeout = v),
    ),
    (
        "POOL_VALIDATION_TIMEOUT_MS",
        "validation_timeout",
        Kind::Millis(|c, v| c.validation_timeout = v),
    ),
    (
        "POOL_VALIDATION_SKIP_WINDOW_MS",
        "validation_skip_window",
        Kind::Millis(|c, v| c.validation_skip_window = v),
    ),
    (
        "POOL_MAX_CONNECTION_LIFETIME_MS",
        "max_lifetime",
        Kind::Millis(|c, v| c.max_lifetime = v),
    ),
    (
        "POOL_MAX_LIFETIME_JITTER_PERCENT",
        "max_lifetime_jitter_percent",
        Kind::Count(|c, v| c.max_lifetime_jitter_percent = saturate(v)),
    ),
    (
        "POOL_MAX_IDLE_TIME_MS",
        "max_idle_time",
        Kind::Millis(|c, v| c.max_idle_time = v),
    ),
    (
        "POOL_MAX_QUERIES",
        "max_queries",
        Kind::Count(|c, v| c.max_queries = v),
    ),
    (
        "POOL_MAINTENANCE_INTERVAL_MS",
        "maintenance_interval",
        Kind::Millis(|c, v| c.maintenance_interval = v),
    ),
    (
        "POOL_HEALTH_HEALTHY_PERCENT",
        "health_healthy_percent",
        Kind::Count(|c, v| c.health_healthy_percent = saturate(v)),
    ),
    (
        "POOL_HEALTH_DEGRADED_PERCENT",
        "health_degraded_percent",
        Kind::Count(|c, v| c.health_degraded_percent = saturate(v)),
    ),
    (
        "POOL_WAIT_FOR_RECOVERY",
        "wait_for_recovery",
        Kind::Flag(|c, v| c.wait_for_recovery = v),
    ),
    (
        "POOL_RECONNECT_INITIAL_DELAY_MS",
        "reconnect_initial_delay",
        Kind::Millis(|c, v| c.reconnect_initial_delay = v),
    ),
    (
        "POOL_RECONNECT_MAX_DELAY_MS",
        "reconnect_max_delay",
        Kind::Millis(|c, v| c.reconnect_max_delay = v),
    ),
    (
        "POOL_ENABLE_LEAK_DETECTION",
        "enable_leak_detection",
        Kind::Flag(|c, v| c.enable_leak_detection = v),
    ),
    (
        "POOL_LEAK_DETECTION_TIMEOUT_MS",
        "leak_detection_timeout",
        Kind::Millis(|c, v| c.leak_detection_timeout = v),
    ),
    (
        "POOL_LEAK_DETECTION_TIMEOUT",
        "leak_detection_timeout",
        Kind::Secs(|c, v| c.leak_detection_timeout = v),
    ),
    (
        "POOL_LEAK_BACKTRACE",
        "leak_backtrace",
        Kind::Flag(|c, v| c.leak_backtrace = v),
    ),
];

/// Every variable [`PoolConfig::from_env`] understands.
///
/// `POOL_LEAK_DETECTION_TIMEOUT` (whole seconds) is the first spelling of
/// `POOL_LEAK_DETECTION_TIMEOUT_MS`, accepted as an alias so configurations
/// written for it keep working; setting both is an error.
pub const POOL_VARIABLES: &[&str] = &[
    "POOL_NAME",
    "POOL_MIN_SIZE",
    "POOL_MAX_SIZE",
    "POOL_ACQUIRE_TIMEOUT_MS",
    "POOL_CREATE_TIMEOUT_MS",
    "POOL_VALIDATION_TIMEOUT_MS",
    "POOL_VALIDATION_SKIP_WINDOW_MS",
    "POOL_MAX_CONNECTION_LIFETIME_MS",
    "POOL_MAX_LIFETIME_JITTER_PERCENT",
    "POOL_MAX_IDLE_TIME_MS",
    "POOL_MAX_QUERIES",
    "POOL_MAINTENANCE_INTERVAL_MS",
    "POOL_HEALTH_HEALTHY_PERCENT",
    "POOL_HEALTH_DEGRADED_PERCENT",
    "POOL_WAIT_FOR_RECOVERY",
    "POOL_RECONNECT_INITIAL_DELAY_MS",
    "POOL_RECONNECT_MAX_DELAY_MS",
    "POOL_ENABLE_LEAK_DETECTION",
    "POOL_LEAK_DETECTION_TIMEOUT_MS",
    "POOL_LEAK_DETECTION_TIMEOUT",
    "POOL_LEAK_BACKTRACE",
];

/// Pairs of variables that set the same field: setting both is an error.
const ALIASES: &[(&str, &str)] = &[(
    "POOL_LEAK_DETECTION_TIMEOUT",
    "POOL_LEAK_DETECTION_TIMEOUT_MS",
)];

/// A value too large for a `u32` field stays too large (and fails
/// validation) instead of wrapping.
fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl PoolConfig {
    /// Reads the configuration from the process environment: defaults,
    /// overridden by every `POOL_*` variable that is set, then validated.
    /// A `POOL_*` variable that is not valid UTF-8 is reported, not a panic.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        let mut issues = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str().filter(|k| k.starts_with("POOL_")) else {
                continue;
            };
            match value.into_string() {
                Ok(value) => vars.push((key.to_owned(), value)),
                Err(_) => issues.push(ConfigIssue::new(
                    "unknown",
                    key,
                    "<not UTF-8>",
                    format!("{key} is not valid UTF-8"),
                    format!("set {key} to a plain number"),
                )),
            }
        }
        match Self::from_vars(vars) {
            Ok(config) => ConfigError::from_issues(issues).map(|()| config),
            Err(more) => {
                issues.extend(more.into_issues());
                Err(ConfigError::from_nonempty(issues))
            }
        }
    }

    /// Reads the configuration from key/value pairs, as if they were the
    /// environment. Keys that do not start with `POOL_` are ignored.
    ///
    /// ```
    /// use pool_core::PoolConfig;
    ///
    /// let config = PoolConfig::from_vars([("POOL_MAX_SIZE", "20")]).unwrap();
    /// assert_eq!(config.max_size, 20);
    ///
    /// let err = PoolConfig::from_vars([("POOL_MAX_SIZE", "1"), ("POOL_MIN_SIZE", "2")]).unwrap_err();
    /// assert!(err.to_string().contains("increase POOL_MAX_SIZE or reduce POOL_MIN_SIZE"));
    /// ```
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::from_vars_with_known(vars, &[])
    }

    /// Like [`from_vars`](PoolConfig::from_vars), but accepts the extra
    /// `POOL_*` names in `also_known` without reporting them as unknown (a
    /// backend crate reads those itself).
    pub fn from_vars_with_known<I, K, V>(vars: I, also_known: &[&str]) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = PoolConfig::default();
        let mut issues = Vec::new();
        let mut unparsed: Vec<&'static str> = Vec::new();
        let mut aliased: Vec<&'static str> = Vec::new();
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref().trim());
            if let Some(name) = ALIASES
                .iter()
                .flat_map(|(alias, variable)| [*alias, *variable])
                .find(|name| *name == key)
            {
                aliased.push(name);
            }
            if !key.starts_with("POOL_") || also_known.contains(&key) {
                continue;
            }
            let applied = match SETTINGS.iter().find(|(name, _, _)| *name == key) {
                Some((name, field, Kind::Count(set))) => {
                    parse_count(name, field, value).map(|v| set(&mut config, v))
                }
                Some((name, field, Kind::Millis(set))) => {
                    parse_ms(name, field, value).map(|v| set(&mut config, v))
                }
                Some((name, field, Kind::Secs(set))) => {
                    parse_secs(name, field, value).map(|v| set(&mut config, v))
                }
                Some((name, field, Kind::Flag(set))) => {
                    parse_flag(name, field, value).map(|v| set(&mut config, v))
                }
                // Checked by `validate` below, with the other ranges.
                Some((_, _, Kind::Text(set))) => {
                    set(&mut config, value.to_owned());
                    Ok(())
                }
                None => Err(unknown_variable(key, also_known)),
            };
            if let Err(issue) = applied {
                unparsed.push(issue.field);
                issues.push(issue);
            }
        }
        for (alias, variable) in ALIASES {
            if aliased.contains(alias) && aliased.contains(variable) {
                let field = SETTINGS
                    .iter()
                    .find(|(name, _, _)| name == variable)
                    .map_or("unknown", |(_, field, _)| *field);
                issues.push(ConfigIssue::new(
                    field,
                    *alias,
                    "<both set>",
                    format!("{alias} and {variable} both set the same setting"),
                    format!("unset {alias} (whole seconds) and keep {variable} (milliseconds)"),
                ));
            }
        }
        // Relations between settings are only judged on values that parsed:
        // a bad POOL_MAX_SIZE must not also produce a misleading
        // "max_size (10) must be >= min_size" line about the default.
        if let Err(invalid) = config.validate() {
            issues.extend(
                invalid
                    .into_issues()
                    .into_iter()
                    .filter(|issue| !unparsed.contains(&issue.field)),
            );
        }
        ConfigError::from_issues(issues).map(|()| config)
    }
}

/// A whole number for `variable`, or an issue that says "out of range"
/// for one too large for a `u64` and "not a whole number{unit}" otherwise
/// (`unit`: "" or " of milliseconds"...), with `fix` as the suggestion.
fn parse_whole(
    variable: &str,
    field: &'static str,
    value: &str,
    unit: &str,
    range_note: &str,
    fix: String,
) -> Result<u64, ConfigIssue> {
    value.parse::<u64>().map_err(|error| {
        let problem = if *error.kind() == std::num::IntErrorKind::PosOverflow {
            format!("{variable} ({value:?}) is out of range{range_note}")
        } else {
            format!("{variable} ({value:?}) is not a whole number{unit}")
        };
        ConfigIssue::new(field, variable, value, problem, fix)
    })
}

fn parse_count(variable: &str, field: &'static str, value: &str) -> Result<u64, ConfigIssue> {
    parse_whole(
        variable,
        field,
        value,
        "",
        "",
        format!("set {variable} to a whole number such as 10"),
    )
}

fn parse_flag(variable: &str, field: &'static str, value: &str) -> Result<bool, ConfigIssue> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigIssue::new(
            field,
            variable,
            value,
            format!("{variable} ({value:?}) is not true or false"),
            format!("set {variable}=true or {variable}=false"),
        )),
    }
}

fn parse_ms(variable: &str, field: &'static str, value: &str) -> Result<Duration, ConfigIssue> {
    let range_note = format!(" (at most {} ms)", MAX_DURATION.as_millis());
    parse_whole(
        variable,
        field,
        value,
        " of milliseconds",
        &range_note,
        format!("set {variable} to milliseconds without a unit, e.g. {variable}=5000"),
    )
    .map(Duration::from_millis)
}

fn parse_secs(variable: &str, field: &'static str, value: &str) -> Result<Duration, ConfigIssue> {
    parse_whole(
        variable,
        field,
        value,
        " of seconds",
        "",
        format!("set {variable} to whole seconds, e.g. {variable}=30 (or use {variable}_MS)"),
    )
    .map(Duration::from_secs)
}

/// The value of an unknown variable is never kept: it may be a secret
/// (`POOL_PASSWORD=...`).
fn unknown_variable(variable: &str, also_known: &[&str]) -> ConfigIssue {
    let known: Vec<&str> = POOL_VARIABLES.iter().chain(also_known).copied().collect();
    let nearest = known
        .iter()
        .min_by_key(|candidate| edit_distance(variable, candidate))
        .copied()
        .unwrap_or("POOL_MAX_SIZE");
    ConfigIssue::new(
        "unknown",
        variable,
        "<not shown>",
        format!("{variable} is not a setting of this pool"),
        format!(
            "did you mean {nearest}? Known variables: {}; unset {variable} otherwise",
            known.join(", ")
        ),
    )
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}
