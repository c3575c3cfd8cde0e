//! The idle queue and per-connection metadata.
//!
//! Idle connections sit in a lock-free, bounded `crossbeam_queue::ArrayQueue`
//! sized `max_size`, so a push can only fail if the size invariant is
//! already broken (it is handled, never a panic). The queue is FIFO: every
//! idle connection is used in turn.
//!
//! A [`Conn`] carries its [`Slot`]; pushing moves the slot to `Idle` *before*
//! the connection becomes visible to poppers, and popping moves it to
//! `InUse` *after* the pop, so the gauges never count a connection twice or
//! go negative.

use crossbeam_queue::ArrayQueue;
use tokio::time::Instant;

use crate::retire::RetireReason;
use crate::slot::{Slot, SlotState};

/// An open connection with what the pool knows about it.
#[derive(Debug)]
pub(crate) struct Conn<C> {
    /// The backend connection.
    pub(crate) raw: C,
    /// Its share of capacity; dropped with it.
    pub(crate) slot: Slot,
    /// Pool-unique id, for logs.
    pub(crate) id: u64,
    /// When the connect finished.
    pub(crate) created_at: Instant,
    /// When it was last given back (or created), in µs since the pool was
    /// built (`Shared::now_us`).
    pub(crate) last_used_us: u64,
    /// When its own (jittered) lifetime ends, in µs since the pool was
    /// built.
    pub(crate) expires_us: u64,
    /// The pool's eviction generation when its connect began; a connection
    /// from an older generation is retired at its next checkout or return.
    pub(crate) generation: u64,
}

impl<C> Conn<C> {
    /// Closes the connection for `reason`: logs it and counts it by reason
    /// (the count moves when the slot drops, right here).
    pub(crate) fn retire(mut self, reason: RetireReason) {
        tracing::debug!(
            target: "pool_core::recycle",
            pool = %self.slot.pool(),
            connection_id = self.id,
            reason = reason.as_str(),
            age_ms = self.created_at.elapsed().as_millis() as u64,
            "retiring connection"
        );
        self.slot.set_close_reason(reason);
    }
}

/// The lock-free queue of idle connections.
#[derive(Debug)]
pub(crate) struct IdleQueue<C> {
    queue: ArrayQueue<Conn<C>>,
}

impl<C> IdleQueue<C> {
    /// A queue with room for `capacity` connections (the pool's `max_size`).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity.max(1)),
        }
    }

    /// Makes `conn` available. Gives it back if the queue is full (which
    /// would mean the size invariant is broken; the caller closes it).
    #[inline]
    pub(crate) fn push(&self, mut conn: Conn<C>) -> Result<(), Conn<C>> {
        conn.slot.set(SlotState::Idle);
        self.queue.push(conn).map_err(|mut conn| {
            conn.slot.set(SlotState::InUse);
            conn
        })
    }

    /// Takes the oldest idle connection, now counted as in use.
    pub(crate) fn pop(&self) -> Option<Conn<C>> {
        let mut conn = self.queue.pop()?;
        conn.slot.set(SlotState::InUse);
        Some(conn)
    }

    /// Takes the oldest idle connection for inspection by maintenance,
    /// still counted idle (it is in transit, not lent to anyone). Give it
    /// back with [`put_back`](IdleQueue::put_back) or retire it.
    pub(crate) fn take_for_check(&self) -> Option<Conn<C>> {
        self.queue.pop()
    }

    /// Returns a connection taken with [`take_for_check`](IdleQueue::take_for_check).
    pub(crate) fn put_back(&self, conn: Conn<C>) -> Result<(), Conn<C>> {
        self.queue.push(conn)
    }

    /// Whether no connection is idle right now.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Connections in the queue right now.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Closes every idle connection for `reason`.
    pub(crate) fn drain(&self, reason: RetireReason) -> usize {
        let mut closed = 0;
        while let Some(conn) = self.queue.pop() {
            conn.retire(reason);
            closed += 1;
        }
        closed
    }
}
