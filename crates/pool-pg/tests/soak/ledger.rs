//! The write ledger: what the workers believe they wrote, checked against
//! what the table holds.
//!
//! Each write inserts a unique `op_id` (the primary key) and records a
//! [`Fate`]. The promise checked here: every `Committed` id is in the table
//! with its task (no acknowledged write lost), no `NotWritten` id is (no
//! rolled-back write resurrected), no row has an id that was never attempted
//! (nothing invented), and no id appears twice. `Unknown` ids (the `COMMIT`
//! failed or hung) may be either way; the report says how they fell.
//!
//! The table is read over a connection of its own, straight to the server
//! (not through the proxy or the pool), so reading it moves no statistic.

use std::collections::HashMap;

use pg_tempdb::TempDb;
use pool_pg::tokio_postgres::NoTls;
use tokio::time::timeout;

use crate::outcome::Fate;

/// The table every write goes to.
pub(crate) const CREATE_TABLE: &str =
    "CREATE TABLE soak_ledger (op_id bigint PRIMARY KEY, task int NOT NULL)";

/// How the writes fell.
#[derive(Debug, Default)]
pub(crate) struct LedgerCounts {
    pub(crate) attempted: u64,
    pub(crate) committed: u64,
    pub(crate) not_written: u64,
    pub(crate) unknown_present: u64,
    pub(crate) unknown_absent: u64,
    pub(crate) rows: u64,
}

/// Every row of `soak_ledger`, as `(op_id, task)`.
pub(crate) async fn read_table(db: &TempDb) -> Vec<(i64, i32)> {
    let mut config = db.config();
    config.application_name("soak-ledger-check");
    let (client, connection) = timeout(crate::BOUND, config.connect(NoTls))
        .await
        .expect("connecting to read the ledger took too long")
        .expect("connect to read the ledger");
    let driver = tokio::spawn(connection);
    let rows = timeout(
        crate::BOUND,
        client.query("SELECT op_id, task FROM soak_ledger", &[]),
    )
    .await
    .expect("reading the ledger took too long")
    .expect("read the ledger");
    drop(client);
    driver.abort();
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// Checks `rows` against the `writes` the workers recorded; returns the
/// counts and every broken promise.
pub(crate) fn check(
    writes: &[(i64, i32, Fate)],
    rows: &[(i64, i32)],
) -> (LedgerCounts, Vec<String>) {
    let mut problems = Vec::new();
    let mut counts = LedgerCounts {
        attempted: writes.len() as u64,
        rows: rows.len() as u64,
        ..LedgerCounts::default()
    };
    let mut in_table: HashMap<i64, i32> = HashMap::with_capacity(rows.len());
    for &(id, task) in rows {
        if in_table.insert(id, task).is_some() {
            problems.push(format!("ledger: op_id {id} appears twice in the table"));
        }
    }
    let mut attempted: HashMap<i64, (i32, Fate)> = HashMap::with_capacity(writes.len());
    for &(id, task, fate) in writes {
        if attempted.insert(id, (task, fate)).is_some() {
            problems.push(format!("ledger: op_id {id} was attempted twice (soak bug)"));
        }
        let present = in_table.get(&id);
        match (fate, present) {
            (Fate::Committed, Some(&t)) if t == task => counts.committed += 1,
            (Fate::Committed, Some(&t)) => problems.push(format!(
                "ledger: committed op_id {id} of task {task} is in the table as task {t}"
            )),
            (Fate::Committed, None) => problems.push(format!(
                "ledger: op_id {id} (task {task}) was committed (COMMIT returned Ok) but is not in the table: a write was lost"
            )),
            (Fate::NotWritten, None) => counts.not_written += 1,
            (Fate::NotWritten, Some(_)) => problems.push(format!(
                "ledger: op_id {id} (task {task}) failed before COMMIT was sent, yet is in the table"
            )),
            (Fate::Unknown, Some(_)) => counts.unknown_present += 1,
            (Fate::Unknown, None) => counts.unknown_absent += 1,
        }
    }
    for id in in_table.keys() {
        if !attempted.contains_key(id) {
            problems.push(format!(
                "ledger: op_id {id} is in the table but no worker attempted it"
            ));
        }
    }
    (counts, problems)
}

#[test]
fn the_ledger_check_catches_a_lost_commit_a_resurrected_rollback_and_an_invented_row() {
    let writes = [
        (1, 0, Fate::Committed),
        (2, 0, Fate::NotWritten),
        (3, 1, Fate::Unknown),
        (4, 1, Fate::Unknown),
        (5, 2, Fate::Committed),
        (6, 2, Fate::NotWritten),
    ];
    let rows = [(2, 0), (3, 1), (5, 2), (9, 3)];
    let (counts, problems) = check(&writes, &rows);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].contains("op_id 1 (task 0) was committed"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("op_id 2 (task 0) failed before COMMIT"),
        "{problems:#?}"
    );
    assert!(
        problems[2].contains("op_id 9 is in the table"),
        "{problems:#?}"
    );
    assert_eq!(counts.committed, 1);
    assert_eq!(counts.not_written, 1);
    assert_eq!((counts.unknown_present, counts.unknown_absent), (1, 1));

    let (_, none) = check(&writes[2..], &[(3, 1), (5, 2)]);
    assert!(none.is_empty(), "{none:#?}");
}
