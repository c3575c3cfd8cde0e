//! The cases of the baseline, measured on one runtime with one set of
//! settings: acquire/release, leak detection, observation, the
//! PostgreSQL matrix with its warm-up, and the prepared-statement cases.
//!
//! Every case has a key (`acquire/hold/w64s16`, `leak_detection/site`,
//! `postgres/s8w64`, `postgres/warm_up`, `cached/s8w1`), and the ratio keys of the file
//! are `{case key}/{metric}`. The case runners take a selection over case
//! keys, so the full pass (`--only`) and compare mode's confirmation of
//! one case ([`Bench::remeasure`]) run the very same code with the same
//! settings: a confirmation measures the whole case again, all its
//! contenders, in interleaved rounds.
//!
//! Invariant: the throwaway PostgreSQL server is started at most once, on
//! first use, and lives as long as the [`Bench`], so confirmations of
//! PostgreSQL cases run against the server of the first pass.

use std::time::Duration;

use benches::cached::{self, CachedSet};
use benches::dummy::{self, ours_config, DummySet, Ours, Shape};
use benches::pg::{self, PgSet};
use benches::workload::run_for;
use benches::{DummyManager, OpError};
use pg_tempdb::TempDb;
use pool_core::Pool;
use tokio::runtime::Runtime;

use crate::measure::{
    self, run_case, runner, time_alternating, AlternatingReport, CaseReport, OursDuringCase, Plan,
};
use crate::report::{case_ratios, warm_up_ratios, ObserveReport, Ratio, Settings, SteadyState};

/// The key of the leak-detection case (`site` against the other settings).
pub(crate) const LEAK_DETECTION_KEY: &str = "leak_detection/site";

/// The key of the warm-up comparison.
pub(crate) const WARM_UP_KEY: &str = "postgres/warm_up";

/// The key of an acquire/release case, e.g. `acquire/hold/w64s16`.
pub(crate) fn acquire_key(shape: &str, case: &str) -> String {
    format!("acquire/{shape}/{case}")
}

/// The key of a PostgreSQL matrix case, e.g. `postgres/s8w64`.
pub(crate) fn postgres_key(case: &str) -> String {
    format!("postgres/{case}")
}

/// The key of a prepared-statement case, e.g. `cached/s8w1`.
pub(crate) fn cached_key(case: &str) -> String {
    format!("cached/{case}")
}

/// The key of the case a ratio belongs to: its key without the metric.
pub(crate) fn case_of(ratio_key: &str) -> &str {
    ratio_key
        .rsplit_once('/')
        .map_or(ratio_key, |(case, _)| case)
}

/// The runtime, the settings and (once started) the PostgreSQL server.
pub(crate) struct Bench {
    rt: Runtime,
    settings: Settings,
    db: Option<TempDb>,
}

impl Bench {
    /// A runtime with the settings' worker threads; no server yet.
    pub(crate) fn new(settings: Settings) -> Result<Self, OpError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.worker_threads)
            .enable_all()
            .build()?;
        Ok(Self {
            rt,
            settings,
            db: None,
        })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The server, started on first use.
    fn server(db: &mut Option<TempDb>) -> Result<&TempDb, OpError> {
        let started = match db.take() {
            Some(started) => started,
            None => {
                eprintln!("starting PostgreSQL ...");
                pg::start_server()?
            }
        };
        Ok(db.insert(started))
    }

    /// The acquire/release matrix, both shapes, the cases whose key
    /// `select` accepts.
    pub(crate) fn acquire_cases(
        &self,
        select: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<CaseReport>, OpError> {
        let rt = &self.rt;
        let mut cases = Vec::new();
        for shape in Shape::ALL {
            for (tasks, size) in dummy::MATRIX {
                let name = dummy::case_name(tasks, size);
                if !select(&acquire_key(shape.name(), &name)) {
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
                let plan = acquire_plan(&self.settings, tasks);
                cases.push(run_case(rt, name, shape.name(), size, &runners, plan)?);
                drop(runners);
                // Pools are closed on the runtime, not on a worker mid-case.
                rt.block_on(async move { drop(set) });
            }
        }
        Ok(cases)
    }

    /// Ours with leak detection at the call site, off, and with backtraces.
    pub(crate) fn leak_detection_case(&self) -> Result<CaseReport, OpError> {
        eprintln!("leak detection ...");
        let rt = &self.rt;
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
        let plan = acquire_plan(&self.settings, 1);
        run_case(rt, "w1s4".to_owned(), "release", 4, &runners, plan)
    }

    /// The cost of `statistics()` and `health_check()`.
    pub(crate) fn observe(&self) -> Result<ObserveReport, OpError> {
        eprintln!("statistics() and health_check() ...");
        let rt = &self.rt;
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
        let rounds = self.settings.rounds.max(3);
        let calls = self.settings.observe_calls;
        Ok(ObserveReport {
            statistics_ns: measure::ns_per_call(rounds, calls, || pool.statistics()),
            health_check_ns: measure::ns_per_call(rounds, calls, || pool.health_check()),
        })
    }

    /// The `SELECT 1` matrix, the cases whose key `select` accepts, and
    /// with `probe` the steady-state probe of every pool size.
    pub(crate) fn postgres_cases(
        &mut self,
        select: &dyn Fn(&str) -> bool,
        probe: bool,
    ) -> Result<(Vec<CaseReport>, Vec<SteadyState>), OpError> {
        let db = Self::server(&mut self.db)?;
        let (rt, settings) = (&self.rt, &self.settings);
        let mut cases = Vec::new();
        let mut steady_state = Vec::new();
        for size in pg::SIZES {
            let selected: Vec<usize> = pg::TASKS
                .into_iter()
                .filter(|&tasks| select(&postgres_key(&pg::case_name(size, tasks))))
                .collect();
            if selected.is_empty() && !probe {
                continue;
            }
            let set = rt.block_on(PgSet::build(db, size))?;
            if probe {
                steady_state.push(steady_state_probe(rt, &set, size)?);
            }
            for tasks in selected {
                let name = pg::case_name(size, tasks);
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
        Ok((cases, steady_state))
    }

    /// The prepared-statement cases whose key `select` accepts: one pool
    /// size, each task count, all contenders interleaved (`ours` first).
    pub(crate) fn cached_cases(
        &mut self,
        select: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<CaseReport>, OpError> {
        let selected: Vec<usize> = cached::TASKS
            .into_iter()
            .filter(|&tasks| select(&cached_key(&pg::case_name(cached::SIZE, tasks))))
            .collect();
        if selected.is_empty() {
            return Ok(Vec::new());
        }
        let db = Self::server(&mut self.db)?;
        let (rt, settings) = (&self.rt, &self.settings);
        let set = rt.block_on(CachedSet::build(db))?;
        let mut cases = Vec::new();
        for tasks in selected {
            let name = pg::case_name(cached::SIZE, tasks);
            eprintln!("cached {name} ...");
            let before = set.ours.pool().statistics();
            let runners = [
                runner("ours", &set.ours),
                runner("dedicated_prepared", &set.dedicated_prepared),
                runner("deadpool_query", &set.deadpool_query),
                runner("deadpool_cached", &set.deadpool_cached),
                runner("sqlx", &set.sqlx),
                runner("sqlx_no_acquire_ping", &set.sqlx_no_acquire_ping),
            ];
            let plan = Plan {
                tasks,
                rounds: settings.rounds,
                round: Duration::from_millis(settings.postgres_round_ms),
                warm: Duration::from_millis(settings.warm_ms),
                sample_every: settings.postgres_sample_every,
            };
            let mut case = run_case(rt, name, "", cached::SIZE, &runners, plan)?;
            case.ours_statistics = Some(OursDuringCase::between(
                &before,
                &set.ours.pool().statistics(),
            ));
            cases.push(case);
        }
        rt.block_on(async move { drop(set) });
        Ok(cases)
    }

    /// `PgPool::connect` against opening the connections by hand.
    pub(crate) fn warm_up(&mut self) -> Result<AlternatingReport, OpError> {
        let db = Self::server(&mut self.db)?;
        let rt = &self.rt;
        eprintln!("warm-up ...");
        let pause = Duration::from_millis(50);
        time_alternating(
            self.settings.warm_up_rounds,
            pause,
            vec![
                ("ours", Box::new(|| rt.block_on(pg::warm_up_ours(db)))),
                (
                    "by_hand",
                    Box::new(|| rt.block_on(pg::warm_up_by_hand(db, false))),
                ),
                (
                    "by_hand_validated",
                    Box::new(|| rt.block_on(pg::warm_up_by_hand(db, true))),
                ),
            ],
        )
    }

    /// The server's version (starts it if need be).
    pub(crate) fn server_version(&mut self) -> Result<String, OpError> {
        Ok(Self::server(&mut self.db)?.server_version().to_owned())
    }

    /// Measures the case with this key again, exactly as the full pass
    /// does, and returns its ratios.
    pub(crate) fn remeasure(&mut self, case: &str) -> Result<Vec<Ratio>, OpError> {
        let only = |key: &str| key == case;
        let ratios: Vec<Ratio> = if case == LEAK_DETECTION_KEY {
            case_ratios(case, &self.leak_detection_case()?)
        } else if case == WARM_UP_KEY {
            warm_up_ratios(&self.warm_up()?)
        } else if case.starts_with("postgres/") {
            let (cases, _) = self.postgres_cases(&only, false)?;
            cases
                .iter()
                .flat_map(|c| case_ratios(&postgres_key(&c.case), c))
                .collect()
        } else if case.starts_with("cached/") {
            self.cached_cases(&only)?
                .iter()
                .flat_map(|c| case_ratios(&cached_key(&c.case), c))
                .collect()
        } else {
            self.acquire_cases(&only)?
                .iter()
                .flat_map(|c| case_ratios(&acquire_key(c.shape, &c.case), c))
                .collect()
        };
        if ratios.is_empty() {
            return Err(format!(
                "cannot measure the case {case:?} again: no case has that key \
                 (keys look like acquire/hold/w64s16, postgres/s8w64, cached/s8w1, \
                 {LEAK_DETECTION_KEY}, {WARM_UP_KEY})"
            )
            .into());
        }
        Ok(ratios)
    }
}

/// How to run an acquire/release case with this many tasks.
fn acquire_plan(settings: &Settings, tasks: usize) -> Plan {
    Plan {
        tasks,
        rounds: settings.rounds,
        round: Duration::from_millis(settings.acquire_round_ms),
        warm: Duration::from_millis(settings.warm_ms),
        sample_every: settings.acquire_sample_every,
    }
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
