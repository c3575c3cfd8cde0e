//! The baseline runner: throughput, tail latencies and fairness of our pool
//! against the bare floor and its peers, with `SELECT 1` and with a
//! repeated prepared-statement query (`cached/`, issue 14), written to
//! `performance_baselines/connection_pool_baseline.json` (and the same
//! tables in Markdown beside it); or, with `--compare BASELINE`, a rerun
//! checked against a baseline file, exiting 1 if any ratio regressed by
//! more than the tolerance in the first pass and again in every
//! confirmation rerun of its case (`--confirm`, see `confirm.rs`).
//!
//! Run it through `scripts/collect_baseline.sh` (release mode). Every case
//! runs its contenders in interleaved rounds and reports medians; see
//! `docs/performance.md` for what each number means.

mod cases;
mod compare;
mod confirm;
mod measure;
mod report;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

use benches::OpError;
use benches::{cached, pg};

use cases::Bench;
use compare::{first_pass, ComparisonReport};
use confirm::confirm;
use report::{load_average, now_rfc3339, CachedReport, Machine, PostgresReport, Report, Settings};

/// The checked-in baseline, relative to the workspace root.
const BASELINE_PATH: &str = "performance_baselines/connection_pool_baseline.json";

const USAGE: &str = "\
usage: baseline [--out PATH] [--compare BASELINE] [--tolerance FRACTION]
                [--confirm N] [--rounds N] [--acquire-round-ms MS] [--postgres-round-ms MS]
                [--skip-postgres] [--quick] [--only TEXT] [--note TEXT]

  --out PATH            where to write the JSON (default:
                        performance_baselines/connection_pool_baseline.json
                        for a full run; under $CARGO_TARGET_DIR (default
                        target), baseline-compare.json with --compare and
                        baseline-partial.json with --only, --quick or
                        --skip-postgres); a .md with the same tables is
                        written beside it
  --compare BASELINE    rerun with BASELINE's settings and flag every ratio
                        that moved the wrong way by more than the tolerance;
                        measure each flagged case again (--confirm); exit 1
                        if a flagged ratio is beyond the tolerance in every
                        run (a regression), 0 if none is, 2 on an error
  --tolerance FRACTION  allowed regression in compare mode (default 0.15)
  --confirm N           compare mode: measure each case with a flagged ratio
                        up to N more times, the whole case with the same
                        settings, stopping once none of its ratios is still
                        flagged; a ratio that is within the tolerance in any
                        rerun is noise, not a regression (default 2; 0 flags
                        on the first pass alone)
  --rounds N            timed rounds per contender and case (default 5)
  --acquire-round-ms MS length of one acquire/release round (default 200)
  --postgres-round-ms MS length of one PostgreSQL round (default 500)
  --skip-postgres       only the no-I/O cases
  --quick               3 rounds of 100 ms / 200 ms: a smoke test, not a baseline
  --only TEXT           run only the cases whose key contains TEXT (keys:
                        acquire/hold/w64s16, postgres/s8w64, cached/s8w1,
                        ...); leak detection and observation still run, the
                        SELECT 1 part only if one of its cases matches, the
                        prepared-statement part (--only cached/) likewise
  --note TEXT           recorded in the file (e.g. how busy the machine was)";

struct Args {
    out: Option<PathBuf>,
    compare: Option<PathBuf>,
    tolerance: f64,
    confirm: usize,
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
            confirm: 2,
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
                "--confirm" => args.confirm = number(&flag, &value()?)?,
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

    fn selects_any_cached_case(&self) -> bool {
        cached::TASKS
            .iter()
            .any(|&tasks| self.selects(&cases::cached_key(&pg::case_name(cached::SIZE, tasks))))
    }

    /// Where to write: `--out`, else the checked-in baseline for a full
    /// run; in compare mode `$CARGO_TARGET_DIR/baseline-compare.json`
    /// (`target/` by default), for a partial run (`--only`, `--quick`,
    /// `--skip-postgres`) `$CARGO_TARGET_DIR/baseline-partial.json`: only a
    /// full run ever replaces the baseline.
    fn out(&self) -> PathBuf {
        let in_target = |name: &str| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                .join(name)
        };
        let partial = self.only.is_some() || self.quick || self.skip_postgres;
        match (&self.out, &self.compare) {
            (Some(out), _) => out.clone(),
            (None, Some(_)) => in_target("baseline-compare.json"),
            (None, None) if partial => in_target("baseline-partial.json"),
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
    let mut bench = Bench::new(settings)?;
    let select = |key: &str| args.selects(key);
    let acquire = bench.acquire_cases(&select)?;
    let leak_detection = bench.leak_detection_case()?;
    let observe = bench.observe()?;
    let postgres = if bench.settings().postgres {
        let (cases, steady_state) = bench.postgres_cases(&select, true)?;
        Some(PostgresReport {
            server_version: bench.server_version()?,
            query: "SELECT 1 (simple protocol)",
            cases,
            steady_state,
            warm_up: bench.warm_up()?,
        })
    } else {
        None
    };
    // Not a setting: compare mode runs these cases whether or not its
    // baseline has them (ratios it lacks are reported as new).
    let cached = if !args.skip_postgres && args.selects_any_cached_case() {
        Some(CachedReport {
            cases: bench.cached_cases(&select)?,
            server_version: bench.server_version()?,
            query: cached::QUERY,
        })
    } else {
        None
    };

    let mut report = Report {
        schema: report::SCHEMA,
        title: "pgpool connection pool baseline",
        note: args.note.clone(),
        date: now_rfc3339(),
        machine,
        settings: bench.settings().clone(),
        acquire,
        leak_detection,
        observe,
        postgres,
        cached,
        ratios: Vec::new(),
        goals: Vec::new(),
        comparison: None,
    };
    report.derive();
    if let (Some(baseline), Some(path)) = (&baseline, &args.compare) {
        let mut checks = first_pass(baseline, &report.ratios)?;
        eprintln!(
            "baseline: first pass done (load {}); confirming the cases of {} flagged ratio(s), \
             up to {} time(s) each",
            load_average(),
            checks.iter().filter(|c| c.flagged(args.tolerance)).count(),
            args.confirm
        );
        confirm(&mut checks, args.tolerance, args.confirm, |case| {
            bench.remeasure(case)
        })?;
        report.comparison = Some(ComparisonReport::conclude(
            path.display().to_string(),
            checks,
            args.tolerance,
            args.confirm,
        ));
    }
    // The server stops here, before the files are written.
    drop(bench);
    report.machine.load_average_end = load_average();

    let mut markdown = report.markdown()?;
    let comparison = report.comparison.as_ref().map(|c| c.text()).transpose()?;
    if let Some(text) = &comparison {
        markdown.push_str(&format!(
            "\n#### Compared with the baseline\n\n```text\n{text}```\n"
        ));
    }
    let out = args.out();
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(out.with_extension("md"), &markdown)?;
    println!("{markdown}");
    eprintln!(
        "baseline: wrote {} and {} (load {} at the start, {} at the end)",
        out.display(),
        out.with_extension("md").display(),
        report.machine.load_average_start,
        report.machine.load_average_end
    );
    Ok(report.comparison.as_ref().map_or(0, |c| c.regressions))
}
