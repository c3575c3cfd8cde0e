//! The baseline file: its shape, the flat list of ratios that compare mode
//! checks, the goals of the issues with where we stand, and the machine.
//! The Markdown rendering of the tables is in `tables.rs`.
//!
//! Every ratio's key is `{case key}/{metric}` (see `cases.rs`), so compare
//! mode can tell which case to measure again from a ratio alone.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cases::{acquire_key, cached_key, postgres_key, LEAK_DETECTION_KEY, WARM_UP_KEY};
use crate::compare::ComparisonReport;
use crate::measure::{AlternatingReport, CaseReport, OursDuringCase};

/// Bumped when the meaning of a field changes.
pub(crate) const SCHEMA: u32 = 1;

/// How the run was made. Compare mode reuses the baseline's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// Timed rounds per contender and case (the median is reported).
    pub(crate) rounds: usize,
    /// Length of one round of an acquire/release case.
    pub(crate) acquire_round_ms: u64,
    /// Length of one round of a PostgreSQL case.
    pub(crate) postgres_round_ms: u64,
    /// Untimed run of each contender before a case's rounds.
    pub(crate) warm_ms: u64,
    /// One operation in this many has its latency recorded (acquire cases;
    /// the clock costs as much as the operation).
    pub(crate) acquire_sample_every: u64,
    /// Same for the PostgreSQL cases (every operation).
    pub(crate) postgres_sample_every: u64,
    /// Rounds of the warm-up comparison (each side once per round).
    pub(crate) warm_up_rounds: usize,
    /// Calls per round when timing `statistics()` and `health_check()`.
    pub(crate) observe_calls: u32,
    /// Tokio worker threads.
    pub(crate) worker_threads: usize,
    /// Whether the PostgreSQL cases ran.
    pub(crate) postgres: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rounds: 5,
            acquire_round_ms: 200,
            postgres_round_ms: 500,
            warm_ms: 50,
            acquire_sample_every: 16,
            postgres_sample_every: 1,
            warm_up_rounds: 11,
            observe_calls: 100_000,
            worker_threads: 2,
            postgres: true,
        }
    }
}

/// Where the run was made.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    /// `/proc/loadavg` (1, 5, 15 min) before and after the run.
    pub(crate) load_average_start: String,
    pub(crate) load_average_end: String,
}

impl Machine {
    pub(crate) fn inspect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            rustc: std::process::Command::new("rustc")
                .arg("--version")
                .output()
                .ok()
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map_or_else(|| "unknown".to_owned(), |v| v.trim().to_owned()),
            load_average_start: load_average(),
            load_average_end: String::new(),
        }
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// The first three fields of `/proc/loadavg`.
pub(crate) fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Nanoseconds per call of the observation methods.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ObserveReport {
    pub(crate) statistics_ns: f64,
    pub(crate) health_check_ns: f64,
}

/// The PostgreSQL part.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PostgresReport {
    pub(crate) server_version: String,
    pub(crate) query: &'static str,
    pub(crate) cases: Vec<CaseReport>,
    /// Our pool's counters over a run that follows another run at once
    /// (no idle gap): checkout must add no round trip.
    pub(crate) steady_state: Vec<SteadyState>,
    /// `ours` (`PgPool::connect`, 10 validated connections), `by_hand`
    /// (10 `connect` in parallel), `by_hand_validated` (the same, each
    /// followed by `SELECT 1`); ratios are ours / theirs, lower is better.
    pub(crate) warm_up: AlternatingReport,
}

/// The prepared-statement part (issue 14): a repeated parameterised
/// single-row query, pool of 8, ours against a dedicated prepared client,
/// deadpool-postgres (`query(&str)` and `prepare_cached`) and sqlx (with
/// and without its ping on checkout). See `benches/src/cached.rs`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CachedReport {
    pub(crate) server_version: String,
    pub(crate) query: &'static str,
    pub(crate) cases: Vec<CaseReport>,
}

/// The peers of the prepared-statement goals, with the least throughput
/// ratio (ours over theirs) each must reach in every case; `None`: the
/// goal holds at 1 task only. Every one of them also bounds our p99
/// (ours over theirs at most 1.0). `sqlx_no_acquire_ping` is reported, not a goal.
pub(crate) const CACHED_GOALS: [(&str, f64, Option<usize>); 4] = [
    ("deadpool_query", 1.8, Some(1)),
    ("deadpool_cached", 1.0, None),
    ("sqlx", 1.0, None),
    ("dedicated_prepared", 0.95, None),
];

/// Our pool's counters over a steady-state run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SteadyState {
    pub(crate) size: usize,
    pub(crate) tasks: usize,
    pub(crate) run_ms: u64,
    pub(crate) statistics: OursDuringCase,
}

/// Which way a ratio is better for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Better {
    /// Throughput ratios: ours over theirs.
    Higher,
    /// Latency and time ratios: ours over theirs.
    Lower,
}

/// One ratio, flat, for compare mode.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Ratio {
    /// `{case key}/{metric}`, e.g. `acquire/hold/w64s16/ops_vs_bb8`.
    pub(crate) key: String,
    pub(crate) value: f64,
    /// `higher` or `lower` in the file: which way is better for us.
    pub(crate) better: Better,
    /// Whether compare mode checks it (throughput ratios and the warm-up
    /// ratio; tail ratios are reported but too noisy to gate on).
    pub(crate) compared: bool,
}

/// One goal of the issue, for one case.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Goal {
    pub(crate) goal: String,
    pub(crate) case: String,
    pub(crate) measured: f64,
    pub(crate) target: String,
    pub(crate) met: bool,
}

/// The whole file.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) schema: u32,
    pub(crate) title: &'static str,
    pub(crate) note: String,
    pub(crate) date: String,
    pub(crate) machine: Machine,
    pub(crate) settings: Settings,
    pub(crate) acquire: Vec<CaseReport>,
    pub(crate) leak_detection: CaseReport,
    pub(crate) observe: ObserveReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) postgres: Option<PostgresReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cached: Option<CachedReport>,
    pub(crate) ratios: Vec<Ratio>,
    pub(crate) goals: Vec<Goal>,
    /// Compare mode only: every compared ratio against the baseline, with
    /// the values of the confirmation reruns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) comparison: Option<ComparisonReport>,
}

/// The ratios of one case whose key is `case_key`: ours over each other
/// contender, throughput (compared) and p99 (reported only).
pub(crate) fn case_ratios(case_key: &str, case: &CaseReport) -> Vec<Ratio> {
    case.ours_vs
        .iter()
        .flat_map(|versus| {
            [
                Ratio {
                    key: format!("{case_key}/ops_vs_{}", versus.other),
                    value: versus.ops_ratio,
                    better: Better::Higher,
                    compared: true,
                },
                Ratio {
                    key: format!("{case_key}/p99_vs_{}", versus.other),
                    value: versus.p99_ratio,
                    better: Better::Lower,
                    compared: false,
                },
            ]
        })
        .collect()
}

/// The ratios of the warm-up comparison: our time over each other way's.
pub(crate) fn warm_up_ratios(warm_up: &AlternatingReport) -> Vec<Ratio> {
    warm_up
        .ours_vs
        .iter()
        .map(|(other, value)| Ratio {
            key: format!("{WARM_UP_KEY}/time_vs_{other}"),
            value: *value,
            better: Better::Lower,
            compared: true,
        })
        .collect()
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Report {
    /// Fills `ratios` and `goals` from the measurements.
    pub(crate) fn derive(&mut self) {
        let mut ratios = Vec::new();
        for case in &self.acquire {
            ratios.extend(case_ratios(&acquire_key(case.shape, &case.case), case));
        }
        ratios.extend(case_ratios(LEAK_DETECTION_KEY, &self.leak_detection));
        if let Some(pg) = &self.postgres {
            for case in &pg.cases {
                ratios.extend(case_ratios(&postgres_key(&case.case), case));
            }
            ratios.extend(warm_up_ratios(&pg.warm_up));
        }
        if let Some(cached) = &self.cached {
            for case in &cached.cases {
                ratios.extend(case_ratios(&cached_key(&case.case), case));
            }
        }
        self.ratios = ratios;
        self.goals = self.goals();
    }

    fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let mut at_least = |goal: &str, case: String, measured: f64, target: f64| {
            goals.push(Goal {
                goal: goal.to_owned(),
                case,
                measured,
                target: format!(">= {target}"),
                met: measured >= target,
            });
        };
        for case in &self.acquire {
            let name = format!("{}/{}", case.shape, case.case);
            let ops = |other: &str| case.versus(other).map_or(f64::NAN, |v| v.ops_ratio);
            if case.tasks == 1 {
                at_least("uncontended: ours / floor", name.clone(), ops("floor"), 1.0);
                at_least(
                    "uncontended: ours / deadpool",
                    name.clone(),
                    ops("deadpool"),
                    2.0,
                );
                at_least("uncontended: ours / bb8", name, ops("bb8"), 2.0);
            } else {
                at_least("contended: ours / floor", name.clone(), ops("floor"), 0.95);
                at_least(
                    "contended: ours / deadpool",
                    name.clone(),
                    ops("deadpool"),
                    1.3,
                );
                let jain = case.contender("ours").map_or(f64::NAN, |c| c.jain);
                at_least(
                    "contended: Jain index of ours (median round)",
                    name,
                    jain,
                    0.99,
                );
            }
        }
        if let Some(pg) = &self.postgres {
            for case in &pg.cases {
                let ops = |other: &str| case.versus(other).map_or(f64::NAN, |v| v.ops_ratio);
                at_least(
                    "postgres: ours / dedicated",
                    case.case.clone(),
                    ops("dedicated"),
                    0.98,
                );
                at_least(
                    "postgres: ours / deadpool",
                    case.case.clone(),
                    ops("deadpool"),
                    1.0,
                );
            }
        }
        if let Some(cached) = &self.cached {
            for case in &cached.cases {
                for (peer, target, only_tasks) in CACHED_GOALS {
                    if only_tasks.is_some_and(|tasks| tasks != case.tasks) {
                        continue;
                    }
                    at_least(
                        &format!("prepared: ours / {peer}"),
                        case.case.clone(),
                        case.versus(peer).map_or(f64::NAN, |v| v.ops_ratio),
                        target,
                    );
                }
            }
        }
        let mut at_most = |goal: &str, case: String, measured: f64, target: f64| {
            goals.push(Goal {
                goal: goal.to_owned(),
                case,
                measured,
                target: format!("<= {target}"),
                met: measured <= target,
            });
        };
        for case in self.acquire.iter().filter(|c| c.tasks > 1) {
            let name = format!("{}/{}", case.shape, case.case);
            let starved = case.contender("ours").map_or(f64::NAN, |c| c.starved_tasks);
            at_most(
                "contended: starved tasks of ours (median round)",
                name.clone(),
                starved,
                0.0,
            );
            let p99 = case.versus("deadpool").map_or(f64::NAN, |v| v.p99_ratio);
            at_most("contended: ours p99 / deadpool p99", name, p99, 1.0);
        }
        if let Some(pg) = &self.postgres {
            for case in &pg.cases {
                let p99 = case.versus("deadpool").map_or(f64::NAN, |v| v.p99_ratio);
                at_most(
                    "postgres: ours p99 / deadpool p99",
                    case.case.clone(),
                    p99,
                    1.0,
                );
            }
            for probe in &pg.steady_state {
                at_most(
                    "postgres: round trips added on checkout (validations, steady state)",
                    format!("s{}w{}", probe.size, probe.tasks),
                    probe.statistics.validations as f64,
                    0.0,
                );
            }
            at_most(
                "warm-up: ours / by hand (time)",
                "10 connections".to_owned(),
                pg.warm_up.ours_vs("by_hand"),
                1.2,
            );
        }
        if let Some(cached) = &self.cached {
            for case in &cached.cases {
                for (peer, _, _) in CACHED_GOALS {
                    at_most(
                        &format!("prepared: ours p99 / {peer} p99"),
                        case.case.clone(),
                        case.versus(peer).map_or(f64::NAN, |v| v.p99_ratio),
                        1.0,
                    );
                }
            }
        }
        at_most(
            "statistics() ns",
            "8 connections".to_owned(),
            self.observe.statistics_ns,
            1000.0,
        );
        at_most(
            "health_check() ns",
            "8 connections".to_owned(),
            self.observe.health_check_ns,
            1000.0,
        );
        goals
    }
}
