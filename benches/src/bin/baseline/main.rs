//! The baseline runner: throughput, tail latencies and fairness of our pool
//! against the bare floor and its peers, written to
//! `performance_baselines/connection_pool_baseline.json` (and the same
//! tables in Markdown beside it); or, with `--compare BASELINE`, a rerun
//! checked against a baseline file, exiting 1 if any ratio regressed by
//! more than the tolerance.
//!
//! Run it through `scripts/collect_baseline.sh` (release mode). Every case
//! runs its contenders in interleaved rounds and reports medians; see
//! `docs/performance.md` for what each number means.

mod compare;
mod measure;
mod report;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use benches::dummy::{self, ours_config, DummySet, Ours, Shape};
use benches::pg::{self, PgSet};
use benches::workload::run_for;
use benches::{DummyManager, OpError};
use pool_core::Pool;
use tokio::runtime::Runtime;

use compare::compare;
use measure::{run_case, runner, time_alternating, CaseReport, OursDuringCase, Plan};
use report::{
    load_average, now_rfc3339, Machine, ObserveReport, PostgresReport, Report, Settings,
    SteadyState,
};

/// The checked-in baseline, relative to the workspace root.
const BASELINE_PATH: &str = "performance_baselines/connection_pool_baseline.json";

const USAGE: &str = "\
usage: baseline [--out PATH] [--compare BASELINE] [--tolerance FRACTION]
                [--rounds N] [--acquire-round-ms MS] [--postgres-round-ms MS]
                [--skip-postgres] [--quick] [--only TEXT] [--note TEXT]

  --out PATH            where to write the JSON (default:
                        performance_baselines/connection_pool_baseline.json,
                        or $CARGO_TARGET_DIR (default target)/
                        baseline-compare.json with --compare);
                        a .md with the same tables is written beside it
  --compare BASELINE    rerun with BASELINE's settings and flag every ratio
                        that regressed by more than the tolerance (exit 1)
  --tolerance FRACTION  allowed regression in compare mode (default 0.15)
  --rounds N            timed rounds per contender and case (default 5)
  --acquire-round-ms MS length of one acquire/release round (default 200)
  --postgres-round-ms MS length of one PostgreSQL round (default 500)
  --skip-postgres       only the no-I/O cases
  --quick               3 rounds of 100 ms / 200 ms: a smoke test, not a baseline
  --only TEXT           run only the cases whose key contains TEXT (keys:
                        acquire/hold/w64s16, postgres/s8w64, ...); leak
                        detection and observation still run, and the
                        PostgreSQL part only if one of its cases matches
  --note TEXT           recorded in the file (e.g. how busy the machine was)";

struct Args {
    out: Option<PathBuf>,
    compare: Option<PathBuf>,
    tolerance: f64,
    note: String,
    rounds: Option<usize>,
    acquire_round_ms: Option<u64>,
    postgres_round_ms: Option<u64>,
    skip_postgres: bool,
    quick: bool,
    only: Option<String>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Args {
            out: None,
            compare: None,
            tolerance: 0.15,
            note: String::new(),
            rounds: None,
            acquire_round_ms: None,
            postgres_round_ms: None,
            skip_postgres: false,
            quick: false,
            only: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--out" => args.out = Some(PathBuf::from(value()?)),
                "--compare" => args.compare = Some(PathBuf::from(value()?)),
                "--tolerance" => args.tolerance = number(&flag, &value()?)?,
                "--note" => args.note = value()?,
                "--rounds" => args.rounds = Some(number(&flag, &value()?)?),
                "--acquire-round-ms" => args.acquire_round_ms = Some(number(&flag, &value()?)?),
                "--postgres-round-ms" => args.postgres_round_ms = Some(number(&flag, &value()?)?),
                "--skip-postgres" => args.skip_postgres = true,
                "--quick" => args.quick = true,
                "--only" => args.only = Some(value()?),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if !(0.0..1.0).contains(&args.tolerance) {
            return Err("--tolerance must be a fraction in [0, 1), e.g. 0.15".to_owned());
        }
        Ok(args)
    }

    /// Whether the case with this key runs (`--only`).
    fn selects(&self, key: &str) -> bool {
        self.only.as_deref().is_none_or(|only| key.contains(only))
    }

    fn selects_any_postgres_case(&self) -> bool {
        pg::SIZES.iter().any(|&size| {
            pg::TASKS
                .iter()
                .any(|&tasks| self.selects(&format!("postgres/{}", pg::case_name(size, tasks))))
        })
    }

    /// Where to write: `--out`, else the checked-in baseline, or in compare
    /// mode `$CARGO_TARGET_DIR/baseline-compare.json` (`target/` by
    /// default; never the baseline itself).
    fn out(&self) -> PathBuf {
        match (&self.out, &self.compare) {
            (Some(out), _) => out.clone(),
            (None, Some(_)) => std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                .join("baseline-compare.json"),
            (None, None) => PathBuf::from(BASELINE_PATH),
        }
    }

    /// The settings: the defaults (or the baseline's, in compare mode),
    /// then `--quick`, then the explicit flags.
    fn settings(&self, baseline: Option<&serde_json::Value>) -> Result<Settings, OpError> {
        let mut settings = match baseline.and_then(|b| b.get("settings")) {
            Some(recorded) => serde_json::from_value(recorded.clone())?,
            None => Settings::default(),
        };
        if self.quick {
            settings.rounds = 3;
            settings.acquire_round_ms = 100;
            settings.postgres_round_ms = 200;
            settings.warm_up_rounds = 5;
        }
        if let Some(rounds) = self.rounds {
            settings.rounds = rounds.max(1);
        }
        if let Some(ms) = self.acquire_round_ms {
            settings.acquire_round_ms = ms;
        }
        if let Some(ms) = self.postgres_round_ms {
            settings.postgres_round_ms = ms;
        }
        if self.skip_postgres || !self.selects_any_postgres_case() {
            settings.postgres = false;
        }
        Ok(settings)
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not a valid number"))
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(regressions) if regressions > 0 => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; returns the number of regressions (compare mode).
fn run(args: &Args) -> Result<usize, OpError> {
    let baseline = match &args.compare {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the baseline {}: {e}", path.display()))?;
            Some(serde_json::from_str::<serde_json::Value>(&text)?)
        }
        None => None,
    };
    let settings = args.settings(baseline.as_ref())?;
    let machine = Machine::inspect();
    eprintln!(
        "baseline: {} cores ({}), load {}; {} rounds of {} ms (acquire) / {} ms (postgres)",
        machine.cores,
        machine.cpu_model,
        machine.load_average_start,
        settings.rounds,
        settings.acquire_round_ms,
        settings.postgres_round_ms
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.worker_threads)
        .enable_all()
        .build()?;

    let acquire = acquire_cases(&rt, &settings, args)?;
    let leak_detection = leak_detection_case(&rt, &settings)?;
    let observe = observe(&rt, &settings)?;
    let postgres = if settings.postgres {
        Some(postgres_cases(&rt, &settings, args)?)
    } else {
        None
    };
    drop(rt);

    let mut machine = machine;
    machine.load_average_end = load_average();
    let mut report = Report {
        schema: report::SCHEMA,
        title: "pgpool connection pool baseline",
        note: args.note.clone(),
        date: now_rfc3339(),
        machine,
        settings,
        acquire,
        leak_detection,
        observe,
        postgres,
        ratios: Vec::new(),
        goals: Vec::new(),
    };
    report.derive();
    let markdown = report.markdown()?;

    let out = args.out();
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(out.with_extension("md"), &markdown)?;
    println!("{markdown}");
    eprintln!(
        "baseline: wrote {} and {}",
        out.display(),
        out.with_extension("md").display()
    );

    match &baseline {
        Some(baseline) => {
            let comparison = compare(baseline, &report.ratios, args.tolerance)?;
            println!("{}", comparison.text);
            Ok(comparison.regressions)
        }
        None => Ok(0),
    }
}

fn acquire_cases(
    rt: &Runtime,
    settings: &Settings,
    args: &Args,
) -> Result<Vec<CaseReport>, OpError> {
    let mut cases = Vec::new();
    for shape in Shape::ALL {
        for (tasks, size) in dummy::MATRIX {
            let name = dummy::case_name(tasks, size);
            if !args.selects(&format!("acquire/{}/{name}", shape.name())) {
                continue;
            }
            eprintln!("acquire {} {name} ...", shape.name());
            let set = rt.block_on(DummySet::build(size, shape))?;
            let runners = [
                runner("ours", &set.ours),
                runner("floor", &set.floor),
                runner("deadpool", &set.deadpool),
                runner("bb8", &set.bb8),
            ];
            let plan = Plan {
                tasks,
                rounds: settings.rounds,
                round: Duration::from_millis(settings.acquire_round_ms),
                warm: Duration::from_millis(settings.warm_ms),
                sample_every: settings.acquire_sample_every,
            };
            cases.push(run_case(rt, name, shape.name(), size, &runners, plan)?);
            drop(runners);
            // Pools are closed on the runtime, not on a worker mid-case.
            rt.block_on(async move { drop(set) });
        }
    }
    Ok(cases)
}

fn leak_detection_case(rt: &Runtime, settings: &Settings) -> Result<CaseReport, OpError> {
    eprintln!("leak detection ...");
    let base = ours_config(4);
    let site = rt.block_on(Ours::build(base.clone(), Shape::Release))?;
    let off = rt.block_on(Ours::build(
        base.clone().enable_leak_detection(false),
        Shape::Release,
    ))?;
    let backtrace = rt.block_on(Ours::build(base.leak_backtrace(true), Shape::Release))?;
    let runners = [
        runner("site", &site),
        runner("off", &off),
        runner("backtrace", &backtrace),
    ];
    let plan = Plan {
        tasks: 1,
        rounds: settings.rounds,
        round: Duration::from_millis(settings.acquire_round_ms),
        warm: Duration::from_millis(settings.warm_ms),
        sample_every: settings.acquire_sample_every,
    };
    run_case(rt, "w1s4".to_owned(), "release", 4, &runners, plan)
}

fn observe(rt: &Runtime, settings: &Settings) -> Result<ObserveReport, OpError> {
    eprintln!("statistics() and health_check() ...");
    let pool = rt.block_on(async {
        let pool = Pool::build(DummyManager, ours_config(8).min_size(4)).await?;
        // Give the histograms realistic content first.
        for _ in 0..10_000 {
            let conn = pool.acquire().await?;
            tokio::task::yield_now().await;
            drop(conn);
        }
        Ok::<_, OpError>(pool)
    })?;
    let _guard = rt.enter();
    let rounds = settings.rounds.max(3);
    Ok(ObserveReport {
        statistics_ns: measure::ns_per_call(rounds, settings.observe_calls, || pool.statistics()),
        health_check_ns: measure::ns_per_call(rounds, settings.observe_calls, || {
            pool.health_check()
        }),
    })
}

fn postgres_cases(
    rt: &Runtime,
    settings: &Settings,
    args: &Args,
) -> Result<PostgresReport, OpError> {
    eprintln!("starting PostgreSQL ...");
    let db = pg::start_server()?;
    let mut cases = Vec::new();
    let mut steady_state = Vec::new();
    for size in pg::SIZES {
        let set = rt.block_on(PgSet::build(&db, size))?;
        steady_state.push(steady_state_probe(rt, &set, size)?);
        for tasks in pg::TASKS {
            let name = pg::case_name(size, tasks);
            if !args.selects(&format!("postgres/{name}")) {
                continue;
            }
            eprintln!("postgres {name} ...");
            let before = set.ours.pool().statistics();
            let runners = [
                runner("ours", &set.ours),
                runner("dedicated", &set.dedicated),
                runner("deadpool", &set.deadpool),
                runner("bb8", &set.bb8),
            ];
            let plan = Plan {
                tasks,
                rounds: settings.rounds,
                round: Duration::from_millis(settings.postgres_round_ms),
                warm: Duration::from_millis(settings.warm_ms),
                sample_every: settings.postgres_sample_every,
            };
            let mut case = run_case(rt, name, "", size, &runners, plan)?;
            case.ours_statistics = Some(OursDuringCase::between(
                &before,
                &set.ours.pool().statistics(),
            ));
            cases.push(case);
        }
        rt.block_on(async move { drop(set) });
    }
    eprintln!("warm-up ...");
    let pause = Duration::from_millis(50);
    let warm_up = time_alternating(
        settings.warm_up_rounds,
        pause,
        vec![
            ("ours", Box::new(|| rt.block_on(pg::warm_up_ours(&db)))),
            (
                "by_hand",
                Box::new(|| rt.block_on(pg::warm_up_by_hand(&db, false))),
            ),
            (
                "by_hand_validated",
                Box::new(|| rt.block_on(pg::warm_up_by_hand(&db, true))),
            ),
        ],
    )?;
    Ok(PostgresReport {
        server_version: db.server_version().to_owned(),
        query: "SELECT 1 (simple protocol)",
        cases,
        steady_state,
        warm_up,
    })
}

/// Runs ours for a moment, then again at once, and returns what its
/// counters did during the second run: checkout must add no round trip to
/// connections used moments ago.
fn steady_state_probe(rt: &Runtime, set: &PgSet, size: usize) -> Result<SteadyState, OpError> {
    const TASKS: usize = 8;
    const RUN_MS: u64 = 300;
    run_for(rt, &set.ours, TASKS, Duration::from_millis(100), 1)?;
    let before = set.ours.pool().statistics();
    run_for(rt, &set.ours, TASKS, Duration::from_millis(RUN_MS), 1)?;
    Ok(SteadyState {
        size,
        tasks: TASKS,
        run_ms: RUN_MS,
        statistics: OursDuringCase::between(&before, &set.ours.pool().statistics()),
    })
}
