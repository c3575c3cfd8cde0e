//! Small statistics: median, Jain's fairness index, starved tasks.

/// The median of `values` (the mean of the two middle ones for an even
/// count); `None` when empty. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Jain's fairness index of the per-task completion counts:
/// `(Σx)² / (n · Σx²)`. 1.0 when every task completed the same number of
/// operations, `1/n` when one task did everything. 1.0 for no tasks or no
/// completions (nothing to be unfair about).
pub fn jain_index(per_task: &[u64]) -> f64 {
    let n = per_task.len() as f64;
    let sum: f64 = per_task.iter().map(|&x| x as f64).sum();
    let sum_sq: f64 = per_task.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if sum_sq == 0.0 {
        1.0
    } else {
        sum * sum / (n * sum_sq)
    }
}

/// A task is starved when it completed fewer than this fraction of the
/// mean.
pub const STARVED_FRACTION: f64 = 0.1;

/// How many tasks completed fewer than [`STARVED_FRACTION`] of the mean.
pub fn starved_tasks(per_task: &[u64]) -> usize {
    if per_task.is_empty() {
        return 0;
    }
    let mean = per_task.iter().map(|&x| x as f64).sum::<f64>() / per_task.len() as f64;
    per_task
        .iter()
        .filter(|&&x| (x as f64) < STARVED_FRACTION * mean)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn jain_is_one_when_equal_and_one_over_n_when_one_task_does_everything() {
        assert!((jain_index(&[5, 5, 5, 5]) - 1.0).abs() < 1e-12);
        assert!((jain_index(&[8, 0, 0, 0]) - 0.25).abs() < 1e-12);
        assert!((jain_index(&[]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_task_below_a_tenth_of_the_mean_is_starved() {
        // mean = 100.25; 10% = 10.025.
        assert_eq!(starved_tasks(&[131, 130, 130, 10]), 1);
        assert_eq!(starved_tasks(&[100, 100, 100, 100]), 0);
        assert_eq!(starved_tasks(&[]), 0);
    }
}
