//! How the text after `scheme://` splits: where the user info ends, what is
//! left unexplained, and which bytes may hold a password.
//!
//! # Where the user info ends
//!
//! tokio-postgres (0.7) ends the user info at the *first* `@` of the whole
//! URL, so `postgres://db/x?password=hunter@2` reads as user
//! `db/x?password=hunter` on host `2`. A [`Reading`] finds it instead:
//!
//! 1. The *last* `@` before the first `/`, `?` or `#` ends the user info
//!    (`postgres://u:p@ss@h/db` is user `u`, password `p@ss`, host `h`).
//! 2. An `@` after the first `/` but before any `?` or `#` (in what would
//!    be the database name) means the user name or password holds an
//!    unencoded `/`, which generated (base64) passwords often do: if the
//!    text before the first `/` cannot be a host list (a port that is not a
//!    number, as in `u:p/w@h/db`), the user info ends at the last `@`
//!    before the first `?` or `#`. If it can (`postgres://h/x@y`), both
//!    readings fit and the `@` is left [unexplained](Reading::stray_at).
//! 3. An `@` only after the first `?` or `#` is in the query (the
//!    `hunter@2` case): no user info, unless the text before the `?` or
//!    `#` cannot be a host list (`u:p?w@h/db`), in which case the `?` or
//!    `#` is in the password and the user info ends at the next `@` (the
//!    last of a run not broken by `/`, `?` or `#`).
//!
//! After the user info, an `@` is accepted only inside a query value
//! (`?key=va@lue`); any other is unexplained, and the URL is refused.
//!
//! # What is secret
//!
//! Invariant: [`Reading::redacted`] hides every byte that is part of a
//! password under *any* plausible reading, over-redacting rather than
//! leaking: the password of the user info; the value of every query key
//! that contains `password` (any case, percent-decoded: `pass%77ord`,
//! `sslpassword`); every query item without `=` (the tail of a value with
//! an unencoded `&`); and, when an `@` is unexplained, everything from the
//! first `:` to the last such `@` (the password if that `@` ended the user
//! info).

use std::borrow::Cow;
use std::ops::Range;

use percent_encoding::percent_decode_str;

/// What a password is replaced with.
pub(super) const REDACTED: &str = "***";

/// The text after `scheme://`, and where its user info ends.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reading<'a> {
    /// The URL after `scheme://`.
    rest: &'a str,
    /// The index in `rest` of the `@` that ends the user info.
    user_end: Option<usize>,
}

impl<'a> Reading<'a> {
    /// Finds where the user info of `rest` ends (see the module docs).
    pub(super) fn of(rest: &'a str) -> Self {
        let query = first_of(rest, &['?', '#']);
        let authority = first_of(rest, &['/', '?', '#']);
        let strict = rest[..authority].rfind('@');
        let last = rest[..query].rfind('@');
        let strict_hosts = &rest[strict.map_or(0, |at| at + 1)..authority];
        let user_end = if last != strict {
            // An `@` in what would be the database name.
            if is_host_list(strict_hosts) {
                strict
            } else {
                last
            }
        } else if last.is_none() && rest[query..].contains('@') && !is_host_list(strict_hosts) {
            // The text before the `?` or `#` is no host list: the `?` or
            // `#` is in the password, and the next `@` ends it.
            rest[query..].find('@').and_then(|at| {
                let first = query + at;
                let end = first + 1 + first_of(&rest[first + 1..], &['/', '?', '#']);
                rest[..end].rfind('@')
            })
        } else {
            strict
        };
        Self { rest, user_end }
    }

    /// The user info, `user[:password]` as written, if there is one.
    fn user_info(&self) -> Option<&'a str> {
        self.user_end.map(|at| &self.rest[..at])
    }

    /// The index in `rest` where the host list starts.
    fn after_user(&self) -> usize {
        self.user_end.map_or(0, |at| at + 1)
    }

    /// The index in `rest` of the `?` that starts the query, if any.
    fn query_mark(&self) -> Option<usize> {
        let start = self.after_user();
        self.rest[start..].find('?').map(|at| start + at)
    }

    /// The index in `rest` of the last `@` after the user info that is not
    /// inside a query value: where the user info ends is then unclear.
    pub(super) fn stray_at(&self) -> Option<usize> {
        let start = self.after_user();
        let query = self.query_mark();
        self.rest[start..]
            .rmatch_indices('@')
            .map(|(at, _)| start + at)
            .find(|&at| match query {
                Some(mark) if at > mark => {
                    let item_start = self.rest[..at].rfind('&').map_or(mark, |amp| amp.max(mark));
                    !self.rest[item_start..at].contains('=')
                }
                _ => true,
            })
    }

    /// Whether a `#` follows the user info: a fragment, or an unencoded
    /// `#` in the database name or a query value.
    pub(super) fn has_hash(&self) -> bool {
        self.rest[self.after_user()..].contains('#')
    }

    /// The URL for tokio-postgres: every `@` but the one ending the user
    /// info percent-encoded as `%40`, so that its first-`@` rule finds the
    /// right one. tokio-postgres decodes the user, password, database name
    /// and query values, so each still means what it said.
    pub(super) fn canonical(&self, scheme: &str) -> String {
        let mut out = format!("{scheme}://");
        if let Some(user_info) = self.user_info() {
            out.push_str(&user_info.replace('@', "%40"));
            out.push('@');
        }
        out.push_str(&self.rest[self.after_user()..].replace('@', "%40"));
        out
    }

    /// The byte ranges of `rest` that may hold a password, sorted and
    /// merged.
    fn secret_spans(&self) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        if let Some(colon) = self.user_info().and_then(|info| info.find(':')) {
            spans.push(colon + 1..self.after_user() - 1);
        }
        if let Some(at) = self.stray_at() {
            if let Some(colon) = self.rest[..at].find(':') {
                spans.push(colon + 1..at);
            }
        }
        if let Some(mark) = self.query_mark() {
            let mut start = mark + 1;
            for item in self.rest[mark + 1..].split('&') {
                match item.split_once('=') {
                    Some((key, _)) if is_password_key(key) => {
                        spans.push(start + key.len() + 1..start + item.len());
                    }
                    Some(_) => {}
                    None => spans.push(start..start + item.len()),
                }
                start += item.len() + 1;
            }
        }
        spans.retain(|span| !span.is_empty());
        spans.sort_by_key(|span| span.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(previous) if span.start <= previous.end => {
                    previous.end = previous.end.max(span.end);
                }
                _ => merged.push(span),
            }
        }
        merged
    }

    /// `rest` with every byte that may belong to a password replaced by
    /// `***` (each run once).
    pub(super) fn redacted(&self) -> String {
        let mut out = String::with_capacity(self.rest.len());
        let mut shown = 0;
        for span in self.secret_spans() {
            out.push_str(&self.rest[shown..span.start]);
            out.push_str(REDACTED);
            shown = span.end;
        }
        out.push_str(&self.rest[shown..]);
        out
    }

    /// Every text [`redacted`](Self::redacted) hides, as written and
    /// percent-decoded, longest first: what to scrub from text that was
    /// made from the URL elsewhere (a tokio-postgres error).
    pub(super) fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = Vec::new();
        for span in self.secret_spans() {
            let raw = &self.rest[span];
            let decoded: Cow<'_, str> = percent_decode_str(raw).decode_utf8_lossy();
            secrets.push(raw.to_owned());
            secrets.push(decoded.into_owned());
        }
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        secrets
    }
}

/// A query key whose value is hidden: it contains `password` in any case,
/// once percent-decoded and trimmed (`password`, `PassWord`, `pass%77ord`,
/// `sslpassword`).
fn is_password_key(key: &str) -> bool {
    percent_decode_str(key)
        .decode_utf8_lossy()
        .trim()
        .to_ascii_lowercase()
        .contains("password")
}

/// Whether `hosts` reads as a host list: `host[:port]` or `[v6][:port]`,
/// comma-separated, every port empty or a number that fits in 16 bits
/// (after percent-decoding, as tokio-postgres reads it). An empty list
/// counts (the host may come from `?host=`).
fn is_host_list(hosts: &str) -> bool {
    hosts.split(',').all(|chunk| {
        let port = match chunk.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((_, "")) => "",
                Some((_, after)) => match after.strip_prefix(':') {
                    Some(port) => port,
                    None => return false,
                },
                None => return false,
            },
            None => chunk.split_once(':').map_or("", |(_, port)| port),
        };
        let port = percent_decode_str(port).decode_utf8_lossy();
        port.is_empty() || port.parse::<u16>().is_ok()
    })
}

/// The index of the first of `delimiters` in `text`, or its length.
fn first_of(text: &str, delimiters: &[char]) -> usize {
    text.find(delimiters).unwrap_or(text.len())
}
