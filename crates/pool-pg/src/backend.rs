//! The implementer's side: the connection manager and the pool it plugs
//! into.
//!
//! Design: an application names [`PgPool`](crate::PgPool) and never these.
//! They are for code that builds the manager itself (a libpq `key=value`
//! string, an `after_connect` hook, another TLS connector; then
//! [`PgPool::from_manager`](crate::PgPool::from_manager)), that calls the
//! manager's checks directly, or that is written against pool-core's
//! generic [`Pool`] (over a manager of its own).
//!
//! Invariant: [`PgManager`] is the only [`Manager`] of this crate; its
//! error is [`PgError`], the connect or liveness-check failure that a
//! [`PoolError`](crate::PoolError) carries. `PgError` stays public: it is
//! the `E` of the pool's errors, and its `code()`, `is_retryable()` and
//! `postgres()` say what the server answered.
//!
//! ```
//! use pool_pg::backend::PgManager;
//!
//! let config: pool_pg::tokio_postgres::Config =
//!     "host=localhost user=app dbname=app".parse().unwrap();
//! let manager = PgManager::new(config);
//! assert_eq!(manager.pg_config().get_application_name(), Some("pool-pg"));
//! ```

pub use crate::error::PgError;
pub use crate::hooks::{AfterConnect, HookFuture, KeepFuture, KeepHook};
pub use crate::manager::PgManager;
pub use crate::socket::PgSocket;
pub use crate::tls::{PgTls, PgTlsConnect, PgTlsStream};

pub use pool_core::{ForceClose, Manager, Pool, PooledConnection, Verdict};
