//! The seat registry: which connections are lent out, since when, and how
//! to force-close them.
//!
//! The table has `max_size` rows, one per possible connection. Every open
//! connection's slot owns one (an index below `max_size`, taken from a
//! lock-free free list when the slot is reserved and given back when it
//! drops): taking a row *is* reserving capacity (`slot.rs`), and no two
//! live connections share one. Lending a connection writes its id and the time
//! into its seat with two plain stores; returning it clears the id. Shutdown
//! (and the leak scan) read all seats; they never block the hot path.
//!
//! A seat also counts its lendings (and of those, the ones that went through
//! the slow path, the ones that queued, and their wait), its returns and the
//! time its connections were held. Only the holder of the seat's connection
//! writes these (the lender, then the guard; the connection passes between
//! holders through the idle queue, which orders the writes), so each is a
//! plain load and store, not a locked read-modify-write, and a snapshot sums
//! them in the same pass that counts suspected leaks. This is how the pool's
//! `total_acquisitions`, `total_releases` and mean hold time cost the hot
//! path no locked instruction.
//!
//! With leak detection on, lending also records the acquisition site (one
//! uncontended lock of the seat's own mutex), and the leak scan marks
//! lendings it reported so each is reported once.
//!
//! A seat also holds the connection's force-close handle from
//! [`Manager::force_closer`](crate::Manager::force_closer), taken by
//! shutdown to abort connections still lent out after its grace period.

use crossbeam_queue::ArrayQueue;

use crate::histogram::MEAN_CAP_MICROS;
use crate::manager::ForceClose;
use crate::site::Site;
use crate::stamp::Stamp;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

/// One seat: the lending in it (if any), its force-close handle, its leak
/// marks and its counters.
#[derive(Default)]
struct Seat {
    /// Id of the connection lent from this seat; 0 when not lent.
    lent_id: AtomicU64,
    /// ms since pool start of the latest lending; kept after the return
    /// (only meaningful while `lent_id` is not 0), none once the seat is
    /// given back.
    lent_at: Stamp,
    /// How to abort this seat's connection, if the manager can.
    force_close: Mutex<Option<ForceClose>>,
    /// Where the current lending was acquired (only with leak detection on).
    site: Mutex<Option<Site>>,
    /// Identity of the site in `site` (its `Location`'s address), so a
    /// lending from the same call site as the last one skips the lock.
    site_key: AtomicUsize,
    /// The current lending was reported as a potential leak.
    reported: AtomicBool,
    /// The holder said this lending is legitimately long.
    long_held: AtomicBool,
    /// ms since start of this seat's last leak report; never cleared.
    reported_at: Stamp,
    /// Lendings from this seat, ever. Written only by the lender.
    lends: AtomicU64,
    /// Of those, the lendings from the slow path, whose wait went into the
    /// wait histogram's bucket; written with `Release` after it.
    slow_lends: AtomicU64,
    /// Of the slow-path lendings, those whose caller queued for a permit.
    queued_lends: AtomicU64,
    /// Sum of the slow-path waits, in µs (each capped like a histogram
    /// sample).
    wait_us: AtomicU64,
    /// Returns to this seat, ever. Written only by the returning guard,
    /// with `Release` after the hold time's histogram bucket.
    returns: AtomicU64,
    /// Sum of the hold times of those returns, in µs (each capped like a
    /// histogram sample). Written only by the returning guard.
    held_us: AtomicU64,
}

/// Adds `by` to a counter that only the caller writes: a load and a store,
/// no locked instruction. A concurrent reader sees the old or the new value.
#[inline]
fn bump_owned(counter: &AtomicU64, by: u64, order: Ordering) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), order);
}

/// How long a slow-path acquisition waited, for its seat's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlowWait {
    /// The caller queued for a permit.
    pub(crate) queued: bool,
    /// From the start of `acquire()` to the lending, in µs.
    pub(crate) micros: u64,
}

/// The seats' counters summed in one pass (see [`Seats::totals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SeatTotals {
    /// Lendings: successful acquisitions.
    pub(crate) lends: u64,
    /// Lendings from the slow path (their waits are in the histogram).
    pub(crate) slow_lends: u64,
    /// Lendings whose caller queued.
    pub(crate) queued_lends: u64,
    /// Total wait of the slow-path lendings, in µs.
    pub(crate) wait_us: u64,
    /// Returns: releases.
    pub(crate) returns: u64,
    /// Total hold time of those returns, in µs.
    pub(crate) held_us: u64,
    /// Lendings reported as leaks and not returned yet.
    pub(crate) suspected: u64,
}

/// A lending held past the leak timeout, found by a scan.
#[derive(Clone, Debug)]
pub(crate) struct Suspect {
    pub(crate) connection_id: u64,
    pub(crate) held_ms: u64,
    pub(crate) site: Option<Site>,
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

    /// Takes a free seat: the reservation of one connection's capacity.
    /// `None` when all `max_size` are taken (the pool is full).
    pub(crate) fn take(&self) -> Option<usize> {
        self.free.pop()
    }

    /// Gives a seat back when its connection closes.
    pub(crate) fn give_back(&self, seat: usize) {
        if let Some(entry) = self.seats.get(seat) {
            entry.lent_id.store(0, Ordering::Relaxed);
            entry.lent_at.clear();
            entry.force_close.lock().take();
            // Every seat index exists once, so there is always room.
            let _returned = self.free.push(seat).is_ok();
        }
    }

    /// Replaces the force-close handle of `seat` (the manager's, once the
    /// connection exists; `None` if it offers none).
    pub(crate) fn set_force_close(&self, seat: usize, force_close: Option<ForceClose>) {
        if let Some(entry) = self.seats.get(seat) {
            *entry.force_close.lock() = force_close;
        }
    }

    /// Stores `force_close` only if the seat holds none: a connect task's
    /// abort handle never replaces the manager's, set if the connect
    /// finished first.
    pub(crate) fn set_force_close_if_absent(&self, seat: usize, force_close: ForceClose) {
        if let Some(entry) = self.seats.get(seat) {
            let mut slot = entry.force_close.lock();
            if slot.is_none() {
                *slot = Some(force_close);
            }
        }
    }

    /// Force-closes every seat that still holds a handle and is not lent
    /// (connects in progress, connections being validated). Returns how many.
    pub(crate) fn force_close_unlent(&self) -> u64 {
        let mut closed = 0;
        for entry in self.seats.iter() {
            if entry.lent_id.load(Ordering::Acquire) != 0 {
                continue;
            }
            if let Some(force_close) = entry.force_close.lock().take() {
                force_close();
                closed += 1;
            }
        }
        closed
    }

    /// Marks `seat` lent to `connection_id` at `now_ms` and counts the
    /// lending (with its `wait` if it came through the slow path); records
    /// the acquisition site when leak detection is on (`site` is `Some`).
    /// The id is stored last, with `Release`: a scan that sees it sees the
    /// rest.
    #[inline]
    pub(crate) fn lend(
        &self,
        seat: usize,
        connection_id: u64,
        now_ms: u64,
        site: Option<Site>,
        wait: Option<SlowWait>,
    ) {
        if let Some(entry) = self.seats.get(seat) {
            entry.lent_at.set(now_ms);
            bump_owned(&entry.lends, 1, Ordering::Relaxed);
            if let Some(wait) = wait {
                bump_owned(
                    &entry.wait_us,
                    wait.micros.min(MEAN_CAP_MICROS),
                    Ordering::Relaxed,
                );
                bump_owned(
                    &entry.queued_lends,
                    u64::from(wait.queued),
                    Ordering::Relaxed,
                );
                // Release: a snapshot that loads this count with Acquire sees
                // the wait's histogram bucket too.
                bump_owned(&entry.slow_lends, 1, Ordering::Release);
            }
            entry.reported.store(false, Ordering::Relaxed);
            entry.long_held.store(false, Ordering::Relaxed);
            if let Some(site) = site {
                let key = site.key();
                // The common case (the same line acquires again, no
                // backtrace) is one load: the seat already holds this site.
                if site.has_backtrace() || entry.site_key.load(Ordering::Acquire) != key {
                    *entry.site.lock() = Some(site);
                    entry.site_key.store(key, Ordering::Release);
                }
            }
            entry.lent_id.store(connection_id, Ordering::Release);
        }
    }

    /// Marks `seat` returned after `held_us` µs (the caller recorded that
    /// in the hold-time histogram's bucket first). Returns whether this
    /// lending had been reported as a potential leak.
    #[inline]
    pub(crate) fn unlend(&self, seat: usize, held_us: u64) -> bool {
        match self.seats.get(seat) {
            Some(entry) => {
                bump_owned(
                    &entry.held_us,
                    held_us.min(MEAN_CAP_MICROS),
                    Ordering::Relaxed,
                );
                // Release: a snapshot that loads this count with Acquire sees
                // the return's histogram bucket too.
                bump_owned(&entry.returns, 1, Ordering::Release);
                entry.lent_id.store(0, Ordering::Release);
                // A load first: a lending is almost never reported, and a
                // plain load keeps the return free of another locked
                // instruction. A report racing with this return may go
                // without its "returned" event (see `scan_leaks`).
                entry.reported.load(Ordering::Acquire)
                    && entry.reported.swap(false, Ordering::AcqRel)
            }
            None => false,
        }
    }

    /// Exempts the current lending of `seat` from leak reports.
    pub(crate) fn mark_long_held(&self, seat: usize) {
        if let Some(entry) = self.seats.get(seat) {
            entry.long_held.store(true, Ordering::Relaxed);
        }
    }

    /// Where the current lending of `seat` was acquired, if recorded.
    pub(crate) fn site(&self, seat: usize) -> Option<Site> {
        self.seats
            .get(seat)
            .and_then(|entry| entry.site.lock().clone())
    }

    /// Lendings held at least `timeout_ms` that were not reported yet (and
    /// not exempted); marks them reported. A lending that is returned during
    /// the scan may be reported once more or once less (never twice), and
    /// such a report may then go without its "returned" event.
    pub(crate) fn scan_leaks(&self, now_ms: u64, timeout_ms: u64) -> Vec<Suspect> {
        let mut suspects = Vec::new();
        for entry in self.seats.iter() {
            let connection_id = entry.lent_id.load(Ordering::Acquire);
            let Some(lent_at) = entry.lent_at.get() else {
                continue;
            };
            if connection_id == 0 || entry.long_held.load(Ordering::Relaxed) {
                continue;
            }
            let held_ms = now_ms.saturating_sub(lent_at);
            if held_ms < timeout_ms || entry.reported.swap(true, Ordering::AcqRel) {
                continue;
            }
            entry.reported_at.set(now_ms);
            suspects.push(Suspect {
                connection_id,
                held_ms,
                site: entry.site.lock().clone(),
            });
        }
        suspects
    }

    /// Every seat's counters, summed in one pass. Returns and slow-path
    /// lendings are loaded with `Acquire`, so the hold-time and wait
    /// buckets of every one counted are visible to a histogram scan that
    /// follows.
    pub(crate) fn totals(&self) -> SeatTotals {
        fn add(total: &mut u64, counter: &AtomicU64, order: Ordering) {
            *total = total.wrapping_add(counter.load(order));
        }
        let mut totals = SeatTotals::default();
        for entry in self.seats.iter() {
            add(&mut totals.returns, &entry.returns, Ordering::Acquire);
            add(&mut totals.slow_lends, &entry.slow_lends, Ordering::Acquire);
            add(&mut totals.lends, &entry.lends, Ordering::Relaxed);
            add(
                &mut totals.queued_lends,
                &entry.queued_lends,
                Ordering::Relaxed,
            );
            add(&mut totals.wait_us, &entry.wait_us, Ordering::Relaxed);
            add(&mut totals.held_us, &entry.held_us, Ordering::Relaxed);
            if entry.lent_id.load(Ordering::Relaxed) != 0 && entry.reported.load(Ordering::Relaxed)
            {
                totals.suspected += 1;
            }
        }
        totals
    }

    /// Seats with a leak report in the `window_ms` before `now_ms`.
    pub(crate) fn reported_within(&self, now_ms: u64, window_ms: u64) -> u64 {
        self.seats
            .iter()
            .filter(|e| {
                e.reported_at
                    .get()
                    .is_some_and(|at| now_ms.saturating_sub(at) < window_ms)
            })
            .count() as u64
    }

    /// Every connection lent out right now, with its seat and when it was
    /// lent (its acquisition site is [`Seats::site`]).
    pub(crate) fn lent(&self) -> Vec<Lent> {
        self.seats
            .iter()
            .enumerate()
            .filter_map(|(seat, entry)| {
                let connection_id = entry.lent_id.load(Ordering::Acquire);
                let lent_at_ms = entry.lent_at.get()?;
                (connection_id != 0).then_some(Lent {
                    seat,
                    connection_id,
                    lent_at_ms,
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
