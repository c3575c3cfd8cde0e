//! The lexer's unit tests: statement counts, transaction control and
//! read-only access.

use super::*;

fn count(sql: &str) -> u64 {
    scan(sql).statements
}

#[test]
fn statements_are_counted_between_top_level_semicolons() {
    assert_eq!(count("SELECT 1"), 1);
    assert_eq!(count("SELECT 1; SELECT 2"), 2);
    assert_eq!(count("SELECT 1; SELECT 2;"), 2);
    assert_eq!(count(" ; ;; SELECT 1 ;  "), 1);
    assert_eq!(count(""), 0);
    assert_eq!(count("-- only a comment; really\n /* and; this */"), 0);
}

#[test]
fn semicolons_in_quotes_comments_and_parentheses_do_not_split() {
    assert_eq!(count("SELECT ';', 'it''s; ok'; SELECT 2"), 2);
    assert_eq!(count(r"SELECT E'\';' ; SELECT 2"), 2);
    assert_eq!(
        count(r"SELECT '\'; SELECT 2"),
        2,
        "standard strings keep backslashes"
    );
    assert_eq!(count(r#"SELECT 1 AS "a;b""c"; SELECT 2"#), 2);
    assert_eq!(count("SELECT $$;$$, $f$ $$; $f$, $1; SELECT 2"), 2);
    assert_eq!(count("SELECT a$b$c FROM t; SELECT 2"), 2, "$ inside a word");
    assert_eq!(count("SELECT 1 -- ; not here\n; SELECT 2"), 2);
    assert_eq!(
        count("SELECT 1 /* ; /* nested ; */ still ; */; SELECT 2"),
        2
    );
    assert_eq!(count("SELECT (1;2); SELECT 3"), 2);
    assert_eq!(count("SELECT 'unterminated; SELECT 2"), 1);
}

fn block(sql: &str) -> Option<Block> {
    control_of(sql).and_then(|c| c.block)
}

fn read_only(sql: &str) -> ReadOnly {
    control_of(sql).map(|c| c.read_only).unwrap_or_default()
}

#[test]
fn a_routine_with_a_begin_atomic_body_is_one_statement() {
    let sql = "CREATE OR REPLACE FUNCTION f(begin int) RETURNS int LANGUAGE sql \
               BEGIN ATOMIC SELECT CASE WHEN 1 = 1 THEN 1 END; SELECT 2; END; COMMIT";
    let scanned = scan(sql);
    assert_eq!(scanned.statements, 2);
    assert_eq!(scanned.control.and_then(|c| c.block), Some(Block::End));
    let plpgsql = "CREATE FUNCTION g() RETURNS void AS $$ BEGIN PERFORM 1; END $$ \
                   LANGUAGE plpgsql; SELECT 1";
    assert_eq!(count(plpgsql), 2);
    assert_eq!(count("DO $$ BEGIN PERFORM 1; END $$; SELECT 1"), 2);
}

#[test]
fn transaction_control_is_read_from_leading_keywords() {
    let cases: &[(&str, Option<Block>)] = &[
        ("BEGIN", Some(Block::Begin)),
        (
            "  /* hi */ begin isolation level serializable",
            Some(Block::Begin),
        ),
        ("Start Transaction READ ONLY", Some(Block::Begin)),
        ("COMMIT", Some(Block::End)),
        ("commit work", Some(Block::End)),
        ("END TRANSACTION", Some(Block::End)),
        ("ROLLBACK", Some(Block::End)),
        ("ABORT", Some(Block::End)),
        ("PREPARE TRANSACTION 'x'", Some(Block::End)),
        ("COMMIT AND CHAIN", Some(Block::Begin)),
        ("ROLLBACK TRANSACTION AND CHAIN", Some(Block::Begin)),
        ("COMMIT AND NO CHAIN", Some(Block::End)),
        ("ROLLBACK TO SAVEPOINT a", None),
        ("ROLLBACK WORK TO a", None),
        ("COMMIT PREPARED 'x'", None),
        ("ROLLBACK PREPARED 'x'", None),
        ("PREPARE q AS SELECT 1", None),
        ("SAVEPOINT a", None),
        ("SELECT 'BEGIN'", None),
        ("SELECT CASE WHEN true THEN 1 END", None),
        ("START", None),
        ("\"BEGIN\"", None),
        ("beginning", None),
    ];
    for (sql, expected) in cases {
        assert_eq!(block(sql), *expected, "{sql}");
        assert_eq!(scan(sql).control.and_then(|c| c.block), *expected, "{sql}");
    }
}

#[test]
fn the_last_transaction_control_of_a_batch_wins() {
    let last = |sql| scan(sql).control.and_then(|c| c.block);
    assert_eq!(last("BEGIN; SELECT 1"), Some(Block::Begin));
    assert_eq!(last("BEGIN; SELECT 1; COMMIT"), Some(Block::End));
    assert_eq!(last("COMMIT; BEGIN;"), Some(Block::Begin));
    assert_eq!(scan("SELECT 1; SELECT 2").control, None);
}

#[test]
fn a_read_only_transaction_is_seen_in_every_spelling() {
    for sql in [
        "BEGIN READ ONLY",
        "begin transaction isolation level serializable, read only, deferrable",
        "START TRANSACTION READ ONLY",
        "SET TRANSACTION READ ONLY",
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "SET transaction_read_only = on",
        "SET LOCAL transaction_read_only TO 'true'",
    ] {
        assert!(read_only(sql).transaction, "{sql}");
        assert!(
            control_of(sql).is_some_and(Control::asks_read_only),
            "{sql}"
        );
    }
    for sql in [
        "BEGIN",
        "BEGIN READ WRITE",
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET transaction_read_only = off",
        "SELECT 'READ ONLY'",
        "INSERT INTO t VALUES ('read only')",
    ] {
        assert!(!read_only(sql).transaction, "{sql}");
    }
}

#[test]
fn the_session_default_access_is_followed() {
    let cases: &[(&str, Option<bool>)] = &[
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            Some(true),
        ),
        (
            "set session characteristics as transaction isolation level serializable, read write",
            Some(false),
        ),
        ("SET default_transaction_read_only = on", Some(true)),
        (
            "SET SESSION default_transaction_read_only TO on",
            Some(true),
        ),
        ("SET default_transaction_read_only TO 'off'", Some(false)),
        ("SET default_transaction_read_only = false", Some(false)),
        ("SET default_transaction_read_only = 1", Some(true)),
        ("SET LOCAL default_transaction_read_only = on", None),
        ("RESET default_transaction_read_only", Some(false)),
        ("RESET ALL", Some(false)),
        ("DISCARD ALL", Some(false)),
        ("RESET search_path", None),
        ("SET search_path = public", None),
    ];
    for (sql, expected) in cases {
        assert_eq!(read_only(sql).session, *expected, "{sql}");
    }
}

#[test]
fn a_batch_keeps_the_read_only_access_that_holds_at_its_end() {
    let at_end = |sql| scan(sql).control.map(|c| c.read_only).unwrap_or_default();
    assert!(at_end("BEGIN READ ONLY; SELECT 1").transaction);
    assert!(at_end("BEGIN; SET TRANSACTION READ ONLY").transaction);
    assert!(!at_end("BEGIN READ ONLY; SELECT 1; COMMIT").transaction);
    let session = at_end("SET default_transaction_read_only = on; RESET ALL").session;
    assert_eq!(session, Some(false));
}

#[test]
fn arbitrary_bytes_never_panic() {
    for sql in [
        "$",
        "$a",
        "$a$",
        "E'",
        "E'\\",
        "'",
        "\"",
        "/*",
        "/* /*",
        "-",
        "é;ü'$ö$",
        "$é$x$é$;",
    ] {
        let _ = scan(sql);
        let _ = control_of(sql);
    }
}
