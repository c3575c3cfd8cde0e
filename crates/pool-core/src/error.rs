//! The error model: every error says what happened, with which value, and
//! what to change.
//!
//! * [`ConfigError`]: every bad setting at once, each naming its `POOL_*`
//!   variable and the fix.
//! * [`PoolError`]: what `build()`, `acquire()` and `try_acquire()` return.
//!   A timeout is typed by [`Phase`] and carries a statistics snapshot and
//!   the last connection error; `source()` chains down to the backend error.
//! * [`ConnectionError`]: why one connection could not be opened or
//!   checked; kept as the pool's "last connection error".

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::stats::Statistics;

/// One problem with one setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConfigIssue {
    /// The configuration field (`max_size`), or `unknown`.
    pub field: &'static str,
    /// The environment variable that sets it (`POOL_MAX_SIZE`).
    pub variable: String,
    /// The offending value, as given. Never a secret.
    pub value: String,
    /// What is wrong.
    pub message: String,
    /// What to change.
    pub suggestion: String,
}

impl ConfigIssue {
    /// A new issue.
    pub fn new(
        field: &'static str,
        variable: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
        suggestion: impl Into<String>,
    ) -> Self {
        Self {
            field,
            variable: variable.into(),
            value: value.into(),
            message: message.into(),
            suggestion: suggestion.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. Suggestion: {}", self.message, self.suggestion)
    }
}

/// The configuration is invalid. Lists every problem found, not only the
/// first.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// `Ok(())` when `issues` is empty, else an error holding them all.
    pub fn from_issues(issues: Vec<ConfigIssue>) -> Result<(), ConfigError> {
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { issues })
        }
    }

    /// An error from issues known to be non-empty.
    pub(crate) fn from_nonempty(issues: Vec<ConfigIssue>) -> ConfigError {
        ConfigError { issues }
    }

    /// Every problem found.
    pub fn issues(&self) -> &[ConfigIssue] {
        &self.issues
    }

    /// Every problem found, by value (to merge with a backend's own).
    pub fn into_issues(self) -> Vec<ConfigIssue> {
        self.issues
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigIssue> for ConfigError {
    fn from(issue: ConfigIssue) -> Self {
        ConfigError {
            issues: vec![issue],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.issues.as_slice() {
            [one] => write!(f, "invalid pool configuration: {one}"),
            many => {
                write!(f, "invalid pool configuration ({} problems):", many.len())?;
                for issue in many {
                    write!(f, "\n  - {issue}")?;
                }
                Ok(())
            }
        }
    }
}

/// The step of getting a connection that took too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for a free slot (every connection was in use).
    Wait,
    /// Opening a new connection (TCP, TLS, startup, authentication).
    Connect,
    /// The liveness check of an idle connection.
    Validate,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Wait => "waiting for a free connection",
            Phase::Connect => "opening a new connection",
            Phase::Validate => "validating an idle connection",
        }
    }

    fn suggestion(self) -> &'static str {
        match self {
            Phase::Wait => {
                "return connections sooner, increase POOL_MAX_SIZE, or raise POOL_ACQUIRE_TIMEOUT_MS"
            }
            Phase::Connect => {
                "check that the database is reachable and accepting connections, or raise POOL_CREATE_TIMEOUT_MS / POOL_ACQUIRE_TIMEOUT_MS"
            }
            Phase::Validate => {
                "the database is slow to answer the liveness check; check its load, or raise POOL_VALIDATION_TIMEOUT_MS"
            }
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Wait => "wait",
            Phase::Connect => "connect",
            Phase::Validate => "validate",
        })
    }
}

/// Why one connection could not be opened or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError<E> {
    /// The backend refused or failed the connect.
    #[error("connect failed: {0}")]
    Connect(#[source] E),
    /// The connect did not finish within `create_timeout`.
    #[error("connect timed out after {} ms (POOL_CREATE_TIMEOUT_MS)", .0.as_millis())]
    ConnectTimeout(Duration),
    /// The liveness check failed.
    #[error("validation failed: {0}")]
    Validate(#[source] E),
    /// The liveness check did not answer within `validation_timeout`.
    #[error("validation timed out after {} ms (POOL_VALIDATION_TIMEOUT_MS)", .0.as_millis())]
    ValidateTimeout(Duration),
    /// The manager's `create` panicked (a bug in the `Manager`); the panic
    /// message. Counted as a failed connect and retried like one.
    #[error("connect panicked in the manager: {0} (a bug in the Manager implementation)")]
    ConnectPanicked(String),
    /// The manager's `validate` panicked (a bug in the `Manager`); the panic
    /// message. Counted as a failed validation: the connection is closed.
    #[error("validation panicked in the manager: {0} (a bug in the Manager implementation)")]
    ValidatePanicked(String),
}

impl<E> ConnectionError<E> {
    /// The phase this failure belongs to.
    pub fn phase(&self) -> Phase {
        match self {
            ConnectionError::Connect(_)
            | ConnectionError::ConnectTimeout(_)
            | ConnectionError::ConnectPanicked(_) => Phase::Connect,
            ConnectionError::Validate(_)
            | ConnectionError::ValidateTimeout(_)
            | ConnectionError::ValidatePanicked(_) => Phase::Validate,
        }
    }

    /// Whether the manager panicked (a bug in the `Manager`).
    pub fn is_panic(&self) -> bool {
        matches!(
            self,
            ConnectionError::ConnectPanicked(_) | ConnectionError::ValidatePanicked(_)
        )
    }

    /// The backend's own error, if this was not a timeout or a panic.
    pub fn backend(&self) -> Option<&E> {
        match self {
            ConnectionError::Connect(e) | ConnectionError::Validate(e) => Some(e),
            _ => None,
        }
    }
}

/// `acquire()` did not get a connection within `acquire_timeout`.
#[derive(Debug)]
#[non_exhaustive]
pub struct TimeoutError<E> {
    /// The step that was in progress when time ran out.
    pub phase: Phase,
    /// How long the caller waited.
    pub waited: Duration,
    /// The call's budget: the pool's `acquire_timeout`, or the timeout given
    /// to `Pool::acquire_timeout`.
    pub timeout: Duration,
    /// The pool's statistics at the moment of the timeout.
    pub statistics: Statistics,
    /// The most recent connection failure of the pool, if any.
    pub last_error: Option<Arc<ConnectionError<E>>>,
}

impl<E: fmt::Display> fmt::Display for TimeoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.statistics;
        write!(
            f,
            "timed out after {} ms {} (acquire_timeout {} ms; pool: {} total, {} idle, {} active, {} opening, {} waiting, max {})",
            self.waited.as_millis(),
            self.phase.describe(),
            self.timeout.as_millis(),
            s.total_connections,
            s.idle_connections,
            s.active_connections,
            s.opening_connections,
            s.waiting_requests,
            s.max_size,
        )?;
        if let Some(last) = &self.last_error {
            write!(f, "; last connection error: {last}")?;
        }
        write!(f, ". Suggestion: {}", self.phase.suggestion())
    }
}

/// The database is unavailable: the pool lost it and is reconnecting.
#[derive(Debug)]
#[non_exhaustive]
pub struct UnavailableError<E> {
    /// How long ago the pool lost the database.
    pub down_for: Duration,
    /// Reconnection probes made so far.
    pub attempts: u64,
    /// Time until the next scheduled probe (a caller's demand can bring it
    /// forward).
    pub next_attempt_in: Duration,
    /// The connection failure that is keeping the pool down.
    pub last_error: Option<Arc<ConnectionError<E>>>,
    /// The pool's statistics when the caller was turned away.
    pub statistics: Statistics,
}

impl<E: fmt::Display> fmt::Display for UnavailableError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "database unavailable: the pool lost it {:.1} s ago and is reconnecting ({} attempts so far, next in {} ms)",
            self.down_for.as_secs_f64(),
            self.attempts,
            self.next_attempt_in.as_millis()
        )?;
        if let Some(last) = &self.last_error {
            write!(f, "; last connection error: {last}")?;
        }
        write!(
            f,
            ". Suggestion: retry shortly (each request brings a reconnection forward); set POOL_WAIT_FOR_RECOVERY=true to wait up to POOL_ACQUIRE_TIMEOUT_MS instead of failing at once"
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for UnavailableError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last_error.as_deref().map(|e| e as _)
    }
}

/// `build()` could not open and validate its first `min_size` connections.
#[derive(Debug)]
#[non_exhaustive]
pub struct InitError<E> {
    /// The configured `min_size`.
    pub min_size: u32,
    /// How long the attempt took.
    pub elapsed: Duration,
    /// The first failure.
    pub cause: Arc<ConnectionError<E>>,
}

impl<E: fmt::Display> fmt::Display for InitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suggestion = match self.cause.phase() {
            Phase::Connect => {
                "check the database address, credentials and that it is running, or set POOL_MIN_SIZE=0 to start without warm connections"
            }
            _ => "check the database's health, or raise POOL_VALIDATION_TIMEOUT_MS",
        };
        write!(
            f,
            "pool initialization failed after {} ms opening min_size={} connections: {}. Suggestion: {suggestion}",
            self.elapsed.as_millis(),
            self.min_size,
            self.cause,
        )
    }
}

/// What the pool's operations return on failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError<E: std::error::Error + 'static> {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `build()` could not open its warm connections.
    #[error(transparent)]
    Init(Box<InitError<E>>),
    /// `acquire()` ran out of time; says in which phase.
    #[error(transparent)]
    Timeout(Box<TimeoutError<E>>),
    /// A connect failed in a way retrying cannot fix (see
    /// [`Manager::is_retryable`](crate::Manager::is_retryable)).
    #[error("{0}. Suggestion: check the connection settings (user, password, database name)")]
    Connection(#[source] Arc<ConnectionError<E>>),
    /// The pool lost the database and is reconnecting; no idle connection
    /// was usable. Returned at once unless `wait_for_recovery` is set.
    #[error(transparent)]
    Unavailable(Box<UnavailableError<E>>),
    /// `try_acquire()` found no idle connection.
    #[error(
        "no idle connection available without waiting ({} active of max {}). Suggestion: use acquire() to wait, or increase POOL_MAX_SIZE",
        .0.active_connections, .0.max_size
    )]
    Exhausted(Box<Statistics>),
    /// The pool was closed.
    #[error("the pool is closed. Suggestion: build a new pool; this one was shut down")]
    Closed,
}

impl<E: std::error::Error + 'static> PoolError<E> {
    /// True for a timeout of any phase.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout(_))
    }

    /// True when the pool is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, PoolError::Closed)
    }

    /// True when the database is unavailable and the pool is reconnecting.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PoolError::Unavailable(_))
    }

    /// True when `try_acquire()` found nothing idle.
    pub fn is_exhausted(&self) -> bool {
        matches!(self, PoolError::Exhausted(_))
    }

    /// True for an invalid configuration.
    pub fn is_config(&self) -> bool {
        matches!(self, PoolError::Config(_))
    }

    /// True for a failed `build()`.
    pub fn is_init(&self) -> bool {
        matches!(self, PoolError::Init(_))
    }

    /// The phase that timed out, for a timeout.
    pub fn timeout_phase(&self) -> Option<Phase> {
        match self {
            PoolError::Timeout(t) => Some(t.phase),
            _ => None,
        }
    }

    /// The statistics snapshot carried by the error, if any.
    pub fn statistics(&self) -> Option<&Statistics> {
        match self {
            PoolError::Timeout(t) => Some(&t.statistics),
            PoolError::Unavailable(u) => Some(&u.statistics),
            PoolError::Exhausted(s) => Some(s),
            _ => None,
        }
    }

    /// The connection failure behind this error, if any.
    pub fn connection_error(&self) -> Option<&ConnectionError<E>> {
        match self {
            PoolError::Timeout(t) => t.last_error.as_deref(),
            PoolError::Unavailable(u) => u.last_error.as_deref(),
            PoolError::Init(i) => Some(&i.cause),
            PoolError::Connection(c) => Some(c),
            _ => None,
        }
    }
}

// The boxed variants chain to the connection failure they carry.
impl<E: std::error::Error + 'static> std::error::Error for TimeoutError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last_error.as_deref().map(|e| e as _)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for InitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}
