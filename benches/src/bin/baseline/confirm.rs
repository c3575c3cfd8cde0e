//! Confirmation reruns of compare mode: every case with a ratio flagged in
//! the first pass is measured again, whole, up to `--confirm` more times.
//!
//! Cases are confirmed one after another, in the order of the first pass.
//! A case is measured again only while at least one of its ratios has been
//! beyond the tolerance in every run so far (`Check::still_flagged`): once
//! none is, a further run could not turn anything into a regression, so
//! the case stops early. Each rerun adds its value to every ratio of the
//! case that the first pass flagged, so the table and the JSON show every
//! run of every flagged ratio. The measuring itself is passed in, which
//! keeps this loop testable without a benchmark.

use benches::OpError;

use crate::cases::case_of;
use crate::compare::Check;
use crate::report::Ratio;

/// Confirms the flagged `checks` up to `times` times each, measuring a case
/// with `remeasure(case key)`; returns how many reruns it made.
pub(crate) fn confirm(
    checks: &mut [Check],
    tolerance: f64,
    times: usize,
    mut remeasure: impl FnMut(&str) -> Result<Vec<Ratio>, OpError>,
) -> Result<usize, OpError> {
    let mut cases: Vec<String> = Vec::new();
    for check in checks.iter().filter(|c| c.flagged(tolerance)) {
        let case = case_of(&check.key);
        if !cases.iter().any(|c| c == case) {
            cases.push(case.to_owned());
        }
    }
    let mut reruns = 0;
    for case in &cases {
        let of_case = |check: &Check| case_of(&check.key) == case;
        for attempt in 1..=times {
            if !checks
                .iter()
                .any(|c| of_case(c) && c.still_flagged(tolerance))
            {
                break;
            }
            eprintln!("confirming {case} ({attempt}/{times}) ...");
            let ratios = remeasure(case)?;
            reruns += 1;
            for check in checks
                .iter_mut()
                .filter(|c| of_case(c) && c.flagged(tolerance))
            {
                let value = ratios
                    .iter()
                    .find(|r| r.key == check.key)
                    .map(|r| r.value)
                    .ok_or_else(|| {
                        format!(
                            "measuring {case} again gave no {} ratio; the case runners and \
                             the ratio keys disagree",
                            check.key
                        )
                    })?;
                check.values.push(value);
            }
        }
    }
    Ok(reruns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Verdict;
    use crate::report::Better;

    const TOLERANCE: f64 = 0.15;

    fn check(key: &str, baseline: f64, first: f64) -> Check {
        Check {
            key: key.to_owned(),
            better: Better::Higher,
            baseline: Some(baseline),
            values: vec![first],
        }
    }

    fn ratio(key: &str, value: f64) -> Ratio {
        Ratio {
            key: key.to_owned(),
            value,
            better: Better::Higher,
            compared: true,
        }
    }

    #[test]
    fn a_spike_is_measured_again_once_and_then_left_alone() {
        let mut checks = vec![
            check("acquire/hold/w64s16/ops_vs_bb8", 1.3, 1.0),
            check("acquire/hold/w64s16/ops_vs_floor", 0.67, 0.66),
        ];
        let mut asked = Vec::new();
        let reruns = confirm(&mut checks, TOLERANCE, 2, |case| {
            asked.push(case.to_owned());
            Ok(vec![
                ratio("acquire/hold/w64s16/ops_vs_bb8", 1.28),
                ratio("acquire/hold/w64s16/ops_vs_floor", 0.5),
            ])
        })
        .unwrap();
        assert_eq!(reruns, 1);
        assert_eq!(asked, ["acquire/hold/w64s16"]);
        assert_eq!(checks[0].values, [1.0, 1.28]);
        assert_eq!(checks[0].verdict(TOLERANCE), Verdict::Noise);
        assert_eq!(
            checks[1].values,
            [0.66],
            "a ratio not flagged first is not tracked"
        );
    }

    #[test]
    fn a_drop_that_reproduces_is_measured_again_every_time_and_regresses() {
        let mut checks = vec![check("postgres/s8w64/ops_vs_deadpool", 0.97, 0.6)];
        let reruns = confirm(&mut checks, TOLERANCE, 3, |_| {
            Ok(vec![ratio("postgres/s8w64/ops_vs_deadpool", 0.61)])
        })
        .unwrap();
        assert_eq!(reruns, 3);
        assert_eq!(checks[0].verdict(TOLERANCE), Verdict::Regressed);
    }

    #[test]
    fn two_flagged_ratios_of_one_case_share_each_rerun() {
        let mut checks = vec![
            check("leak_detection/site/ops_vs_off", 0.9, 0.5),
            check("leak_detection/site/ops_vs_backtrace", 34.0, 20.0),
            check("acquire/release/w1s4/ops_vs_floor", 0.4, 0.2),
        ];
        let mut asked = Vec::new();
        confirm(&mut checks, TOLERANCE, 2, |case| {
            asked.push(case.to_owned());
            Ok(vec![
                ratio("leak_detection/site/ops_vs_off", 0.5),
                ratio("leak_detection/site/ops_vs_backtrace", 34.0),
                ratio("acquire/release/w1s4/ops_vs_floor", 0.41),
            ])
        })
        .unwrap();
        assert_eq!(
            asked,
            [
                "leak_detection/site",
                "leak_detection/site",
                "acquire/release/w1s4"
            ]
        );
        assert_eq!(checks[0].verdict(TOLERANCE), Verdict::Regressed);
        assert_eq!(checks[1].values, [20.0, 34.0, 34.0]);
        assert_eq!(checks[1].verdict(TOLERANCE), Verdict::Noise);
    }

    #[test]
    fn nothing_is_measured_again_with_confirm_zero_or_nothing_flagged() {
        let mut flagged = vec![check("acquire/hold/w1s4/ops_vs_bb8", 1.0, 0.5)];
        let mut calls = 0;
        confirm(&mut flagged, TOLERANCE, 0, |_| {
            calls += 1;
            Ok(Vec::new())
        })
        .unwrap();
        let mut fine = vec![check("acquire/hold/w1s4/ops_vs_bb8", 1.0, 0.99)];
        confirm(&mut fine, TOLERANCE, 2, |_| {
            calls += 1;
            Ok(Vec::new())
        })
        .unwrap();
        assert_eq!(calls, 0);
        assert_eq!(flagged[0].verdict(TOLERANCE), Verdict::Regressed);
    }

    #[test]
    fn a_rerun_that_lacks_a_flagged_ratio_is_an_error_naming_it() {
        let mut checks = vec![check("acquire/hold/w1s4/ops_vs_bb8", 1.0, 0.5)];
        let error = confirm(&mut checks, TOLERANCE, 1, |_| Ok(Vec::new())).unwrap_err();
        assert!(
            error.to_string().contains("acquire/hold/w1s4/ops_vs_bb8"),
            "{error}"
        );
    }
}
