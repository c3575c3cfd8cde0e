//! Configuration: defaults, `POOL_*` parsing that reports every problem at
//! once, and messages that name the variable, the value and the fix.

use std::time::Duration;

use pool_core::{PoolConfig, MAX_DURATION, POOL_VARIABLES};

#[test]
fn defaults_are_valid_and_no_timeout_is_infinite() {
    let config = PoolConfig::default();
    config.validate().unwrap();
    assert_eq!((config.min_size, config.max_size), (2, 10));
    for timeout in [
        config.acquire_timeout,
        config.create_timeout,
        config.validation_timeout,
    ] {
        assert!(!timeout.is_zero() && timeout <= MAX_DURATION);
    }
}

#[test]
fn every_pool_variable_is_read() {
    let config = PoolConfig::from_vars([
        ("POOL_MIN_SIZE", "1"),
        ("POOL_MAX_SIZE", "7"),
        ("POOL_ACQUIRE_TIMEOUT_MS", "1500"),
        ("POOL_CREATE_TIMEOUT_MS", "2500"),
        ("POOL_VALIDATION_TIMEOUT_MS", "300"),
        ("POOL_VALIDATION_SKIP_WINDOW_MS", "0"),
        ("POOL_MAX_CONNECTION_LIFETIME_MS", "60000"),
        ("POOL_MAX_LIFETIME_JITTER_PERCENT", "20"),
        ("POOL_MAX_IDLE_TIME_MS", "30000"),
        ("POOL_MAX_QUERIES", "0"),
        ("POOL_MAINTENANCE_INTERVAL_MS", "1000"),
        ("POOL_HEALTH_HEALTHY_PERCENT", "90"),
        ("POOL_HEALTH_DEGRADED_PERCENT", "40"),
        ("POOL_WAIT_FOR_RECOVERY", "true"),
        ("POOL_RECONNECT_INITIAL_DELAY_MS", "500"),
        ("POOL_RECONNECT_MAX_DELAY_MS", "8000"),
        ("POOL_ENABLE_LEAK_DETECTION", "false"),
        ("POOL_LEAK_DETECTION_TIMEOUT_MS", "0"),
        ("POOL_LEAK_BACKTRACE", "true"),
        ("PATH", "/usr/bin"),
    ])
    .unwrap();
    assert_eq!((config.min_size, config.max_size), (1, 7));
    assert_eq!(config.acquire_timeout, Duration::from_millis(1500));
    assert_eq!(config.create_timeout, Duration::from_millis(2500));
    assert_eq!(config.validation_timeout, Duration::from_millis(300));
    assert_eq!(config.validation_skip_window, Duration::ZERO);
    assert_eq!(config.max_lifetime, Duration::from_secs(60));
    assert_eq!(config.max_lifetime_jitter_percent, 20);
    assert_eq!(config.max_idle_time, Duration::from_secs(30));
    assert_eq!(config.max_queries, 0);
    assert_eq!(config.maintenance_interval, Duration::from_secs(1));
    assert_eq!(
        (
            config.health_healthy_percent,
            config.health_degraded_percent
        ),
        (90, 40)
    );
    assert!(config.wait_for_recovery);
    assert_eq!(config.reconnect_initial_delay, Duration::from_millis(500));
    assert_eq!(config.reconnect_max_delay, Duration::from_secs(8));
    assert!(!config.enable_leak_detection && config.leak_backtrace);
    assert_eq!(config.leak_detection_timeout, Duration::ZERO);
    assert_eq!(POOL_VARIABLES.len(), 21);
}

#[test]
fn every_bad_variable_is_reported_at_once() {
    let err = PoolConfig::from_vars([
        ("POOL_MAX_SIZE", "ten"),
        ("POOL_ACQUIRE_TIMEOUT_MS", "5s"),
        ("POOL_CREATE_TIMEOUT_MS", "0"),
        ("POOL_MIN_SZIE", "3"),
    ])
    .unwrap_err();
    let variables: Vec<&str> = err.issues().iter().map(|i| i.variable.as_str()).collect();
    assert_eq!(
        variables,
        [
            "POOL_MAX_SIZE",
            "POOL_ACQUIRE_TIMEOUT_MS",
            "POOL_MIN_SZIE",
            "POOL_CREATE_TIMEOUT_MS"
        ]
    );
    let text = err.to_string();
    assert!(text.contains("4 problems"), "{text}");
    assert!(
        text.contains("POOL_MAX_SIZE (\"ten\") is not a whole number"),
        "{text}"
    );
    assert!(
        text.contains("POOL_ACQUIRE_TIMEOUT_MS=5000"),
        "units go in the name: {text}"
    );
    assert!(text.contains("did you mean POOL_MIN_SIZE?"), "{text}");
    assert!(
        text.contains("create_timeout (0 ms) must be between 1 ms"),
        "{text}"
    );
}

#[test]
fn out_of_range_recycling_and_health_settings_are_reported() {
    let err = PoolConfig::from_vars([
        ("POOL_MAX_LIFETIME_JITTER_PERCENT", "80"),
        ("POOL_MAX_CONNECTION_LIFETIME_MS", "0"),
        ("POOL_HEALTH_DEGRADED_PERCENT", "95"),
    ])
    .unwrap_err();
    let variables: Vec<&str> = err.issues().iter().map(|i| i.variable.as_str()).collect();
    assert_eq!(
        variables,
        [
            "POOL_MAX_CONNECTION_LIFETIME_MS",
            "POOL_MAX_LIFETIME_JITTER_PERCENT",
            "POOL_HEALTH_DEGRADED_PERCENT"
        ]
    );
}

#[test]
fn a_flag_accepts_true_and_false_words_and_rejects_others() {
    for (text, expected) in [("true", true), ("0", false), ("YES", true), ("off", false)] {
        let config = PoolConfig::from_vars([("POOL_WAIT_FOR_RECOVERY", text)]).unwrap();
        assert_eq!(config.wait_for_recovery, expected, "{text}");
    }
    let err = PoolConfig::from_vars([("POOL_WAIT_FOR_RECOVERY", "sometimes")]).unwrap_err();
    assert!(
        err.to_string().contains("POOL_WAIT_FOR_RECOVERY=true"),
        "{err}"
    );
}

#[test]
fn a_size_relation_names_both_variables_and_the_fix() {
    let err = PoolConfig::from_vars([("POOL_MAX_SIZE", "1"), ("POOL_MIN_SIZE", "2")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool configuration: max_size (1) must be >= min_size (2). Suggestion: increase POOL_MAX_SIZE or reduce POOL_MIN_SIZE"
    );
}

#[test]
fn an_unparsable_size_does_not_also_produce_a_misleading_relation_error() {
    let err = PoolConfig::from_vars([("POOL_MAX_SIZE", "x"), ("POOL_MIN_SIZE", "50")]).unwrap_err();
    assert_eq!(err.issues().len(), 1, "{err}");
}

#[test]
fn oversized_pools_and_durations_are_rejected_not_clamped() {
    let config = PoolConfig::default()
        .max_size(1_000_000)
        .acquire_timeout(Duration::from_secs(10 * 24 * 3600));
    let err = config.validate().unwrap_err();
    assert_eq!(err.issues().len(), 2, "{err}");
    assert!(err.to_string().contains("POOL_ACQUIRE_TIMEOUT_MS"));
}

#[test]
fn backend_variables_can_be_declared_known() {
    let config = PoolConfig::from_vars_with_known(
        [("POOL_APPLICATION_NAME", "svc")],
        &["POOL_APPLICATION_NAME"],
    )
    .unwrap();
    assert_eq!(config, PoolConfig::default());
}

#[test]
fn the_configuration_round_trips_through_serde_with_millisecond_fields() {
    let config = PoolConfig::default().acquire_timeout(Duration::from_millis(1234));
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["acquire_timeout_ms"], 1234);
    let back: PoolConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, config);
    let partial: PoolConfig = serde_json::from_str(r#"{"max_size": 3}"#).unwrap();
    assert_eq!(partial.max_size, 3);
    assert!(serde_json::from_str::<PoolConfig>(r#"{"max_sise": 3}"#).is_err());
}

#[test]
fn the_pool_name_comes_from_pool_name_and_must_be_a_safe_label() {
    let config = PoolConfig::from_vars([("POOL_NAME", "replica-1")]).unwrap();
    assert_eq!(config.name, "replica-1");
    assert_eq!(PoolConfig::default().name, "default");
    for bad in ["", "has space", "quote\"", &"x".repeat(65)] {
        let err = PoolConfig::from_vars([("POOL_NAME", bad)]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("POOL_NAME") && text.contains("A-Z a-z 0-9"),
            "{bad:?}: {text}"
        );
    }
}

#[test]
fn reconnect_delays_of_zero_are_refused_because_they_would_reconnect_in_a_hot_loop() {
    let err = PoolConfig::from_vars([
        ("POOL_RECONNECT_INITIAL_DELAY_MS", "0"),
        ("POOL_RECONNECT_MAX_DELAY_MS", "0"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("reconnect_initial_delay (0 ms) must be between 1 ms"),
        "{text}"
    );
    assert!(
        text.contains("reconnect_max_delay (0 ms) must be between 1 ms"),
        "{text}"
    );
    assert!(text.contains("POOL_RECONNECT_INITIAL_DELAY_MS"), "{text}");
}

#[test]
fn a_max_reconnect_delay_below_the_initial_one_is_refused() {
    let err = PoolConfig::default()
        .reconnect_delays(Duration::from_secs(10), Duration::from_secs(1))
        .validate()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "reconnect_max_delay (1000 ms) must be >= reconnect_initial_delay (10000 ms)"
        ),
        "{text}"
    );
    assert!(
        text.contains("increase POOL_RECONNECT_MAX_DELAY_MS"),
        "{text}"
    );
}

#[test]
fn huge_delays_are_refused_instead_of_panicking_later() {
    let config = PoolConfig::default()
        .reconnect_delays(Duration::MAX, Duration::MAX)
        .leak_detection_timeout(Duration::MAX);
    let err = config.validate().unwrap_err();
    let fields: Vec<&str> = err.issues().iter().map(|issue| issue.field).collect();
    assert_eq!(
        fields,
        [
            "reconnect_initial_delay",
            "reconnect_max_delay",
            "leak_detection_timeout"
        ],
        "{err}"
    );
}

#[test]
fn a_leak_detection_timeout_of_zero_means_off_and_is_valid() {
    let config = PoolConfig::from_vars([("POOL_LEAK_DETECTION_TIMEOUT_MS", "0")]).unwrap();
    assert!(!config.leak_detection_active());
    let err = PoolConfig::from_vars([("POOL_LEAK_DETECTION_TIMEOUT_MS", "86400001")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("leak_detection_timeout (86400001 ms) must be between 0 ms and 86400000 ms"),
        "{err}"
    );
}

#[test]
fn a_number_too_large_for_any_setting_is_out_of_range_not_a_non_number() {
    let err = PoolConfig::from_vars([
        ("POOL_ACQUIRE_TIMEOUT_MS", "99999999999999999999999"),
        ("POOL_MAX_QUERIES", "184467440737095516160"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("POOL_ACQUIRE_TIMEOUT_MS (\"99999999999999999999999\") is out of range"),
        "{text}"
    );
    assert!(
        text.contains("POOL_MAX_QUERIES (\"184467440737095516160\") is out of range"),
        "{text}"
    );
    assert!(!text.contains("not a whole number"), "{text}");
}

#[test]
fn an_unknown_variable_is_reported_without_its_value() {
    let err = PoolConfig::from_vars([("POOL_PASSWORD", "hunter2-secret")]).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("POOL_PASSWORD is not a setting"), "{text}");
    assert!(
        !text.contains("hunter2-secret"),
        "the value may be a secret: {text}"
    );
}

#[test]
fn the_seconds_spelling_of_the_leak_timeout_is_an_alias_and_not_both() {
    let config = PoolConfig::from_vars([("POOL_LEAK_DETECTION_TIMEOUT", "45")]).unwrap();
    assert_eq!(config.leak_detection_timeout, Duration::from_secs(45));
    let err = PoolConfig::from_vars([
        ("POOL_LEAK_DETECTION_TIMEOUT", "45"),
        ("POOL_LEAK_DETECTION_TIMEOUT_MS", "45000"),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("POOL_LEAK_DETECTION_TIMEOUT and POOL_LEAK_DETECTION_TIMEOUT_MS both set"),
        "{err}"
    );
}
