//! What the criterion bench targets share.

use benches::{workload, Contender};
use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use tokio::runtime::Runtime;

/// Times `iters` operations of `contender` shared out between `tasks`.
pub(crate) fn bench_contender<C: Contender>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    contender: &C,
    tasks: usize,
) {
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            workload::run_ops(contender, tasks, iters)
                .await
                .expect("benchmark operation failed")
        })
    });
}
