//! The ledger every connection's slot writes to: the size gauges, the seat
//! registry (one row per open connection), the close signal, and the event
//! statistics.
//!
//! # Design
//!
//! A [`Slot`](crate::slot::Slot) holds an `Arc<Ledger>`: reserving one moves
//! the gauges and takes a seat, moving it moves the gauges, dropping it
//! counts the close by reason, gives the seat back and, once the pool is
//! closing, wakes `shutdown()`. The ledger is shared with the pool's state
//! (`shared.rs`), which reads it for snapshots, health and shutdown.
//!
//! [`Stats`] stays counters and histograms only; the ledger is what ties
//! them to the connections that are open.

use tokio::sync::Notify;

use crate::gauges::Gauges;
use crate::seats::Seats;
use crate::stats::Stats;
use crate::sync::AtomicBool;

/// Gauges, seats, close signal and statistics of one pool.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// The pool's name (`PoolConfig::name`), for events that have no
    /// other way to it (a connection being closed).
    pub(crate) pool: Box<str>,
    /// `idle | in_use | opening`; changed only by slots.
    pub(crate) gauges: Gauges,
    /// One row per open connection: who holds it, since when, how to
    /// force-close it; owned by the slots like the gauges.
    pub(crate) seats: Seats,
    /// Set when the pool closes; from then on every slot dropped wakes
    /// `drained` (shutdown waits on it).
    pub(crate) closing: AtomicBool,
    pub(crate) drained: Notify,
    /// The event counters and histograms.
    pub(crate) stats: Stats,
}

impl Ledger {
    /// The ledger of the pool `pool` of `min_size` to `max_size`
    /// connections.
    pub(crate) fn new(pool: &str, min_size: u32, max_size: u32) -> Self {
        Self {
            pool: pool.into(),
            gauges: Gauges::default(),
            seats: Seats::new(max_size as usize),
            closing: AtomicBool::new(false),
            drained: Notify::new(),
            stats: Stats::new(pool, min_size, max_size),
        }
    }
}
