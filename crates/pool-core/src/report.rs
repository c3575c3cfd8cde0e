//! What `shutdown()` reports: plain data, kept in the shared state so that
//! a second call returns the first call's report.

use serde::Serialize;

/// A connection still lent out when the grace period ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ForcedConnection {
    /// The connection's pool-unique id.
    pub connection_id: u64,
    /// How long it had been held, in milliseconds.
    pub held_ms: u64,
    /// Whether the manager could abort it (otherwise it closes when its
    /// holder drops it).
    pub aborted: bool,
    /// Where it was acquired (`file:line`), when leak detection is on.
    pub acquired_at: Option<String>,
}

/// What `shutdown()` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether this call did the shutdown (`false`: it was already done or
    /// in progress, and this is that shutdown's report).
    pub first: bool,
    /// Idle connections closed at once.
    pub idle_closed: u64,
    /// Lent or opening connections that came back within the grace period.
    pub returned_in_time: u64,
    /// Connections still lent at the end of the grace period.
    pub forced: Vec<ForcedConnection>,
    /// Connects (or checkout validations) still in progress at the end of
    /// the grace period, aborted.
    pub aborted_in_progress: u64,
    /// How long the shutdown took, in milliseconds.
    pub duration_ms: f64,
}
