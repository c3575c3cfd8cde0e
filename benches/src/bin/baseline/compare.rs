//! Compare mode: a rerun's ratios against the checked-in baseline.

use std::fmt::Write as _;

use benches::OpError;

use crate::report::Ratio;

/// The outcome of comparing a run with a checked-in baseline.
pub(crate) struct Comparison {
    pub(crate) text: String,
    pub(crate) regressions: usize,
}

/// Flags every compared ratio of `new` that moved the wrong way by more
/// than `tolerance` (a fraction) against `baseline` (the checked-in JSON).
pub(crate) fn compare(
    baseline: &serde_json::Value,
    new: &[Ratio],
    tolerance: f64,
) -> Result<Comparison, OpError> {
    let old = baseline
        .get("ratios")
        .and_then(serde_json::Value::as_array)
        .ok_or("the baseline has no `ratios` list")?;
    let mut text = String::new();
    let mut regressions = 0;
    writeln!(
        text,
        "{:<44} {:>9} {:>9} {:>8}  verdict",
        "ratio", "baseline", "now", "change"
    )?;
    for ratio in new.iter().filter(|r| r.compared) {
        let previous = old.iter().find_map(|entry| {
            (entry.get("key")?.as_str()? == ratio.key).then(|| entry.get("value")?.as_f64())?
        });
        let Some(previous) = previous else {
            writeln!(
                text,
                "{:<44} {:>9} {:>9.3} {:>8}  new (not in the baseline)",
                ratio.key, "-", ratio.value, "-"
            )?;
            continue;
        };
        let change = ratio.value / previous - 1.0;
        let regressed = if ratio.better == "higher" {
            ratio.value < previous * (1.0 - tolerance)
        } else {
            ratio.value > previous * (1.0 + tolerance)
        };
        let verdict = if regressed {
            regressions += 1;
            "REGRESSED"
        } else {
            "ok"
        };
        writeln!(
            text,
            "{:<44} {:>9.3} {:>9.3} {:>+7.1}%  {verdict}",
            ratio.key,
            previous,
            ratio.value,
            change * 100.0
        )?;
    }
    writeln!(
        text,
        "\n{regressions} regression(s) beyond {:.0}% (higher-is-better ratios may not fall, lower-is-better ones may not rise, by more than that)",
        tolerance * 100.0
    )?;
    Ok(Comparison { text, regressions })
}
