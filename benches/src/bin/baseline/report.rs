//! The baseline file: its shape, the flat list of ratios that compare mode
//! checks, the goals of the issue with where we stand, the machine, and a
//! Markdown rendering of the tables.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::measure::{AlternatingReport, CaseReport, OursDuringCase};
use crate::tables::acquire_table;

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

/// Our pool's counters over a steady-state run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SteadyState {
    pub(crate) size: usize,
    pub(crate) tasks: usize,
    pub(crate) run_ms: u64,
    pub(crate) statistics: OursDuringCase,
}

/// One ratio, flat, for compare mode.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Ratio {
    pub(crate) key: String,
    pub(crate) value: f64,
    /// `higher` or `lower`: which way is better for us.
    pub(crate) better: &'static str,
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
    pub(crate) ratios: Vec<Ratio>,
    pub(crate) goals: Vec<Goal>,
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Report {
    /// Fills `ratios` and `goals` from the measurements.
    pub(crate) fn derive(&mut self) {
        let mut ratios = Vec::new();
        let mut push_case = |prefix: String, case: &CaseReport| {
            for versus in &case.ours_vs {
                ratios.push(Ratio {
                    key: format!("{prefix}/ops_vs_{}", versus.other),
                    value: versus.ops_ratio,
                    better: "higher",
                    compared: true,
                });
                ratios.push(Ratio {
                    key: format!("{prefix}/p99_vs_{}", versus.other),
                    value: versus.p99_ratio,
                    better: "lower",
                    compared: false,
                });
            }
        };
        for case in &self.acquire {
            push_case(format!("acquire/{}/{}", case.shape, case.case), case);
        }
        push_case("leak_detection/site".to_owned(), &self.leak_detection);
        if let Some(pg) = &self.postgres {
            for case in &pg.cases {
                push_case(format!("postgres/{}", case.case), case);
            }
            for (other, value) in &pg.warm_up.ours_vs {
                ratios.push(Ratio {
                    key: format!("postgres/warm_up/time_vs_{other}"),
                    value: *value,
                    better: "lower",
                    compared: true,
                });
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

    /// The tables, in Markdown.
    pub(crate) fn markdown(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        writeln!(
            out,
            "Collected {} on {} ({} cores, load {} → {}), {}; {} rounds per contender.\n",
            self.date,
            self.machine.cpu_model,
            self.machine.cores,
            self.machine.load_average_start,
            self.machine.load_average_end,
            self.machine.rustc,
            self.settings.rounds,
        )?;
        if !self.note.is_empty() {
            writeln!(out, "> {}\n", self.note)?;
        }
        writeln!(out, "#### Acquire + release (no I/O)\n")?;
        acquire_table(&mut out, &self.acquire, &["floor", "deadpool", "bb8"])?;
        writeln!(
            out,
            "\n#### Leak detection (w1s4, release; ratio = `site` over the other)\n"
        )?;
        acquire_table(
            &mut out,
            std::slice::from_ref(&self.leak_detection),
            &["off", "backtrace"],
        )?;
        if let Some(pg) = &self.postgres {
            writeln!(
                out,
                "\n#### PostgreSQL {}, `{}`\n",
                pg.server_version, pg.query
            )?;
            acquire_table(&mut out, &pg.cases, &["dedicated", "deadpool", "bb8"])?;
            writeln!(
                out,
                "\n| case | validations on checkout | connections opened | acquisitions | waited |"
            )?;
            writeln!(out, "|---|---|---|---|---|")?;
            for case in &pg.cases {
                if let Some(s) = &case.ours_statistics {
                    writeln!(
                        out,
                        "| {} | {} | {} | {} | {} |",
                        case.case,
                        s.validations,
                        s.connections_opened,
                        s.acquisitions,
                        s.acquisitions_waited
                    )?;
                }
            }
            writeln!(
                out,
                "\nSteady state (a run right after another, no idle gap):\n"
            )?;
            writeln!(
                out,
                "| case | acquisitions | validations on checkout |\n|---|---|---|"
            )?;
            for probe in &pg.steady_state {
                writeln!(
                    out,
                    "| s{}w{} | {} | {} |",
                    probe.size,
                    probe.tasks,
                    probe.statistics.acquisitions,
                    probe.statistics.validations
                )?;
            }
            writeln!(
                out,
                "\n#### Warm-up, 10 connections\n\n\
                 | ours (`PgPool::connect`, validated) | by hand (parallel `connect`) | by hand + `SELECT 1` each | ours / by hand | ours / by hand + `SELECT 1` |\n\
                 |---|---|---|---|---|\n\
                 | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} | {:.2} |",
                pg.warm_up.ms("ours"),
                pg.warm_up.ms("by_hand"),
                pg.warm_up.ms("by_hand_validated"),
                pg.warm_up.ours_vs("by_hand"),
                pg.warm_up.ours_vs("by_hand_validated"),
            )?;
        }
        writeln!(
            out,
            "\n#### Observation\n\n| `statistics()` | `health_check()` |\n|---|---|\n| {:.0} ns | {:.0} ns |",
            self.observe.statistics_ns, self.observe.health_check_ns
        )?;
        writeln!(
            out,
            "\n#### Goals\n\n| goal | case | measured | target | met |\n|---|---|---|---|---|"
        )?;
        for goal in &self.goals {
            writeln!(
                out,
                "| {} | {} | {:.3} | {} | {} |",
                goal.goal,
                goal.case,
                goal.measured,
                goal.target,
                if goal.met { "yes" } else { "**no**" }
            )?;
        }
        Ok(out)
    }
}
