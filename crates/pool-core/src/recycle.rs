//! Recycling policy: when a connection must be retired, and why.
//!
//! Pure decisions over a connection's metadata and the configuration; the
//! callers (checkout, return, maintenance) act on them. Every retirement has
//! a [`RetireReason`], is logged with it, and is counted by it, so
//! `connections_closed` always equals the sum of the per-reason counters.
//!
//! * **Lifetime:** each connection gets its own limit,
//!   `max_lifetime - jitter`, with the jitter drawn uniformly from
//!   `0..=max_lifetime * max_lifetime_jitter_percent / 100`. A connection
//!   never outlives `max_lifetime`, and connections opened together (at
//!   warm-up, after an outage) expire spread over the jitter window rather
//!   than all at once. Checked on checkout, on return and by maintenance.
//! * **Idle time:** maintenance closes connections idle longer than
//!   `max_idle_time` while more than `min_size` are open.
//! * **Statements:** on return, a connection that ran `max_queries`
//!   statements (as counted by the manager) is retired.
//! * **State:** on return, a connection the manager reports broken (closed)
//!   or dirty (dropped mid-request, left inside a transaction) is retired,
//!   never handed to the next caller.

use std::time::Duration;

use crate::config::PoolConfig;
use crate::idle::Conn;
use crate::manager::{Manager, Verdict};
use crate::retire::RetireReason;
use crate::shared::Shared;

/// This connection's own lifetime: `max_lifetime` minus a uniform random
/// share of up to `max_lifetime_jitter_percent` percent.
pub(crate) fn jittered_lifetime(config: &PoolConfig) -> Duration {
    let max = config.max_lifetime;
    let window = max.mul_f64(f64::from(config.max_lifetime_jitter_percent) / 100.0);
    let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    max.saturating_sub(Duration::from_nanos(fastrand::u64(0..=window_ns)))
}

/// Whether `conn` has outlived its own lifetime at `now_us` (µs since the
/// pool was built).
#[inline]
pub(crate) fn is_expired<C>(conn: &Conn<C>, now_us: u64) -> bool {
    now_us >= conn.expires_us
}

/// Checkout: a connection that may not be handed out, and why.
/// `generation` is the pool's current eviction generation: a connection
/// opened before the last eviction is not handed out.
pub(crate) fn on_checkout<M: Manager>(
    manager: &M,
    conn: &mut Conn<M::Connection>,
    now_us: u64,
    generation: u64,
) -> Option<RetireReason> {
    if manager.is_broken(&mut conn.raw) {
        Some(RetireReason::Broken)
    } else if conn.generation != generation {
        Some(RetireReason::Evicted)
    } else if is_expired(conn, now_us) {
        Some(RetireReason::Lifetime)
    } else {
        None
    }
}

/// Why a returned connection may not go back to the idle queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Retire it for this reason.
    Retire(RetireReason),
    /// Its server is gone or changed role (the manager's reason): retire
    /// it and evict every connection open now.
    ServerLost(String),
    /// The manager needs I/O before it can judge (see `settle.rs`).
    Settle,
}

/// Return: a connection that may not go back to the idle queue, and why.
/// The manager's verdict first, then the pool's own rules: evicted
/// connections (older than `generation`), lifetime, `max_queries`.
pub(crate) fn on_return<M: Manager>(
    manager: &M,
    config: &PoolConfig,
    conn: &mut Conn<M::Connection>,
    now_us: u64,
    generation: u64,
) -> Option<Rejected> {
    let verdict = manager.verdict(&mut conn.raw);
    judge(verdict, config, conn, now_us, generation)
}

/// The pool's rules on top of the manager's `verdict`.
pub(crate) fn judge<C>(
    verdict: Verdict,
    config: &PoolConfig,
    conn: &Conn<C>,
    now_us: u64,
    generation: u64,
) -> Option<Rejected> {
    let statements = match verdict {
        Verdict::Reuse { statements } => statements,
        Verdict::Broken => return Some(Rejected::Retire(RetireReason::Broken)),
        Verdict::Dirty => return Some(Rejected::Retire(RetireReason::Dirty)),
        Verdict::Discard => return Some(Rejected::Retire(RetireReason::Discarded)),
        Verdict::ServerLost(why) => return Some(Rejected::ServerLost(why)),
        Verdict::Settle => return Some(Rejected::Settle),
    };
    let reason = if conn.generation != generation {
        RetireReason::Evicted
    } else if is_expired(conn, now_us) {
        RetireReason::Lifetime
    } else if config.max_queries > 0 && statements >= config.max_queries {
        RetireReason::MaxQueries
    } else {
        return None;
    };
    Some(Rejected::Retire(reason))
}

/// Maintenance: whether an idle connection should go, given how many are
/// open. Never shrinks below `min_size` for idleness.
pub(crate) fn on_maintenance<C>(
    config: &PoolConfig,
    conn: &Conn<C>,
    now_us: u64,
    open: u64,
) -> Option<RetireReason> {
    if is_expired(conn, now_us) {
        Some(RetireReason::Lifetime)
    } else if open > u64::from(config.min_size)
        && Duration::from_micros(now_us.saturating_sub(conn.last_used_us)) >= config.max_idle_time
    {
        Some(RetireReason::IdleTimeout)
    } else {
        None
    }
}

/// Acts on the judgement of a returned connection: back to the idle queue,
/// or retired (evicting every connection when its server is lost).
pub(crate) fn finish_return<M: Manager>(
    shared: &Shared<M>,
    mut conn: Conn<M::Connection>,
    rejected: Option<Rejected>,
    now_us: u64,
    generation: u64,
) {
    match rejected {
        None => {}
        Some(Rejected::ServerLost(why)) => {
            // The server itself is gone or changed role (shut down,
            // demoted, failed over): every connection to it goes at
            // once, not one failed request at a time. Only the first
            // report of a generation evicts; a later one from the same
            // old generation is already being retired, and just goes
            // (as dirty: it saw the loss after the eviction).
            if conn.generation == generation {
                conn.retire(RetireReason::Evicted);
                shared.evict(&why);
            } else {
                conn.retire(RetireReason::Dirty);
            }
            return;
        }
        Some(Rejected::Retire(reason)) => {
            if reason == RetireReason::Broken {
                // A connection that died under its user: the server may
                // have restarted, so check the idle ones before handing
                // them out.
                shared.suspect_idle_connections();
            }
            conn.retire(reason);
            return;
        }
        Some(Rejected::Settle) => {
            // A settle that asks to settle again: its state is unknown.
            conn.retire(RetireReason::Dirty);
            return;
        }
    }
    conn.last_used_us = now_us;
    shared.return_to_idle(conn);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jittered_lifetimes_stay_within_the_window_and_spread() {
        let config = PoolConfig::default()
            .max_lifetime(Duration::from_secs(1000))
            .max_lifetime_jitter_percent(10);
        let lifetimes: Vec<Duration> = (0..1000).map(|_| jittered_lifetime(&config)).collect();
        assert!(lifetimes
            .iter()
            .all(|l| *l <= Duration::from_secs(1000) && *l >= Duration::from_secs(900)));
        let distinct: std::collections::HashSet<_> =
            lifetimes.iter().map(|l| l.as_secs()).collect();
        assert!(
            distinct.len() > 50,
            "jitter spreads expiries: {} distinct seconds",
            distinct.len()
        );
    }

    #[test]
    fn zero_jitter_gives_exactly_max_lifetime() {
        let config = PoolConfig::default().max_lifetime_jitter_percent(0);
        assert_eq!(jittered_lifetime(&config), config.max_lifetime);
    }
}
