//! [`PgManager`]: how the pool opens, checks and judges PostgreSQL
//! connections.
//!
//! * **Connect** runs whole inside pool-core's `create_timeout` (TCP, TLS,
//!   startup, authentication). tokio-postgres's own `connect_timeout`,
//!   which bounds only the TCP handshake of each address, is set to the
//!   same value when the user did not set one, so a blackholed SYN fails as
//!   a clean connect error rather than only as the pool's timeout.
//!   The pool opens the socket itself and reads the protocol on it
//!   (`connect.rs`, `wire.rs`), so it knows each connection's session
//!   whatever path the caller's requests take.
//! * The connection's I/O future is spawned as a task owned by the pooled
//!   [`PgConnection`]: see `connection.rs`.
//! * **Validate** is `SELECT 1` over the simple protocol (pool-core bounds
//!   it with `validation_timeout`); it does not count toward `max_queries`.
//!   **is_broken** (checkout) is `Client::is_closed` or an unclean wire.
//! * **verdict** reads the wire: a clean connection is reused (its
//!   statements counted for `max_queries`); a server that stopped taking
//!   writes evicts the pool; a connection with a request in flight or a
//!   transaction block open is *settled* first: an empty query is sent
//!   behind whatever is queued, and once it answers (within
//!   [`SETTLE_TIMEOUT`]) the wire says whether the connection is clean (a
//!   dropped transaction's `ROLLBACK` went through) or not (the caller left
//!   a transaction open: closed, `WARN`; a request still running: closed,
//!   cancelled on the server, `DEBUG`). With
//!   [`reset_on_return`](PgManager::reset_on_return), every return is
//!   settled and runs the reset.
//! * **is_retryable** follows [`PgError::is_retryable`]: a wrong password is
//!   reported at once instead of being retried until the deadline.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pool_core::{ForceClose, Manager, Verdict, DEFAULT_CREATE_TIMEOUT};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Config, NoTls};

use crate::cache::DEFAULT_STATEMENT_CACHE_SIZE;
use crate::config::apply_connection_defaults;
use crate::connect::{connect, Setup};
use crate::connection::{PgConnection, TaskReport};
use crate::error::{Cause, Operation, PgError};
use crate::hooks::{Decision, Hooks};
use crate::socket::{PgSocket, SocketOptions};
use crate::tls::PgTls;
use crate::url::{redacted_url_of, servers, shown_name};
use crate::wire::Unclean;

/// How long a returned connection may take to finish what is still queued
/// on it (the `ROLLBACK` of a dropped transaction, the rest of a dropped
/// row stream, an answer still on the wire) before it is closed and the
/// request cancelled on the server: 250 ms. (The pool bounds every settle
/// by `validation_timeout` too.)
pub const SETTLE_TIMEOUT: Duration = Duration::from_millis(250);

/// The pool's [`Manager`] for PostgreSQL over tokio-postgres, generic over
/// the TLS connector ([`PgTls`] by default: the libpq `sslmode`s, see
/// [`PgConfig`](crate::PgConfig#tls)).
///
/// Build one from a `tokio_postgres::Config` when the URL-based
/// constructors ([`PgConfig`](crate::PgConfig), [`PgPool::connect`](crate::PgPool::connect))
/// do not fit, for instance with a libpq `key=value` string or TLS:
///
/// ```
/// use pool_pg::backend::PgManager;
/// use pool_pg::{PgPool, PoolConfig};
///
/// let config: pool_pg::tokio_postgres::Config =
///     "host=localhost user=app dbname=app".parse().unwrap();
/// let manager = PgManager::new(config);
/// assert_eq!(manager.pg_config().get_application_name(), Some("pool-pg"));
/// # async fn build(manager: PgManager) -> Result<(), pool_pg::Error> {
/// let _pool = PgPool::from_manager(manager, PoolConfig::default()).await?;
/// # Ok(()) }
/// ```
pub struct PgManager<T = PgTls> {
    config: Config,
    tls: T,
    /// `host:port (database "..", user "..")`, for errors and log lines.
    server: Arc<str>,
    /// Connection tasks that ended with an error.
    connection_errors: Arc<AtomicU64>,
    /// What every connection shares (see `connect.rs`).
    setup: Setup,
    /// The user's hooks and the session reset (`hooks.rs`).
    pub(crate) hooks: Hooks,
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
    /// tokio-postgres connector over a [`PgSocket`] (connectors generic
    /// over the stream, such as `NoTls`, `tokio-postgres-rustls` and
    /// `postgres-openssl`, are). A `PgTls` sets `config`'s `ssl_mode` to
    /// match its mode (so `verify-full` can never fall back to plain
    /// text); with another connector, `config`'s `ssl_mode` decides
    /// whether TLS is used (`prefer` with `NoTls` connects in plain text
    /// without asking). Fills in the same defaults as
    /// [`new`](PgManager::new).
    pub fn with_tls(config: Config, tls: T) -> Self
    where
        T: 'static,
    {
        Self::with_create_timeout(config, tls, DEFAULT_CREATE_TIMEOUT)
    }

    pub(crate) fn with_create_timeout(mut config: Config, tls: T, create_timeout: Duration) -> Self
    where
        T: 'static,
    {
        apply_connection_defaults(&mut config, create_timeout);
        let any = &tls as &dyn std::any::Any;
        if let Some(tls) = any.downcast_ref::<PgTls>() {
            tls.fit(&mut config);
        } else if any.is::<NoTls>() && config.get_ssl_mode() == WireMode::Prefer {
            // What tokio-postgres does for a connector without TLS, which
            // the pool's wrapper cannot ask (see `wire/tap.rs`).
            config.ssl_mode(WireMode::Disable);
        }
        let server: Arc<str> = Arc::from(describe_server(&config));
        let connection_errors = Arc::new(AtomicU64::new(0));
        let setup = Setup {
            server: Arc::clone(&server),
            report: TaskReport {
                server: Arc::clone(&server),
                errors: Arc::clone(&connection_errors),
            },
            options: SocketOptions::of(&config),
            cache_size: DEFAULT_STATEMENT_CACHE_SIZE,
            cancel_timeout: config
                .get_connect_timeout()
                .copied()
                .unwrap_or(DEFAULT_CREATE_TIMEOUT),
        };
        Self {
            config,
            tls,
            server,
            connection_errors,
            setup,
            hooks: Hooks::default(),
        }
    }

    /// Sets how many prepared statements each connection caches (see
    /// [`PgConnection`#prepared-statements]); 0 turns the cache off.
    /// Default [256](crate::defaults::DEFAULT_STATEMENT_CACHE_SIZE); from the
    /// environment, `POOL_STATEMENT_CACHE_SIZE`. Turn it off behind
    /// PgBouncer in transaction mode before 1.21 (see
    /// `docs/high-availability.md`).
    pub fn statement_cache_size(mut self, statements: usize) -> Self {
        self.setup.cache_size = statements;
        self
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

    /// How many hooks (`after_connect`, `before_acquire`, `after_release`)
    /// and session resets failed (each was logged at `WARN` with target
    /// `pool_pg::connection` and its connection closed).
    pub fn hook_failures(&self) -> u64 {
        self.hooks.failures()
    }

    /// Logs why a returned connection is closed.
    fn log_closing(&self, why: Unclean) {
        if why.is_misuse() {
            tracing::warn!(
                target: "pool_pg::connection",
                server = %self.server,
                "closing a returned connection: {}",
                why.describe()
            );
        } else {
            tracing::debug!(
                target: "pool_pg::connection",
                server = %self.server,
                "closing a returned connection: {}",
                why.describe()
            );
        }
    }

    /// `Broken` if `conn` is closed, else `otherwise`.
    fn closed_or(&self, conn: &PgConnection, otherwise: Verdict) -> Verdict {
        if conn.is_closed() {
            Verdict::Broken
        } else {
            otherwise
        }
    }

    /// The verdict on a connection whose wire is settled.
    fn judge(&self, conn: &PgConnection) -> Verdict {
        if conn.is_closed() {
            return Verdict::Broken;
        }
        match conn.unclean() {
            None => Verdict::Reuse {
                statements: conn.statements(),
            },
            Some(Unclean::ServerLost(why)) => {
                Verdict::ServerLost(format!("{}: {why}", self.server))
            }
            Some(why) => {
                self.log_closing(why);
                Verdict::Dirty
            }
        }
    }
}

impl<T> Manager for PgManager<T>
where
    T: MakeTlsConnect<PgSocket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<PgSocket>>::Future: Send,
{
    type Connection = PgConnection;
    type Error = PgError;

    async fn create(&self) -> Result<PgConnection, PgError> {
        // Cancel-safe: dropped mid-way (create_timeout), the half-open
        // socket or the spawned connection is dropped with the future.
        let mut conn = connect(&self.config, &self.tls, &self.setup).await?;
        if let Some(hook) = &self.hooks.after_connect {
            if let Err(error) = hook(&mut conn).await {
                let error = PgError::from_cause(
                    Operation::AfterConnect,
                    Arc::clone(&self.server),
                    Cause::Postgres(error),
                );
                self.hooks
                    .failed(&self.server, "the after_connect hook", &error);
                return Err(error);
            }
            conn.start_counting();
        }
        Ok(conn)
    }

    async fn validate(&self, conn: &mut PgConnection) -> Result<(), PgError> {
        // Cancel-safe: pool-core closes a connection whose check was dropped.
        // The pool's own check is not a statement of the caller's.
        conn.own_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|error| PgError::new(Operation::Validate, Arc::clone(&self.server), error))
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        conn.is_closed() || conn.unclean().is_some()
    }

    fn verdict(&self, conn: &mut PgConnection) -> Verdict {
        if conn.is_closed() {
            return Verdict::Broken;
        }
        match conn.unclean() {
            // What is queued may finish in a moment (a dropped transaction's
            // ROLLBACK, the rest of a dropped stream, a ReadyForQuery still
            // on the wire): `settle` lets it, briefly.
            Some(Unclean::InFlight | Unclean::InTransaction) => Verdict::Settle,
            None if self.hooks.on_return() => Verdict::Settle,
            _ => self.judge(conn),
        }
    }

    async fn settle(&self, conn: &mut PgConnection) -> Verdict {
        if matches!(
            conn.unclean(),
            Some(Unclean::InFlight | Unclean::InTransaction)
        ) {
            // Everything queued before the probe answers before it.
            // Cancel-safe: dropped mid-way, the probe stays in flight and
            // the connection is closed with a cancel request.
            if tokio::time::timeout(SETTLE_TIMEOUT, conn.flush())
                .await
                .is_err()
            {
                self.log_closing(Unclean::InFlight);
                return Verdict::Dirty;
            }
        }
        if conn.unclean().is_none() && !conn.is_closed() {
            if let Some(hook) = &self.hooks.after_release {
                match self
                    .hooks
                    .keep("the after_release hook", hook, conn, &self.server)
                    .await
                {
                    Decision::Keep => {}
                    Decision::Discard => return Verdict::Discard,
                    Decision::Failed => return self.closed_or(conn, Verdict::Dirty),
                }
            }
            if !self.hooks.reset(conn, &self.server).await {
                return self.closed_or(conn, Verdict::Dirty);
            }
        }
        self.judge(conn)
    }

    fn has_checkout_hook(&self) -> bool {
        self.hooks.before_acquire.is_some()
    }

    async fn before_checkout(&self, conn: &mut PgConnection) -> bool {
        let Some(hook) = &self.hooks.before_acquire else {
            return true;
        };
        self.hooks
            .keep("the before_acquire hook", hook, conn, &self.server)
            .await
            == Decision::Keep
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
            .field("statement_cache_size", &self.setup.cache_size)
            .field("hooks", &self.hooks)
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
