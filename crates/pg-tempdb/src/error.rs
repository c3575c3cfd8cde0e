//! The one error type of the kit.
//!
//! Every message says what failed and what to do about it, and carries the
//! evidence a test author needs without re-running: the command, its exit
//! status, the tail of its standard error and, when the server was involved,
//! the tail of the server log. Passwords never reach an error: the kit redacts
//! them from captured output before building one (see `redact`).

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting, controlling or querying a
/// [`TempDb`](crate::TempDb).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TempDbError {
    /// No directory with the PostgreSQL server binaries was found.
    #[error(
        "no PostgreSQL server binaries found (looked in PG_BINDIR, PATH, pg_config --bindir, \
         /usr/lib/postgresql/*/bin). Install them: apt-get install postgresql"
    )]
    BinariesNotFound,

    /// `PG_BINDIR` is set but does not hold a needed binary. The kit does not
    /// fall back to other places: an explicit setting that is wrong is a
    /// mistake to fix, not to hide.
    #[error(
        "PG_BINDIR={} does not contain `{missing}`; point PG_BINDIR at the directory holding \
         initdb and postgres (e.g. /usr/lib/postgresql/15/bin) or unset it",
        dir.display()
    )]
    InvalidBinDir {
        /// The value of `PG_BINDIR`.
        dir: PathBuf,
        /// The binary that is missing there.
        missing: &'static str,
    },

    /// The process runs as root and there is no `postgres` user to run the
    /// server as (PostgreSQL refuses to run as root).
    #[error(
        "running as root, but there is no `postgres` user to run the server as (PostgreSQL \
         refuses to run as root): create one with `useradd --system postgres` or run as an \
         ordinary user"
    )]
    NoServerUser,

    /// A helper command (`initdb`, `cp`, `psql`, ...) exited unsuccessfully.
    #[error("`{command}` failed ({status}){}{}", section("stderr", stderr), log_section(log_tail.as_deref()))]
    CommandFailed {
        /// The command, as a short human-readable line (never a password).
        command: String,
        /// How it ended, e.g. `exit status: 1`.
        status: String,
        /// The last lines of its standard error.
        stderr: String,
        /// The last lines of the server log, when the server was involved.
        log_tail: Option<String>,
    },

    /// The server process exited before it was ready to accept connections.
    #[error(
        "the PostgreSQL server exited during startup ({status}); see the server log{}",
        log_section(log_tail.as_deref())
    )]
    StartFailed {
        /// How the postmaster ended, e.g. `exit status: 1`.
        status: String,
        /// The last lines of the server log.
        log_tail: Option<String>,
    },

    /// An operation did not finish within its time bound.
    #[error("{operation} did not finish within {timeout:?}{}", log_section(log_tail.as_deref()))]
    Timeout {
        /// What was being waited for, e.g. `server startup`.
        operation: String,
        /// The bound that was exceeded.
        timeout: Duration,
        /// The last lines of the server log, when the server was involved.
        log_tail: Option<String>,
    },

    /// A builder setting was rejected before anything was started.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// The setting's name.
        name: String,
        /// Why it was rejected and what to do instead.
        reason: String,
    },

    /// The operation needs a running server, but it is stopped.
    #[error("cannot {operation}: the server is stopped; call `start_again()` first")]
    NotRunning {
        /// The operation that was refused.
        operation: &'static str,
    },

    /// The operation needs a responsive server, but it is paused.
    #[error("cannot {operation}: the server is paused; call `resume()` first")]
    Paused {
        /// The operation that was refused.
        operation: &'static str,
    },

    /// A command printed something the kit could not interpret.
    #[error("unexpected output from `{command}`: {output:?}")]
    UnexpectedOutput {
        /// The command that printed it.
        command: String,
        /// What it printed (trimmed).
        output: String,
    },

    /// The cross-process template cache exists but is not ours to use.
    #[error(
        "the template cache {} is not usable ({reason}); delete it, or set TMPDIR to another \
         directory",
        path.display()
    )]
    TemplateUnusable {
        /// The cache directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file-system or process operation failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the kit was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl TempDbError {
    /// True for [`TempDbError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// True when the PostgreSQL binaries are missing or `PG_BINDIR` is wrong:
    /// the environment, not the test, needs fixing.
    pub fn is_missing_binaries(&self) -> bool {
        matches!(self, Self::BinariesNotFound | Self::InvalidBinDir { .. })
    }

    /// The server log tail attached to this error, if any.
    pub fn log_tail(&self) -> Option<&str> {
        match self {
            Self::CommandFailed { log_tail, .. }
            | Self::StartFailed { log_tail, .. }
            | Self::Timeout { log_tail, .. } => log_tail.as_deref(),
            _ => None,
        }
    }

    /// Wraps an I/O error with what the kit was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// How many server log lines an error carries.
pub(crate) const LOG_TAIL_LINES: usize = 30;

/// Shorthand used throughout the crate.
pub(crate) type Result<T, E = TempDbError> = std::result::Result<T, E>;

/// Replaces every occurrence of `secret` in `text` (a no-op without a secret).
pub(crate) fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "<redacted>"),
        _ => text.to_owned(),
    }
}

/// Keeps the last `max_lines` lines of `text`, trimmed.
pub(crate) fn tail_lines(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}

fn section(title: &str, body: &str) -> String {
    if body.trim().is_empty() {
        return String::new();
    }
    let mut out = format!("\n--- {title} ---");
    for line in body.lines() {
        out.push('\n');
        out.push_str(line);
    }
    out
}

fn log_section(log_tail: Option<&str>) -> String {
    log_tail.map_or_else(String::new, |tail| section("server log (last lines)", tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_every_occurrence_of_the_secret() {
        let text = "PASSWORD 'hunter2' ... hunter2";
        assert_eq!(
            redact(text, Some("hunter2")),
            "PASSWORD '<redacted>' ... <redacted>"
        );
        assert_eq!(redact(text, None), text);
    }

    #[test]
    fn command_failure_shows_stderr_and_log_sections() {
        let err = TempDbError::CommandFailed {
            command: "psql".into(),
            status: "exit status: 1".into(),
            stderr: "ERROR: boom".into(),
            log_tail: Some("LOG: something".into()),
        };
        let text = err.to_string();
        assert!(text.starts_with("`psql` failed (exit status: 1)"), "{text}");
        assert!(text.contains("--- stderr ---\nERROR: boom"), "{text}");
        assert!(text.contains("--- server log (last lines) ---\nLOG: something"));
        assert_eq!(err.log_tail(), Some("LOG: something"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }
}
