//! loom models of the lock-free core: every interleaving (up to
//! `LOOM_MAX_PREEMPTIONS` preemptions) of the waiter semaphore and the slot
//! gauges. Run with `just loom`:
//! `RUSTFLAGS="--cfg pool_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p pool-core --lib loom_models --release`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::thread;

use crate::ledger::Ledger;
use crate::semaphore::{AcquireError, Semaphore};
use crate::slot::{Slot, SlotState};
use crate::sync::Arc;

#[test]
fn two_acquirers_and_a_releaser_lose_no_permit() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        sem.try_acquire().expect("the only permit");
        let acquirers: Vec<_> = (0..2)
            .map(|_| {
                let sem = Arc::clone(&sem);
                thread::spawn(move || {
                    block_on(sem.acquire()).expect("not closed");
                    sem.release();
                })
            })
            .collect();
        sem.release();
        for acquirer in acquirers {
            acquirer.join().expect("acquirer");
        }
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiting(), 0);
    });
}

#[test]
fn an_acquirer_cancelled_after_being_woken_passes_its_permit_on() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        sem.try_acquire().expect("the only permit");
        let waiter = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                let mut acquire = Box::pin(sem.acquire());
                match acquire.as_mut().poll(&mut cx) {
                    // Granted at once (the release won the race): give back.
                    Poll::Ready(result) => {
                        result.expect("not closed");
                        sem.release();
                    }
                    // Queued; maybe granted meanwhile; dropped unpolled.
                    Poll::Pending => drop(acquire),
                }
            })
        };
        sem.release();
        waiter.join().expect("waiter");
        assert_eq!(sem.available(), 1, "the permit was never lost");
        assert_eq!(sem.waiting(), 0);
    });
}

#[test]
fn a_release_racing_with_close_leaves_a_consistent_semaphore() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        sem.try_acquire().expect("the only permit");
        let waiter = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || match block_on(sem.acquire()) {
                Ok(()) => sem.release(),
                Err(_closed) => {}
            })
        };
        let closer = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || sem.close())
        };
        sem.release();
        waiter.join().expect("waiter");
        closer.join().expect("closer");
        assert!(sem.is_closed());
        assert_eq!(sem.waiting(), 0);
        assert!(sem.try_acquire().is_err(), "closed for good");
    });
}

#[test]
fn capacity_returned_during_a_hand_off_never_exceeds_max_size() {
    loom::model(|| {
        // The ledger's `Stats` holds the histograms: too big for loom's
        // default stack.
        let big_stack = thread::Builder::new().stack_size(32 << 20);
        let model = big_stack.spawn(|| {
            let ledger = Arc::new(Ledger::new("loom", 0, 1));
            let mut first = Slot::try_open(&ledger).expect("room for one");
            first.set(SlotState::InUse);
            let contender = {
                let ledger = Arc::clone(&ledger);
                thread::spawn(move || {
                    let slot = Slot::try_open(&ledger);
                    let reading = ledger.gauges.read();
                    assert!(reading.open() <= 1, "{reading:?}");
                    slot.is_some()
                })
            };
            first.set(SlotState::Idle);
            drop(first);
            let got_one = contender.join().expect("contender");
            // The contender's slot (if any) was dropped with it.
            assert_eq!(ledger.gauges.read().open(), 0, "got one: {got_one}");
        });
        model.expect("spawn").join().expect("model");
    });
}

#[test]
fn a_waiter_woken_by_a_release_wakes_exactly_once() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiter = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || block_on(sem.acquire()).expect("not closed"))
        };
        sem.release();
        waiter
            .join()
            .expect("the release woke the waiter: no lost wake-up");
        assert_eq!(sem.available(), 0, "the permit went to the waiter");
        let mut cx = Context::from_waker(Waker::noop());
        let mut again = pin!(sem.acquire());
        assert!(again.as_mut().poll(&mut cx).is_pending());
    });
}

#[test]
fn an_expiry_racing_with_a_release_loses_no_permit() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        sem.try_acquire().expect("the only permit");
        let waiter = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || match block_on(sem.acquire_until(10)) {
                Ok(()) => sem.release(),
                Err(AcquireError::TimedOut) => {}
                Err(AcquireError::Closed) => panic!("never closed"),
            })
        };
        let expirer = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || {
                sem.expire_due(10);
            })
        };
        sem.release();
        waiter.join().expect("waiter");
        expirer.join().expect("expirer");
        assert_eq!(sem.available(), 1, "the permit was never lost");
        assert_eq!(sem.waiting(), 0, "the expired waiter unlinked itself");
    });
}
