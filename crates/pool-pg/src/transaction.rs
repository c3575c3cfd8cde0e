//! [`PgTransaction`]: tokio-postgres's `Transaction`, counted and tracked.
//!
//! A `tokio_postgres::Transaction` borrows the client mutably, so the
//! pooled connection cannot see what runs through it; this wrapper can. It
//! has the methods of `Transaction` that send SQL, with the same names and
//! parameters, and derefs to the `Transaction` for the rest.
//!
//! Its lifetime *is* the transaction block, which keeps the tracking simple
//! and exact:
//!
//! * starting it counts the `BEGIN` and marks the block open;
//! * every request through it counts and raises the in-flight marker, so a
//!   query abandoned inside a transaction still makes the connection dirty;
//! * the block is over when the wrapper is gone, however it went:
//!   `commit` and `rollback` send `COMMIT` / `ROLLBACK` (which end the block
//!   even when they fail: PostgreSQL turns a failed `COMMIT` into a
//!   rollback); dropping it uncommitted makes tokio-postgres queue a
//!   `ROLLBACK` on the connection's request channel, ahead of anything the
//!   next caller can send, so the next caller starts outside any
//!   transaction. A dropped transaction is therefore *not* dirty (the
//!   `recycling` tests check this against the server).
//!
//! A read-only transaction (`build_transaction().read_only(true)`, or `SET
//! TRANSACTION READ ONLY` sent as text through a `&str` method) is
//! remembered, so a write it refuses (SQLSTATE 25006) is the caller's own
//! doing and not taken for a demoted server (see `session.rs`).
//!
//! Transaction-control SQL sent *through* the transaction
//! (`tx.batch_execute("COMMIT")`) changes nothing here: the wrapper's own
//! end always sends `COMMIT` or `ROLLBACK` last. Nested transactions
//! (savepoints) count their `SAVEPOINT` and `RELEASE` / `ROLLBACK TO`, and
//! leave the outer block's state alone.

use std::fmt;
use std::ops::Deref;

use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{
    Error, IsolationLevel, Portal, Row, RowStream, SimpleQueryMessage, Statement, ToStatement,
    Transaction, TransactionBuilder,
};

use crate::client::prepare_effect;
use crate::session::{Effect, Session};

/// A transaction on a pooled connection; rolls back unless committed.
///
/// Returned by [`PgConnection::transaction`](crate::PgConnection::transaction)
/// and [`PgConnection::build_transaction`](crate::PgConnection::build_transaction).
/// Every method that sends SQL counts toward the connection's
/// [`statements`](crate::PgConnection::statements) and keeps the in-flight
/// marker raised while it runs. The rest of [`Transaction`] (`copy_in`,
/// `copy_out`, `cancel_token`, `client`) is reachable through `Deref` and
/// is neither counted nor tracked.
///
/// ```no_run
/// # async fn demo(pool: &pool_pg::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = pool.acquire().await?;
/// let mut tx = conn.transaction().await?;
/// tx.execute("INSERT INTO items VALUES ($1)", &[&1_i32]).await?;
/// let savepoint = tx.transaction().await?; // nested, via SAVEPOINT
/// savepoint.execute("INSERT INTO items VALUES (2)", &[]).await?;
/// drop(savepoint); // ROLLBACK TO the savepoint
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct PgTransaction<'a> {
    // Field order: `inner` drops first, queueing tokio-postgres's ROLLBACK
    // for an uncommitted transaction; then `end` records that.
    inner: Transaction<'a>,
    end: End<'a>,
}

/// Records the end of the block when the wrapper goes, however it goes.
struct End<'a> {
    session: &'a Session,
    /// A savepoint ends nothing but itself.
    savepoint: bool,
    /// `commit` or `rollback` ran (and counted its statement).
    finished: bool,
}

impl Drop for End<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // The ROLLBACK [TO] that tokio-postgres queued on drop.
            self.session.count(1);
        }
        if !self.savepoint {
            self.session.end_transaction();
        }
    }
}

impl<'a> PgTransaction<'a> {
    fn new(inner: Transaction<'a>, session: &'a Session, savepoint: bool) -> Self {
        let end = End {
            session,
            savepoint,
            finished: false,
        };
        Self { inner, end }
    }

    fn session(&self) -> &'a Session {
        self.end.session
    }

    /// Like [`Transaction::commit`]: commits (or, for a savepoint,
    /// releases); counts one statement.
    pub async fn commit(self) -> Result<(), Error> {
        let Self { inner, mut end } = self;
        end.finished = true;
        // Cancel-safe: dropped mid-way, the in-flight marker stays raised
        // (the connection is discarded); `end` records the block's end.
        end.session.run(1, Effect::None, inner.commit()).await
    }

    /// Like [`Transaction::rollback`]: rolls back (or, for a savepoint,
    /// rolls back to it) and reports any error; counts one statement.
    pub async fn rollback(self) -> Result<(), Error> {
        let Self { inner, mut end } = self;
        end.finished = true;
        end.session.run(1, Effect::None, inner.rollback()).await
    }

    /// Like [`Transaction::transaction`]: a nested transaction through a
    /// savepoint; counts the `SAVEPOINT`.
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, Error> {
        let session = self.session();
        let inner = session
            .run(1, Effect::None, self.inner.transaction())
            .await?;
        Ok(PgTransaction::new(inner, session, true))
    }

    /// Like [`Transaction::savepoint`]: a nested transaction through a
    /// savepoint named `name`; counts the `SAVEPOINT`.
    pub async fn savepoint<I>(&mut self, name: I) -> Result<PgTransaction<'_>, Error>
    where
        I: Into<String>,
    {
        let session = self.session();
        let inner = session
            .run(1, Effect::None, self.inner.savepoint(name))
            .await?;
        Ok(PgTransaction::new(inner, session, true))
    }

    /// Like [`Transaction::prepare`]; counts one statement.
    pub async fn prepare(&self, query: &str) -> Result<Statement, Error> {
        let request = self.inner.prepare(query);
        self.session().run(1, prepare_effect(query), request).await
    }

    /// Like [`Transaction::prepare_typed`]; counts one statement.
    pub async fn prepare_typed(
        &self,
        query: &str,
        parameter_types: &[Type],
    ) -> Result<Statement, Error> {
        let request = self.inner.prepare_typed(query, parameter_types);
        self.session().run(1, prepare_effect(query), request).await
    }

    /// Like [`Transaction::query`]; counts one statement.
    pub async fn query<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error>
    where
        T: ?Sized + ToStatement,
    {
        let request = self.inner.query(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::query_one`]; counts one statement.
    pub async fn query_one<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error>
    where
        T: ?Sized + ToStatement,
    {
        let request = self.inner.query_one(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::query_opt`]; counts one statement.
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error>
    where
        T: ?Sized + ToStatement,
    {
        let request = self.inner.query_opt(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::query_raw`]; counts one statement.
    pub async fn query_raw<T, P, I>(&self, statement: &T, params: I) -> Result<RowStream, Error>
    where
        T: ?Sized + ToStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let request = self.inner.query_raw(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::query_typed`]; counts one statement.
    pub async fn query_typed(
        &self,
        query: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let request = self.inner.query_typed(query, params);
        let effect = Effect::read_only_of(query);
        self.session().run(1, effect, request).await
    }

    /// Like [`Transaction::query_typed_one`]; counts one statement.
    pub async fn query_typed_one(
        &self,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Row, Error> {
        let request = self.inner.query_typed_one(statement, params);
        let effect = Effect::read_only_of(statement);
        self.session().run(1, effect, request).await
    }

    /// Like [`Transaction::query_typed_opt`]; counts one statement.
    pub async fn query_typed_opt(
        &self,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Option<Row>, Error> {
        let request = self.inner.query_typed_opt(statement, params);
        let effect = Effect::read_only_of(statement);
        self.session().run(1, effect, request).await
    }

    /// Like [`Transaction::query_typed_raw`]; counts one statement.
    pub async fn query_typed_raw<P, I>(&self, query: &str, params: I) -> Result<RowStream, Error>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = (P, Type)>,
    {
        let request = self.inner.query_typed_raw(query, params);
        let effect = Effect::read_only_of(query);
        self.session().run(1, effect, request).await
    }

    /// Like [`Transaction::execute`]; counts one statement.
    pub async fn execute<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error>
    where
        T: ?Sized + ToStatement,
    {
        let request = self.inner.execute(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::execute_typed`]; counts one statement.
    pub async fn execute_typed(
        &self,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<u64, Error> {
        let request = self.inner.execute_typed(statement, params);
        let effect = Effect::read_only_of(statement);
        self.session().run(1, effect, request).await
    }

    /// Like [`Transaction::execute_raw`]; counts one statement.
    pub async fn execute_raw<P, I, T>(&self, statement: &T, params: I) -> Result<u64, Error>
    where
        T: ?Sized + ToStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let request = self.inner.execute_raw(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::bind`]: binds a portal; counts one statement.
    pub async fn bind<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Portal, Error>
    where
        T: ?Sized + ToStatement,
    {
        let request = self.inner.bind(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::bind_raw`]; counts one statement.
    pub async fn bind_raw<P, T, I>(&self, statement: &T, params: I) -> Result<Portal, Error>
    where
        T: ?Sized + ToStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let request = self.inner.bind_raw(statement, params);
        self.session().run(1, Effect::None, request).await
    }

    /// Like [`Transaction::query_portal`]: fetches up to `max_rows` rows of a
    /// bound portal. Counted with its [`bind`](Self::bind), not here.
    pub async fn query_portal(&self, portal: &Portal, max_rows: i32) -> Result<Vec<Row>, Error> {
        let request = self.inner.query_portal(portal, max_rows);
        self.session().run(0, Effect::None, request).await
    }

    /// Like [`Transaction::query_portal_raw`]. Counted with its
    /// [`bind`](Self::bind), not here.
    pub async fn query_portal_raw(
        &self,
        portal: &Portal,
        max_rows: i32,
    ) -> Result<RowStream, Error> {
        let request = self.inner.query_portal_raw(portal, max_rows);
        self.session().run(0, Effect::None, request).await
    }

    /// Like [`Transaction::simple_query`]; counts each non-empty statement.
    pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        let statements = crate::sql::scan(query).statements;
        let request = self.inner.simple_query(query);
        let effect = Effect::read_only_of(query);
        self.session().run(statements, effect, request).await
    }

    /// Like [`Transaction::batch_execute`]; counts each non-empty statement.
    pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
        let statements = crate::sql::scan(query).statements;
        let request = self.inner.batch_execute(query);
        let effect = Effect::read_only_of(query);
        self.session().run(statements, effect, request).await
    }
}

impl<'a> Deref for PgTransaction<'a> {
    type Target = Transaction<'a>;

    fn deref(&self) -> &Transaction<'a> {
        &self.inner
    }
}

impl fmt::Debug for PgTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTransaction")
            .field("savepoint", &self.end.savepoint)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PgTransaction`] with an isolation level, read-only or
/// deferrable; like [`TransactionBuilder`].
///
/// ```no_run
/// # async fn demo(pool: &pool_pg::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use pool_pg::tokio_postgres::IsolationLevel;
///
/// let mut conn = pool.acquire().await?;
/// let tx = conn
///     .build_transaction()
///     .isolation_level(IsolationLevel::Serializable)
///     .read_only(true)
///     .start()
///     .await?;
/// tx.query("SELECT 1", &[]).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct PgTransactionBuilder<'a> {
    inner: TransactionBuilder<'a>,
    session: &'a Session,
    /// Whether the transaction is read-only by the caller's choice: a
    /// refused write inside it is the caller's own, not a demoted server.
    read_only: bool,
}

impl<'a> PgTransactionBuilder<'a> {
    pub(crate) fn new(inner: TransactionBuilder<'a>, session: &'a Session) -> Self {
        Self {
            inner,
            session,
            read_only: false,
        }
    }

    /// Sets the isolation level.
    pub fn isolation_level(mut self, isolation_level: IsolationLevel) -> Self {
        self.inner = self.inner.isolation_level(isolation_level);
        self
    }

    /// Sets the access mode.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.inner = self.inner.read_only(read_only);
        self.read_only = read_only;
        self
    }

    /// Sets deferrability (only for serializable, read-only transactions).
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.inner = self.inner.deferrable(deferrable);
        self
    }

    /// Begins the transaction; counts its `START TRANSACTION`. If that
    /// fails, tokio-postgres queues a `ROLLBACK`, so the connection stays
    /// clean.
    pub async fn start(self) -> Result<PgTransaction<'a>, Error> {
        let session = self.session;
        // Cancel-safe: dropped mid-way, the in-flight marker stays raised.
        let read_only = self.read_only;
        let inner = session.run(1, Effect::None, self.inner.start()).await?;
        session.begin_transaction(read_only);
        Ok(PgTransaction::new(inner, session, false))
    }
}

impl fmt::Debug for PgTransactionBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTransactionBuilder")
            .finish_non_exhaustive()
    }
}
