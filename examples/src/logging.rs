//! JSON logs, one object per line, to a file or to stderr.
//!
//! Both services log with `tracing-subscriber`'s JSON formatter: the event's
//! fields flattened next to `timestamp`, `level`, `target` and `message`, so
//! a log shipper needs no parsing rules. The MCP server must keep stdout for
//! the protocol alone, so it logs to a file by default; the HTTP service logs
//! to stderr. An environment variable chooses the destination: a path
//! (appended to, created if missing) or `-` for stderr. `RUST_LOG` sets the
//! filter (default `info`).
//!
//! Secrets: the pool logs database URLs only redacted
//! (`postgres://user:***@host/db`), and the examples log nothing else that
//! could hold a password; their tests grep the captured logs to prove it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error.
    Stderr,
    /// A file, appended to.
    File(PathBuf),
}

impl LogTarget {
    /// The destination named by environment variable `var` (`-` for stderr),
    /// or `default` when it is unset or empty.
    pub fn from_env(var: &str, default: LogTarget) -> LogTarget {
        match std::env::var_os(var) {
            Some(value) if value == "-" => LogTarget::Stderr,
            Some(value) if !value.is_empty() => LogTarget::File(value.into()),
            _ => default,
        }
    }
}

impl std::fmt::Display for LogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogTarget::Stderr => f.write_str("stderr"),
            LogTarget::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Installs the global JSON subscriber writing to `target`. Fails only when
/// the log file cannot be opened; the error names the file.
pub fn init(target: &LogTarget, env_var: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter);
    let installed = match target {
        LogTarget::Stderr => builder.with_writer(io::stderr).try_init(),
        LogTarget::File(path) => {
            let file = open(path).map_err(|error| {
                format!(
                    "cannot open the log file {}: {error}. Suggestion: set {env_var} to a writable path, or to - for stderr",
                    path.display()
                )
            })?;
            builder.with_writer(Mutex::new(file)).try_init()
        }
    };
    installed.map_err(|error| format!("cannot install the log subscriber: {error}"))
}

fn open(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}
