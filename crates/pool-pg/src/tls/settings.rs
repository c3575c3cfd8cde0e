//! Where `sslmode` and `sslrootcert` come from, and the checks made on
//! them before anything connects.
//!
//! Precedence, for each of the two settings on its own (as libpq): the
//! `DATABASE_URL` query (`?sslmode=verify-full&sslrootcert=/path/ca.pem`),
//! else the environment variable (`PGSSLMODE`, `PGSSLROOTCERT`; an empty
//! one counts as unset), else the default: `prefer`, no root certificate.
//! The environment is read by `PgConfig::from_env` (and `from_vars` reads
//! the same names from its pairs); `PgConfig::new(url, ..)` reads only the
//! URL.
//!
//! Invariant: [`take_url_params`] removes exactly the `sslmode` and
//! `sslrootcert` pairs (the last one of each wins, as in libpq) and leaves
//! every other byte of the URL as it was, so tokio-postgres parses the
//! rest as before; and every problem found here is a [`ConfigIssue`] naming
//! the variable it came from, never a panic. Neither setting is a secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use pool_core::ConfigIssue;

use super::{connector::Connector, issue, PgTls, SslMode};
use crate::url::DATABASE_URL;

/// The libpq variable for the mode when the URL has none.
pub(crate) const PGSSLMODE: &str = "PGSSLMODE";
/// The libpq variable for the root certificate when the URL has none.
pub(crate) const PGSSLROOTCERT: &str = "PGSSLROOTCERT";
/// The environment variables TLS is configured from besides `DATABASE_URL`.
pub(crate) const TLS_VARIABLES: [&str; 2] = [PGSSLMODE, PGSSLROOTCERT];

/// One setting and the variable it was read from (for messages).
#[derive(Clone, Debug, Default)]
struct Setting {
    value: Option<String>,
    variable: String,
}

/// The TLS settings found so far: in the URL, in the environment, or given
/// by a program.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsSettings {
    mode: Setting,
    root_cert: Setting,
}

impl TlsSettings {
    /// Settings given in code, to [`PgTls::new`].
    pub(crate) fn programmatic(mode: SslMode, root_cert: Option<&Path>) -> Self {
        Self {
            mode: Setting {
                value: Some(mode.as_str().to_owned()),
                variable: "PgTls::new".to_owned(),
            },
            root_cert: Setting {
                value: root_cert.map(|path| path.to_string_lossy().into_owned()),
                variable: "PgTls::new".to_owned(),
            },
        }
    }

    /// Fills in what the URL left unset from `PGSSLMODE` / `PGSSLROOTCERT`
    /// among `vars` (the last occurrence wins; empty counts as unset).
    pub(crate) fn or_environment<'a>(
        mut self,
        vars: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Self {
        let lookup = |name: &str| {
            vars.clone()
                .filter(|(key, value)| *key == name && !value.is_empty())
                .last()
                .map(|(_, value)| value.to_owned())
        };
        for (setting, name) in [
            (&mut self.mode, PGSSLMODE),
            (&mut self.root_cert, PGSSLROOTCERT),
        ] {
            if setting.value.is_none() {
                if let Some(value) = lookup(name) {
                    *setting = Setting {
                        value: Some(value),
                        variable: name.to_owned(),
                    };
                }
            }
        }
        self
    }
}

/// Splits the `sslmode` and `sslrootcert` pairs off `url`'s query string:
/// the URL without them, and their (percent-decoded) values.
pub(crate) fn take_url_params(url: &str) -> (String, TlsSettings) {
    let mut settings = TlsSettings::default();
    // The query starts at the first `?` after the user-info, which may
    // itself hold an unencoded `?` in a password.
    let authority = url.find("://").map_or(0, |at| at + 3);
    let after_user = url[authority..]
        .rfind('@')
        .map_or(authority, |at| authority + at + 1);
    let Some(question) = url[after_user..].find('?').map(|at| after_user + at) else {
        return (url.to_owned(), settings);
    };
    let (base, query) = (&url[..question], &url[question + 1..]);
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let target = match percent_decode_str(key).decode_utf8_lossy().as_ref() {
            "sslmode" => &mut settings.mode,
            "sslrootcert" => &mut settings.root_cert,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        *target = Setting {
            value: Some(percent_decode_str(value).decode_utf8_lossy().into_owned()),
            variable: DATABASE_URL.to_owned(),
        };
    }
    let stripped = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (stripped, settings)
}

/// Checks the settings and builds the connector; every problem at once.
pub(crate) fn from_settings(settings: &TlsSettings) -> Result<PgTls, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let mode = match &settings.mode.value {
        None => SslMode::default(),
        Some(text) => match text.parse::<SslMode>() {
            Ok(mode) => mode,
            Err(_) => {
                issues.push(bad_mode(&settings.mode, text));
                return Err(issues);
            }
        },
    };
    let root_cert = settings.root_cert.value.as_deref();
    if !cfg!(feature = "tls") && mode.requires_tls() {
        issues.push(issue(
            "sslmode",
            &settings.mode.variable,
            mode.as_str(),
            format!("sslmode={mode} needs TLS, but pool-pg was built without its `tls` feature"),
            "enable it in Cargo.toml: pool-pg = { version = \"*\", features = [\"tls\"] }; or set sslmode=prefer (plain text without the feature) or sslmode=disable".to_owned(),
        ));
    }
    if mode.verifies() && root_cert.is_none() {
        issues.push(issue(
            "sslrootcert",
            &settings.mode.variable,
            mode.as_str(),
            format!(
                "sslmode={mode} verifies the server's certificate against a CA certificate, but no sslrootcert is set"
            ),
            "add sslrootcert=/path/to/ca.pem to DATABASE_URL, or set PGSSLROOTCERT=/path/to/ca.pem: the PEM file of the CA that issued the server's certificate (or use sslmode=require to encrypt without verifying)".to_owned(),
        ));
    }
    if root_cert == Some("system") && mode.requires_tls() {
        issues.push(issue(
            "sslrootcert",
            &settings.root_cert.variable,
            "system",
            "sslrootcert=system (the operating system's CA store) is not supported by pool-pg"
                .to_owned(),
            "set sslrootcert to the path of a PEM file holding the CA certificate(s) to trust"
                .to_owned(),
        ));
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    // `disable` and `prefer` never verify, so their root certificate is
    // neither read nor kept.
    let root_cert = root_cert
        .filter(|_| mode.requires_tls())
        .map(|path| Arc::<Path>::from(PathBuf::from(path)));
    let connector = connector_for(mode, root_cert.as_deref(), &settings.root_cert)?;
    Ok(PgTls {
        mode,
        root_cert,
        connector,
    })
}

#[cfg(feature = "tls")]
fn connector_for(
    mode: SslMode,
    root_cert: Option<&Path>,
    from: &Setting,
) -> Result<Connector, Vec<ConfigIssue>> {
    if mode == SslMode::Disable {
        return Ok(Connector::Off);
    }
    let roots = match root_cert {
        Some(path) => Some(super::roots::load(path).map_err(|problem| {
            vec![issue(
                "sslrootcert",
                &from.variable,
                &path.to_string_lossy(),
                format!(
                    "the root certificate file {} (sslrootcert, sslmode={mode}) {}",
                    path.display(),
                    problem.message
                ),
                problem.suggestion,
            )]
        })?),
        None => None,
    };
    let config = super::verify::client_config(mode, roots).map_err(|error| {
        vec![issue(
            "sslmode",
            &from.variable,
            mode.as_str(),
            format!("rustls could not be configured for sslmode={mode}: {error}"),
            "report this as a bug in pool-pg".to_owned(),
        )]
    })?;
    Ok(Connector::Rustls(
        tokio_postgres_rustls::MakeRustlsConnect::new(config),
    ))
}

#[cfg(not(feature = "tls"))]
fn connector_for(
    _mode: SslMode,
    _root_cert: Option<&Path>,
    _from: &Setting,
) -> Result<Connector, Vec<ConfigIssue>> {
    Ok(Connector::Off)
}

fn bad_mode(setting: &Setting, text: &str) -> ConfigIssue {
    let message = format!(
        "sslmode `{text}` (in {}) is not a libpq sslmode",
        setting.variable
    );
    let suggestion = if text == "allow" {
        "`allow` (plain first, TLS if refused) is not supported: use prefer, or disable"
    } else {
        "use one of disable, prefer, require, verify-ca, verify-full"
    };
    issue(
        "sslmode",
        &setting.variable,
        text,
        message,
        suggestion.to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_taken_out_and_the_rest_is_kept() {
        let (url, settings) = take_url_params(
            "postgres://app:p?w@db:5432/x?application_name=api&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem&connect_timeout=3",
        );
        assert_eq!(
            url,
            "postgres://app:p?w@db:5432/x?application_name=api&connect_timeout=3"
        );
        assert_eq!(settings.mode.value.as_deref(), Some("verify-full"));
        assert_eq!(settings.mode.variable, DATABASE_URL);
        assert_eq!(settings.root_cert.value.as_deref(), Some("/tmp/ca x.pem"));
    }

    #[test]
    fn a_query_of_only_ssl_parameters_disappears() {
        let (url, settings) = take_url_params("postgres://db/x?sslmode=disable&sslmode=require");
        assert_eq!(url, "postgres://db/x");
        assert_eq!(settings.mode.value.as_deref(), Some("require"), "last wins");
        let (url, _) = take_url_params("postgres://db/x");
        assert_eq!(url, "postgres://db/x");
    }

    #[test]
    fn the_url_wins_over_the_environment_setting_by_setting() {
        let (_, settings) = take_url_params("postgres://db/x?sslmode=verify-ca");
        let env = [
            (PGSSLMODE, "disable"),
            (PGSSLROOTCERT, "/etc/ca.pem"),
            ("OTHER", "x"),
        ];
        let settings = settings.or_environment(env.iter().copied());
        assert_eq!(settings.mode.value.as_deref(), Some("verify-ca"));
        assert_eq!(settings.root_cert.value.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(settings.root_cert.variable, PGSSLROOTCERT);
    }

    #[test]
    fn an_empty_environment_variable_counts_as_unset() {
        let settings = TlsSettings::default().or_environment([(PGSSLMODE, "")].into_iter());
        assert_eq!(settings.mode.value, None);
        assert_eq!(from_settings(&settings).unwrap().mode(), SslMode::Prefer);
    }

    #[test]
    fn an_unknown_mode_names_the_variable_and_the_choices() {
        let (_, settings) = take_url_params("postgres://db/x?sslmode=allow");
        let issues = from_settings(&settings).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].variable, DATABASE_URL);
        assert!(issues[0].suggestion.contains("prefer"), "{:?}", issues[0]);
    }

    #[test]
    fn verifying_without_a_root_certificate_is_a_configuration_error() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let issues = from_settings(&TlsSettings::programmatic(mode, None)).unwrap_err();
            assert!(
                issues.iter().any(|issue| issue.field == "sslrootcert"),
                "{issues:?}"
            );
        }
    }

    #[test]
    fn disable_and_prefer_ignore_the_root_certificate() {
        let missing = Path::new("/nonexistent/ca.pem");
        for mode in [SslMode::Disable, SslMode::Prefer] {
            let tls = from_settings(&TlsSettings::programmatic(mode, Some(missing))).unwrap();
            assert_eq!(tls.root_cert(), None);
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn modes_that_need_tls_ask_for_the_feature() {
        let issues = from_settings(&TlsSettings::programmatic(SslMode::Require, None)).unwrap_err();
        assert!(
            issues[0].suggestion.contains("features = [\"tls\"]"),
            "{issues:?}"
        );
        let prefer = from_settings(&TlsSettings::default()).unwrap();
        assert!(!prefer.is_tls_capable());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_missing_root_certificate_file_is_a_configuration_error() {
        let missing = Path::new("/nonexistent/ca.pem");
        let issues = from_settings(&TlsSettings::programmatic(
            SslMode::VerifyFull,
            Some(missing),
        ))
        .unwrap_err();
        assert_eq!(issues[0].field, "sslrootcert");
        assert!(
            issues[0].message.contains("/nonexistent/ca.pem"),
            "{:?}",
            issues[0]
        );
        assert!(
            issues[0].message.contains("does not exist"),
            "{:?}",
            issues[0]
        );
    }
}
