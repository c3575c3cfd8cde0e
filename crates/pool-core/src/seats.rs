//! The seat registry: which connections are lent out, since when, and how
//! to force-close them.
//!
//! Every open connection owns one seat (an index below `max_size`, taken
//! from a lock-free free list when its slot is reserved and given back when
//! the slot drops), so a seat is always available to a slot and no two live
//! connections share one. Lending a connection writes its id and the time
//! into its seat with two relaxed stores; returning it clears one. Shutdown
//! (and the leak scan) read all seats; they never block the hot path.
//!
//! A seat also holds the connection's force-close handle from
//! [`Manager::force_closer`](crate::Manager::force_closer), taken by
//! shutdown to abort connections still lent out after its grace period.

use crossbeam_queue::ArrayQueue;

use crate::manager::ForceClose;
use crate::sync::{AtomicU64, Mutex, Ordering};

/// One seat.
#[derive(Default)]
struct Seat {
    /// Id of the connection lent from this seat; 0 when not lent.
    lent_id: AtomicU64,
    /// `1 + ms since pool start` when lent; 0 when not lent.
    lent_at: AtomicU64,
    /// How to abort this seat's connection, if the manager can.
    force_close: Mutex<Option<ForceClose>>,
}

/// A connection lent out right now, as seen by a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lent {
    pub(crate) seat: usize,
    pub(crate) connection_id: u64,
    /// Milliseconds since pool start when it was lent.
    pub(crate) lent_at_ms: u64,
}

/// All seats of one pool.
pub(crate) struct Seats {
    seats: Box<[Seat]>,
    free: ArrayQueue<usize>,
}

impl std::fmt::Debug for Seats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seats")
            .field("seats", &self.seats.len())
            .field("free", &self.free.len())
            .finish()
    }
}

impl Seats {
    pub(crate) fn new(count: usize) -> Self {
        let count = count.max(1);
        let free = ArrayQueue::new(count);
        for seat in 0..count {
            // Exactly `count` places for `count` seats.
            let _placed = free.push(seat).is_ok();
        }
        Self {
            seats: (0..count).map(|_| Seat::default()).collect(),
            free,
        }
    }

    /// Takes a free seat. Always succeeds for a slot that passed the
    /// `max_size` check; `None` would mean the size invariant is broken.
    pub(crate) fn take(&self) -> Option<usize> {
        self.free.pop()
    }

    /// Gives a seat back when its connection closes.
    pub(crate) fn give_back(&self, seat: usize) {
        if let Some(entry) = self.seats.get(seat) {
            entry.lent_id.store(0, Ordering::Relaxed);
            entry.lent_at.store(0, Ordering::Relaxed);
            entry.force_close.lock().take();
            // Every seat index exists once, so there is always room.
            let _returned = self.free.push(seat).is_ok();
        }
    }

    pub(crate) fn set_force_close(&self, seat: usize, force_close: Option<ForceClose>) {
        if let Some(entry) = self.seats.get(seat) {
            *entry.force_close.lock() = force_close;
        }
    }

    #[inline]
    pub(crate) fn lend(&self, seat: usize, connection_id: u64, now_ms: u64) {
        if let Some(entry) = self.seats.get(seat) {
            entry.lent_at.store(now_ms + 1, Ordering::Relaxed);
            entry.lent_id.store(connection_id, Ordering::Release);
        }
    }

    #[inline]
    pub(crate) fn unlend(&self, seat: usize) {
        if let Some(entry) = self.seats.get(seat) {
            entry.lent_id.store(0, Ordering::Release);
        }
    }

    /// Every connection lent out right now.
    pub(crate) fn lent(&self) -> Vec<Lent> {
        self.seats
            .iter()
            .enumerate()
            .filter_map(|(seat, entry)| {
                let connection_id = entry.lent_id.load(Ordering::Acquire);
                let lent_at = entry.lent_at.load(Ordering::Relaxed);
                (connection_id != 0 && lent_at != 0).then(|| Lent {
                    seat,
                    connection_id,
                    lent_at_ms: lent_at - 1,
                })
            })
            .collect()
    }

    /// Aborts the connection in `seat` if the manager gave a way to.
    /// Returns whether it could.
    pub(crate) fn force_close(&self, seat: usize) -> bool {
        let handle = self
            .seats
            .get(seat)
            .and_then(|entry| entry.force_close.lock().take());
        match handle {
            Some(force_close) => {
                force_close();
                true
            }
            None => false,
        }
    }
}
