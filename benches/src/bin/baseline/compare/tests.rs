//! The verdict logic of compare mode, pinned down without measuring.

use super::*;

const TOLERANCE: f64 = 0.15;

fn check(better: Better, baseline: f64, values: &[f64]) -> Check {
    Check {
        key: "acquire/hold/w64s16/ops_vs_bb8".to_owned(),
        better,
        baseline: Some(baseline),
        values: values.to_vec(),
    }
}

#[test]
fn a_spike_that_does_not_reproduce_is_not_a_regression() {
    let spike = check(Better::Higher, 1.30, &[1.02, 1.29, 1.31]);
    assert!(spike.flagged(TOLERANCE));
    assert_eq!(spike.verdict(TOLERANCE), Verdict::Noise);
    let cleared_late = check(Better::Higher, 1.30, &[1.02, 1.00, 1.29]);
    assert_eq!(cleared_late.verdict(TOLERANCE), Verdict::Noise);
}

#[test]
fn a_drop_that_reproduces_in_every_confirmation_is_a_regression() {
    let drop = check(Better::Higher, 1.30, &[0.78, 0.80, 0.79]);
    assert_eq!(drop.verdict(TOLERANCE), Verdict::Regressed);
    assert!(drop.still_flagged(TOLERANCE));
}

#[test]
fn without_confirmations_a_flagged_ratio_is_a_regression() {
    let drop = check(Better::Higher, 1.30, &[0.78]);
    assert_eq!(drop.verdict(TOLERANCE), Verdict::Regressed);
}

#[test]
fn lower_is_better_ratios_flag_on_a_rise_and_not_on_a_fall() {
    let slower = check(Better::Lower, 1.0, &[1.2, 1.25]);
    assert_eq!(slower.verdict(TOLERANCE), Verdict::Regressed);
    let faster = check(Better::Lower, 1.0, &[0.5]);
    assert_eq!(faster.verdict(TOLERANCE), Verdict::Ok);
    assert!(!faster.flagged(TOLERANCE));
}

#[test]
fn a_faster_ours_is_not_a_regression_and_the_tolerance_is_strict() {
    assert_eq!(
        check(Better::Higher, 1.0, &[1.6]).verdict(TOLERANCE),
        Verdict::Ok
    );
    assert!(!beyond(Better::Higher, 1.0, 0.86, TOLERANCE));
    assert!(beyond(Better::Higher, 1.0, 0.84, TOLERANCE));
    assert!(!beyond(Better::Lower, 1.0, 1.14, TOLERANCE));
    assert!(beyond(Better::Lower, 1.0, 1.16, TOLERANCE));
}

#[test]
fn a_ratio_missing_from_the_baseline_is_reported_as_new_and_not_flagged() {
    let baseline = serde_json::json!({ "ratios": [
        { "key": "acquire/hold/w1s4/ops_vs_floor", "value": 0.8, "better": "higher" }
    ] });
    let ratio = |key: &str, value: f64, compared: bool| Ratio {
        key: key.to_owned(),
        value,
        better: Better::Higher,
        compared,
    };
    let new = [
        ratio("acquire/hold/w1s4/ops_vs_floor", 0.5, true),
        ratio("acquire/hold/w1s4/ops_vs_newcomer", 0.1, true),
        ratio("acquire/hold/w1s4/p99_vs_floor", 9.0, false),
    ];
    let checks = first_pass(&baseline, &new).unwrap();
    assert_eq!(checks.len(), 2, "ratios that are not compared are skipped");
    assert_eq!(checks[1].baseline, None);
    assert_eq!(checks[1].verdict(TOLERANCE), Verdict::New);
    assert!(!checks[1].flagged(TOLERANCE));
    let report = ComparisonReport::conclude("b.json".to_owned(), checks, TOLERANCE, 2);
    assert_eq!((report.flagged, report.regressions), (1, 1));
    let text = report.text().unwrap();
    assert!(text.contains("new (not in the baseline)"), "{text}");
    assert!(text.contains("REGRESSED"), "{text}");
}

#[test]
fn a_baseline_without_ratios_is_an_error_that_says_so() {
    let error = first_pass(&serde_json::json!({}), &[]).unwrap_err();
    assert!(error.to_string().contains("no `ratios` list"), "{error}");
}

#[test]
fn the_table_shows_every_confirmation_of_a_flagged_ratio() {
    let report = ComparisonReport::conclude(
        "b.json".to_owned(),
        vec![check(Better::Higher, 1.30, &[1.02, 1.29])],
        TOLERANCE,
        2,
    );
    let text = report.text().unwrap();
    assert!(text.contains("noise (did not reproduce)"), "{text}");
    assert!(text.contains("confirmation 1"), "{text}");
    assert!(text.contains("within the tolerance"), "{text}");
    assert_eq!((report.flagged, report.regressions), (1, 0));
}

fn keyed(key: &str, baseline: f64, values: &[f64]) -> Check {
    Check {
        key: key.to_owned(),
        better: Better::Higher,
        baseline: Some(baseline),
        values: values.to_vec(),
    }
}

#[test]
fn a_peer_ratio_that_fell_while_ours_held_against_the_floor_is_the_peer_moving() {
    let report = ComparisonReport::conclude(
        "baseline.json".to_owned(),
        vec![
            keyed("acquire/hold/w8s4/ops_vs_floor", 0.75, &[0.7]),
            keyed("acquire/hold/w8s4/ops_vs_deadpool", 1.1, &[0.8, 0.85, 0.8]),
            keyed("postgres/s8w8/ops_vs_dedicated", 0.98, &[0.97]),
            keyed("postgres/s8w8/ops_vs_bb8", 1.6, &[1.2, 1.2, 1.2]),
        ],
        TOLERANCE,
        2,
    );
    let verdicts: Vec<Verdict> = report.checks.iter().map(|c| c.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Ok,
            Verdict::PeerMoved,
            Verdict::Ok,
            Verdict::PeerMoved
        ]
    );
    assert_eq!(
        (report.flagged, report.regressions, report.peer_moved),
        (2, 0, 2)
    );
}

#[test]
fn the_prepared_statement_peers_are_excused_by_the_dedicated_prepared_client() {
    let report = ComparisonReport::conclude(
        "baseline.json".to_owned(),
        vec![
            keyed("cached/s8w1/ops_vs_dedicated_prepared", 0.97, &[0.96]),
            keyed("cached/s8w1/ops_vs_deadpool_query", 1.9, &[1.4, 1.4, 1.4]),
            keyed("cached/s8w1/ops_vs_deadpool_cached", 1.0, &[0.7, 0.7, 0.7]),
            keyed("cached/s8w1/ops_vs_sqlx", 1.9, &[1.4, 1.4, 1.4]),
            keyed(
                "cached/s8w1/ops_vs_sqlx_no_acquire_ping",
                1.0,
                &[0.7, 0.7, 0.7],
            ),
            // Ours fell against the floor of this case: nothing excused.
            keyed(
                "cached/s8w8/ops_vs_dedicated_prepared",
                0.97,
                &[0.6, 0.6, 0.6],
            ),
            keyed("cached/s8w8/ops_vs_sqlx", 1.0, &[0.6, 0.6, 0.6]),
        ],
        TOLERANCE,
        2,
    );
    let verdicts: Vec<Verdict> = report.checks.iter().map(|c| c.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Ok,
            Verdict::PeerMoved,
            Verdict::PeerMoved,
            Verdict::PeerMoved,
            Verdict::PeerMoved,
            Verdict::Regressed,
            Verdict::Regressed
        ]
    );
}

#[test]
fn a_peer_ratio_that_fell_with_ours_against_the_floor_is_a_regression() {
    let report = ComparisonReport::conclude(
        "baseline.json".to_owned(),
        vec![
            keyed("acquire/hold/w64s16/ops_vs_floor", 0.75, &[0.5, 0.5, 0.5]),
            keyed("acquire/hold/w64s16/ops_vs_deadpool", 1.1, &[0.7, 0.7, 0.7]),
            // Another case's floor held: it does not excuse this one.
            keyed("acquire/hold/w8s4/ops_vs_floor", 0.75, &[0.75]),
            keyed("leak_detection/site/ops_vs_off", 1.0, &[0.5, 0.5, 0.5]),
        ],
        TOLERANCE,
        2,
    );
    let verdicts: Vec<Verdict> = report.checks.iter().map(|c| c.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Regressed,
            Verdict::Regressed,
            Verdict::Ok,
            Verdict::Regressed
        ]
    );
    assert_eq!((report.regressions, report.peer_moved), (3, 0));
}

#[test]
fn the_contended_release_shape_gets_its_wider_tolerance_and_nothing_else_does() {
    let wide = keyed(
        "acquire/release/w256s16/ops_vs_floor",
        1.75,
        &[1.2, 1.4, 1.4],
    );
    assert_eq!(wide.verdict(TOLERANCE), Verdict::Ok);
    let convoy = keyed("acquire/release/w64s16/ops_vs_floor", 1.5, &[0.5, 0.5, 0.5]);
    assert_eq!(convoy.verdict(TOLERANCE), Verdict::Regressed);
    for key in [
        "acquire/release/w1s4/ops_vs_floor",
        "acquire/hold/w256s16/ops_vs_floor",
        "postgres/s8w64/ops_vs_dedicated",
    ] {
        assert_eq!(tolerance_for(key, TOLERANCE), TOLERANCE, "{key}");
        assert_eq!(
            keyed(key, 1.0, &[0.8, 0.8, 0.8]).verdict(TOLERANCE),
            Verdict::Regressed
        );
    }
}
