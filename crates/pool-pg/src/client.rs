//! The counting request methods of [`PgConnection`].
//!
//! Each method has the name and parameters of the `tokio_postgres::Client`
//! method it forwards to, so `conn.query(..)` on a pooled connection reads
//! exactly like tokio-postgres; being inherent, it is found before the one
//! behind `Deref`. Each sends its request through `Session::run`, which
//! counts statements, raises the in-flight marker for as long as the
//! request runs, and follows transaction control (see `session.rs`).
//!
//! The one visible difference: methods taking a statement accept any
//! [`TrackedStatement`] (`str`, `String` or a prepared `Statement`, the very
//! types tokio-postgres accepts), so the connection can read the SQL text
//! for `BEGIN` and `COMMIT`.

use std::fmt;

use tokio_postgres::types::{BorrowToSql, FromSqlOwned, ToSql, Type};
use tokio_postgres::{
    Error, Row, RowStream, SimpleQueryMessage, SimpleQueryStream, Statement, ToStatement,
};

use crate::connection::PgConnection;
use crate::session::Effect;
use crate::sql::{control_of, scan};
use crate::transaction::{PgTransaction, PgTransactionBuilder};

/// A statement a [`PgConnection`] can run and follow: a SQL string (`str`,
/// `String`) or a prepared [`Statement`], the same types as
/// [`ToStatement`]. Sealed.
///
/// The connection reads the text of a string for transaction control. A
/// prepared `Statement` carries no text; preparing a transaction-control
/// statement (`conn.prepare("BEGIN")`) therefore marks the connection dirty
/// for good (it is closed on return).
///
/// Code generic over `T: ToStatement` should bound on `TrackedStatement`
/// instead (every `ToStatement` type is one).
pub trait TrackedStatement: ToStatement + sealed::Sealed {}

mod sealed {
    /// The SQL text, where the type has one.
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

impl TrackedStatement for str {}
impl TrackedStatement for String {}
impl TrackedStatement for Statement {}

/// The transaction effect of one extended-protocol statement.
fn effect_of<T: ?Sized + TrackedStatement>(statement: &T) -> Effect {
    Effect::of(statement.sql().and_then(control_of))
}

/// The effect of preparing `query`.
pub(crate) fn prepare_effect(query: &str) -> Effect {
    match control_of(query) {
        Some(_) => Effect::Prepare,
        None => Effect::None,
    }
}

impl PgConnection {
    /// Like [`Client::prepare`](tokio_postgres::Client::prepare); counts one
    /// statement.
    pub async fn prepare(&self, query: &str) -> Result<Statement, Error> {
        let request = self.client.prepare(query);
        self.session.run(1, prepare_effect(query), request).await
    }

    /// Like [`Client::prepare_typed`](tokio_postgres::Client::prepare_typed);
    /// counts one statement.
    pub async fn prepare_typed(
        &self,
        query: &str,
        parameter_types: &[Type],
    ) -> Result<Statement, Error> {
        let request = self.client.prepare_typed(query, parameter_types);
        self.session.run(1, prepare_effect(query), request).await
    }

    /// Like [`Client::query`](tokio_postgres::Client::query); counts one
    /// statement.
    pub async fn query<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error>
    where
        T: ?Sized + TrackedStatement,
    {
        let request = self.client.query(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::query_scalar`](tokio_postgres::Client::query_scalar);
    /// counts one statement.
    pub async fn query_scalar<R: FromSqlOwned, T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<R>, Error>
    where
        T: ?Sized + TrackedStatement + fmt::Debug,
    {
        let request = self.client.query_scalar(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::query_one`](tokio_postgres::Client::query_one); counts
    /// one statement.
    pub async fn query_one<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error>
    where
        T: ?Sized + TrackedStatement,
    {
        let request = self.client.query_one(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::query_one_scalar`](tokio_postgres::Client::query_one_scalar);
    /// counts one statement.
    pub async fn query_one_scalar<R: FromSqlOwned, T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<R, Error>
    where
        T: ?Sized + TrackedStatement + fmt::Debug,
    {
        let request = self.client.query_one_scalar(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::query_opt`](tokio_postgres::Client::query_opt); counts
    /// one statement.
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error>
    where
        T: ?Sized + TrackedStatement,
    {
        let request = self.client.query_opt(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::query_opt_scalar`](tokio_postgres::Client::query_opt_scalar);
    /// counts one statement.
    pub async fn query_opt_scalar<R: FromSqlOwned, T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<R>, Error>
    where
        T: ?Sized + TrackedStatement + fmt::Debug,
    {
        let request = self.client.query_opt_scalar(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::query_raw`](tokio_postgres::Client::query_raw); counts
    /// one statement. The in-flight marker covers the call, not the rows
    /// still to come: an unfinished stream is safe to drop (tokio-postgres
    /// discards the rest in order), but the next caller waits for it.
    pub async fn query_raw<T, P, I>(&self, statement: &T, params: I) -> Result<RowStream, Error>
    where
        T: ?Sized + TrackedStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let request = self.client.query_raw(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::query_typed`](tokio_postgres::Client::query_typed);
    /// counts one statement.
    pub async fn query_typed(
        &self,
        query: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let request = self.client.query_typed(query, params);
        self.session.run(1, effect_of(query), request).await
    }

    /// Like [`Client::query_typed_one`](tokio_postgres::Client::query_typed_one);
    /// counts one statement.
    pub async fn query_typed_one(
        &self,
        query: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Row, Error> {
        let request = self.client.query_typed_one(query, params);
        self.session.run(1, effect_of(query), request).await
    }

    /// Like [`Client::query_typed_opt`](tokio_postgres::Client::query_typed_opt);
    /// counts one statement.
    pub async fn query_typed_opt(
        &self,
        query: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Option<Row>, Error> {
        let request = self.client.query_typed_opt(query, params);
        self.session.run(1, effect_of(query), request).await
    }

    /// Like [`Client::query_typed_raw`](tokio_postgres::Client::query_typed_raw);
    /// counts one statement. See [`query_raw`](Self::query_raw) for the
    /// rows still to come.
    pub async fn query_typed_raw<P, I>(&self, query: &str, params: I) -> Result<RowStream, Error>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = (P, Type)>,
    {
        let request = self.client.query_typed_raw(query, params);
        self.session.run(1, effect_of(query), request).await
    }

    /// Like [`Client::execute`](tokio_postgres::Client::execute); counts one
    /// statement.
    pub async fn execute<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error>
    where
        T: ?Sized + TrackedStatement,
    {
        let request = self.client.execute(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::execute_typed`](tokio_postgres::Client::execute_typed);
    /// counts one statement.
    pub async fn execute_typed(
        &self,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<u64, Error> {
        let request = self.client.execute_typed(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::execute_raw`](tokio_postgres::Client::execute_raw);
    /// counts one statement.
    pub async fn execute_raw<T, P, I>(&self, statement: &T, params: I) -> Result<u64, Error>
    where
        T: ?Sized + TrackedStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let request = self.client.execute_raw(statement, params);
        self.session.run(1, effect_of(statement), request).await
    }

    /// Like [`Client::simple_query`](tokio_postgres::Client::simple_query);
    /// counts each non-empty `;`-separated statement of `query`.
    pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        let scan = scan(query);
        let request = self.client.simple_query(query);
        self.session
            .run(scan.statements, Effect::of(scan.control), request)
            .await
    }

    /// Like [`Client::simple_query_raw`](tokio_postgres::Client::simple_query_raw);
    /// counts each non-empty statement of `query`. The statements run after
    /// the stream is returned, so their outcome is never seen: transaction
    /// control sent this way leaves the connection dirty until a later
    /// `COMMIT` or `ROLLBACK` through a counting method.
    pub async fn simple_query_raw(&self, query: &str) -> Result<SimpleQueryStream, Error> {
        let scan = scan(query);
        let effect = match scan.control {
            Some(_) => Effect::Unseen,
            None => Effect::None,
        };
        let request = self.client.simple_query_raw(query);
        self.session.run(scan.statements, effect, request).await
    }

    /// Like [`Client::batch_execute`](tokio_postgres::Client::batch_execute);
    /// counts each non-empty `;`-separated statement of `query`.
    pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
        let scan = scan(query);
        let request = self.client.batch_execute(query);
        self.session
            .run(scan.statements, Effect::of(scan.control), request)
            .await
    }

    /// Like [`Client::transaction`](tokio_postgres::Client::transaction):
    /// begins a transaction that rolls back unless committed. Counts its
    /// `BEGIN`; the returned [`PgTransaction`] counts the rest.
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, Error> {
        self.build_transaction().start().await
    }

    /// Like [`Client::build_transaction`](tokio_postgres::Client::build_transaction):
    /// a transaction with an isolation level, read-only or deferrable.
    pub fn build_transaction(&mut self) -> PgTransactionBuilder<'_> {
        PgTransactionBuilder::new(self.client.build_transaction(), &self.session)
    }
}
