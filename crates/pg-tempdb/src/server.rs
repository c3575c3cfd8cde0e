//! [`TempDb`]: one throwaway server, from a copy of the template to a deleted
//! directory.
//!
//! A `TempDb` is its directory ([`Layout`]), its connection parameters, and
//! its state: `None` while stopped, the [`Postmaster`] while running or
//! paused (the controls and their state machine are in `control.rs`; the
//! admin SQL helpers in `admin.rs`).
//!
//! Invariant: once a `TempDb` exists, dropping it leaves nothing behind: a
//! paused server is resumed, the server is shut down (immediate mode, then
//! SIGKILL after a deadline; only our own child is ever signalled) and the
//! directory is deleted, also while a test panics. `Drop` never panics; it
//! logs what it could not do. Everything that can fail before the `TempDb`
//! exists is cleaned up by the [`TempDir`] it would have owned.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tempfile::TempDir;

use crate::builder::TempDbBuilder;
use crate::error::{redact, tail_lines, Result, TempDbError, LOG_TAIL_LINES};
use crate::layout::{self, Layout};
use crate::postmaster::Postmaster;
use crate::template::{self, Template};

/// The address the server listens on; the only TCP address it listens on.
pub const HOST: &str = "127.0.0.1";

/// Bound for the immediate shutdown in `Drop`, before SIGKILL.
const DROP_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A throwaway PostgreSQL server, stopped and deleted on drop.
///
/// All methods block (they run and wait for processes) and every wait is
/// bounded, so they are safe to call from inside a tokio runtime; they just
/// occupy the calling thread meanwhile. Controls are serialized: a `TempDb`
/// may be shared between threads (it is `Send + Sync`).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let db = pg_tempdb::TempDb::start()?;
/// let (client, connection) = db.config().connect(tokio_postgres::NoTls).await?;
/// tokio::spawn(connection);
/// let row = client.query_one("SELECT 1::int4", &[]).await?;
/// assert_eq!(row.get::<_, i32>(0), 1);
/// # Ok(()) }
/// ```
pub struct TempDb {
    pub(crate) template: Arc<Template>,
    /// `None` only during `Drop`.
    root: Option<TempDir>,
    pub(crate) data_dir: PathBuf,
    pub(crate) socket_dir: PathBuf,
    pub(crate) log_path: PathBuf,
    /// Chosen by the first start, then fixed.
    pub(crate) port: u16,
    user: String,
    password: Option<String>,
    dbname: String,
    /// The `-c` settings, in order (later ones win).
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) state: Mutex<Option<Postmaster>>,
}

impl TempDb {
    /// Starts a server with the defaults: user `postgres` (superuser),
    /// database `postgres`, trust authentication.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// A builder for anything but the defaults.
    pub fn builder() -> TempDbBuilder {
        TempDbBuilder::default()
    }

    pub(crate) fn launch(builder: TempDbBuilder) -> Result<Self> {
        let template = template::shared()?;
        let layout = Layout::create(&template, builder.password.is_some())?;
        if let Some(tls) = &builder.tls {
            tls.install(&template.install, &layout.data_dir)?;
        }
        // From here on, `Drop` cleans up whatever fails.
        let mut db = Self {
            settings: builder.server_settings(),
            user: builder.user_or_default().to_owned(),
            dbname: builder.dbname_or_default().to_owned(),
            password: builder.password.clone(),
            template,
            root: Some(layout.root),
            data_dir: layout.data_dir,
            socket_dir: layout.socket_dir,
            log_path: layout.log_path,
            port: 0,
            state: Mutex::new(None),
        };
        db.boot_on_a_free_port()?;
        db.provision(&builder)?;
        Ok(db)
    }

    /// A connection URL: `postgres://user[:password]@127.0.0.1:port/dbname`,
    /// with user, password and database name percent-encoded.
    pub fn url(&self) -> String {
        self.url_at(self.port)
    }

    /// [`TempDb::url`] with another port, e.g. a fault proxy's.
    pub(crate) fn url_at(&self, port: u16) -> String {
        let password = self
            .password
            .as_deref()
            .map(|p| format!(":{}", percent_encode(p)))
            .unwrap_or_default();
        format!(
            "postgres://{}{password}@{HOST}:{}/{}",
            percent_encode(&self.user),
            port,
            percent_encode(&self.dbname)
        )
    }

    /// A client configuration for this server: host, port, user, database
    /// and (if set) password. Add your own timeouts or application name.
    pub fn config(&self) -> tokio_postgres::Config {
        self.config_at(self.port)
    }

    /// [`TempDb::config`] with another port, e.g. a fault proxy's. (Calling
    /// `port()` on a finished config would add a second port, not replace.)
    pub(crate) fn config_at(&self, port: u16) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(HOST)
            .port(port)
            .user(&self.user)
            .dbname(&self.dbname);
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// The TCP port. It stays the same across stop, start and restart.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP host, always [`HOST`] (`127.0.0.1`).
    pub fn host(&self) -> &str {
        HOST
    }

    /// The role clients connect as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password clients need over TCP, if one was set.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The database clients connect to.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The data directory (PGDATA). Its parent, the server's own directory,
    /// is under `PG_TEMPDB_DIR`, `/dev/shm` or the system temp directory
    /// (see the crate docs) and is deleted on drop.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server log file (all server output, across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the server log, for test diagnostics, with
    /// the password redacted. Empty if the log cannot be read.
    pub fn log_tail(&self, lines: usize) -> String {
        const MAX_READ: u64 = 1 << 20;
        let mut bytes = Vec::new();
        let read = File::open(&self.log_path).and_then(|mut file| {
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(MAX_READ)))?;
            file.read_to_end(&mut bytes)
        });
        if let Err(e) = read {
            tracing::debug!(target: "pg_tempdb", error = %e, "could not read the server log");
        }
        redact(
            &tail_lines(&String::from_utf8_lossy(&bytes), lines),
            self.password(),
        )
    }

    /// The PostgreSQL version of the server binaries, e.g. `15.18`.
    pub fn server_version(&self) -> &str {
        &self.template.install.version
    }

    // ----- internals -------------------------------------------------------

    /// Adds the server log tail to an error that lacks one.
    pub(crate) fn with_log_tail(&self, error: TempDbError) -> TempDbError {
        match error {
            TempDbError::Timeout {
                operation,
                timeout,
                log_tail: None,
            } => TempDbError::Timeout {
                operation,
                timeout,
                log_tail: Some(self.log_tail(LOG_TAIL_LINES)),
            },
            other => self.redact_error(other),
        }
    }

    pub(crate) fn redact_error(&self, error: TempDbError) -> TempDbError {
        let secret = self.password();
        match error {
            TempDbError::StartFailed { status, log_tail } => TempDbError::StartFailed {
                status,
                log_tail: log_tail.map(|t| redact(&t, secret)),
            },
            TempDbError::Timeout {
                operation,
                timeout,
                log_tail,
            } => TempDbError::Timeout {
                operation,
                timeout,
                log_tail: log_tail.map(|t| redact(&t, secret)),
            },
            other => other,
        }
    }

    pub(crate) fn root_path(&self) -> &Path {
        // `root` is only taken in `Drop`; the data dir's parent is the same.
        self.root.as_ref().map_or_else(
            || self.data_dir.parent().unwrap_or(&self.data_dir),
            TempDir::path,
        )
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut postmaster) = state.take() {
            postmaster.stop_for_drop(DROP_STOP_TIMEOUT);
        }
        if let Some(root) = self.root.take() {
            layout::remove_patiently(root);
        }
    }
}

impl fmt::Debug for TempDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempDb")
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("data_dir", &self.data_dir)
            // `try_lock`: formatting must never wait for (or deadlock on) a
            // control that is running.
            .field(
                "postmaster_pid",
                &self
                    .state
                    .try_lock()
                    .ok()
                    .and_then(|state| state.as_ref().map(Postmaster::pid)),
            )
            .finish_non_exhaustive()
    }
}

/// Every byte but the RFC 3986 unreserved characters (ASCII letters and
/// digits, `-._~`): each URL part is encoded whole, so no delimiter in a user
/// name, password or database name can end it early. Bytes outside ASCII are
/// always encoded (`utf8_percent_encode` does that whatever the set).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_characters_only() {
        assert_eq!(percent_encode("app_user-1.x~"), "app_user-1.x~");
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }

    /// The hand-written encoder `percent_encode` replaced.
    fn encode_by_hand(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }

    #[test]
    fn percent_encoding_matches_the_hand_written_encoder() {
        let every_ascii: String = (0..=127u8).map(char::from).collect();
        for text in [
            "u@h:p/d?q#f%25&a=b c",
            "pässwörd 密码 🐘",
            "-._~ AZaz09",
            every_ascii.as_str(),
        ] {
            assert_eq!(percent_encode(text), encode_by_hand(text), "{text:?}");
        }
    }
}
