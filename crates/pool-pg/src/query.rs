//! The caching request methods of [`PgConnection`].
//!
//! Each has the name and parameters of the `tokio_postgres::Client` method
//! it stands for, so `conn.query(..)` on a pooled connection reads exactly
//! like tokio-postgres; being inherent, it is found before the one behind
//! `Deref`. Given SQL text, it runs the connection's cached statement for
//! it, preparing it on a miss (see `cache.rs`); given a prepared
//! `Statement`, it runs that. Tracking needs none of this: the wire sees
//! every request (see `wire.rs`).
//!
//! A cached statement can go stale under the caller: a table it reads
//! changed its columns (0A000, "cached plan must not change result type"),
//! or the server dropped it (26000). The entry is then forgotten, and the
//! call runs once more with a fresh statement when that is safe: outside a
//! transaction block, where the failed run changed nothing.

use std::future::Future;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{Error, Row, RowStream, Statement, ToStatement};

use crate::connection::PgConnection;

/// A statement a [`PgConnection`] can run: a SQL string (`str`, `String`),
/// run through the connection's statement cache, or a prepared
/// [`Statement`], run as it is. The same types as [`ToStatement`]; sealed.
pub trait SqlOrStatement: ToStatement + sealed::Sealed {}

mod sealed {
    /// The SQL text, where the type is one.
    #[allow(unreachable_pub)] // public in a private module: the sealing idiom
    pub trait Sealed {
        fn sql(&self) -> Option<&str>;
    }

    impl Sealed for str {
        fn sql(&self) -> Option<&str> {
            Some(self)
        }
    }

    impl Sealed for String {
        fn sql(&self) -> Option<&str> {
            Some(self)
        }
    }

    impl Sealed for tokio_postgres::Statement {
        fn sql(&self) -> Option<&str> {
            None
        }
    }
}

impl SqlOrStatement for str {}
impl SqlOrStatement for String {}
impl SqlOrStatement for Statement {}

/// Whether `error` says a cached statement went stale.
fn is_stale(error: &Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::FEATURE_NOT_SUPPORTED
            || *code == SqlState::INVALID_SQL_STATEMENT_NAME
    )
}

impl PgConnection {
    /// The connection's prepared statement for `sql`, prepared now if it
    /// is not cached (with the cache off, a fresh one every time).
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, Error> {
        self.prepare_typed_cached(sql, &[]).await
    }

    /// Like [`prepare_cached`](Self::prepare_cached), with declared
    /// parameter types (as [`Client::prepare_typed`](tokio_postgres::Client::prepare_typed)).
    pub async fn prepare_typed_cached(
        &self,
        sql: &str,
        types: &[Type],
    ) -> Result<Statement, Error> {
        let epoch = self.wire.epoch();
        if let Some(statement) = self.cache.lock().get(sql, types, epoch) {
            return Ok(statement);
        }
        let statement = self.client.prepare_typed(sql, types).await?;
        self.cache
            .lock()
            .insert(sql, types, statement.clone(), epoch);
        Ok(statement)
    }

    /// Runs `run` with the cached statement for `sql`, and once more with a
    /// fresh one if the cached one went stale and that is safe.
    async fn cached<R, F, Fut>(&self, sql: &str, run: F) -> Result<R, Error>
    where
        F: Fn(Statement) -> Fut,
        Fut: Future<Output = Result<R, Error>>,
    {
        let statement = self.prepare_cached(sql).await?;
        match run(statement).await {
            Err(error) if is_stale(&error) => {
                self.cache.lock().remove(sql, &[]);
                if !self.is_idle() {
                    return Err(error);
                }
                tracing::debug!(
                    target: "pool_pg::connection",
                    sqlstate = error.code().map(|code| code.code()),
                    "a cached statement went stale; preparing it again and running the call once more"
                );
                let statement = self.prepare_cached(sql).await?;
                run(statement).await
            }
            other => other,
        }
    }

    /// Like [`Client::query`](tokio_postgres::Client::query), through the
    /// statement cache.
    pub async fn query<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error>
    where
        T: ?Sized + SqlOrStatement,
    {
        match statement.sql() {
            Some(sql) if self.cache_on => {
                self.cached(sql, |s| async move { self.client.query(&s, params).await })
                    .await
            }
            _ => self.client.query(statement, params).await,
        }
    }

    /// Like [`Client::query_one`](tokio_postgres::Client::query_one),
    /// through the statement cache.
    pub async fn query_one<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error>
    where
        T: ?Sized + SqlOrStatement,
    {
        match statement.sql() {
            Some(sql) if self.cache_on => {
                self.cached(
                    sql,
                    |s| async move { self.client.query_one(&s, params).await },
                )
                .await
            }
            _ => self.client.query_one(statement, params).await,
        }
    }

    /// Like [`Client::query_opt`](tokio_postgres::Client::query_opt),
    /// through the statement cache.
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error>
    where
        T: ?Sized + SqlOrStatement,
    {
        match statement.sql() {
            Some(sql) if self.cache_on => {
                self.cached(
                    sql,
                    |s| async move { self.client.query_opt(&s, params).await },
                )
                .await
            }
            _ => self.client.query_opt(statement, params).await,
        }
    }

    /// Like [`Client::execute`](tokio_postgres::Client::execute), through
    /// the statement cache.
    pub async fn execute<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error>
    where
        T: ?Sized + SqlOrStatement,
    {
        match statement.sql() {
            Some(sql) if self.cache_on => {
                self.cached(
                    sql,
                    |s| async move { self.client.execute(&s, params).await },
                )
                .await
            }
            _ => self.client.execute(statement, params).await,
        }
    }

    /// Like [`Client::query_raw`](tokio_postgres::Client::query_raw),
    /// through the statement cache. The parameters are consumed by the
    /// first run, so a stale statement is dropped from the cache but the
    /// call is not run again.
    pub async fn query_raw<T, P, I>(&self, statement: &T, params: I) -> Result<RowStream, Error>
    where
        T: ?Sized + SqlOrStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        match statement.sql() {
            Some(sql) if self.cache_on => {
                let cached = self.prepare_cached(sql).await?;
                let result = self.client.query_raw(&cached, params).await;
                self.forget_if_stale(sql, &result);
                result
            }
            _ => self.client.query_raw(statement, params).await,
        }
    }

    /// Like [`Client::execute_raw`](tokio_postgres::Client::execute_raw),
    /// through the statement cache; see [`query_raw`](Self::query_raw) for
    /// a stale statement.
    pub async fn execute_raw<T, P, I>(&self, statement: &T, params: I) -> Result<u64, Error>
    where
        T: ?Sized + SqlOrStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        match statement.sql() {
            Some(sql) if self.cache_on => {
                let cached = self.prepare_cached(sql).await?;
                let result = self.client.execute_raw(&cached, params).await;
                self.forget_if_stale(sql, &result);
                result
            }
            _ => self.client.execute_raw(statement, params).await,
        }
    }

    fn forget_if_stale<R>(&self, sql: &str, result: &Result<R, Error>) {
        if matches!(result, Err(error) if is_stale(error)) {
            self.cache.lock().remove(sql, &[]);
        }
    }
}
