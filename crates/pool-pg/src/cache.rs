//! [`StatementCache`]: the prepared statements of one connection, by SQL
//! text, least recently used first out.
//!
//! A pooled connection prepares a SQL string the first time it runs it
//! and keeps the named statement, so every later run is one round trip
//! (`Bind`/`Execute`) instead of two (`Parse`/`Describe`, then
//! `Bind`/`Execute`). The cache is bounded (`POOL_STATEMENT_CACHE_SIZE`);
//! the least recently used statement goes first, and tokio-postgres closes
//! a dropped `Statement` on the server (`Close`), so the server's memory is
//! bounded too.
//!
//! * An entry is keyed by its SQL text and its declared parameter types
//!   (empty for an untyped prepare).
//! * The cache remembers the wire's *epoch*: a `DISCARD ALL` or
//!   `DEALLOCATE ALL` seen on the wire changes it, and the next lookup
//!   empties the cache, since the server no longer has those statements.
//! * Eviction scans for the oldest entry: O(n) in the capacity (a few
//!   hundred), paid only when a new statement is prepared on a full cache.
//!   Lookups are one hash probe.
//!
//! Invariant: the cache never holds more than `capacity` statements, and
//! never one the server dropped as far as the wire has seen.

use std::collections::HashMap;

use tokio_postgres::types::Type;
use tokio_postgres::Statement;

/// Default [`PgConfig::statement_cache_size`](crate::PgConfig::statement_cache_size):
/// 256 statements per connection.
pub const DEFAULT_STATEMENT_CACHE_SIZE: usize = 256;

/// One cached statement.
#[derive(Debug)]
struct Entry {
    types: Box<[Type]>,
    statement: Statement,
    /// The tick of its last use.
    used: u64,
}

/// The statements of one connection; see the module docs.
#[derive(Debug)]
pub(crate) struct StatementCache {
    capacity: usize,
    entries: HashMap<Box<str>, Vec<Entry>>,
    len: usize,
    tick: u64,
    /// The wire epoch the entries belong to.
    epoch: u64,
}

impl StatementCache {
    /// An empty cache of `capacity` statements (0: off).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            len: 0,
            tick: 0,
            epoch: 0,
        }
    }

    /// Whether the cache is on.
    pub(crate) fn is_on(&self) -> bool {
        self.capacity > 0
    }

    /// How many statements it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The statement for `sql` with `types`, if cached in this `epoch`.
    pub(crate) fn get(&mut self, sql: &str, types: &[Type], epoch: u64) -> Option<Statement> {
        self.follow(epoch);
        self.tick += 1;
        let tick = self.tick;
        let entry = self
            .entries
            .get_mut(sql)?
            .iter_mut()
            .find(|entry| *entry.types == *types)?;
        entry.used = tick;
        Some(entry.statement.clone())
    }

    /// Keeps `statement`, prepared for `sql` with `types` in `epoch`,
    /// evicting the least recently used statement if the cache is full.
    pub(crate) fn insert(&mut self, sql: &str, types: &[Type], statement: Statement, epoch: u64) {
        if !self.is_on() {
            return;
        }
        self.follow(epoch);
        self.remove(sql, types);
        if self.len >= self.capacity {
            self.evict_oldest();
        }
        self.tick += 1;
        self.entries.entry(sql.into()).or_default().push(Entry {
            types: types.into(),
            statement,
            used: self.tick,
        });
        self.len += 1;
    }

    /// Forgets the statement for `sql` with `types` (it went stale).
    pub(crate) fn remove(&mut self, sql: &str, types: &[Type]) {
        let Some(entries) = self.entries.get_mut(sql) else {
            return;
        };
        let before = entries.len();
        entries.retain(|entry| *entry.types != *types);
        self.len -= before - entries.len();
        if entries.is_empty() {
            self.entries.remove(sql);
        }
    }

    /// Empties the cache if the server dropped every statement since.
    fn follow(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.entries.clear();
            self.len = 0;
            self.epoch = epoch;
        }
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .flat_map(|(sql, entries)| entries.iter().map(move |entry| (entry.used, sql)))
            .min_by_key(|(used, _)| *used)
            .map(|(used, sql)| (used, sql.clone()));
        if let Some((used, sql)) = oldest {
            if let Some(entries) = self.entries.get_mut(&sql) {
                entries.retain(|entry| entry.used != used);
                if entries.is_empty() {
                    self.entries.remove(&sql);
                }
            }
            self.len -= 1;
        }
    }
}
