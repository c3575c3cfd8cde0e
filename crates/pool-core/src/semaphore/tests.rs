//! Unit tests of the semaphore: order, cancellation, close, deadlines.

use super::*;
use std::sync::Arc;

fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let sem = Semaphore::new(1);
    sem.try_acquire().unwrap();
    let mut cx = noop_cx();
    let mut first = Box::pin(sem.acquire());
    let mut second = Box::pin(sem.acquire());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    assert_eq!(sem.waiting(), 2);
    sem.release();
    assert!(
        second.as_mut().poll(&mut cx).is_pending(),
        "second must not overtake"
    );
    assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(
        sem.try_acquire(),
        Err(TryAcquireError::NoPermits),
        "no barging past a waiter"
    );
    sem.release();
    assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(sem.waiting(), 0);
}

#[test]
fn a_waiter_dropped_after_being_granted_passes_the_permit_on() {
    let sem = Semaphore::new(1);
    sem.try_acquire().unwrap();
    let mut cx = noop_cx();
    let mut first = Box::pin(sem.acquire());
    let mut second = Box::pin(sem.acquire());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    sem.release();
    drop(first);
    assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    sem.release();
    assert_eq!(sem.available(), 1);
}

#[test]
fn a_waiter_dropped_while_queued_unlinks_itself() {
    let sem = Semaphore::new(1);
    sem.try_acquire().unwrap();
    let mut cx = noop_cx();
    let mut waiter = Box::pin(sem.acquire());
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    drop(waiter);
    assert_eq!(sem.waiting(), 0);
    sem.release();
    assert_eq!(sem.available(), 1, "the permit went back to the count");
}

#[test]
fn an_expired_waiter_times_out_while_still_counted_then_unlinks() {
    let sem = Semaphore::new(1);
    sem.try_acquire().unwrap();
    let mut cx = noop_cx();
    let mut early = Box::pin(sem.acquire_until(100));
    let mut late = Box::pin(sem.acquire_until(200));
    assert!(early.as_mut().poll(&mut cx).is_pending());
    assert!(late.as_mut().poll(&mut cx).is_pending());
    assert_eq!(sem.next_deadline(), 100);
    assert_eq!(sem.expire_due(150), 200, "the next deadline to wake for");
    assert_eq!(
        early.as_mut().poll(&mut cx),
        Poll::Ready(Err(AcquireError::TimedOut))
    );
    assert_eq!(sem.waiting(), 2, "still counted until dropped");
    drop(early);
    assert_eq!(sem.waiting(), 1);
    sem.release();
    assert_eq!(
        late.as_mut().poll(&mut cx),
        Poll::Ready(Ok(())),
        "next in line"
    );
}

#[test]
fn close_fails_queued_and_future_acquires() {
    let sem = Semaphore::new(0);
    let mut cx = noop_cx();
    let mut waiter = Box::pin(sem.acquire());
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    sem.close();
    assert_eq!(
        waiter.as_mut().poll(&mut cx),
        Poll::Ready(Err(AcquireError::Closed))
    );
    assert_eq!(sem.try_acquire(), Err(TryAcquireError::Closed));
    assert_eq!(sem.waiting(), 0);
}

#[test]
fn concurrent_acquire_and_release_never_lose_a_permit() {
    let sem = Arc::new(Semaphore::new(3));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let sem = Arc::clone(&sem);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for _ in 0..2_000 {
                        sem.acquire().await.unwrap();
                        tokio::task::yield_now().await;
                        sem.release();
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sem.available(), 3);
    assert_eq!(sem.waiting(), 0);
}
