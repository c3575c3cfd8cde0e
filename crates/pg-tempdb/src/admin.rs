//! Admin SQL: `psql` as the superuser over the server's private Unix socket.
//!
//! Why `psql` and not a client library: these helpers are synchronous and
//! must work from inside a tokio runtime (where a blocking client such as the
//! `postgres` crate panics), and the superuser's trust authentication over
//! the socket means no password is ever needed, whatever the builder set.
//!
//! Each call holds the server's state lock while it runs, so it never races a
//! stop or a pause; it refuses to run on a stopped or paused server instead
//! of hanging, and `psql` itself is bounded by [`ADMIN_SQL_TIMEOUT`]. The
//! role set-up SQL, which contains the password, goes through standard input
//! (never the command line, which other users can read in `ps`), and the
//! password is redacted from anything that reaches an error.

use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::builder::{TempDbBuilder, DEFAULT_DBNAME};
use crate::error::{redact, Result, TempDbError, LOG_TAIL_LINES};
use crate::exec::{self, Backoff};
use crate::server::TempDb;
use crate::template::SUPERUSER;

/// Bound for one admin `psql` run.
const ADMIN_SQL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `pg_terminate_backend` waits for each backend to exit (ms).
const TERMINATE_WAIT_MS: u32 = 5_000;
/// How much of the SQL an error message quotes.
const SQL_IN_ERRORS: usize = 120;

impl TempDb {
    /// Runs `sql` as the superuser in [`dbname`](Self::dbname) and returns
    /// what `psql -A -t` printed, trimmed: unaligned rows, `|` between
    /// columns, no headers; for a statement without rows, its command tag
    /// (e.g. `CREATE TABLE`). Several statements may be separated by `;`
    /// (they run in one implicit transaction); only the last result is
    /// printed.
    pub fn execute(&self, sql: &str) -> Result<String> {
        let _state = self.lock_responsive("run SQL")?;
        let what = redact(&format!("psql -c {:?}", abbreviate(sql)), self.password());
        let mut cmd = self.psql(self.dbname());
        cmd.arg("-c").arg(sql);
        let done = exec::run(&mut cmd, &what, None, ADMIN_SQL_TIMEOUT)
            .map_err(|e| self.with_log_tail(e))?
            .success_or_error(&what, self.password(), || {
                Some(self.log_tail(LOG_TAIL_LINES))
            })?;
        Ok(done.stdout.trim().to_owned())
    }

    /// Runs `sql`, which must print one value, and parses it.
    ///
    /// ```no_run
    /// # fn demo(db: &pg_tempdb::TempDb) -> Result<(), pg_tempdb::TempDbError> {
    /// let n: i64 = db.query_scalar("SELECT count(*) FROM pg_class")?;
    /// # Ok(()) }
    /// ```
    pub fn query_scalar<T: FromStr>(&self, sql: &str) -> Result<T> {
        let output = self.execute(sql)?;
        output.parse().map_err(|_| TempDbError::UnexpectedOutput {
            command: redact(&format!("psql -c {:?}", abbreviate(sql)), self.password()),
            output,
        })
    }

    /// Terminates every client connection (other than the kit's own) and
    /// returns how many were terminated. Each terminated backend has exited
    /// when this returns (PostgreSQL 14 and later wait up to 5 s for each),
    /// so a client's next query fails.
    pub fn terminate_backends(&self) -> Result<u64> {
        self.terminate_where("")
    }

    /// Like [`terminate_backends`](Self::terminate_backends), limited to
    /// connections whose `application_name` is `application_name`.
    pub fn terminate_backends_of(&self, application_name: &str) -> Result<u64> {
        self.terminate_where(&format!(
            " AND application_name = {}",
            quote_literal(application_name)
        ))
    }

    /// How many client connections with this `application_name` the server
    /// has now (the kit's own excluded). A connection closed a moment ago
    /// may be counted until its backend exits; to assert a decrease, use
    /// [`wait_for_connections`](Self::wait_for_connections).
    pub fn count_connections(&self, application_name: &str) -> Result<u64> {
        self.count_where(&format!(
            " AND application_name = {}",
            quote_literal(application_name)
        ))
    }

    /// How many client connections the server has now, from any
    /// application (the kit's own excluded).
    pub fn count_all_connections(&self) -> Result<u64> {
        self.count_where("")
    }

    /// Polls until the number of client connections (with this
    /// `application_name`, or all when `None`) equals `expected`, for at most
    /// `timeout`. The timeout error names the last count seen.
    pub fn wait_for_connections(
        &self,
        application_name: Option<&str>,
        expected: u64,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new();
        loop {
            let count = match application_name {
                Some(name) => self.count_connections(name)?,
                None => self.count_all_connections()?,
            };
            if count == expected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TempDbError::Timeout {
                    operation: format!(
                        "waiting for {expected} client connection(s) (last count: {count})"
                    ),
                    timeout,
                    log_tail: None,
                });
            }
            backoff.sleep_until_next(deadline);
        }
    }

    /// Creates the role and database the builder asked for.
    pub(crate) fn provision(&self, builder: &TempDbBuilder) -> Result<()> {
        let user = quote_ident(self.user());
        let password = self
            .password()
            .map(|p| format!(" PASSWORD {}", quote_literal(p)))
            .unwrap_or_default();
        let mut script = String::new();
        if self.user() != SUPERUSER {
            script.push_str(&format!("CREATE ROLE {user} LOGIN CREATEDB{password};\n"));
            if self.dbname() == DEFAULT_DBNAME {
                script.push_str(&format!("GRANT CREATE ON SCHEMA public TO {user};\n"));
            }
        } else if !password.is_empty() {
            script.push_str(&format!("ALTER ROLE {user}{password};\n"));
        }
        if builder.dbname_or_default() != DEFAULT_DBNAME {
            script.push_str(&format!(
                "CREATE DATABASE {} OWNER {user};\n",
                quote_ident(self.dbname())
            ));
        }
        if script.is_empty() {
            return Ok(());
        }
        let what = "psql (creating the role and database)";
        let mut cmd = self.psql(DEFAULT_DBNAME);
        cmd.arg("-q");
        exec::run(&mut cmd, what, Some(script.into_bytes()), ADMIN_SQL_TIMEOUT)
            .map_err(|e| self.with_log_tail(e))?
            .success_or_error(what, self.password(), || {
                Some(self.log_tail(LOG_TAIL_LINES))
            })?;
        Ok(())
    }

    fn terminate_where(&self, filter: &str) -> Result<u64> {
        let wait = if self.template.install.major >= 14 {
            format!(", {TERMINATE_WAIT_MS}")
        } else {
            String::new()
        };
        self.query_scalar(&format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid{wait}) AS terminated \
             FROM pg_stat_activity WHERE backend_type = 'client backend' \
             AND pid <> pg_backend_pid(){filter}) AS t WHERE terminated"
        ))
    }

    fn count_where(&self, filter: &str) -> Result<u64> {
        self.query_scalar(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
             AND pid <> pg_backend_pid(){filter}"
        ))
    }

    /// `psql` as the superuser over the private socket, stopping at the
    /// first error, without reading any psqlrc.
    fn psql(&self, dbname: &str) -> std::process::Command {
        let install = &self.template.install;
        let mut cmd = install.command(&install.psql);
        cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", dbname])
            .env("PGCONNECT_TIMEOUT", "10");
        cmd
    }
}

/// `'text'`, with quotes doubled (standard_conforming_strings is on).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"name"`, with double quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn abbreviate(sql: &str) -> String {
    let sql = sql.trim();
    match sql.char_indices().nth(SQL_IN_ERRORS) {
        Some((cut, _)) => format!("{}...", &sql[..cut]),
        None => sql.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_characters() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn long_sql_is_abbreviated_on_a_character_boundary() {
        let sql = "é".repeat(200);
        let short = abbreviate(&sql);
        assert!(short.ends_with("..."));
        assert_eq!(short.chars().count(), SQL_IN_ERRORS + 3);
    }
}
