//! The database URL: how it is read, the checks run when the configuration
//! is built, and redaction.
//!
//! Invariant: **nothing this module returns contains the password.** Issues
//! show the URL only through [`redact_url`], which hides every byte that is
//! part of a password under any plausible reading of the URL (see
//! `reading.rs`): the user info's password, every `password` query value,
//! and, when an `@` cannot be placed, everything from the first `:` to it.
//! Parse errors from tokio-postgres carry no input today, but are scrubbed
//! of those texts anyway. [`redacted_url_of`] rebuilds a URL from a parsed
//! configuration, so it has no password to leak in the first place.
//!
//! **Reading the URL.** tokio-postgres ends the user info at the first `@`
//! of the whole URL, so an `@` in a query value (`?password=hunter@2`) made
//! it read the wrong user and host, and show password pieces as the user
//! name. pool-pg finds the user info itself (the last `@` before the first
//! `/`, `?` or `#`, with the exceptions `reading.rs` lists for a `/`, `?`
//! or `#` in a password), then hands tokio-postgres the same URL with every
//! other `@` percent-encoded as `%40`, which it decodes back: the user's
//! intent wins, and `@` needs no encoding in passwords or query values.
//! Two shapes are refused instead of guessed, with the advice to
//! percent-encode: an `@` that is neither the user info's nor inside a query
//! value (`postgres://h/x@y`: a `/` in the user name, or an `@` in the
//! database name?), and a `#` after the host (a fragment, which PostgreSQL
//! URLs do not have, or a `#` that libpq would keep in a value?).
//!
//! Only `postgres://` and `postgresql://` URLs are accepted. tokio-postgres
//! also parses libpq `key=value` strings, but a variable called
//! `DATABASE_URL` holding one is more often a mistake than a choice, and it
//! cannot be redacted reliably when malformed ([`redact_url`] hides it
//! whole); a program that wants one can parse it into a
//! `tokio_postgres::Config` and use `PgManager::new`.

mod reading;
#[cfg(test)]
mod tests;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pool_core::ConfigIssue;
use tokio_postgres::config::Host;
use tokio_postgres::Config;

use crate::tls::{take_url_params, TlsSettings};
use reading::{Reading, REDACTED};

/// The variable that holds the database URL.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// The URL shape shown in suggestions.
pub(crate) const EXAMPLE_URL: &str = "postgres://user:password@host:5432/dbname";
/// What [`redact_url`] returns for text that is not a URL.
const NOT_SHOWN: &str = "<not a URL; not shown>";
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
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) if is_plain_scheme(scheme) || !is_key_value(url) => (scheme, rest),
        _ => {
            let message = if is_key_value(url) {
                "DATABASE_URL is a key=value connection string; only postgres:// URLs are accepted"
            } else {
                "DATABASE_URL is not a URL: it has no scheme such as postgres://"
            };
            return Err(issue(
                message.to_owned(),
                format!("write it as {EXAMPLE_URL}"),
            ));
        }
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
    let reading = Reading::of(rest);
    if reading.has_hash() {
        return Err(issue(
            format!(
                "DATABASE_URL ({shown}) has a `#` after the host: PostgreSQL URLs have no #fragment, and libpq would read it as part of the database name or of a value"
            ),
            "percent-encode # as %23 where it belongs to the database name or a value (such as password=...), or remove the #fragment".to_owned(),
        ));
    }
    if reading.stray_at().is_some() {
        return Err(issue(
            format!(
                "DATABASE_URL ({shown}) has an `@` that neither ends the user name and password nor sits in a query value, so where the user info ends is unclear (a `/`, `?` or `#` in the password, or an `@` in the database name?)"
            ),
            "percent-encode it in DATABASE_URL: in the user name and password @ as %40, / as %2F, ? as %3F, # as %23; in the database name @ as %40"
                .to_owned(),
        ));
    }
    let (without_tls, tls) = take_url_params(&reading.canonical(scheme));
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
                scrub(&cause, &reading.secrets())
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

/// `url` with every password replaced by `***`: the user info's, and the
/// value of every query key containing `password` (`password`,
/// `pass%77ord`, `sslpassword`). The user info ends where pool-pg reads it
/// to end (the last `@` before the host, not the first `@` of the URL);
/// where a URL could be read two ways, whatever could be a password in
/// either reading is hidden. Anything that is not a URL (such as a
/// `key=value` connection string) is replaced whole, since its password
/// cannot be found reliably.
///
/// ```
/// use pool_pg::redact_url;
///
/// assert_eq!(
///     redact_url("postgres://app:s3cr3t@db:5432/orders?password=s3cr3t&sslmode=require"),
///     "postgres://app:***@db:5432/orders?password=***&sslmode=require",
/// );
/// assert_eq!(
///     redact_url("postgres://db/orders?password=hunter@2"),
///     "postgres://db/orders?password=***",
/// );
/// assert_eq!(redact_url("host=db password=s3cr3t"), "<not a URL; not shown>");
/// ```
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if is_plain_scheme(scheme) => {
            format!("{scheme}://{}", Reading::of(rest).redacted())
        }
        Some(_) => NOT_SHOWN.to_owned(),
        None if is_key_value(url) => NOT_SHOWN.to_owned(),
        None => Reading::of(url).redacted(),
    }
}

/// A URL rebuilt from a parsed configuration: user, `***` if there is a
/// password, hosts and ports, database and application name. It never
/// contains the password because it is never given it; a user or database
/// name that holds `password=` (a URL misread before it reached us) is
/// shown as `***` too.
pub(crate) fn redacted_url_of(config: &Config) -> String {
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(&encode_shown(user));
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
        out.push_str(&encode_shown(dbname));
    }
    if let Some(name) = config.get_application_name() {
        out.push_str("?application_name=");
        out.push_str(&encode_shown(name));
    }
    out
}

/// A user, database or application name as safe to show: `***` if it
/// holds `password=` in any case, the sign of a URL tokio-postgres read
/// itself (`postgres://db/x?password=hunter@2` gives the user
/// `db/x?password=hunter`); else `name`. pool-pg's own reading never gives
/// such a name; this guards configurations built elsewhere.
pub(crate) fn shown_name(name: &str) -> &str {
    if name.to_ascii_lowercase().contains("password=") {
        REDACTED
    } else {
        name
    }
}

/// [`shown_name`], percent-encoded for a URL (`***` kept as is).
fn encode_shown(name: &str) -> String {
    match shown_name(name) {
        REDACTED => REDACTED.to_owned(),
        shown => encode(shown),
    }
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

/// `text` with each of `secrets` (longest first; see
/// `Reading::secrets`) replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        text = text.replace(secret.as_str(), REDACTED);
    }
    text
}

/// Every byte but the RFC 3986 unreserved characters (ASCII letters and
/// digits, `-._~`): each URL part is encoded whole, so no delimiter in a user,
/// database or application name or a socket path can end it early. Bytes
/// outside ASCII are always encoded (`utf8_percent_encode` does that whatever
/// the set).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}
