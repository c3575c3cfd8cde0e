//! The database URL: the checks run when the configuration is built, and
//! redaction.
//!
//! Invariant: **nothing this module returns contains the password.** Issues
//! show the URL only through [`redact_url`], which replaces the password of
//! the user-info part and every `password=` query value with `***`; the
//! password is taken to run from the first `:` of the user-info to the
//! *last* `@`, so a password with an unencoded `@` is hidden whole (over-
//! redacting the host at worst, never leaking). Parse errors from
//! tokio-postgres carry no input today, but are scrubbed of the password
//! anyway. [`redacted_url_of`] rebuilds a URL from a parsed configuration,
//! so it has no password to leak in the first place.
//!
//! Only `postgres://` and `postgresql://` URLs are accepted. tokio-postgres
//! also parses libpq `key=value` strings, but a variable called
//! `DATABASE_URL` holding one is more often a mistake than a choice, and it
//! cannot be redacted reliably when malformed; a program that wants one can
//! parse it into a `tokio_postgres::Config` and use `PgManager::new`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use pool_core::ConfigIssue;
use tokio_postgres::config::Host;
use tokio_postgres::Config;

use crate::tls::{take_url_params, TlsSettings};

/// The variable that holds the database URL.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// The URL shape shown in suggestions.
pub(crate) const EXAMPLE_URL: &str = "postgres://user:password@host:5432/dbname";
/// What a password is replaced with.
const REDACTED: &str = "***";
/// The configuration field the URL issues are filed under.
const FIELD: &str = "database_url";

/// Parses and checks a database URL. The error says what is wrong and what
/// to change, and never contains the password. The libpq TLS settings
/// tokio-postgres does not know (`sslmode`, `sslrootcert`) are taken out
/// first and returned beside the configuration, for `tls.rs` to check.
pub(crate) fn parse_database_url(raw: &str) -> Result<(Config, TlsSettings), ConfigIssue> {
    let url = raw.trim();
    let shown = redact_url(url);
    let issue = |message: String, suggestion: String| {
        ConfigIssue::new(FIELD, DATABASE_URL, shown.clone(), message, suggestion)
    };
    if url.is_empty() {
        return Err(issue(
            "DATABASE_URL is empty".to_owned(),
            format!("set DATABASE_URL={EXAMPLE_URL}"),
        ));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        let message = if is_key_value(url) {
            "DATABASE_URL is a key=value connection string; only postgres:// URLs are accepted"
        } else {
            "DATABASE_URL is not a URL: it has no scheme such as postgres://"
        };
        return Err(issue(
            message.to_owned(),
            format!("write it as {EXAMPLE_URL}"),
        ));
    };
    if scheme != "postgres" && scheme != "postgresql" {
        let named = if is_plain_scheme(scheme) {
            format!("`{scheme}://`")
        } else {
            "an unknown scheme".to_owned()
        };
        let suggestion = if scheme.eq_ignore_ascii_case("postgres")
            || scheme.eq_ignore_ascii_case("postgresql")
        {
            "write the scheme in lower case: postgres://".to_owned()
        } else {
            format!("use a PostgreSQL URL such as {EXAMPLE_URL} (postgresql:// works too)")
        };
        return Err(issue(
            format!(
                "DATABASE_URL ({shown}) has {named}; only postgres:// and postgresql:// are accepted"
            ),
            suggestion,
        ));
    }
    if rest.matches('@').count() > 1 {
        return Err(issue(
            format!(
                "DATABASE_URL ({shown}) contains more than one `@`: a special character in the user name or password is not percent-encoded"
            ),
            "percent-encode it in DATABASE_URL: @ as %40, : as %3A, / as %2F, ? as %3F, # as %23"
                .to_owned(),
        ));
    }
    let (without_tls, tls) = take_url_params(url);
    let config: Config = without_tls.parse().map_err(|error: tokio_postgres::Error| {
        let mut cause = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            cause.push_str(": ");
            cause.push_str(&inner.to_string());
            source = inner.source();
        }
        issue(
            format!(
                "DATABASE_URL ({shown}) is not a valid PostgreSQL URL: {}",
                scrub(&cause, url)
            ),
            if without_tls.contains(crate::routing::PREFER_STANDBY)
                || without_tls.contains("target_session_attrs=standby")
            {
                // tokio-postgres knows `any`, `read-write` and `read-only`.
                "a single pool supports target_session_attrs=any, read-write or read-only; for reads on standbys with a fallback to the primary, use ReadWritePools (see docs/high-availability.md)".to_owned()
            } else {
                format!(
                    "write it as {EXAMPLE_URL}?option=value, with a numeric port and special characters percent-encoded"
                )
            },
        )
    })?;
    let hosts = config.get_hosts();
    let hostaddrs = config.get_hostaddrs();
    if hosts.is_empty() && hostaddrs.is_empty() {
        return Err(issue(
            format!("DATABASE_URL ({shown}) names no host"),
            format!(
                "add the server's host name or address: {EXAMPLE_URL} (for a Unix socket, add ?host=/path/to/socket/directory)"
            ),
        ));
    }
    if hosts
        .iter()
        .any(|host| matches!(host, Host::Tcp(name) if name.is_empty()))
    {
        return Err(issue(
            format!("DATABASE_URL ({shown}) has an empty host name"),
            format!("put the host name between `@` and the port: {EXAMPLE_URL}"),
        ));
    }
    let host_count = hosts.len().max(hostaddrs.len());
    let ports = config.get_ports().len();
    if ports > 1 && ports != host_count {
        return Err(issue(
            format!("DATABASE_URL ({shown}) lists {host_count} host(s) but {ports} ports"),
            "give one port for every host (host1:5432,host2:5433), or one port for all".to_owned(),
        ));
    }
    Ok((config, tls))
}

/// `url` with its password replaced by `***`, both in the user-info part
/// and in a `password=` query parameter. Anything that is not a URL (such as
/// a `key=value` connection string) is replaced whole, since its password
/// cannot be found reliably.
///
/// ```
/// use pool_pg::redact_url;
///
/// assert_eq!(
///     redact_url("postgres://app:s3cr3t@db:5432/orders?password=s3cr3t&sslmode=require"),
///     "postgres://app:***@db:5432/orders?password=***&sslmode=require",
/// );
/// assert_eq!(redact_url("host=db password=s3cr3t"), "<not a URL; not shown>");
/// ```
pub fn redact_url(url: &str) -> String {
    let (prefix, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None if is_key_value(url) => return "<not a URL; not shown>".to_owned(),
        None => ("", url),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(prefix);
    let after_credentials = match rest.rfind('@') {
        Some(at) => {
            let credentials = &rest[..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(credentials),
            }
            &rest[at..]
        }
        None => rest,
    };
    match after_credentials.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((key, _)) if percent_decode_str(key).decode_utf8_lossy() == "password" => {
                        out.push_str(key);
                        out.push('=');
                        out.push_str(REDACTED);
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(after_credentials),
    }
    out
}

/// A URL rebuilt from a parsed configuration: user, `***` if there is a
/// password, hosts and ports, database and application name. It never
/// contains the password because it is never given it.
pub(crate) fn redacted_url_of(config: &Config) -> String {
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(&encode(user));
    }
    if config.get_password().is_some() {
        out.push(':');
        out.push_str(REDACTED);
    }
    if config.get_user().is_some() || config.get_password().is_some() {
        out.push('@');
    }
    out.push_str(&servers(config).join(","));
    out.push('/');
    if let Some(dbname) = config.get_dbname() {
        out.push_str(&encode(dbname));
    }
    if let Some(name) = config.get_application_name() {
        out.push_str("?application_name=");
        out.push_str(&encode(name));
    }
    out
}

/// The `host:port` of every server the configuration names, in order.
pub(crate) fn servers(config: &Config) -> Vec<String> {
    endpoints(config)
        .into_iter()
        .map(|(host, port)| {
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        })
        .collect()
}

/// Every `(host, port)` the configuration names, in order: the hosts (a
/// Unix socket directory percent-encoded), else the host addresses, each
/// with its port (one port may serve all; 5432 by default).
pub(crate) fn endpoints(config: &Config) -> Vec<(String, u16)> {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = if config.get_hosts().is_empty() {
        config
            .get_hostaddrs()
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => encode(&path.to_string_lossy()),
            })
            .collect()
    };
    hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| (host, port(i)))
        .collect()
}

/// A libpq `key=value` string rather than a URL: an `=` before any `@`.
fn is_key_value(text: &str) -> bool {
    match (text.find('='), text.find('@')) {
        (Some(eq), Some(at)) => eq < at,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// A scheme safe to repeat in a message: short, letters, digits, `+-.`.
fn is_plain_scheme(scheme: &str) -> bool {
    !scheme.is_empty()
        && scheme.len() <= 32
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Removes the URL's password (raw and percent-decoded) from `text`.
fn scrub(text: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let Some(password) = rest
        .rfind('@')
        .and_then(|at| rest[..at].split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty())
    else {
        return text.to_owned();
    };
    let decoded: Cow<'_, str> = percent_decode_str(password).decode_utf8_lossy();
    text.replace(password, REDACTED)
        .replace(decoded.as_ref(), REDACTED)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-p4ss";

    #[test]
    fn the_password_is_redacted_from_user_info_and_query() {
        assert_eq!(
            redact_url("postgres://app:s3cr3t-p4ss@db:5432/x?password=s3cr3t-p4ss"),
            "postgres://app:***@db:5432/x?password=***"
        );
        assert_eq!(
            redact_url("postgres://db/x?pass%77ord=s3cr3t-p4ss&sslmode=disable"),
            "postgres://db/x?pass%77ord=***&sslmode=disable"
        );
    }

    #[test]
    fn prefer_standby_on_a_single_pool_points_to_read_write_pools() {
        let Err(issue) = parse_database_url(
            "postgres://app@a:5432,b:5432/x?target_session_attrs=prefer-standby",
        ) else {
            panic!("tokio-postgres 0.7 does not take prefer-standby");
        };
        let text = issue.to_string();
        assert!(text.contains("ReadWritePools"), "{text}");
    }

    #[test]
    fn an_unencoded_at_sign_in_the_password_is_redacted_whole() {
        let shown = redact_url("postgres://app:s3cr@3t-p4ss@db/x");
        assert_eq!(shown, "postgres://app:***@db/x");
    }

    #[test]
    fn a_url_without_a_password_is_unchanged() {
        let url = "postgresql://app@db:5432/x?application_name=api";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn key_value_strings_are_not_shown() {
        let shown = redact_url(&format!("host=db password={SECRET}"));
        assert!(!shown.contains(SECRET), "{shown}");
    }

    #[test]
    fn a_rebuilt_url_shows_that_a_password_exists_but_not_which() {
        let config: Config = format!("postgres://app:{SECRET}@db:6543/orders?application_name=api")
            .parse()
            .unwrap();
        assert_eq!(
            redacted_url_of(&config),
            "postgres://app:***@db:6543/orders?application_name=api"
        );
    }

    #[test]
    fn unix_socket_and_ipv6_hosts_are_rebuilt_readably() {
        let config: Config = "postgres://app@[::1]:5433,%2Fvar%2Frun%2Fpostgresql/x"
            .parse()
            .unwrap();
        assert_eq!(
            servers(&config),
            vec![
                "[::1]:5433".to_owned(),
                "%2Fvar%2Frun%2Fpostgresql:5432".to_owned()
            ]
        );
    }

    #[test]
    fn scrubbing_removes_raw_and_decoded_passwords() {
        let url = "postgres://app:p%40ss-word@db/x";
        assert_eq!(scrub("a p@ss-word b p%40ss-word", url), "a *** b ***");
    }
}
