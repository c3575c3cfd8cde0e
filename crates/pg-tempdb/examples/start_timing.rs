//! Measures how long `TempDb::start()` and `drop` take.
//!
//! `cargo run --release -p pg-tempdb --example start_timing`

use std::time::Instant;

use pg_tempdb::TempDb;

fn main() -> Result<(), pg_tempdb::TempDbError> {
    for round in 1..=5 {
        let started = Instant::now();
        let db = TempDb::start()?;
        let start = started.elapsed();
        let dropped = Instant::now();
        drop(db);
        println!(
            "round {round}: start {:>4} ms, drop {:>4} ms",
            start.as_millis(),
            dropped.elapsed().as_millis()
        );
    }
    Ok(())
}
