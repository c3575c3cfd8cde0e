//! [`TempDbBuilder`]: what to start, validated before anything is started.
//!
//! The builder is plain data. [`TempDbBuilder::start`] validates everything
//! first (settings the kit relies on cannot be overridden, names must be
//! well formed) so a mistake is reported as [`TempDbError::InvalidSetting`]
//! instead of as a server that fails to boot.

use std::fmt;

use crate::error::{Result, TempDbError};
use crate::server::TempDb;
use crate::template::SUPERUSER;

/// The role tests connect as by default: the bootstrap superuser.
pub const DEFAULT_USER: &str = SUPERUSER;
/// The database tests connect to by default.
pub const DEFAULT_DBNAME: &str = "postgres";

/// Settings every server gets, before the builder's own (which may override
/// them). Each is there for speed or for isolation from other servers.
pub(crate) const BASE_SETTINGS: &[(&str, &str)] = &[
    // Only loopback TCP: never reachable from outside the machine.
    ("listen_addresses", "127.0.0.1"),
    // Throwaway data: durability only costs time.
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    // The server log goes to the file behind `TempDb::log_path()`.
    ("logging_collector", "off"),
    ("log_destination", "stderr"),
    // So `max_connections(n)` means n connections for every role, and small
    // values (1..=3) are accepted.
    ("superuser_reserved_connections", "0"),
];

/// Settings that the kit itself relies on; `setting()` may not change them.
const RESERVED_SETTINGS: &[&str] = &[
    "port",
    "listen_addresses",
    "unix_socket_directories",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "logging_collector",
    "log_destination",
];

/// Configures and starts a [`TempDb`]; get one from [`TempDb::builder`].
///
/// ```no_run
/// # fn main() -> Result<(), pg_tempdb::TempDbError> {
/// let db = pg_tempdb::TempDb::builder()
///     .user("app")
///     .password("secret")
///     .max_connections(20)
///     .setting("statement_timeout", "5s")
///     .start()?;
/// assert_eq!(db.user(), "app");
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct TempDbBuilder {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) dbname: Option<String>,
    pub(crate) settings: Vec<(String, String)>,
    /// The certificate and key for `ssl = on`; see [`TempDbBuilder::tls`].
    pub(crate) tls: Option<crate::tls::TlsFiles>,
}

impl TempDbBuilder {
    /// The role that [`TempDb::url`] and [`TempDb::config`] connect as.
    ///
    /// Default: [`DEFAULT_USER`] (`postgres`, the superuser). Any other name
    /// is created as an ordinary role with `LOGIN CREATEDB`, allowed to
    /// create objects in the default database's `public` schema, and owning
    /// the database set with [`dbname`](Self::dbname) if there is one.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Requires this password for TCP connections (SCRAM-SHA-256), and gives
    /// it to the [`user`](Self::user).
    ///
    /// Default: no password, every connection is trusted. The superuser
    /// always keeps trust authentication over the server's private Unix
    /// socket, which the kit's admin helpers use, so they need no password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The database that [`TempDb::url`] and [`TempDb::config`] name; created
    /// (owned by the user) unless it is the default, [`DEFAULT_DBNAME`].
    pub fn dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = Some(dbname.into());
        self
    }

    /// The server's `max_connections`. Default: PostgreSQL's, 100.
    ///
    /// The kit sets `superuser_reserved_connections = 0`, so this is exactly
    /// the number of connections any role can open. The kit's admin helpers
    /// ([`TempDb::execute`] and friends) need a free slot too.
    pub fn max_connections(self, max_connections: u32) -> Self {
        self.setting("max_connections", max_connections.to_string())
    }

    /// Any other server setting, passed as `-c name=value` after the kit's
    /// own defaults (so it overrides them; a later call overrides an earlier
    /// one). The settings the kit depends on (`port`, `listen_addresses`,
    /// `unix_socket_directories`, the file locations and the logging
    /// destination) are refused.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Serves TLS (`ssl = on`) with this certificate and private key, both
    /// PEM files. They are copied into the data directory when the server
    /// is created (the key owned by the server user, mode 0600, as
    /// PostgreSQL demands), so the originals may be deleted afterwards.
    /// Plain connections are still accepted; clients choose with `sslmode`.
    ///
    /// The certificate should be issued by a CA the client trusts, with
    /// `basicConstraints = CA:FALSE` and a `subjectAltName` for the names
    /// clients connect with (`localhost`, `127.0.0.1`): rustls rejects a
    /// self-signed certificate used as its own CA.
    pub fn tls(
        mut self,
        cert_pem: impl Into<std::path::PathBuf>,
        key_pem: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls = Some(crate::tls::TlsFiles {
            cert: cert_pem.into(),
            key: key_pem.into(),
        });
        for (name, value) in crate::tls::TLS_SETTINGS {
            self = self.setting(*name, *value);
        }
        self
    }

    /// Validates the configuration, then starts the server. Blocking: about
    /// 0.2 s (plus one `psql` run when a user, password or database must be
    /// created); the first start on a machine adds 1–2 s for `initdb`.
    pub fn start(self) -> Result<TempDb> {
        self.validate()?;
        TempDb::launch(self)
    }

    pub(crate) fn user_or_default(&self) -> &str {
        self.user.as_deref().unwrap_or(DEFAULT_USER)
    }

    pub(crate) fn dbname_or_default(&self) -> &str {
        self.dbname.as_deref().unwrap_or(DEFAULT_DBNAME)
    }

    /// The base settings followed by the builder's, as `(name, value)`.
    pub(crate) fn server_settings(&self) -> Vec<(String, String)> {
        BASE_SETTINGS
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .chain(self.settings.iter().cloned())
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let invalid = |name: &str, reason: &str| {
            Err(TempDbError::InvalidSetting {
                name: name.to_owned(),
                reason: reason.to_owned(),
            })
        };
        for (label, value) in [("user", &self.user), ("dbname", &self.dbname)] {
            if let Some(value) = value {
                if value.is_empty() || value.contains('\0') || value.len() > 63 {
                    return invalid(label, "must be 1 to 63 bytes long, without NUL");
                }
            }
        }
        if let Some(password) = &self.password {
            if password.is_empty() || password.contains('\0') {
                return invalid(
                    "password",
                    "must be non-empty and without NUL (omit it for trust authentication)",
                );
            }
        }
        for (name, value) in &self.settings {
            let well_formed = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !well_formed {
                return invalid(name, "a setting name is letters, digits, `_` and `.`");
            }
            if RESERVED_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
                return invalid(
                    name,
                    "the kit manages this setting itself; use the TempDb accessors instead",
                );
            }
            if value.contains('\0') {
                return invalid(name, "the value contains a NUL byte");
            }
        }
        if let Some((_, value)) = self
            .settings
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case("max_connections"))
        {
            if value.parse::<u32>().map_or(true, |n| n == 0) {
                return invalid("max_connections", "must be a positive integer");
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TempDbBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempDbBuilder")
            .field("user", &self.user_or_default())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname_or_default())
            .field("settings", &self.settings)
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(builder: TempDbBuilder) -> String {
        match builder.validate() {
            Err(TempDbError::InvalidSetting { name, .. }) => name,
            other => panic!("expected InvalidSetting, got {other:?}"),
        }
    }

    #[test]
    fn settings_the_kit_relies_on_are_refused() {
        assert_eq!(
            rejected(TempDbBuilder::default().setting("Port", "5")),
            "Port"
        );
        assert_eq!(
            rejected(TempDbBuilder::default().setting("unix_socket_directories", "/tmp")),
            "unix_socket_directories"
        );
    }

    #[test]
    fn malformed_names_and_values_are_refused() {
        assert_eq!(
            rejected(TempDbBuilder::default().setting("a=b", "1")),
            "a=b"
        );
        assert_eq!(
            rejected(TempDbBuilder::default().max_connections(0)),
            "max_connections"
        );
        assert_eq!(rejected(TempDbBuilder::default().password("")), "password");
        assert_eq!(rejected(TempDbBuilder::default().user("")), "user");
    }

    #[test]
    fn builder_settings_follow_the_base_settings() {
        let settings = TempDbBuilder::default()
            .setting("fsync", "on")
            .server_settings();
        let fsync: Vec<_> = settings.iter().filter(|(n, _)| n == "fsync").collect();
        assert_eq!(fsync.len(), 2);
        assert_eq!(settings.last().map(|(_, v)| v.as_str()), Some("on"));
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let text = format!("{:?}", TempDbBuilder::default().password("hunter2"));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
