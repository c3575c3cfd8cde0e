//! Runs one contender's acquire + release in a loop on a current-thread
//! runtime (uncontended by default; with `--tasks N --size S`, N tasks
//! share S objects and, with `--hold`, queue for them; with `--threads T`,
//! on a multi-thread runtime of T workers, as the baseline runs it), for
//! profilers: `perf record -e cpu-clock`, or
//! `valgrind --tool=callgrind`, whose instruction counts are repeatable on a
//! busy machine (run it with two operation counts and divide the
//! difference by the difference: setup cancels out). See
//! `docs/performance.md`.
//!
//! ```text
//! hot_path ours|ours-no-leak|floor|deadpool|bb8 OPS [--hold] [--tasks N] [--size S] [--threads T]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use benches::dummy::{ours_config, Bb8, Deadpool, FloorContender, Ours, Shape};
use benches::{workload, Contender, OpError};

const USAGE: &str =
    "usage: hot_path ours|ours-no-leak|floor|deadpool|bb8 OPS [--hold] [--tasks N] [--size S] [--threads T]";

struct Options {
    ops: u64,
    shape: Shape,
    tasks: usize,
    size: usize,
}

async fn cycle<C: Contender>(contender: C, options: &Options) -> Result<(), OpError> {
    workload::run_ops(&contender, options.tasks, options.ops).await?;
    Ok(())
}

async fn run(name: &str, options: &Options) -> Result<(), OpError> {
    let (size, shape) = (options.size, options.shape);
    match name {
        "ours" => cycle(Ours::build(ours_config(size), shape).await?, options).await,
        "ours-no-leak" => {
            let config = ours_config(size).enable_leak_detection(false);
            cycle(Ours::build(config, shape).await?, options).await
        }
        "floor" => cycle(FloorContender::new(size, shape), options).await,
        "deadpool" => cycle(Deadpool::build(size, shape).await?, options).await,
        "bb8" => cycle(Bb8::build(size, shape).await?, options).await,
        other => Err(format!("unknown contender {other:?}\n{USAGE}").into()),
    }
}

/// The value after `flag`, parsed, or `default`.
fn option(args: &[String], flag: &str, default: usize) -> Option<usize> {
    match args.iter().position(|a| a == flag) {
        Some(at) => args.get(at + 1)?.parse().ok(),
        None => Some(default),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (
        args.first(),
        args.get(1).and_then(|n| n.parse().ok()),
        option(&args, "--tasks", 1),
        option(&args, "--size", 4),
        option(&args, "--threads", 0),
    );
    let (Some(name), Some(ops), Some(tasks), Some(size), Some(threads)) = parsed else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let shape = if args.iter().any(|a| a == "--hold") {
        Shape::Hold
    } else {
        Shape::Release
    };
    let options = Options {
        ops,
        shape,
        tasks,
        size,
    };
    let mut builder = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match rt.block_on(run(name, &options)) {
        Ok(()) => {
            let per_op = started.elapsed().as_nanos() as f64 / ops.max(1) as f64;
            println!("{name}: {ops} operations, {per_op:.1} ns each (setup included)");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
