//! The types inside errors, statistics, health and shutdown reports.
//!
//! Design: a user reaches these through a field or an accessor of a type
//! at the crate root (`Error::pool()` → `PoolError::Timeout(TimeoutError)`,
//! `Statistics::closed_by_reason`, `HealthStatus::pool`,
//! `ShutdownReport::forced`) and seldom writes their names; they live here
//! so the root stays the short list of types an application names.
//!
//! Invariant: each is pool-core's own type (or, for [`UnknownSslMode`] and
//! [`SqlOrStatement`], pool-pg's), re-exported unchanged: what the docs
//! of pool-core say about a field holds here.
//!
//! ```
//! use pool_pg::detail::{ConnectionError, TimeoutError};
//! use pool_pg::{Error, PoolError};
//!
//! /// The phase and the last connection failure of a timeout, if it is one.
//! fn why(error: &Error) -> Option<String> {
//!     let Some(PoolError::Timeout(timeout)) = error.pool() else {
//!         return None;
//!     };
//!     let timeout: &TimeoutError<_> = timeout;
//!     let last = timeout.last_error.as_deref().map(ConnectionError::to_string);
//!     Some(format!("{}: {}", timeout.phase, last.unwrap_or_default()))
//! }
//! # let _ = why;
//! ```

pub use crate::query::SqlOrStatement;
pub use crate::tls::UnknownSslMode;

pub use pool_core::{
    ClosedByReason, ConfigIssue, ConnectionError, DatabaseHealth, ForcedConnection, InitError,
    LatencySummary, PoolHealth, RetireReason, TimeoutError, UnavailableError,
};
