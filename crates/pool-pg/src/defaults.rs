//! Every named default, limit and tuning constant, in one place.
//!
//! Design: the crate root holds only the types a user names; the numbers
//! behind the configuration live here, each a named constant whose doc
//! gives its value and reason. pool-core's (the pool's sizes and
//! durations, the limits a setting may take, the fixed tuning of
//! recovery, leak scans and recent-error windows) are re-exported beside
//! pool-pg's own (the connection defaults, the statement cache, the settle
//! time of a returned connection, the read fallback of
//! [`ReadWritePools`](crate::ReadWritePools)).
//!
//! Invariant: these are the values the code uses, not copies: a default
//! changed at its source changes here. The variable lists
//! [`POOL_VARIABLES`] and [`POOL_PG_VARIABLES`] are every `POOL_*` name
//! that [`PgConfig::from_env`](crate::PgConfig::from_env) accepts.
//!
//! ```
//! use pool_pg::defaults::{DEFAULT_MAX_SIZE, DEFAULT_STATEMENT_CACHE_SIZE};
//! use pool_pg::PoolConfig;
//!
//! assert_eq!(PoolConfig::default().max_size, DEFAULT_MAX_SIZE);
//! assert_eq!(DEFAULT_STATEMENT_CACHE_SIZE, 256);
//! ```

pub use crate::cache::DEFAULT_STATEMENT_CACHE_SIZE;
pub use crate::config::{
    DEFAULT_APPLICATION_NAME, DEFAULT_KEEPALIVES_IDLE, DEFAULT_KEEPALIVES_INTERVAL,
    DEFAULT_KEEPALIVES_RETRIES, DEFAULT_TCP_USER_TIMEOUT, MAX_STATEMENT_CACHE_SIZE,
    POOL_PG_VARIABLES,
};
pub use crate::manager::SETTLE_TIMEOUT;
pub use crate::routing::DEFAULT_READ_FALLBACK;

pub use pool_core::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CREATE_TIMEOUT, DEFAULT_HEALTH_DEGRADED_PERCENT,
    DEFAULT_HEALTH_HEALTHY_PERCENT, DEFAULT_LEAK_DETECTION_TIMEOUT, DEFAULT_MAINTENANCE_INTERVAL,
    DEFAULT_MAX_IDLE_TIME, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_LIFETIME_JITTER_PERCENT,
    DEFAULT_MAX_QUERIES, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE, DEFAULT_NAME,
    DEFAULT_RECONNECT_INITIAL_DELAY, DEFAULT_RECONNECT_MAX_DELAY, DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_VALIDATION_SKIP_WINDOW, DEFAULT_VALIDATION_TIMEOUT,
};
pub use pool_core::{
    DEMAND_PROBE_INTERVAL, LEAK_SCAN_MAX_INTERVAL, RECENT_ERROR_WINDOW, RECENT_WINDOW,
    RECOVERY_FAILURE_THRESHOLD, REPLENISH_CONCURRENCY, WARM_UP_BATCH,
};
pub use pool_core::{
    MAX_DURATION, MAX_LIFETIME_JITTER_PERCENT, MAX_NAME_LEN, MAX_POOL_SIZE, POOL_VARIABLES,
};
