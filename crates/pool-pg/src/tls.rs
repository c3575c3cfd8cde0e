//! TLS: the libpq `sslmode`s over rustls, configured from `DATABASE_URL`.
//!
//! # Design
//!
//! * **One connector type, driven by configuration.** [`PgTls`] is the
//!   connector every [`PgPool`](crate::PgPool) uses unless the program
//!   brings its own (`build_with_tls`). It carries the libpq [`SslMode`],
//!   the root certificate file, and either nothing (plain text) or a rustls
//!   connector (`tokio-postgres-rustls`, ring provider) whose certificate
//!   verifier implements the mode (`tls/verify.rs`). Without the `tls`
//!   feature only the plain variant exists, so the feature is additive:
//!   the same types and functions compile either way.
//! * **Settings come from libpq's names.** `sslmode` and `sslrootcert` are
//!   taken out of the URL before tokio-postgres parses the rest (it knows
//!   neither `verify-ca`, `verify-full` nor `sslrootcert`); when the URL
//!   does not set one, `PGSSLMODE` / `PGSSLROOTCERT` do (`tls/settings.rs`).
//! * **Checked when the configuration is built.** A bad mode, a mode that
//!   needs the feature, a verifying mode without a CA, or a root
//!   certificate file that is missing, unreadable or holds no certificate
//!   is a [`ConfigError`] from `PgConfig::from_env` (and friends), with
//!   every other problem, before anything connects.
//! * **Failures say what to change.** A handshake that fails verification
//!   names the mode, the root certificate file or the host name, and the
//!   setting to change (`tls/verify.rs`).
//!
//! Invariant: the tokio-postgres `ssl_mode` a [`PgTls`] connects with is
//! derived from the `PgTls` alone ([`PgTls::fit`]): `disable` is plain;
//! `prefer` asks the server for TLS only when there is a rustls connector
//! (without one it is plain, as libpq without SSL support); `require`,
//! `verify-ca` and `verify-full` always demand TLS, so a server without it
//! is an error, never a silent downgrade.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use pool_core::{ConfigError, ConfigIssue};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::Config;

mod connector;
#[cfg(feature = "tls")]
mod roots;
mod settings;
#[cfg(feature = "tls")]
mod verify;

pub use connector::{PgTlsConnect, PgTlsStream};
pub(crate) use settings::{from_settings, take_url_params, TlsSettings, TLS_VARIABLES};

/// The libpq `sslmode`: whether connections use TLS and what they check.
///
/// | Mode | TLS | Checks | Without the `tls` feature |
/// |---|---|---|---|
/// | `disable` | never | – | plain |
/// | `prefer` (default) | if the server offers it, else plain | nothing | plain |
/// | `require` | always | nothing; the chain if `sslrootcert` is set (as libpq) | configuration error |
/// | `verify-ca` | always | the chain up to `sslrootcert` | configuration error |
/// | `verify-full` | always | the chain and the host name against the certificate's subjectAltName | configuration error |
///
/// ```
/// use pool_pg::SslMode;
///
/// assert_eq!("verify-full".parse::<SslMode>(), Ok(SslMode::VerifyFull));
/// assert_eq!(SslMode::default().to_string(), "prefer");
/// assert!("sometimes".parse::<SslMode>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, without any verification; plain
    /// otherwise. libpq's default, and ours.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (it is when
    /// a root certificate is given: then as [`VerifyCa`](Self::VerifyCa)).
    Require,
    /// TLS, and the server's certificate must chain to the root
    /// certificate; the host name is not checked.
    VerifyCa,
    /// TLS, the chain as [`VerifyCa`](Self::VerifyCa), and the host name
    /// (or IP address) connected to must be in the certificate's
    /// subjectAltName.
    VerifyFull,
}

impl SslMode {
    /// Every mode, in increasing strictness.
    pub const ALL: [SslMode; 5] = [
        Self::Disable,
        Self::Prefer,
        Self::Require,
        Self::VerifyCa,
        Self::VerifyFull,
    ];

    /// The libpq spelling: `disable`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection in this mode fails rather than go plain.
    pub fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }

    /// Whether this mode needs a root certificate to verify against.
    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SslMode {
    type Err = UnknownSslMode;

    fn from_str(text: &str) -> Result<Self, UnknownSslMode> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or(UnknownSslMode)
    }
}

/// The error of parsing an [`SslMode`]: not one of the five libpq names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownSslMode;

impl fmt::Display for UnknownSslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an sslmode: use disable, prefer, require, verify-ca or verify-full")
    }
}

impl std::error::Error for UnknownSslMode {}

/// The pool's TLS connector: an [`SslMode`], its root certificate, and
/// (with the `tls` feature) rustls configured for them.
///
/// [`PgConfig`](crate::PgConfig) makes one from `sslmode` / `sslrootcert`
/// (see the [module docs](crate::PgConfig#tls)); make one yourself for a
/// [`PgManager`](crate::backend::PgManager) or to override the configuration:
///
/// ```
/// use pool_pg::backend::PgTls;
/// use pool_pg::SslMode;
///
/// let plain = PgTls::new(SslMode::Disable, None)?;
/// assert!(!plain.is_tls_capable());
///
/// // Without a root certificate, verify-full cannot work: a configuration
/// // error (also without the `tls` feature, which it would need too).
/// let err = PgTls::new(SslMode::VerifyFull, None).unwrap_err();
/// assert!(err.to_string().contains("sslrootcert"), "{err}");
/// # Ok::<(), pool_pg::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    root_cert: Option<Arc<Path>>,
    connector: connector::Connector,
}

impl PgTls {
    /// The connector for `mode`, verifying against the PEM certificates in
    /// `root_cert` when the mode uses them (`require`, `verify-ca`,
    /// `verify-full`; `disable` and `prefer` ignore it). Reads the file now:
    /// a missing or unreadable file, one without a certificate, a
    /// verifying mode without a file, or a mode that needs TLS without the
    /// `tls` feature is an error saying what to change.
    pub fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<Self, ConfigError> {
        let settings = TlsSettings::programmatic(mode, root_cert);
        from_settings(&settings).map_err(|issues| match ConfigError::from_issues(issues) {
            Err(error) => error,
            Ok(()) => unreachable!("a failed TLS configuration has at least one issue"),
        })
    }

    /// Plain text only (`sslmode=disable`).
    pub fn disabled() -> Self {
        Self {
            mode: SslMode::Disable,
            root_cert: None,
            connector: connector::Connector::Off,
        }
    }

    /// A connector with your own rustls configuration (client certificates,
    /// another root store, other protocol versions). `mode` only decides
    /// whether TLS is asked for (`prefer`) or demanded (the other modes):
    /// verification is whatever `config` does.
    #[cfg(feature = "tls")]
    pub fn with_rustls_config(mode: SslMode, config: rustls::ClientConfig) -> Self {
        Self {
            mode,
            root_cert: None,
            connector: connector::Connector::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(
                config,
            )),
        }
    }

    /// The TLS of a tokio-postgres configuration parsed elsewhere (its
    /// `disable`, `prefer` or `require`), without a root certificate. Never
    /// fails: `require` without the `tls` feature fails when connecting,
    /// with a message saying to enable it.
    pub(crate) fn for_wire_mode(config: &Config) -> Self {
        let mode = match config.get_ssl_mode() {
            WireMode::Disable => SslMode::Disable,
            WireMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        let settings = TlsSettings::programmatic(mode, None);
        from_settings(&settings).unwrap_or(Self {
            mode,
            root_cert: None,
            connector: connector::Connector::Off,
        })
    }

    /// The mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The root certificate file verified against, if the mode uses one.
    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// Whether this connector can speak TLS at all (false for `disable`,
    /// and for every mode without the `tls` feature).
    pub fn is_tls_capable(&self) -> bool {
        !matches!(self.connector, connector::Connector::Off)
    }

    /// Sets the tokio-postgres `ssl_mode` this connector needs; see the
    /// module invariant.
    pub(crate) fn fit(&self, config: &mut Config) {
        let wire = match self.mode {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer if self.is_tls_capable() => WireMode::Prefer,
            SslMode::Prefer => WireMode::Disable,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        };
        config.ssl_mode(wire);
    }
}

impl Default for PgTls {
    /// `prefer` without a root certificate: TLS when the server offers it
    /// (with the `tls` feature), else plain.
    fn default() -> Self {
        Self::for_wire_mode(&Config::new())
    }
}

impl fmt::Display for PgTls {
    /// `sslmode=verify-full sslrootcert=/etc/ssl/db-ca.pem`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sslmode={}", self.mode)?;
        if let Some(path) = &self.root_cert {
            write!(f, " sslrootcert={}", path.display())?;
        }
        if self.mode == SslMode::Prefer && !self.is_tls_capable() {
            f.write_str(" (plain: no tls feature)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .field("tls_capable", &self.is_tls_capable())
            .finish()
    }
}

/// A configuration issue about TLS.
pub(crate) fn issue(
    field: &'static str,
    variable: &str,
    value: &str,
    message: String,
    suggestion: String,
) -> ConfigIssue {
    ConfigIssue::new(field, variable, value, message, suggestion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connector_without_tls_never_asks_the_server_for_it() {
        let mut config: Config = "postgres://app@db/x?sslmode=prefer".parse().unwrap();
        PgTls::disabled().fit(&mut config);
        assert_eq!(config.get_ssl_mode(), WireMode::Disable);
        let prefer = PgTls::default();
        prefer.fit(&mut config);
        let expected = if cfg!(feature = "tls") {
            WireMode::Prefer
        } else {
            WireMode::Disable
        };
        assert_eq!(config.get_ssl_mode(), expected);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_mode_that_requires_tls_overrides_a_plain_ssl_mode() {
        let mut config: Config = "postgres://app@db/x?sslmode=disable".parse().unwrap();
        let manager = crate::backend::PgManager::with_tls(
            config.clone(),
            PgTls::new(SslMode::Require, None).unwrap(),
        );
        assert_eq!(manager.pg_config().get_ssl_mode(), WireMode::Require);
        PgTls::new(SslMode::Require, None).unwrap().fit(&mut config);
        assert_eq!(config.get_ssl_mode(), WireMode::Require);
    }
}
