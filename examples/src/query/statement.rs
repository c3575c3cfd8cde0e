//! The statement text: what is refused before the database sees it, and
//! the text-cast wrapper for columns [`pgjson`](crate::pgjson) does not
//! decode.
//!
//! Refusing is deliberately shallow: only the first keyword is read (after
//! whitespace and `--` / nested `/* */` comments). Everything else is left
//! to PostgreSQL, whose extended protocol accepts one statement and whose
//! `READ ONLY` transaction refuses writes.

/// Statements that would end, nest or detach the read-only transaction.
const TRANSACTION_CONTROL: &[&str] = &[
    "ABORT",
    "BEGIN",
    "COMMIT",
    "END",
    "PREPARE",
    "RELEASE",
    "ROLLBACK",
    "SAVEPOINT",
    "START",
];

/// Trims the statement and refuses what must not run; see the module docs.
pub(super) fn check(sql: &str) -> Result<&str, String> {
    let sql = sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let Some(keyword) = first_keyword(sql) else {
        return Err(
            "the query is empty. Suggestion: pass one SQL statement, such as SELECT 1".into(),
        );
    };
    if TRANSACTION_CONTROL.contains(&keyword.to_ascii_uppercase().as_str()) {
        return Err(format!(
            "{keyword} is transaction control; every query already runs in its own READ ONLY transaction. Suggestion: send the statement alone"
        ));
    }
    Ok(sql)
}

/// The first word of `sql` after whitespace and comments.
fn first_keyword(mut sql: &str) -> Option<&str> {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            // Block comments nest in PostgreSQL.
            let mut depth = 1;
            let mut chars = rest.char_indices().peekable();
            let mut end = rest.len();
            while let Some((i, c)) = chars.next() {
                match (c, chars.peek().map(|&(_, next)| next)) {
                    ('/', Some('*')) => {
                        depth += 1;
                        chars.next();
                    }
                    ('*', Some('/')) => {
                        depth -= 1;
                        chars.next();
                        if depth == 0 {
                            end = i + 2;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            sql = &rest[end..];
        } else {
            let word = sql
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .filter(|word| !word.is_empty());
            return word.or(if sql.is_empty() { None } else { Some(sql) });
        }
    }
}

/// Column names with duplicates suffixed: `a, a, b` → `a, a_2, b`.
pub(super) fn unique_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for name in names {
        let mut candidate = name.to_owned();
        let mut n = 1;
        while unique.contains(&candidate) {
            n += 1;
            candidate = format!("{name}_{n}");
        }
        unique.push(candidate);
    }
    unique
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The query wrapped so that PostgreSQL casts the columns of the given
/// types to `text`: `SELECT q.c1::text AS "name", q.c2 AS "other" FROM
/// (<sql>) AS q(c1, c2)`. `columns` are the query's columns as
/// `(name, cast)`; generic aliases make duplicate or odd names harmless.
pub(super) fn text_cast(sql: &str, columns: &[(&str, bool)]) -> String {
    let names = unique_names(columns.iter().map(|&(name, _)| name));
    let select = columns
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (&(_, cast), name))| {
            let cast = if cast { "::text" } else { "" };
            format!("q.c{}{cast} AS {}", i + 1, quote_ident(name))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let aliases = (1..=columns.len())
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // The newline ends a trailing `--` comment of the user's query.
    format!("SELECT {select} FROM (\n{sql}\n) AS q({aliases})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_keyword_skips_comments_and_whitespace() {
        assert_eq!(first_keyword("  select 1"), Some("select"));
        assert_eq!(
            first_keyword("-- hi\n/* a /* nested */ b */ COMMIT"),
            Some("COMMIT")
        );
        assert_eq!(first_keyword("(SELECT 1)"), Some("(SELECT 1)"));
        assert_eq!(first_keyword(" -- only a comment"), None);
    }

    #[test]
    fn transaction_control_and_empty_input_are_rejected() {
        assert!(check("commit").unwrap_err().contains("transaction control"));
        assert!(check("/* x */ Begin;").unwrap_err().starts_with("Begin"));
        assert!(check(" ; ").unwrap_err().contains("empty"));
        assert_eq!(check("SELECT 1 ;\n").unwrap(), "SELECT 1");
    }

    #[test]
    fn duplicate_column_names_get_a_suffix() {
        assert_eq!(
            unique_names(["a", "a", "b", "a"].into_iter()),
            ["a", "a_2", "b", "a_3"]
        );
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            text_cast("SELECT 1 -- c", &[("a", true), ("a", false)]),
            "SELECT q.c1::text AS \"a\", q.c2 AS \"a_2\" FROM (\nSELECT 1 -- c\n) AS q(c1, c2)"
        );
    }
}
