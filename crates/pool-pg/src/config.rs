//! [`PgConfig`]: the database URL plus the pool settings, read and checked
//! in one go.
//!
//! Every problem is reported at once: a missing or malformed
//! `DATABASE_URL` and every bad `POOL_*` variable end up in one
//! [`ConfigError`], each line naming the variable and the fix. Nothing is
//! connected until [`PgConfig::build`](crate::PgConfig::build).
//!
//! This module also owns the connection defaults pool-pg adds to a
//! `tokio_postgres::Config` (see [`PgConfig`](PgConfig#connection-defaults)).

use std::fmt;
use std::time::Duration;

use pool_core::{ConfigError, ConfigIssue, PoolConfig};
use tokio_postgres::Config;

use crate::cache::DEFAULT_STATEMENT_CACHE_SIZE;
use crate::manager::PgManager;
use crate::tls::{from_settings, PgTls, TLS_VARIABLES};
use crate::url::{parse_database_url, redacted_url_of, DATABASE_URL, EXAMPLE_URL};

/// The `application_name` connections get unless the URL sets one
/// (`?application_name=...`). It is how a DBA tells the pool's sessions
/// apart in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "pool-pg";
/// Idle time before the first TCP keepalive probe, unless the URL sets
/// `keepalives_idle`: 30 s. The operating system's default, two hours, lets
/// a connection to a vanished server look alive for that long.
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
/// Time between unanswered keepalive probes, unless the URL sets
/// `keepalives_interval`: 10 s.
pub const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the connection is declared dead, unless the URL
/// sets `keepalives_retries`: 3. With the two above, a silent peer is
/// detected in about a minute.
pub const DEFAULT_KEEPALIVES_RETRIES: u32 = 3;
/// How long bytes the pool sent may stay unacknowledged before the kernel
/// ends the connection (Linux's `TCP_USER_TIMEOUT`), unless the URL sets
/// `tcp_user_timeout`: 30 s.
///
/// Why: on a link that went silent (the server's host died, a route or a
/// firewall flow vanished: nothing sends a reset), a request otherwise
/// waits for Linux's retransmission limit, `net.ipv4.tcp_retries2`, about
/// 15 minutes, and keepalives do not help because they only probe an idle
/// connection. 30 s rides out a brief loss or a failover's re-routing and is
/// long before anyone would call the request hung. It never cuts a slow
/// query short: the server acknowledges the request as soon as it arrives,
/// and waiting for its answer sends nothing.
///
/// Side effects on Linux: with keepalives on, the kernel ends an idle
/// connection at the first keepalive tick after the link has been silent
/// this long and a probe went unanswered (instead of after
/// `keepalives_retries` probes), so with the keepalive defaults a dead idle
/// link is noticed after about 40 s instead of 60 s. And a peer that keeps
/// its receive window closed this long (stops reading while the pool has
/// more to send) also ends the connection. Ignored for Unix sockets and on
/// other systems.
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// tokio-postgres's own `keepalives_idle` default, which we take to mean
/// "not set".
const TOKIO_POSTGRES_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// The database URL and the pool settings.
///
/// ```
/// use pool_pg::PgConfig;
///
/// let config = PgConfig::from_vars([
///     ("DATABASE_URL", "postgres://app:secret@db.internal:5432/orders"),
///     ("POOL_MAX_SIZE", "20"),
/// ])?;
/// assert_eq!(config.pool.max_size, 20);
/// assert_eq!(config.redacted_url(), "postgres://app:***@db.internal:5432/orders");
///
/// let err = PgConfig::from_vars([("POOL_MAX_SIZE", "many")]).unwrap_err();
/// assert_eq!(err.issues().len(), 2); // DATABASE_URL is missing, POOL_MAX_SIZE is bad
/// assert!(err.to_string().contains("set DATABASE_URL=postgres://user:password@host:5432/dbname"));
/// # Ok::<(), pool_pg::ConfigError>(())
/// ```
///
/// # Connection defaults
///
/// When the pool connects, settings the URL leaves out are filled in:
/// `application_name` [`pool-pg`](DEFAULT_APPLICATION_NAME); TCP keepalives
/// after [30 s](DEFAULT_KEEPALIVES_IDLE) idle, every
/// [10 s](DEFAULT_KEEPALIVES_INTERVAL), [3](DEFAULT_KEEPALIVES_RETRIES)
/// probes (unless the URL says `keepalives=0`); a TCP
/// [`tcp_user_timeout`](DEFAULT_TCP_USER_TIMEOUT) of 30 s, so a request on a
/// silent link fails in bounded time; and tokio-postgres's TCP
/// `connect_timeout` equal to the pool's `create_timeout`. Values the URL
/// sets are kept.
///
/// Unlike libpq, tokio-postgres (0.7.18) reads the URL's `tcp_user_timeout`
/// in **seconds**, not milliseconds (`tcp_user_timeout=10` is 10 s; a
/// libpq-style `10000` would be almost three hours), and it cannot tell
/// `tcp_user_timeout=0` from a URL without the key, so `0` gets the 30 s
/// default too. To keep the operating system's own limit, set it in code:
/// `config.database.tcp_user_timeout(Duration::ZERO)`.
///
/// # TLS
///
/// TLS follows libpq's `sslmode` and `sslrootcert`, read from the URL
/// (`?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem`), else from
/// `PGSSLMODE` and `PGSSLROOTCERT` (by [`from_env`](Self::from_env) and
/// [`from_vars`](Self::from_vars); [`new`](Self::new) reads only the URL),
/// else the default, `prefer`. See [`SslMode`](crate::SslMode) for what each
/// mode checks. TLS itself needs the `tls` feature of pool-pg; without it,
/// `prefer` connects in plain text and `require`, `verify-ca` and
/// `verify-full` are configuration errors. The root certificate file is
/// read when the configuration is built: a missing or unreadable file is
/// an error here, not at the first connect.
///
/// ```
/// use pool_pg::{PgConfig, SslMode};
///
/// let config = PgConfig::from_vars([
///     ("DATABASE_URL", "postgres://app@db.internal/orders?sslmode=disable"),
///     ("PGSSLMODE", "verify-full"), // the URL wins
/// ])?;
/// assert_eq!(config.tls.mode(), SslMode::Disable);
///
/// // With the `tls` feature: the file does not exist. Without: the mode
/// // needs the feature. Either way, before anything connects.
/// let err = PgConfig::from_vars([(
///     "DATABASE_URL",
///     "postgres://app@db.internal/orders?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
/// )])
/// .unwrap_err();
/// assert!(err.to_string().contains("sslmode=verify-full"), "{err}");
/// # Ok::<(), pool_pg::ConfigError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct PgConfig {
    /// The connection settings parsed from the database URL. Adjust them
    /// freely before building the pool, except `ssl_mode`: with the
    /// built-in connector, TLS is set by [`tls`](Self::tls) alone.
    pub database: Config,
    /// The pool settings.
    pub pool: PoolConfig,
    /// The TLS connector [`manager`](Self::manager) and
    /// [`build`](Self::build) use, from `sslmode` / `sslrootcert`; replace
    /// it with [`PgTls::new`] to configure TLS in code.
    pub tls: PgTls,
    /// Prepared statements cached per connection (see
    /// [`PgConnection`](crate::PgConnection#prepared-statements)); 0 turns
    /// the cache off. `POOL_STATEMENT_CACHE_SIZE`, default
    /// [256](DEFAULT_STATEMENT_CACHE_SIZE), at most
    /// [`MAX_STATEMENT_CACHE_SIZE`].
    pub statement_cache_size: usize,
    /// SQL run on every returned connection before it goes idle (see
    /// [`PgManager::reset_on_return`]). `POOL_RESET_QUERY`, e.g.
    /// `DISCARD ALL`; default none.
    pub reset_query: Option<String>,
}

/// The `POOL_*` variables pool-pg reads on top of pool-core's
/// [`POOL_VARIABLES`](pool_core::POOL_VARIABLES).
pub const POOL_PG_VARIABLES: &[&str] = &["POOL_STATEMENT_CACHE_SIZE", "POOL_RESET_QUERY"];

/// The largest [`PgConfig::statement_cache_size`]: 10,000 statements per
/// connection (each holds server memory).
pub const MAX_STATEMENT_CACHE_SIZE: usize = 10_000;

/// Reads pool-pg's own variables; every problem is pushed to `issues`.
fn session_settings(
    vars: &[(String, String)],
    issues: &mut Vec<ConfigIssue>,
) -> (usize, Option<String>) {
    let last = |name: &str| {
        vars.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, v)| v.trim())
    };
    let cache = match last("POOL_STATEMENT_CACHE_SIZE") {
        None => DEFAULT_STATEMENT_CACHE_SIZE,
        Some(value) => match value.parse::<usize>() {
            Ok(size) if size <= MAX_STATEMENT_CACHE_SIZE => size,
            _ => {
                issues.push(ConfigIssue::new(
                    "statement_cache_size",
                    "POOL_STATEMENT_CACHE_SIZE",
                    value.chars().take(40).collect::<String>(),
                    format!(
                        "statement_cache_size must be a whole number of statements from 0 to {MAX_STATEMENT_CACHE_SIZE}"
                    ),
                    "set POOL_STATEMENT_CACHE_SIZE to e.g. 256, or 0 to turn the cache off (PgBouncer in transaction mode before 1.21)",
                ));
                DEFAULT_STATEMENT_CACHE_SIZE
            }
        },
    };
    let reset = last("POOL_RESET_QUERY")
        .filter(|sql| !sql.is_empty())
        .map(str::to_owned);
    (cache, reset)
}

impl PgConfig {
    /// Checks `database_url` and `pool` and reports every problem at once.
    pub fn new(database_url: &str, pool: PoolConfig) -> Result<Self, ConfigError> {
        let database = parse_database_url(database_url)
            .map_err(|issue| vec![issue])
            .and_then(|(database, tls)| Ok((database, from_settings(&tls)?)));
        let checked = pool.validate().map_err(ConfigError::into_issues);
        match (database, checked) {
            (Ok((database, tls)), Ok(())) => Ok(Self {
                database,
                pool,
                tls,
                statement_cache_size: DEFAULT_STATEMENT_CACHE_SIZE,
                reset_query: None,
            }),
            (database, checked) => {
                let mut issues = database.err().unwrap_or_default();
                issues.extend(checked.err().unwrap_or_default());
                Err(config_error(issues))
            }
        }
    }

    /// Reads `DATABASE_URL`, the `POOL_*` variables, and `PGSSLMODE` /
    /// `PGSSLROOTCERT` (see [TLS](#tls)) from the process environment. A
    /// variable that is not valid UTF-8 is reported, not a panic.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        let mut issues = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            if key != DATABASE_URL && !key.starts_with("POOL_") && !TLS_VARIABLES.contains(&key) {
                continue;
            }
            match value.into_string() {
                Ok(value) => vars.push((key.to_owned(), value)),
                Err(_) if key == DATABASE_URL => issues.push(ConfigIssue::new(
                    "database_url",
                    DATABASE_URL,
                    "<not UTF-8>",
                    "DATABASE_URL is not valid UTF-8",
                    "percent-encode every non-ASCII byte of DATABASE_URL",
                )),
                // pool-core reports the lossy text as "not a whole number".
                Err(value) => vars.push((key.to_owned(), value.to_string_lossy().into_owned())),
            }
        }
        Self::from_pairs(vars, issues)
    }

    /// Reads the configuration from key/value pairs as if they were the
    /// environment: `DATABASE_URL`, `POOL_*`, `PGSSLMODE` and
    /// `PGSSLROOTCERT`; other keys are ignored.
    /// For tests, and for settings from a file.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        Self::from_pairs(vars, Vec::new())
    }

    fn from_pairs(
        vars: Vec<(String, String)>,
        mut issues: Vec<ConfigIssue>,
    ) -> Result<Self, ConfigError> {
        let unreadable_url = issues.iter().any(|issue| issue.variable == DATABASE_URL);
        let database = match vars.iter().rev().find(|(key, _)| key == DATABASE_URL) {
            Some((_, url)) => parse_database_url(url)
                .map_err(|issue| vec![issue])
                .and_then(|(database, tls)| {
                    let tls =
                        tls.or_environment(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    Ok((database, from_settings(&tls)?))
                }),
            None if unreadable_url => Err(Vec::new()),
            None => Err(vec![missing_url_issue()]),
        };
        let (statement_cache_size, reset_query) = session_settings(&vars, &mut issues);
        let pool = PoolConfig::from_vars_with_known(
            vars.iter().map(|(key, value)| (key, value)),
            POOL_PG_VARIABLES,
        )
        .map_err(ConfigError::into_issues);
        match (database, pool) {
            (Ok((database, tls)), Ok(pool)) if issues.is_empty() => Ok(Self {
                database,
                pool,
                tls,
                statement_cache_size,
                reset_query,
            }),
            (database, pool) => {
                issues.extend(database.err().unwrap_or_default());
                issues.extend(pool.err().unwrap_or_default());
                Err(config_error(issues))
            }
        }
    }

    /// The database URL with the password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redacted_url_of(&self.database)
    }

    /// The manager for these settings, connecting through
    /// [`tls`](Self::tls) (which also sets the connection's `ssl_mode`),
    /// with the connection defaults filled in.
    pub fn manager(&self) -> PgManager {
        self.manager_with_tls(self.tls.clone())
    }

    /// The manager for these settings, connecting through `tls`, any
    /// tokio-postgres connector (see [`PgManager::with_tls`]);
    /// [`tls`](Self::tls) is not used.
    pub fn manager_with_tls<T: 'static>(&self, tls: T) -> PgManager<T> {
        let manager =
            PgManager::with_create_timeout(self.database.clone(), tls, self.pool.create_timeout)
                .statement_cache_size(self.statement_cache_size);
        match &self.reset_query {
            Some(sql) => manager.reset_on_return(sql.clone()),
            None => manager,
        }
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("database", &self.redacted_url())
            .field("pool", &self.pool)
            .field("tls", &self.tls)
            .field("statement_cache_size", &self.statement_cache_size)
            .field("reset_query", &self.reset_query)
            .finish()
    }
}

/// Fills in the settings the user left out; see
/// [`PgConfig`](PgConfig#connection-defaults).
pub(crate) fn apply_connection_defaults(config: &mut Config, create_timeout: Duration) {
    if config.get_application_name().is_none() {
        config.application_name(DEFAULT_APPLICATION_NAME);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(create_timeout);
    }
    // `Some(Duration::ZERO)` (set in code) means "the OS default" and is kept.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(DEFAULT_TCP_USER_TIMEOUT);
    }
    if config.get_keepalives() {
        if config.get_keepalives_idle() == TOKIO_POSTGRES_KEEPALIVES_IDLE {
            config.keepalives_idle(DEFAULT_KEEPALIVES_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(DEFAULT_KEEPALIVES_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(DEFAULT_KEEPALIVES_RETRIES);
        }
    }
}

fn missing_url_issue() -> ConfigIssue {
    ConfigIssue::new(
        "database_url",
        DATABASE_URL,
        "",
        "DATABASE_URL is not set",
        format!("set DATABASE_URL={EXAMPLE_URL}"),
    )
}

/// The error for a non-empty list of issues.
fn config_error(issues: Vec<ConfigIssue>) -> ConfigError {
    match ConfigError::from_issues(issues) {
        Err(error) => error,
        Ok(()) => unreachable!("every failed check above adds an issue"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_what_the_url_leaves_out() {
        let mut config: Config = "postgres://app@db/x".parse().unwrap();
        apply_connection_defaults(&mut config, Duration::from_secs(3));
        assert_eq!(
            config.get_application_name(),
            Some(DEFAULT_APPLICATION_NAME)
        );
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), DEFAULT_KEEPALIVES_IDLE);
        assert_eq!(
            config.get_keepalives_interval(),
            Some(DEFAULT_KEEPALIVES_INTERVAL)
        );
        assert_eq!(
            config.get_keepalives_retries(),
            Some(DEFAULT_KEEPALIVES_RETRIES)
        );
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&DEFAULT_TCP_USER_TIMEOUT)
        );
    }

    #[test]
    fn values_the_url_sets_are_kept() {
        let mut config: Config = "postgres://app@db/x?application_name=api&connect_timeout=7\
             &keepalives_idle=60&keepalives_interval=5&keepalives_retries=9&tcp_user_timeout=4"
            .parse()
            .unwrap();
        apply_connection_defaults(&mut config, Duration::from_secs(3));
        assert_eq!(config.get_application_name(), Some("api"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.get_keepalives_retries(), Some(9));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(4)));
    }

    #[test]
    fn a_url_tcp_user_timeout_is_read_in_seconds_unlike_libpq() {
        let mut config: Config = "postgres://app@db/x?tcp_user_timeout=2000".parse().unwrap();
        apply_connection_defaults(&mut config, Duration::from_secs(3));
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(2000)),
            "tokio-postgres reads seconds; if this changes, fix the docs"
        );
    }

    #[test]
    fn a_url_tcp_user_timeout_of_zero_looks_unset_and_gets_the_default() {
        let mut config: Config = "postgres://app@db/x?tcp_user_timeout=0".parse().unwrap();
        assert_eq!(
            config.get_tcp_user_timeout(),
            None,
            "tokio-postgres drops 0; if this changes, keep it and fix the docs"
        );
        apply_connection_defaults(&mut config, Duration::from_secs(3));
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&DEFAULT_TCP_USER_TIMEOUT)
        );
    }

    #[test]
    fn a_zero_tcp_user_timeout_set_in_code_keeps_the_os_default() {
        let mut config: Config = "postgres://app@db/x".parse().unwrap();
        config.tcp_user_timeout(Duration::ZERO);
        apply_connection_defaults(&mut config, Duration::from_secs(3));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::ZERO));
    }

    #[test]
    fn disabled_keepalives_stay_disabled() {
        let mut config: Config = "postgres://app@db/x?keepalives=0".parse().unwrap();
        apply_connection_defaults(&mut config, Duration::from_secs(3));
        assert!(!config.get_keepalives());
        assert_eq!(config.get_keepalives_interval(), None);
        // Bytes in flight are bounded with or without keepalives.
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&DEFAULT_TCP_USER_TIMEOUT)
        );
    }
}
