//! The baseline's tables in Markdown (the `.md` beside the JSON, and what
//! the script copies into `docs/performance.md`), with human-scaled units.

use std::fmt::Write as _;

use crate::measure::CaseReport;
use crate::report::Report;

impl Report {
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
        if let Some(cached) = &self.cached {
            writeln!(
                out,
                "\n#### Prepared statements, PostgreSQL {}, `{}`, pool of 8\n",
                cached.server_version, cached.query
            )?;
            cached_table(&mut out, &cached.cases)?;
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

/// One row per case: ours' throughput, ratios to each other contender,
/// fairness, p99s.
pub(crate) fn acquire_table(
    out: &mut String,
    cases: &[CaseReport],
    others: &[&str],
) -> std::fmt::Result {
    let mut header = "| case | ours ops/s |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for other in others {
        write!(header, " / {other} |")?;
        rule.push_str("---|");
    }
    header.push_str(" Jain, median (worst round) | starved, median (worst) | p99 ours |");
    rule.push_str("---|---|---|");
    for other in others {
        write!(header, " p99 {other} |")?;
        rule.push_str("---|");
    }
    writeln!(out, "{header}\n{rule}")?;
    for case in cases {
        let ours = case.contender(case.contenders.first().map_or("ours", |c| c.name));
        let mut row = format!(
            "| {}{} | {} |",
            if case.shape.is_empty() {
                String::new()
            } else {
                format!("{} ", case.shape)
            },
            case.case,
            ours.map_or("-".to_owned(), |c| format_ops(c.ops_per_sec))
        );
        for other in others {
            write!(
                row,
                " {} |",
                case.versus(other)
                    .map_or("-".to_owned(), |v| format!("{:.2}", v.ops_ratio))
            )?;
        }
        write!(
            row,
            " {} | {} | {} |",
            ours.map_or("-".to_owned(), |c| format!(
                "{:.3} ({:.3})",
                c.jain, c.jain_worst
            )),
            ours.map_or("-".to_owned(), |c| format!(
                "{} ({})",
                c.starved_tasks, c.starved_tasks_worst
            )),
            ours.map_or("-".to_owned(), |c| format_ns(c.p99_ns))
        )?;
        for other in others {
            write!(
                row,
                " {} |",
                case.contender(other)
                    .map_or("-".to_owned(), |c| format_ns(c.p99_ns))
            )?;
        }
        writeln!(out, "{row}")?;
    }
    Ok(())
}

/// One row per case and contender: throughput, ours over it, its
/// latencies, ours' p99 over its p99; then what ours' counters did.
pub(crate) fn cached_table(out: &mut String, cases: &[CaseReport]) -> std::fmt::Result {
    writeln!(
        out,
        "| case | contender | ops/s | ours / it (ops) | p50 | p95 | p99 | ours / it (p99) |\n\
         |---|---|---|---|---|---|---|---|"
    )?;
    for case in cases {
        for contender in &case.contenders {
            let versus = case.versus(contender.name);
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                case.case,
                contender.name,
                format_ops(contender.ops_per_sec),
                versus.map_or("-".to_owned(), |v| format!("{:.2}", v.ops_ratio)),
                format_ns(contender.p50_ns),
                format_ns(contender.p95_ns),
                format_ns(contender.p99_ns),
                versus.map_or("-".to_owned(), |v| format!("{:.2}", v.p99_ratio)),
            )?;
        }
    }
    writeln!(
        out,
        "\n| case | ours: validations on checkout | connections opened | acquisitions | waited |\n\
         |---|---|---|---|---|"
    )?;
    for case in cases {
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
    Ok(())
}

pub(crate) fn format_ops(ops: f64) -> String {
    if ops >= 1e6 {
        format!("{:.2} M", ops / 1e6)
    } else if ops >= 1e3 {
        format!("{:.1} k", ops / 1e3)
    } else {
        format!("{ops:.0}")
    }
}

pub(crate) fn format_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}
