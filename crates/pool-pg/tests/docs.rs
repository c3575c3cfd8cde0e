//! The documentation cannot drift from the code: every table of `POOL_*`
//! variables (docs/configuration.md, and the one in this crate's docs)
//! lists exactly the variables the configuration reads.
//!
//! The known set is [`POOL_VARIABLES`] (pool-core's table, re-exported);
//! pool-pg's own are [`POOL_PG_VARIABLES`], and the union is what the
//! tables must show.

use std::collections::BTreeSet;
use std::path::Path;

use pool_pg::defaults::{POOL_PG_VARIABLES, POOL_VARIABLES};

/// Every table in the workspace that lists `POOL_*` variables, from this
/// crate's directory.
const TABLES: &[&str] = &["../../docs/configuration.md", "src/lib.rs"];

/// The variables named in the first two cells of the table rows of
/// `text` (a Markdown file, or Rust source whose docs hold the table).
fn documented(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.trim_start().trim_start_matches("//!").trim())
        .filter(|line| line.starts_with('|'))
        .flat_map(|line| line.split('|').skip(1).take(2))
        .map(|cell| cell.trim().trim_matches('`'))
        .filter(|cell| {
            cell.starts_with("POOL_")
                && cell
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_pool_variable_table_lists_exactly_the_variables_the_configuration_reads() {
    let known: BTreeSet<String> = POOL_VARIABLES
        .iter()
        .chain(POOL_PG_VARIABLES)
        .map(|name| (*name).to_owned())
        .collect();
    assert!(known.contains("POOL_LEAK_DETECTION_TIMEOUT"), "the alias");
    assert!(known.contains("POOL_STATEMENT_CACHE_SIZE"), "pool-pg's own");
    for table in TABLES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(table);
        let Ok(text) = std::fs::read_to_string(&path) else {
            // docs/ is not in the published package; the workspace has it.
            eprintln!("skipped: {} is not here", path.display());
            continue;
        };
        let listed = documented(&text);
        let missing: Vec<_> = known.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&known).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "{table}: missing {missing:?}, not a variable {unknown:?}"
        );
    }
}

#[test]
fn the_table_reader_finds_variables_in_either_column_and_nothing_else() {
    let text = "\
| setting | variable |
|---|---|
| `name` | `POOL_NAME` |
//! | `POOL_MAX_SIZE` | [`max_size`](x) |
| `x` | `y` | `POOL_THIRD_COLUMN` |
POOL_NOT_IN_A_TABLE
";
    let listed: Vec<String> = documented(text).into_iter().collect();
    assert_eq!(listed, ["POOL_MAX_SIZE", "POOL_NAME"]);
}
