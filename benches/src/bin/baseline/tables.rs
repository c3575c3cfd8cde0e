//! Markdown tables of the acquire/release cases, with human-scaled units.

use std::fmt::Write as _;

use crate::measure::CaseReport;

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
