//! [`PgManager`]: how the pool opens, checks and judges PostgreSQL
//! connections.
//!
//! * **Connect** runs whole inside pool-core's `create_timeout` (TCP, TLS,
//!   startup, authentication). tokio-postgres's own `connect_timeout`,
//!   which bounds only the TCP handshake of each address, is set to the
//!   same value when the user did not set one, so a blackholed SYN fails as
//!   a clean connect error rather than only as the pool's timeout.
//! * The connection's I/O future is spawned as a task owned by the pooled
//!   [`PgConnection`]: see `connection.rs`.
//! * **Validate** is `SELECT 1` over the simple protocol (pool-core bounds
//!   it with `validation_timeout`); it does not count toward `max_queries`.
//!   **is_broken** is the free `Client::is_closed`.
//! * **is_dirty** and **statements** read what the pooled connection
//!   tracked (see `session.rs`): a connection returned with a request in
//!   flight or inside a transaction is closed, never reused, and one that
//!   ran `max_queries` statements is retired. A dirty return is logged with
//!   target `pool_pg::connection`: at `WARN` when the caller's code should
//!   change (a transaction left open), at `DEBUG` for an abandoned request
//!   (a timeout or cancellation, which is ordinary).
//! * **is_retryable** follows [`PgError::is_retryable`]: a wrong password is
//!   reported at once instead of being retried until the deadline.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pool_core::{ForceClose, Manager, Verdict, DEFAULT_CREATE_TIMEOUT};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Config, Socket};

use crate::config::apply_connection_defaults;
use crate::connection::{canceller, spawn, PgConnection, TaskReport};
use crate::error::{Operation, PgError};
use crate::session::Dirt;
use crate::tls::PgTls;
use crate::url::{redacted_url_of, servers, shown_name};

/// The pool's [`Manager`] for PostgreSQL over tokio-postgres, generic over
/// the TLS connector ([`PgTls`] by default: the libpq `sslmode`s, see
/// [`PgConfig`](crate::PgConfig#tls)).
///
/// Build one from a `tokio_postgres::Config` when the URL-based
/// constructors ([`PgConfig`](crate::PgConfig), [`PgPoolExt`](crate::PgPoolExt))
/// do not fit, for instance with a libpq `key=value` string or TLS:
///
/// ```
/// use pool_pg::{PgManager, Pool, PoolConfig};
///
/// let config: pool_pg::tokio_postgres::Config =
///     "host=localhost user=app dbname=app".parse().unwrap();
/// let manager = PgManager::new(config);
/// assert_eq!(manager.pg_config().get_application_name(), Some("pool-pg"));
/// # async fn build(manager: PgManager) -> Result<(), pool_pg::Error> {
/// let _pool = Pool::build(manager, PoolConfig::default()).await?;
/// # Ok(()) }
/// ```
pub struct PgManager<T = PgTls> {
    config: Config,
    tls: T,
    /// `host:port (database "..", user "..")`, for errors and log lines.
    server: Arc<str>,
    /// Connection tasks that ended with an error.
    connection_errors: Arc<AtomicU64>,
}

impl PgManager<PgTls> {
    /// A manager with the TLS the configuration's own `ssl_mode` asks for:
    /// `disable`, `prefer` (TLS if the server offers it, unverified; plain
    /// without the `tls` feature) or `require` (unverified; an error at
    /// connect without the feature). For `verify-ca` / `verify-full`, use
    /// [`with_tls`](Self::with_tls) with a [`PgTls::new`]. Fills in the
    /// connection defaults the user did not set (see
    /// [`PgConfig`](crate::PgConfig#connection-defaults)); the TCP
    /// `connect_timeout` defaults to pool-core's default `create_timeout`
    /// (10 s).
    pub fn new(config: Config) -> Self {
        let tls = PgTls::for_wire_mode(&config);
        Self::with_tls(config, tls)
    }
}

impl<T> PgManager<T> {
    /// A manager connecting through `tls`: a [`PgTls`], or any other
    /// tokio-postgres connector such as a `postgres_openssl::MakeTlsConnector`.
    /// A `PgTls` sets `config`'s `ssl_mode` to match its mode (so
    /// `verify-full` can never fall back to plain text); with another
    /// connector, `config`'s `ssl_mode` decides whether TLS is used. Fills
    /// in the same defaults as [`new`](PgManager::new).
    pub fn with_tls(config: Config, tls: T) -> Self
    where
        T: 'static,
    {
        Self::with_create_timeout(config, tls, DEFAULT_CREATE_TIMEOUT)
    }

    pub(crate) fn with_create_timeout(
        mut config: Config,
        tls: T,
        create_timeout: std::time::Duration,
    ) -> Self
    where
        T: 'static,
    {
        apply_connection_defaults(&mut config, create_timeout);
        if let Some(tls) = (&tls as &dyn std::any::Any).downcast_ref::<PgTls>() {
            tls.fit(&mut config);
        }
        let server = describe_server(&config);
        Self {
            config,
            tls,
            server: Arc::from(server),
            connection_errors: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The connection settings in use, defaults included.
    pub fn pg_config(&self) -> &Config {
        &self.config
    }

    /// The settings as a URL with the password replaced by `***`, safe to
    /// log: `postgres://app:***@db:5432/orders?application_name=pool-pg`.
    pub fn redacted_url(&self) -> String {
        redacted_url_of(&self.config)
    }

    /// How many connections ended with an error in the background (the
    /// server terminated the backend, the network failed) since the manager
    /// was created. Each one was also logged at `WARN` with target
    /// `pool_pg::connection`. A connection the pool closes itself does not
    /// count.
    pub fn connection_errors(&self) -> u64 {
        self.connection_errors.load(Ordering::Relaxed)
    }
}

impl<T> Manager for PgManager<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Connection = PgConnection;
    type Error = PgError;

    async fn create(&self) -> Result<PgConnection, PgError> {
        // Cancel-safe: dropped mid-way (create_timeout), the half-open
        // socket is dropped with the future; no task was spawned yet.
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|error| PgError::new(Operation::Connect, Arc::clone(&self.server), error))?;
        let report = TaskReport {
            server: Arc::clone(&self.server),
            errors: Arc::clone(&self.connection_errors),
        };
        let cancel_timeout = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CREATE_TIMEOUT);
        let cancel = canceller(self.tls.clone(), Arc::clone(&self.server), cancel_timeout);
        Ok(spawn(client, connection, report, cancel))
    }

    async fn validate(&self, conn: &mut PgConnection) -> Result<(), PgError> {
        // Cancel-safe: pool-core closes a connection whose check was dropped.
        // Through the bare client: the pool's own check is not a statement
        // of the caller's and must not count toward `max_queries`.
        conn.client()
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|error| PgError::new(Operation::Validate, Arc::clone(&self.server), error))
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        conn.is_closed()
    }

    fn verdict(&self, conn: &mut PgConnection) -> Verdict {
        let closed = conn.is_closed();
        let Some(dirt) = conn.session.dirt() else {
            return if closed {
                Verdict::Broken
            } else {
                Verdict::Reuse {
                    statements: conn.statements(),
                }
            };
        };
        if !closed {
            if dirt.is_misuse() {
                tracing::warn!(
                    target: "pool_pg::connection",
                    server = %self.server,
                    "closing a returned connection: {}",
                    dirt.describe()
                );
            } else {
                tracing::debug!(
                    target: "pool_pg::connection",
                    server = %self.server,
                    "closing a returned connection: {}",
                    dirt.describe()
                );
            }
        }
        // A read-only refusal outside a read-only transaction of the
        // caller's own means the server is (now) a standby or a demoted
        // primary: every connection to it is as unfit for writes as this
        // one. A terminated session (57P0x) is not enough: a single
        // `pg_terminate_backend` says nothing of the others, and a real
        // shutdown closes their sockets, which the pool's sweep finds.
        match dirt {
            Dirt::ReadOnlyServer => Verdict::ServerLost(format!(
                "{} refused a write as read-only (SQLSTATE 25006): demoted or failed over",
                self.server
            )),
            _ if closed => Verdict::Broken,
            _ => Verdict::Dirty,
        }
    }

    fn force_closer(&self, conn: &PgConnection) -> Option<ForceClose> {
        let abort = conn.abort_handle();
        Some(Box::new(move || abort.abort()))
    }

    fn is_retryable(&self, error: &PgError) -> bool {
        error.is_retryable()
    }

    fn is_server_down(&self, error: &PgError) -> bool {
        error.is_server_down()
    }
}

impl<T> fmt::Debug for PgManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgManager")
            .field("url", &self.redacted_url())
            .field("connect_timeout", &self.config.get_connect_timeout())
            .field("keepalives", &self.config.get_keepalives())
            .field("keepalives_idle", &self.config.get_keepalives_idle())
            .field("tcp_user_timeout", &self.config.get_tcp_user_timeout())
            .field("connection_errors", &self.connection_errors())
            .finish_non_exhaustive()
    }
}

/// `host:port[, host:port] (database "..", user "..")`: what errors and log
/// lines name as "the server". Never the password, not even from a
/// configuration that tokio-postgres misread into a user name (see
/// `url::shown_name`).
fn describe_server(config: &Config) -> String {
    let mut text = servers(config).join(", ");
    let user = config.get_user().map(shown_name);
    let dbname = config.get_dbname().map(shown_name).or(user);
    match (dbname, user) {
        (Some(dbname), Some(user)) => {
            text.push_str(&format!(" (database {dbname:?}, user {user:?})"));
        }
        (Some(dbname), None) => text.push_str(&format!(" (database {dbname:?})")),
        _ => {}
    }
    text
}
