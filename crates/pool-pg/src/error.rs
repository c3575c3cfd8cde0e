//! [`PgError`]: a failed connect or liveness check, said in full.
//!
//! tokio-postgres keeps the useful part of an error in its `source()`: its
//! own `Display` is a bare kind (`db error`, `error connecting to server`).
//! The pool prints its backend error with `Display`, so `PgError` spells
//! out the whole chain, the server it talked to, the SQLSTATE, and what to
//! change: `could not connect to 127.0.0.1:5432 (database "app", user
//! "app"): password authentication failed for user "app" (SQLSTATE 28P01);
//! check the user name and password in DATABASE_URL`.
//!
//! It also decides which failures are worth retrying ([`PgError::is_retryable`]):
//! a refused or reset connection, a timeout, a server starting up or out of
//! connection slots may heal; a wrong password, an unknown role or database,
//! a missing privilege or an invalid configuration will not.
//!
//! No part of it contains the password: the server is described by host,
//! port, database and user only, and PostgreSQL never echoes a password.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::sync::Arc;

use tokio_postgres::error::SqlState;

/// What the pool was doing when PostgreSQL failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Opening a connection (TCP, TLS, startup, authentication).
    Connect,
    /// The liveness check, `SELECT 1`.
    Validate,
    /// The `after_connect` hook on a new connection.
    AfterConnect,
}

/// What failed underneath a [`PgError`].
#[derive(Debug)]
pub(crate) enum Cause {
    /// tokio-postgres: TLS, startup, authentication, a query.
    Postgres(tokio_postgres::Error),
    /// The pool's own socket: resolving, connecting, the session check.
    Io(io::Error),
}

/// A failed connect or liveness check of a [`PgManager`](crate::backend::PgManager).
///
/// Its `Display` is the whole story (see the module docs); `source()` is the
/// [`tokio_postgres::Error`] or, for a failure of the socket itself
/// (resolving, connecting, a server that does not match
/// `target_session_attrs`), the [`io::Error`].
#[derive(Debug)]
#[non_exhaustive]
pub struct PgError {
    operation: Operation,
    /// `host:port (database "..", user "..")`; never the password.
    server: Arc<str>,
    error: Cause,
}

impl PgError {
    pub(crate) fn new(
        operation: Operation,
        server: Arc<str>,
        error: tokio_postgres::Error,
    ) -> Self {
        Self::from_cause(operation, server, Cause::Postgres(error))
    }

    pub(crate) fn from_cause(operation: Operation, server: Arc<str>, error: Cause) -> Self {
        Self {
            operation,
            server,
            error,
        }
    }

    /// The tokio-postgres error, unless the pool's socket itself failed.
    pub fn postgres(&self) -> Option<&tokio_postgres::Error> {
        match &self.error {
            Cause::Postgres(error) => Some(error),
            Cause::Io(_) => None,
        }
    }

    /// The tokio-postgres error, by value, unless the pool's socket itself
    /// failed.
    pub fn into_postgres(self) -> Option<tokio_postgres::Error> {
        match self.error {
            Cause::Postgres(error) => Some(error),
            Cause::Io(_) => None,
        }
    }

    /// The SQLSTATE the server sent, if the server refused.
    pub fn code(&self) -> Option<&SqlState> {
        self.postgres().and_then(tokio_postgres::Error::code)
    }

    /// Whether a new attempt may succeed. `false` for authentication and
    /// authorization failures (SQLSTATE class 28: wrong password, unknown
    /// role, no `pg_hba.conf` entry), an unknown database (3D000), a missing
    /// `CONNECT` privilege (42501), and configurations tokio-postgres
    /// rejects before asking the server (such as a password the server
    /// asks for but the URL lacks). `true` for everything else: refused or
    /// reset connections, timeouts, a server shutting down or starting up
    /// (57P0x), too many connections (53300), connection exceptions (08xxx).
    pub fn is_retryable(&self) -> bool {
        match &self.error {
            Cause::Postgres(error) => is_retryable(error),
            Cause::Io(error) => error.kind() != io::ErrorKind::InvalidInput,
        }
    }

    /// Whether the failure says the server is not there at all: the TCP
    /// connect was refused (nothing listens on the port), or the Unix
    /// socket does not exist. One such failure with no connection open
    /// moves the pool to `RECOVERING` at once; other failures (too many
    /// connections, a server starting up, a timeout) only after
    /// `RECOVERY_FAILURE_THRESHOLD` failures in a row.
    pub fn is_server_down(&self) -> bool {
        matches!(
            self.io_kind(),
            Some(io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound)
        )
    }

    fn io_kind(&self) -> Option<io::ErrorKind> {
        match &self.error {
            Cause::Io(error) => Some(error.kind()),
            Cause::Postgres(error) => error
                .source()
                .and_then(|source| source.downcast_ref::<io::Error>())
                .map(io::Error::kind),
        }
    }

    /// Whether this was the liveness check rather than a connect.
    pub fn is_validation(&self) -> bool {
        self.operation == Operation::Validate
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operation {
            Operation::Connect => write!(f, "could not connect to {}: ", self.server)?,
            Operation::Validate => write!(f, "SELECT 1 failed on {}: ", self.server)?,
            Operation::AfterConnect => {
                write!(f, "the after_connect hook failed on {}: ", self.server)?
            }
        }
        let hint = match &self.error {
            Cause::Postgres(error) => {
                write!(f, "{}", describe(error))?;
                hint(error)
            }
            Cause::Io(error) => {
                write!(f, "{error}")?;
                io_hint(error)
            }
        };
        if let Some(hint) = hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.error {
            Cause::Postgres(error) => Some(error),
            Cause::Io(error) => Some(error),
        }
    }
}

/// The error in one line: the server's message and SQLSTATE, or the
/// client's error with all its causes.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `Display` of the tokio-postgres error kinds raised without asking the
/// server, for a configuration it cannot use. The kind itself is private;
/// its name is stable within tokio-postgres 0.7 (see the unit test below).
const CLIENT_SIDE_FATAL: &[&str] = &[
    "invalid configuration",
    "invalid connection string",
    "authentication error",
];

fn is_retryable(error: &tokio_postgres::Error) -> bool {
    if let Some(code) = error.code() {
        let code = code.code();
        return !(code.starts_with("28") || code == "3D000" || code == "42501");
    }
    !CLIENT_SIDE_FATAL.contains(&error.to_string().as_str())
}

/// What to change, when the error says.
fn hint(error: &tokio_postgres::Error) -> Option<&'static str> {
    if let Some(code) = error.code() {
        return Some(match code.code() {
            "28P01" => "check the user name and password in DATABASE_URL",
            "28000" => {
                "check the user name in DATABASE_URL and that the server's pg_hba.conf admits this user from this host"
            }
            c if c.starts_with("28") => "check the credentials in DATABASE_URL",
            "3D000" => "check the database name in DATABASE_URL, or create the database",
            "42501" => "grant CONNECT on the database to this user, or connect as another user",
            "53300" => {
                "the server has no free connection slots: lower POOL_MAX_SIZE (summed over every instance) or raise the server's max_connections"
            }
            "57P03" => "the server is starting up or shutting down; the pool retries",
            "57P01" | "57P02" => {
                "the server ended the connection (shutdown or pg_terminate_backend); the pool replaces it"
            }
            _ => return None,
        });
    }
    if let Some(hint) = error
        .source()
        .and_then(|source| source.downcast_ref::<io::Error>())
        .and_then(io_hint)
    {
        return Some(hint);
    }
    if describe(error).ends_with("password missing") {
        Some(
            "the server asks for a password: add it to DATABASE_URL (postgres://user:password@host:5432/dbname)",
        )
    } else if error.to_string() == "invalid configuration" {
        Some("fix the connection settings in DATABASE_URL")
    } else {
        None
    }
}

/// What to change after a failure of the socket itself.
fn io_hint(error: &io::Error) -> Option<&'static str> {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => {
            Some("check that PostgreSQL is running and listens on this host and port")
        }
        io::ErrorKind::NotFound if error.to_string().contains(".s.PGSQL.") => Some(
            "no server socket in that directory: check that PostgreSQL is running and the host directory and port in DATABASE_URL",
        ),
        io::ErrorKind::TimedOut => Some(
            "the host did not answer; check the address and any firewall, or raise POOL_CREATE_TIMEOUT_MS",
        ),
        io::ErrorKind::PermissionDenied if error.to_string().contains("does not allow writes") => Some(
            "the server is read-only (a standby or a demoted primary); list the primary in DATABASE_URL, or use target_session_attrs=any",
        ),
        _ if error.to_string().contains("failed to lookup address") => {
            Some("check the host name in DATABASE_URL")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error() -> tokio_postgres::Error {
        // A parse failure is the one client-side error we can make offline.
        "postgres://app@db:notaport/x"
            .parse::<tokio_postgres::Config>()
            .unwrap_err()
    }

    #[test]
    fn client_side_configuration_errors_are_not_retryable() {
        let error = config_error();
        assert_eq!(error.to_string(), "invalid connection string");
        assert!(!is_retryable(&error));
    }

    #[test]
    fn the_display_spells_out_the_cause_and_the_server() {
        let error = PgError::new(
            Operation::Connect,
            Arc::from("db:5432 (database \"x\", user \"app\")"),
            config_error(),
        );
        let text = error.to_string();
        assert!(
            text.starts_with("could not connect to db:5432 (database \"x\", user \"app\"): invalid connection string: invalid value for option `port`"),
            "{text}"
        );
        assert!(!error.is_retryable());
        assert!(!error.is_validation());
    }
}
