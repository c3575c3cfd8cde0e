//! Running the cases: interleaved rounds, per-round statistics, medians and
//! paired ratios.
//!
//! Within a case every contender runs once untimed (warm caches, lazily
//! opened objects), then `rounds` times in turn, the starting contender
//! rotating each round. A ratio is taken per round between runs that were
//! seconds apart, then the median of those: noise that lasts longer than a
//! round moves both sides of a ratio alike.

use std::time::{Duration, Instant};

use benches::fairness::{jain_index, median, starved_tasks};
use benches::workload::{run_for, Run};
use benches::{Contender, OpError};
use pool_core::Statistics;
use serde::Serialize;
use tokio::runtime::Runtime;

/// Runs one contender for a duration with a task count and a sampling
/// interval; boxed so contenders of different types share a list.
pub(crate) type Runner<'a> =
    Box<dyn Fn(&Runtime, usize, Duration, u64) -> Result<Run, OpError> + 'a>;

/// A named runner for `contender`.
pub(crate) fn runner<'a, C: Contender>(
    name: &'static str,
    contender: &'a C,
) -> (&'static str, Runner<'a>) {
    (
        name,
        Box::new(move |rt, tasks, duration, sample_every| {
            run_for(rt, contender, tasks, duration, sample_every)
        }),
    )
}

/// How to run a case.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) tasks: usize,
    pub(crate) rounds: usize,
    pub(crate) round: Duration,
    pub(crate) warm: Duration,
    pub(crate) sample_every: u64,
}

/// One contender's run in one round, reduced.
#[derive(Clone, Debug)]
struct RoundStats {
    ops_per_sec: f64,
    p50_ns: u64,
    p95_ns: u64,
    p99_ns: u64,
    max_ns: u64,
    samples: u64,
    jain: f64,
    starved: usize,
    min_share: f64,
    max_share: f64,
}

impl RoundStats {
    fn of(run: &Run) -> Self {
        let mean = run.total_ops() as f64 / run.per_task.len().max(1) as f64;
        let share = |x: u64| if mean > 0.0 { x as f64 / mean } else { 1.0 };
        Self {
            ops_per_sec: run.ops_per_sec(),
            p50_ns: run.latency.value_at_quantile(0.50),
            p95_ns: run.latency.value_at_quantile(0.95),
            p99_ns: run.latency.value_at_quantile(0.99),
            max_ns: run.latency.max(),
            samples: run.latency.len(),
            jain: jain_index(&run.per_task),
            starved: starved_tasks(&run.per_task),
            min_share: share(run.per_task.iter().copied().min().unwrap_or(0)),
            max_share: share(run.per_task.iter().copied().max().unwrap_or(0)),
        }
    }
}

/// One contender over all rounds of a case.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ContenderReport {
    pub(crate) name: &'static str,
    /// Median over rounds.
    pub(crate) ops_per_sec: f64,
    pub(crate) ops_per_sec_rounds: Vec<f64>,
    /// Medians over rounds of each round's percentile (nanoseconds).
    pub(crate) p50_ns: f64,
    pub(crate) p95_ns: f64,
    pub(crate) p99_ns: f64,
    /// The largest latency seen in any round.
    pub(crate) max_ns: u64,
    /// Latency samples over all rounds.
    pub(crate) latency_samples: u64,
    /// Jain's index of per-task completions: median and worst round.
    pub(crate) jain: f64,
    pub(crate) jain_worst: f64,
    /// Tasks that completed < 10% of the mean: median and worst round.
    pub(crate) starved_tasks: f64,
    pub(crate) starved_tasks_worst: usize,
    /// Fewest and most completions of one task, as a fraction of the
    /// mean, in the worst rounds.
    pub(crate) min_task_share: f64,
    pub(crate) max_task_share: f64,
}

/// Ours against one other contender: medians of per-round ratios.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct VersusReport {
    pub(crate) other: &'static str,
    /// Our throughput over theirs (higher is better for us).
    pub(crate) ops_ratio: f64,
    /// Our p99 over theirs (lower is better for us).
    pub(crate) p99_ratio: f64,
}

/// One case, all contenders.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CaseReport {
    pub(crate) case: String,
    pub(crate) shape: &'static str,
    pub(crate) tasks: usize,
    pub(crate) size: usize,
    pub(crate) contenders: Vec<ContenderReport>,
    /// `ours` against each other contender.
    pub(crate) ours_vs: Vec<VersusReport>,
    /// What our pool's statistics said about the case, where relevant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ours_statistics: Option<OursDuringCase>,
}

impl CaseReport {
    pub(crate) fn contender(&self, name: &str) -> Option<&ContenderReport> {
        self.contenders.iter().find(|c| c.name == name)
    }

    pub(crate) fn versus(&self, other: &str) -> Option<&VersusReport> {
        self.ours_vs.iter().find(|v| v.other == other)
    }
}

/// Our pool's counters moved during a PostgreSQL case.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct OursDuringCase {
    /// Liveness checks (`SELECT 1` round trips) made on checkout.
    pub(crate) validations: u64,
    /// Connections opened (replacing retired ones: `max_queries`, ...).
    pub(crate) connections_opened: u64,
    /// Acquisitions, and those that had to queue.
    pub(crate) acquisitions: u64,
    pub(crate) acquisitions_waited: u64,
}

impl OursDuringCase {
    /// What moved between two snapshots.
    pub(crate) fn between(before: &Statistics, after: &Statistics) -> Self {
        Self {
            validations: after.validations.saturating_sub(before.validations),
            connections_opened: after
                .connections_created
                .saturating_sub(before.connections_created),
            acquisitions: after
                .total_acquisitions
                .saturating_sub(before.total_acquisitions),
            acquisitions_waited: after
                .acquisitions_waited
                .saturating_sub(before.acquisitions_waited),
        }
    }
}

/// Runs one case: the `runners` (the first must be `ours`) interleaved
/// over `plan.rounds` rounds.
pub(crate) fn run_case(
    rt: &Runtime,
    case: String,
    shape: &'static str,
    size: usize,
    runners: &[(&'static str, Runner<'_>)],
    plan: Plan,
) -> Result<CaseReport, OpError> {
    for (_, run) in runners {
        run(rt, plan.tasks, plan.warm, plan.sample_every)?;
    }
    let mut rounds: Vec<Vec<RoundStats>> = vec![Vec::new(); runners.len()];
    for round in 0..plan.rounds {
        for i in 0..runners.len() {
            let index = (i + round) % runners.len();
            let (_, run) = &runners[index];
            let result = run(rt, plan.tasks, plan.round, plan.sample_every)?;
            rounds[index].push(RoundStats::of(&result));
        }
    }
    let contenders = runners
        .iter()
        .zip(&rounds)
        .map(|((name, _), stats)| summarize(name, stats))
        .collect();
    let ours_vs = runners
        .iter()
        .zip(&rounds)
        .skip(1)
        .map(|((name, _), theirs)| VersusReport {
            other: name,
            ops_ratio: paired_median(&rounds[0], theirs, |s| s.ops_per_sec),
            p99_ratio: paired_median(&rounds[0], theirs, |s| s.p99_ns as f64),
        })
        .collect();
    Ok(CaseReport {
        case,
        shape,
        tasks: plan.tasks,
        size,
        contenders,
        ours_vs,
        ours_statistics: None,
    })
}

fn summarize(name: &'static str, stats: &[RoundStats]) -> ContenderReport {
    let med =
        |f: fn(&RoundStats) -> f64| median(&stats.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    ContenderReport {
        name,
        ops_per_sec: med(|s| s.ops_per_sec),
        ops_per_sec_rounds: stats.iter().map(|s| s.ops_per_sec.round()).collect(),
        p50_ns: med(|s| s.p50_ns as f64),
        p95_ns: med(|s| s.p95_ns as f64),
        p99_ns: med(|s| s.p99_ns as f64),
        max_ns: stats.iter().map(|s| s.max_ns).max().unwrap_or(0),
        latency_samples: stats.iter().map(|s| s.samples).sum(),
        jain: med(|s| s.jain),
        jain_worst: stats.iter().map(|s| s.jain).fold(1.0, f64::min),
        starved_tasks: med(|s| s.starved as f64),
        starved_tasks_worst: stats.iter().map(|s| s.starved).max().unwrap_or(0),
        min_task_share: stats
            .iter()
            .map(|s| s.min_share)
            .fold(f64::INFINITY, f64::min),
        max_task_share: stats.iter().map(|s| s.max_share).fold(0.0, f64::max),
    }
}

/// The median over rounds of `value(ours) / value(theirs)`.
fn paired_median(ours: &[RoundStats], theirs: &[RoundStats], value: fn(&RoundStats) -> f64) -> f64 {
    let ratios: Vec<f64> = ours
        .iter()
        .zip(theirs)
        .filter(|(_, t)| value(t) > 0.0)
        .map(|(o, t)| value(o) / value(t))
        .collect();
    median(&ratios).unwrap_or(f64::NAN)
}

/// Alternating timings of a few ways to do the same thing; the first is
/// ours.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AlternatingReport {
    /// Per way: its name, the median and every round, in milliseconds.
    pub(crate) ways: Vec<WayReport>,
    /// Median over rounds of `ours / way`, for each other way.
    pub(crate) ours_vs: Vec<(&'static str, f64)>,
}

/// One way of an [`AlternatingReport`].
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WayReport {
    pub(crate) name: &'static str,
    pub(crate) ms: f64,
    pub(crate) ms_rounds: Vec<f64>,
}

impl AlternatingReport {
    pub(crate) fn ms(&self, name: &str) -> f64 {
        self.ways
            .iter()
            .find(|w| w.name == name)
            .map_or(f64::NAN, |w| w.ms)
    }

    pub(crate) fn ours_vs(&self, name: &str) -> f64 {
        self.ours_vs
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(f64::NAN, |(_, r)| *r)
    }
}

/// A measurement that returns how long it took.
pub(crate) type Timed<'a> = Box<dyn FnMut() -> Result<Duration, OpError> + 'a>;

/// Times each way once per round, `rounds` rounds, the first way rotating,
/// after one untimed run of each, with `pause` after every measurement
/// (outside the timing).
pub(crate) fn time_alternating(
    rounds: usize,
    pause: Duration,
    mut ways: Vec<(&'static str, Timed<'_>)>,
) -> Result<AlternatingReport, OpError> {
    for (_, run) in ways.iter_mut() {
        run()?;
        std::thread::sleep(pause);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); ways.len()];
    for round in 0..rounds {
        for i in 0..ways.len() {
            let index = (i + round) % ways.len();
            let elapsed = (ways[index].1)()?;
            times[index].push(elapsed.as_secs_f64() * 1e3);
            std::thread::sleep(pause);
        }
    }
    let ours_vs = ways
        .iter()
        .zip(&times)
        .skip(1)
        .map(|((name, _), theirs)| {
            let ratios: Vec<f64> = times[0].iter().zip(theirs).map(|(o, t)| o / t).collect();
            (*name, median(&ratios).unwrap_or(f64::NAN))
        })
        .collect();
    Ok(AlternatingReport {
        ways: ways
            .iter()
            .zip(times)
            .map(|((name, _), ms_rounds)| WayReport {
                name,
                ms: median(&ms_rounds).unwrap_or(f64::NAN),
                ms_rounds,
            })
            .collect(),
        ours_vs,
    })
}

/// Nanoseconds per call of `f`, the median over `rounds` rounds of `calls`
/// calls.
pub(crate) fn ns_per_call<T>(rounds: usize, calls: u32, mut f: impl FnMut() -> T) -> f64 {
    let mut per_round = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(f());
        }
        per_round.push(started.elapsed().as_nanos() as f64 / f64::from(calls.max(1)));
    }
    median(&per_round).unwrap_or(f64::NAN)
}
