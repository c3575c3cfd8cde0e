//! Running a contender with N concurrent tasks.
//!
//! * [`run_ops`]: a fixed number of operations shared out between the tasks
//!   (criterion's `iter_custom`: time per operation at that concurrency).
//! * [`run_for`]: every task loops until a deadline, counting its own
//!   completions and recording operation latencies into its own HDR
//!   histogram (no sharing on the hot path); the baseline runner.
//!
//! The deadline of [`run_for`] is kept by a plain OS thread that sleeps and
//! then raises a flag: a task whose operation never returns `Pending` (a
//! pool that does not consume tokio's cooperative budget, like bb8's) would
//! keep a worker busy forever, and a tokio timer might then never fire.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Barrier;

use crate::{Contender, OpError};

/// Highest latency the histograms hold: 60 s, in nanoseconds. Longer ones
/// are clamped (and would be a bug anyway: every acquire has a timeout).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// An empty latency histogram: nanoseconds, 3 significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>, OpError> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)?)
}

/// Runs `total` operations of `contender`, shared out between `tasks`
/// spawned tasks, and returns the wall time from the first spawn to the
/// last completion. Must be called inside a runtime.
pub async fn run_ops<C: Contender>(
    contender: &C,
    tasks: usize,
    total: u64,
) -> Result<Duration, OpError> {
    let tasks = tasks.max(1);
    let base = total / tasks as u64;
    let extra = total % tasks as u64;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks as u64)
        .map(|task| {
            let contender = contender.clone();
            let ops = base + u64::from(task < extra);
            tokio::spawn(async move {
                for _ in 0..ops {
                    contender.op().await?;
                }
                Ok::<(), OpError>(())
            })
        })
        .collect();
    for handle in handles {
        handle.await??;
    }
    Ok(started.elapsed())
}

/// What one timed run measured.
#[derive(Debug)]
pub struct Run {
    /// From the start (all tasks released at once from a barrier) until
    /// the last task finished its last operation (slightly more than the
    /// requested duration).
    pub elapsed: Duration,
    /// Operations completed by each task.
    pub per_task: Vec<u64>,
    /// Latency of the sampled operations (nanoseconds): about one in
    /// `sample_every`, at random gaps (see [`run_for`]).
    pub latency: Histogram<u64>,
}

impl Run {
    /// Operations completed by all tasks.
    pub fn total_ops(&self) -> u64 {
        self.per_task.iter().sum()
    }

    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.total_ops() as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Runs `contender` with `tasks` tasks for `duration`. Each task records the
/// latency of about one operation in `sample_every` (1 records them all),
/// taking the clock only for those. Blocks the calling thread, which must
/// not be one of `rt`'s workers.
///
/// The gaps between sampled operations are random (uniform in
/// `1 ..= 2 * sample_every - 1`), not a fixed stride: tokio makes a task
/// yield once it has spent its cooperative budget (128 operations), so a
/// fixed power-of-two stride samples either every such yield or none of
/// them, and the p99 of one contender then depends on where its yields fall
/// modulo the stride rather than on how it behaves.
pub fn run_for<C: Contender>(
    rt: &tokio::runtime::Runtime,
    contender: &C,
    tasks: usize,
    duration: Duration,
    sample_every: u64,
) -> Result<Run, OpError> {
    let sample_every = sample_every.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    // Allocated before the clock starts.
    let histograms = (0..tasks.max(1))
        .map(|_| latency_histogram())
        .collect::<Result<Vec<_>, _>>()?;
    let gate = Arc::new(Barrier::new(histograms.len() + 1));
    rt.block_on(async {
        let handles: Vec<_> = histograms
            .into_iter()
            .enumerate()
            .map(|(index, mut histogram)| {
                let contender = contender.clone();
                let stop = Arc::clone(&stop);
                let gate = Arc::clone(&gate);
                let mut gaps = Gaps::new(sample_every, index as u64 + 1);
                tokio::spawn(async move {
                    gate.wait().await;
                    let mut done: u64 = 0;
                    let mut next_sample = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if done == next_sample {
                            next_sample = done + gaps.next();
                            let op_started = Instant::now();
                            contender.op().await?;
                            let nanos = op_started.elapsed().as_nanos();
                            histogram.saturating_record(u64::try_from(nanos).unwrap_or(u64::MAX));
                        } else {
                            contender.op().await?;
                        }
                        done += 1;
                    }
                    Ok::<_, OpError>((done, histogram))
                })
            })
            .collect();
        // Every task has been polled once and waits at the gate: none
        // starts while others still sit unpolled in the injection queue
        // (which workers only look at every 61 polls).
        gate.wait().await;
        let started = Instant::now();
        let timer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                std::thread::sleep(duration);
                stop.store(true, Ordering::Relaxed);
            })
        };
        let mut per_task = Vec::with_capacity(handles.len());
        let mut latency = latency_histogram()?;
        let mut failure = None;
        for handle in handles {
            match handle.await {
                Ok(Ok((done, histogram))) => {
                    per_task.push(done);
                    latency.add(&histogram)?;
                }
                Ok(Err(error)) => {
                    // Stop the others at once rather than at the deadline.
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(error);
                }
                Err(join_error) => {
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(Box::new(join_error));
                }
            }
        }
        let elapsed = started.elapsed();
        if timer.join().is_err() {
            return Err("the deadline thread panicked".into());
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(Run {
                elapsed,
                per_task,
                latency,
            }),
        }
    })
}

/// Random gaps between sampled operations, with mean `sample_every`
/// (xorshift64*, seeded per task; 1 samples every operation).
struct Gaps {
    state: u64,
    sample_every: u64,
}

impl Gaps {
    fn new(sample_every: u64, seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            sample_every,
        }
    }

    /// The next gap, uniform in `1 ..= 2 * sample_every - 1`.
    fn next(&mut self) -> u64 {
        if self.sample_every == 1 {
            return 1;
        }
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        1 + random % (2 * self.sample_every - 1)
    }
}
