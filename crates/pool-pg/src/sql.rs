//! Reading just enough SQL to count statements and see transaction control.
//!
//! The pooled connection needs two facts about the SQL it sends: how many
//! statements a simple-protocol string holds (for `max_queries`), and
//! whether a statement opens or ends a transaction block (so a connection is
//! never handed out inside one). Both come from one pass of a small lexer,
//! not a parser:
//!
//! * Statements are the `;`-separated pieces that hold anything but
//!   whitespace and comments. A `;` inside a string (`'..'`, `E'..'` with
//!   backslash escapes), a quoted identifier (`".."`), a dollar quote
//!   (`$tag$..$tag$`), a comment (`-- ..`, nested `/* .. */`) or parentheses
//!   does not split. Like `psql`, a `CREATE [OR REPLACE] FUNCTION|PROCEDURE`
//!   with a `BEGIN ATOMIC .. END` body is one statement.
//! * Transaction control is judged on a statement's leading keywords,
//!   case-insensitively: `BEGIN` and `START TRANSACTION` open a block;
//!   `COMMIT`, `END`, `ROLLBACK` and `ABORT` (with an optional `WORK` or
//!   `TRANSACTION`) and `PREPARE TRANSACTION` end it; `.. AND CHAIN` opens
//!   the next one at once. `ROLLBACK TO [SAVEPOINT]`, `COMMIT PREPARED` and
//!   `ROLLBACK PREPARED` leave the session's block as it was.
//!
//! The lexer works on bytes, never slices a `str`, and never panics: an
//! unterminated quote or comment simply runs to the end of the text, which
//! is also what the server does before it reports the error.

/// What a statement does to the session's transaction block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Opens one (or keeps one open: `COMMIT AND CHAIN`).
    Begin,
    /// Ends it.
    End,
}

/// What a simple-protocol string holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Non-empty statements.
    pub(crate) statements: u64,
    /// The effect of the last transaction-control statement, if any.
    pub(crate) control: Option<Control>,
}

/// Counts the statements of `sql` and finds its last transaction control.
pub(crate) fn scan(sql: &str) -> Scan {
    let mut scan = Scan::default();
    let mut statement = Statement::default();
    for token in Lexer::new(sql) {
        if token == Token::Semicolon && statement.ends_at_semicolon() {
            scan.add(&statement);
            statement = Statement::default();
        } else {
            statement.push(token);
        }
    }
    scan.add(&statement);
    scan
}

/// The transaction control of a single statement (the extended protocol
/// takes exactly one): only its leading keywords are read.
pub(crate) fn control_of(sql: &str) -> Option<Control> {
    let mut statement = Statement::default();
    for token in Lexer::new(sql).take(LEADING_WORDS) {
        statement.push(token);
    }
    statement.control()
}

impl Scan {
    fn add(&mut self, statement: &Statement<'_>) {
        if statement.has_content {
            self.statements += 1;
            if let Some(control) = statement.control() {
                self.control = Some(control);
            }
        }
    }
}

/// How many leading keywords decide a statement's kind:
/// `ROLLBACK TRANSACTION AND CHAIN`, `CREATE OR REPLACE FUNCTION`.
const LEADING_WORDS: usize = 4;

/// One statement as the lexer sees it.
#[derive(Default)]
struct Statement<'a> {
    /// The keywords before any other token, at most [`LEADING_WORDS`].
    leading: [&'a [u8]; LEADING_WORDS],
    leading_count: usize,
    /// Whether a token that is not a word came first or after the words.
    leading_done: bool,
    has_content: bool,
    parens: u32,
    /// `BEGIN`/`CASE` .. `END` nesting in a SQL-standard routine body.
    body_depth: u32,
}

impl<'a> Statement<'a> {
    fn push(&mut self, token: Token<'a>) {
        self.has_content = true;
        match token {
            Token::Word(word) => self.word(word),
            Token::Open => self.parens += 1,
            Token::Close => self.parens = self.parens.saturating_sub(1),
            Token::Semicolon | Token::Other => {}
        }
        if !matches!(token, Token::Word(_)) {
            self.leading_done = true;
        }
    }

    fn word(&mut self, word: &'a [u8]) {
        if !self.leading_done && self.leading_count < LEADING_WORDS {
            self.leading[self.leading_count] = word;
            self.leading_count += 1;
        }
        if self.parens > 0 || !self.is_routine() {
            return;
        }
        // CASE also closes with END, but only matters inside a body.
        let opens = word.eq_ignore_ascii_case(b"BEGIN")
            || (word.eq_ignore_ascii_case(b"CASE") && self.body_depth > 0);
        if opens {
            self.body_depth += 1;
        } else if word.eq_ignore_ascii_case(b"END") {
            self.body_depth = self.body_depth.saturating_sub(1);
        }
    }

    fn ends_at_semicolon(&self) -> bool {
        self.parens == 0 && self.body_depth == 0
    }

    fn is(&self, index: usize, keyword: &str) -> bool {
        index < self.leading_count && self.leading[index].eq_ignore_ascii_case(keyword.as_bytes())
    }

    fn is_routine(&self) -> bool {
        let routine = |i| self.is(i, "FUNCTION") || self.is(i, "PROCEDURE");
        self.is(0, "CREATE")
            && (routine(1) || (self.is(1, "OR") && self.is(2, "REPLACE") && routine(3)))
    }

    fn control(&self) -> Option<Control> {
        if self.is(0, "BEGIN") || (self.is(0, "START") && self.is(1, "TRANSACTION")) {
            return Some(Control::Begin);
        }
        if self.is(0, "PREPARE") && self.is(1, "TRANSACTION") {
            return Some(Control::End);
        }
        if !["COMMIT", "END", "ROLLBACK", "ABORT"]
            .iter()
            .any(|k| self.is(0, k))
        {
            return None;
        }
        let next = if self.is(1, "WORK") || self.is(1, "TRANSACTION") {
            2
        } else {
            1
        };
        if self.is(next, "PREPARED") || (self.is(0, "ROLLBACK") && self.is(next, "TO")) {
            None
        } else if self.is(next, "AND") && self.is(next + 1, "CHAIN") {
            Some(Control::Begin)
        } else {
            Some(Control::End)
        }
    }
}

/// A lexical token; quotes, comments and whitespace are consumed whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    /// A keyword or unquoted identifier.
    Word(&'a [u8]),
    Semicolon,
    Open,
    Close,
    /// Anything else: a string, a quoted identifier, a number, an operator.
    Other,
}

struct Lexer<'a> {
    sql: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql: sql.as_bytes(),
            at: 0,
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.sql.get(at).copied()
    }

    /// Skips a `quote`-delimited run; a doubled quote is part of it.
    fn skip_quoted(&mut self, quote: u8, backslash_escapes: bool) {
        self.at += 1;
        while let Some(byte) = self.byte(self.at) {
            let escaped = (byte == b'\\' && backslash_escapes)
                || (byte == quote && self.byte(self.at + 1) == Some(quote));
            if escaped {
                self.at += 2;
            } else if byte == quote {
                self.at += 1;
                return;
            } else {
                self.at += 1;
            }
        }
    }

    /// Skips `$tag$ .. $tag$` if one starts here; `false` for `$1`.
    fn skip_dollar_quote(&mut self) -> bool {
        let mut end = self.at + 1;
        if self.byte(end).is_some_and(is_word_start) {
            while self.byte(end).is_some_and(|b| is_word_byte(b) && b != b'$') {
                end += 1;
            }
        }
        if self.byte(end) != Some(b'$') {
            return false;
        }
        let delimiter = &self.sql[self.at..=end];
        let body = &self.sql[end + 1..];
        self.at = match body.windows(delimiter.len()).position(|w| w == delimiter) {
            Some(offset) => end + 1 + offset + delimiter.len(),
            None => self.sql.len(),
        };
        true
    }

    fn skip_block_comment(&mut self) {
        let mut depth = 0_u32;
        while let Some(byte) = self.byte(self.at) {
            let next = self.byte(self.at + 1);
            if byte == b'/' && next == Some(b'*') {
                depth += 1;
                self.at += 2;
            } else if byte == b'*' && next == Some(b'/') {
                depth -= 1;
                self.at += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.at += 1;
            }
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let byte = self.byte(self.at)?;
            let next = self.byte(self.at + 1);
            let single = match byte {
                b if b.is_ascii_whitespace() => None,
                b'-' if next == Some(b'-') => {
                    while self.byte(self.at).is_some_and(|b| b != b'\n') {
                        self.at += 1;
                    }
                    continue;
                }
                b'/' if next == Some(b'*') => {
                    self.skip_block_comment();
                    continue;
                }
                b';' => Some(Token::Semicolon),
                b'(' => Some(Token::Open),
                b')' => Some(Token::Close),
                b'\'' | b'"' => {
                    self.skip_quoted(byte, false);
                    return Some(Token::Other);
                }
                b'$' if self.skip_dollar_quote() => return Some(Token::Other),
                b if is_word_start(b) => return Some(self.word()),
                _ => Some(Token::Other),
            };
            self.at += 1;
            if let Some(token) = single {
                return Some(token);
            }
        }
    }
}

impl<'a> Lexer<'a> {
    /// A word, or an `E'..'` string (the one prefix that changes quoting).
    fn word(&mut self) -> Token<'a> {
        let start = self.at;
        while self.byte(self.at).is_some_and(is_word_byte) {
            self.at += 1;
        }
        let word = &self.sql[start..self.at];
        if word.eq_ignore_ascii_case(b"E") && self.byte(self.at) == Some(b'\'') {
            self.skip_quoted(b'\'', true);
            return Token::Other;
        }
        Token::Word(word)
    }
}

/// Letters, `_` and every non-ASCII byte start an identifier.
fn is_word_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || !byte.is_ascii()
}

/// ..which continues with digits and `$` too.
fn is_word_byte(byte: u8) -> bool {
    is_word_start(byte) || byte.is_ascii_digit() || byte == b'$'
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_routine_with_a_begin_atomic_body_is_one_statement() {
        let sql = "CREATE OR REPLACE FUNCTION f(begin int) RETURNS int LANGUAGE sql \
                   BEGIN ATOMIC SELECT CASE WHEN 1 = 1 THEN 1 END; SELECT 2; END; COMMIT";
        assert_eq!(
            scan(sql),
            Scan {
                statements: 2,
                control: Some(Control::End)
            }
        );
        let plpgsql = "CREATE FUNCTION g() RETURNS void AS $$ BEGIN PERFORM 1; END $$ \
                       LANGUAGE plpgsql; SELECT 1";
        assert_eq!(count(plpgsql), 2);
        assert_eq!(count("DO $$ BEGIN PERFORM 1; END $$; SELECT 1"), 2);
    }

    #[test]
    fn transaction_control_is_read_from_leading_keywords() {
        let cases: &[(&str, Option<Control>)] = &[
            ("BEGIN", Some(Control::Begin)),
            (
                "  /* hi */ begin isolation level serializable",
                Some(Control::Begin),
            ),
            ("Start Transaction READ ONLY", Some(Control::Begin)),
            ("COMMIT", Some(Control::End)),
            ("commit work", Some(Control::End)),
            ("END TRANSACTION", Some(Control::End)),
            ("ROLLBACK", Some(Control::End)),
            ("ABORT", Some(Control::End)),
            ("PREPARE TRANSACTION 'x'", Some(Control::End)),
            ("COMMIT AND CHAIN", Some(Control::Begin)),
            ("ROLLBACK TRANSACTION AND CHAIN", Some(Control::Begin)),
            ("COMMIT AND NO CHAIN", Some(Control::End)),
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
            assert_eq!(control_of(sql), *expected, "{sql}");
            assert_eq!(scan(sql).control, *expected, "{sql}");
        }
    }

    #[test]
    fn the_last_transaction_control_of_a_batch_wins() {
        assert_eq!(scan("BEGIN; SELECT 1").control, Some(Control::Begin));
        assert_eq!(scan("BEGIN; SELECT 1; COMMIT").control, Some(Control::End));
        assert_eq!(scan("COMMIT; BEGIN;").control, Some(Control::Begin));
        assert_eq!(scan("SELECT 1; SELECT 2").control, None);
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
}
