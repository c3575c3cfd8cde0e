//! The soak's figures and the statistics' bookkeeping check.
//!
//! [`Tally`] folds every worker's records into counts: steps by kind,
//! endings by label, `acquire()` calls by [`AcquireEnd`]. Recovery time of
//! a fault = from the moment it was over to the end of the first
//! successful query step that *started* after it. [`check_statistics`]
//! states the identities the pool's counters must satisfy once it is quiet,
//! against the workers' own tally; [`print`] writes it all to stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use pool_pg::Statistics;
use tokio::time::Instant;

use crate::faults::{FaultKind, FaultRecord};
use crate::ledger::LedgerCounts;
use crate::outcome::{AcquireEnd, OpKind, OpRecord};

/// The workers' records, counted.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Steps by kind: (all, succeeded).
    pub(crate) by_kind: BTreeMap<OpKind, (u64, u64)>,
    /// Steps by ending label.
    pub(crate) labels: BTreeMap<String, u64>,
    pub(crate) acquire_ok: u64,
    pub(crate) acquire_timeout: u64,
    pub(crate) acquire_error: u64,
    pub(crate) acquire_dropped: u64,
    /// The longest `acquire()` that ended on its own (not dropped).
    pub(crate) longest_acquire: Duration,
    /// Every problem, in order of discovery.
    pub(crate) problems: Vec<String>,
}

impl Tally {
    pub(crate) fn of(records: &[OpRecord], epoch: Instant) -> Self {
        let mut tally = Tally::default();
        for r in records {
            let kind = tally.by_kind.entry(r.kind).or_default();
            kind.0 += 1;
            kind.1 += u64::from(r.succeeded);
            *tally.labels.entry(r.label.clone()).or_default() += 1;
            match r.acquire {
                AcquireEnd::Ok => tally.acquire_ok += 1,
                AcquireEnd::Timeout => tally.acquire_timeout += 1,
                AcquireEnd::Error => tally.acquire_error += 1,
                AcquireEnd::Dropped => tally.acquire_dropped += 1,
                AcquireEnd::NotCalled => tally.problems.push(format!(
                    "a {:?} step never called acquire() (soak bug)",
                    r.kind
                )),
            }
            if r.acquire != AcquireEnd::Dropped {
                tally.longest_acquire = tally.longest_acquire.max(r.acquire_took);
            }
            if let Some(problem) = &r.problem {
                tally.problems.push(format!(
                    "{:?} step at +{} ms: {problem}",
                    r.kind,
                    r.started.duration_since(epoch).as_millis()
                ));
            }
        }
        tally
    }

    /// `acquire()` calls made.
    pub(crate) fn acquire_calls(&self) -> u64 {
        self.acquire_ok + self.acquire_timeout + self.acquire_error + self.acquire_dropped
    }
}

/// For each fault, the time from its end to the first successful query
/// step that started after it (`None`: no such step before the end).
pub(crate) fn recoveries(faults: &[FaultRecord], records: &[OpRecord]) -> Vec<Option<Duration>> {
    faults
        .iter()
        .map(|fault| {
            records
                .iter()
                .filter(|r| r.succeeded && r.kind.is_query() && r.started >= fault.ended)
                .map(|r| r.ended.duration_since(fault.ended))
                .min()
        })
        .collect()
}

/// The longest a fault may keep every query failing after it is over.
pub(crate) const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// Every fault must be followed, within [`RECOVERY_BOUND`] of its end, by
/// a successful query step.
pub(crate) fn check_recoveries(
    epoch: Instant,
    faults: &[FaultRecord],
    recovered: &[Option<Duration>],
) -> Vec<String> {
    let at = |fault: &FaultRecord| fault.started.duration_since(epoch).as_millis();
    faults
        .iter()
        .zip(recovered)
        .filter_map(|(fault, recovery)| match recovery {
            Some(d) if *d <= RECOVERY_BOUND => None,
            Some(d) => Some(format!(
                "{} at +{} ms: the first successful query came {d:?} after it ended, over {RECOVERY_BOUND:?}",
                fault.kind,
                at(fault)
            )),
            None => Some(format!(
                "{} at +{} ms: no query succeeded after it ended",
                fault.kind,
                at(fault)
            )),
        })
        .collect()
}

/// The identities a quiet pool's statistics must satisfy, given what the
/// workers saw. Returns every one that does not hold.
pub(crate) fn check_statistics(s: &Statistics, t: &Tally) -> Vec<String> {
    let c = &s.closed_by_reason;
    let by_reason = c.lifetime
        + c.idle_timeout
        + c.max_queries
        + c.broken
        + c.dirty
        + c.validation_failed
        + c.discarded
        + c.pool_closed
        + c.dropped;
    let checks = [
        ("quiet: active_connections == 0", s.active_connections == 0),
        ("quiet: opening_connections == 0", s.opening_connections == 0),
        ("quiet: waiting_requests == 0", s.waiting_requests == 0),
        (
            "total_connections == idle + active + opening",
            s.total_connections
                == s.idle_connections + s.active_connections + s.opening_connections,
        ),
        ("total_connections <= max_size", s.total_connections <= s.max_size),
        (
            "peak_active_connections <= max_size",
            s.peak_active_connections <= s.max_size,
        ),
        (
            "every acquisition released: total_acquisitions == total_releases + active_connections",
            s.total_acquisitions == s.total_releases + s.active_connections,
        ),
        (
            "every acquire() counted once: calls == total_acquisitions + total_timeouts + acquire_errors + acquires_cancelled",
            t.acquire_calls()
                == s.total_acquisitions + s.total_timeouts + s.acquire_errors + s.acquires_cancelled,
        ),
        ("timeouts seen == total_timeouts", t.acquire_timeout == s.total_timeouts),
        ("other errors seen == acquire_errors", t.acquire_error == s.acquire_errors),
        (
            "ok + dropped seen == total_acquisitions + acquires_cancelled",
            t.acquire_ok + t.acquire_dropped == s.total_acquisitions + s.acquires_cancelled,
        ),
        ("ok seen <= total_acquisitions", t.acquire_ok <= s.total_acquisitions),
        (
            "connections_created - connections_closed == total_connections",
            s.connections_created.checked_sub(s.connections_closed) == Some(s.total_connections),
        ),
        ("closed_by_reason sums to connections_closed", by_reason == s.connections_closed),
        (
            "closed_by_reason.validation_failed == validation_failures",
            c.validation_failed == s.validation_failures,
        ),
        ("validation_failures <= validations", s.validation_failures <= s.validations),
    ];
    checks
        .iter()
        .filter(|(_, holds)| !holds)
        .map(|(what, _)| format!("statistics: {what} does not hold (workers saw ok {}, timeout {}, error {}, dropped {}; {s:?})",
            t.acquire_ok, t.acquire_timeout, t.acquire_error, t.acquire_dropped))
        .collect()
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// min / median / max of `values`, or `-`.
fn spread(values: &mut [Duration]) -> String {
    values.sort();
    match values {
        [] => "-".to_owned(),
        _ => format!(
            "min {} / median {} / max {} (n={})",
            millis(values[0]),
            millis(values[values.len() / 2]),
            millis(values[values.len() - 1]),
            values.len()
        ),
    }
}

/// Writes the figures to stderr (`cargo test -- --nocapture` shows them).
pub(crate) fn print(
    header: &str,
    epoch: Instant,
    tally: &Tally,
    faults: &[FaultRecord],
    recovered: &[Option<Duration>],
    ledger: &LedgerCounts,
    stats: &Statistics,
) {
    eprintln!("==== soak report: {header}");
    let total: u64 = tally.by_kind.values().map(|(n, _)| n).sum();
    eprintln!("operations: {total}");
    for (kind, (n, ok)) in &tally.by_kind {
        eprintln!("  {kind:?}: {n} ({ok} succeeded)");
    }
    eprintln!(
        "acquire() calls: {} (ok {}, timeout {}, other error {}, dropped by caller {}); longest answered {}",
        tally.acquire_calls(),
        tally.acquire_ok,
        tally.acquire_timeout,
        tally.acquire_error,
        tally.acquire_dropped,
        millis(tally.longest_acquire)
    );
    eprintln!("outcomes by type:");
    for (label, n) in &tally.labels {
        eprintln!("  {label}: {n}");
    }
    eprintln!("faults injected: {}", faults.len());
    for (fault, recovery) in faults.iter().zip(recovered) {
        eprintln!(
            "  +{:>6} ms {:<11} {:<16} took {}, recovered {}",
            fault.started.duration_since(epoch).as_millis(),
            fault.kind.to_string(),
            fault.detail,
            millis(fault.ended.duration_since(fault.started)),
            recovery.map_or_else(|| "never (no later success)".to_owned(), millis),
        );
    }
    eprintln!("faults by kind:");
    let mut by_fault: BTreeMap<FaultKind, Vec<Duration>> = BTreeMap::new();
    let mut unrecovered: BTreeMap<FaultKind, u64> = BTreeMap::new();
    for (fault, recovery) in faults.iter().zip(recovered) {
        let entry = by_fault.entry(fault.kind).or_default();
        match recovery {
            Some(d) => entry.push(*d),
            None => *unrecovered.entry(fault.kind).or_default() += 1,
        }
    }
    for (kind, times) in &mut by_fault {
        let n = times.len() as u64 + unrecovered.get(kind).copied().unwrap_or(0);
        eprintln!("  {kind}: {n}; recovery {}", spread(times));
    }
    let mut all: Vec<Duration> = recovered.iter().flatten().copied().collect();
    eprintln!("recovery (all faults): {}", spread(&mut all));
    eprintln!(
        "ledger: {} writes attempted: {} committed and present, {} failed before COMMIT and absent, \
         {} unknown (COMMIT failed) of which {} present / {} absent; {} rows",
        ledger.attempted,
        ledger.committed,
        ledger.not_written,
        ledger.unknown_present + ledger.unknown_absent,
        ledger.unknown_present,
        ledger.unknown_absent,
        ledger.rows
    );
    let c = &stats.closed_by_reason;
    eprintln!(
        "statistics: state {:?}; total {} (idle {}, active {}, opening {}), waiting {}; \
         acquisitions {} (immediate {}, waited {}), releases {}, timeouts {}, errors {}, cancelled {}; \
         created {}, connect failures {}, closed {} (broken {}, dirty {}, validation_failed {}, \
         dropped {}, lifetime {}, idle {}, max_queries {}, discarded {}, pool_closed {}); \
         validations {} (failed {}); peak active {}, peak waiting {}; wait p99 {:.1} ms, max {:.1} ms",
        stats.state,
        stats.total_connections,
        stats.idle_connections,
        stats.active_connections,
        stats.opening_connections,
        stats.waiting_requests,
        stats.total_acquisitions,
        stats.acquisitions_immediate,
        stats.acquisitions_waited,
        stats.total_releases,
        stats.total_timeouts,
        stats.acquire_errors,
        stats.acquires_cancelled,
        stats.connections_created,
        stats.connection_failures,
        stats.connections_closed,
        c.broken,
        c.dirty,
        c.validation_failed,
        c.dropped,
        c.lifetime,
        c.idle_timeout,
        c.max_queries,
        c.discarded,
        c.pool_closed,
        stats.validations,
        stats.validation_failures,
        stats.peak_active_connections,
        stats.peak_waiting_requests,
        stats.wait_time.p99_ms,
        stats.wait_time.max_ms,
    );
}
