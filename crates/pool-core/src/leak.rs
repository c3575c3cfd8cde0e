//! Leak detection: where each connection was acquired, and a scan that
//! reports connections held too long.
//!
//! `acquire()` is a `#[track_caller]` function, so the caller's file and
//! line (`std::panic::Location`) are known at no cost; with
//! `leak_backtrace` on, a full backtrace is captured too (microseconds; its
//! symbols are resolved only if a leak is reported). The site goes into the
//! connection's seat (`seats.rs`).
//!
//! A scan, every `min(10 s, leak_detection_timeout)` inside the maintenance
//! task, logs one `WARN` per lending held longer than
//! `leak_detection_timeout` (`Potential connection leak detected: <id>`,
//! with `held_duration_seconds`, `acquired_at` and the backtrace), counts
//! it, and never touches the connection. When a reported connection comes
//! back, one `INFO` line says so and after how long. A holder can exempt a
//! legitimately long lending (a `LISTEN` loop, a migration) with
//! `PooledConnection::mark_long_held`.

use std::time::Duration;

use crate::manager::Manager;
use crate::shared::Shared;
use crate::site::Site;

/// Longest time between two leak scans: 10 s.
pub const LEAK_SCAN_MAX_INTERVAL: Duration = Duration::from_secs(10);

/// How often the leak scan runs for `timeout`.
pub(crate) fn scan_interval(timeout: Duration) -> Duration {
    timeout
        .min(LEAK_SCAN_MAX_INTERVAL)
        .max(Duration::from_millis(1))
}

/// One leak scan: reports every lending held past the timeout, once.
pub(crate) fn scan<M: Manager>(shared: &Shared<M>) {
    let config = &shared.config;
    if !config.leak_detection_active() {
        return;
    }
    let now_ms = shared.now_ms();
    let timeout_ms = u64::try_from(config.leak_detection_timeout.as_millis()).unwrap_or(u64::MAX);
    for suspect in shared.ledger.seats.scan_leaks(now_ms, timeout_ms) {
        shared.ledger.stats.leaks_reported.incr();
        let acquired_at = suspect
            .site
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string);
        let backtrace = suspect.site.as_ref().and_then(Site::backtrace);
        tracing::warn!(
            target: "pool_core::leak",
            pool = %config.name,
            connection_id = suspect.connection_id,
            held_duration_seconds = suspect.held_ms as f64 / 1000.0,
            acquired_at = %acquired_at,
            backtrace = backtrace.as_deref().unwrap_or("(not captured; set POOL_LEAK_BACKTRACE=true)"),
            leak_detection_timeout_ms = timeout_ms,
            "Potential connection leak detected: {}",
            suspect.connection_id
        );
    }
}

/// Called when a lending that was reported comes back.
pub(crate) fn unleaked(pool: &str, connection_id: u64, held: Duration, site: Option<&Site>) {
    tracing::info!(
        target: "pool_core::leak",
        pool,
        connection_id,
        held_duration_seconds = held.as_secs_f64(),
        acquired_at = %site.map_or_else(|| "unknown".to_owned(), ToString::to_string),
        "Previously reported leaked connection {connection_id} was returned after {:.1} s (unleaked)",
        held.as_secs_f64()
    );
}
