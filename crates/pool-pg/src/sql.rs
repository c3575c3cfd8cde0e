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
//! * Read-only access the caller asked for is read from the same
//!   statements, so a refused write (SQLSTATE 25006) inside it is known to
//!   be the caller's own doing, not a demoted server: `BEGIN` / `START
//!   TRANSACTION` with `READ ONLY`, `SET TRANSACTION READ ONLY` and `SET
//!   [LOCAL] transaction_read_only` make the transaction read-only; `SET
//!   SESSION CHARACTERISTICS AS TRANSACTION READ ONLY|WRITE` and `SET
//!   [SESSION] default_transaction_read_only` set the session default, which
//!   `RESET` (of it, or `ALL`) and `DISCARD ALL` clear. A value other than
//!   `off`/`false`/`no`/`0` (spelled as a word or a quoted string) counts
//!   as on.
//!
//! The lexer works on bytes, never slices a `str`, and never panics: an
//! unterminated quote or comment simply runs to the end of the text, which
//! is also what the server does before it reports the error.

/// What a statement does to the session's transaction block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Block {
    /// Opens one (or keeps one open: `COMMIT AND CHAIN`).
    Begin,
    /// Ends it.
    End,
}

/// The read-only access a statement asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReadOnly {
    /// The transaction it starts or runs in is read-only.
    pub(crate) transaction: bool,
    /// The session default it sets: `Some(true)` read-only, `Some(false)`
    /// read-write (also `RESET` and `DISCARD ALL`).
    pub(crate) session: Option<bool>,
}

/// What a statement (or a batch) does to the session: the transaction
/// block and the read-only access. Only built when it does something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Control {
    /// The block control; for a batch, the last one.
    pub(crate) block: Option<Block>,
    /// The read-only access asked for; for a batch, what holds at its end.
    pub(crate) read_only: ReadOnly,
}

impl Control {
    /// Only the read-only part (for statements inside a wrapped
    /// transaction, whose block the wrapper owns); `None` if there is none.
    pub(crate) fn read_only_part(self) -> Option<Control> {
        (self.read_only != ReadOnly::default()).then_some(Control {
            block: None,
            read_only: self.read_only,
        })
    }

    /// Whether the statement itself asks for read-only access.
    pub(crate) fn asks_read_only(self) -> bool {
        self.read_only.transaction || self.read_only.session == Some(true)
    }
}

/// What a simple-protocol string holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Non-empty statements.
    pub(crate) statements: u64,
    /// What its statements do to the session, if anything.
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
    let mut lexer = Lexer::new(sql);
    // Usually a handful of tokens: past the leading words, only the
    // statements that may say READ ONLY are read further.
    while statement.wants_more() {
        match lexer.next() {
            Some(token) => statement.push(token),
            None => break,
        }
    }
    statement.control()
}

impl Scan {
    fn add(&mut self, statement: &Statement<'_>) {
        if !statement.has_content {
            return;
        }
        self.statements += 1;
        let Some(next) = statement.control() else {
            return;
        };
        let mut merged = self.control.unwrap_or(Control {
            block: None,
            read_only: ReadOnly::default(),
        });
        if next.block.is_some() {
            merged.block = next.block;
        }
        if next.block == Some(Block::End) {
            merged.read_only.transaction = false;
        }
        merged.read_only.transaction |= next.read_only.transaction;
        if next.read_only.session.is_some() {
            merged.read_only.session = next.read_only.session;
        }
        self.control = Some(merged);
    }
}

/// How many leading keywords decide a statement's kind:
/// `ROLLBACK TRANSACTION AND CHAIN`, `CREATE OR REPLACE FUNCTION`,
/// `SET SESSION default_transaction_read_only TO on`.
const LEADING_WORDS: usize = 5;

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
    /// The first tokens after the leading words (a `SET`'s value).
    after: [Option<Token<'a>>; 2],
    /// The last token was the word `READ`.
    after_read: bool,
    /// `READ ONLY` (`Some(true)`) or `READ WRITE` (`Some(false)`), last seen.
    access: Option<bool>,
}

impl<'a> Statement<'a> {
    fn push(&mut self, token: Token<'a>) {
        self.has_content = true;
        if self.leading_done || !matches!(token, Token::Word(_)) {
            if let Some(free) = self.after.iter_mut().find(|t| t.is_none()) {
                *free = Some(token);
            }
        }
        match token {
            Token::Word(word) => {
                self.word(word);
                if self.after_read && word.eq_ignore_ascii_case(b"ONLY") {
                    self.access = Some(true);
                } else if self.after_read && word.eq_ignore_ascii_case(b"WRITE") {
                    self.access = Some(false);
                }
                self.after_read = word.eq_ignore_ascii_case(b"READ");
            }
            Token::Open => self.parens += 1,
            Token::Close => self.parens = self.parens.saturating_sub(1),
            Token::Semicolon | Token::Quoted(_) | Token::Other => {}
        }
        if !matches!(token, Token::Word(_)) {
            self.leading_done = true;
            self.after_read = false;
        }
    }

    /// Whether more tokens could change [`control`](Self::control).
    fn wants_more(&self) -> bool {
        let leading_open = !self.leading_done && self.leading_count < LEADING_WORDS;
        leading_open || self.is_begin() || self.is(0, "SET")
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

    fn is_begin(&self) -> bool {
        self.is(0, "BEGIN") || (self.is(0, "START") && self.is(1, "TRANSACTION"))
    }

    fn control(&self) -> Option<Control> {
        let control = Control {
            block: self.block(),
            read_only: self.read_only(),
        };
        (control.block.is_some() || control.read_only != ReadOnly::default()).then_some(control)
    }

    fn block(&self) -> Option<Block> {
        if self.is_begin() {
            return Some(Block::Begin);
        }
        if self.is(0, "PREPARE") && self.is(1, "TRANSACTION") {
            return Some(Block::End);
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
            Some(Block::Begin)
        } else {
            Some(Block::End)
        }
    }

    fn read_only(&self) -> ReadOnly {
        let mut read_only = ReadOnly::default();
        if self.is(0, "DISCARD") && self.is(1, "ALL") {
            read_only.session = Some(false);
        } else if self.is(0, "RESET") {
            if self.is(1, "ALL") || self.is(1, "default_transaction_read_only") {
                read_only.session = Some(false);
            }
        } else if self.is_begin() || (self.is(0, "SET") && self.is(1, "TRANSACTION")) {
            read_only.transaction = self.access == Some(true);
        } else if self.is(0, "SET") && self.is(1, "SESSION") && self.is(2, "CHARACTERISTICS") {
            read_only.session = self.access;
        } else if self.is(0, "SET") {
            let local = self.is(1, "LOCAL");
            let name = if local || self.is(1, "SESSION") { 2 } else { 1 };
            if self.is(name, "transaction_read_only") {
                read_only.transaction = self.setting_value(name) != Some(false);
            } else if self.is(name, "default_transaction_read_only") && !local {
                read_only.session = Some(self.setting_value(name) != Some(false));
            }
        }
        read_only
    }

    /// The boolean value of `SET <name> {=|TO} <value>`, where the name is
    /// leading word `name`: `None` when it is not spelled as a word or a
    /// quoted string (the caller then assumes on).
    fn setting_value(&self, name: usize) -> Option<bool> {
        let word_value = if self.is(name + 1, "TO") {
            name + 2
        } else {
            name + 1
        };
        let value = if word_value < self.leading_count {
            Some(self.leading[word_value])
        } else {
            let mut after = self.after.iter().flatten();
            match after.next() {
                Some(Token::Other) => after.next().copied(),
                first => first.copied(),
            }
            .and_then(|token| match token {
                Token::Word(text) | Token::Quoted(text) => Some(text),
                _ => None,
            })
        }?;
        const OFF: [&[u8]; 4] = [b"off", b"false", b"no", b"0"];
        const ON: [&[u8]; 4] = [b"on", b"true", b"yes", b"1"];
        if OFF.iter().any(|v| value.eq_ignore_ascii_case(v)) {
            Some(false)
        } else if ON.iter().any(|v| value.eq_ignore_ascii_case(v)) {
            Some(true)
        } else {
            None
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
    /// A standard string, `'..'`: what is between the quotes, as written.
    Quoted(&'a [u8]),
    /// Anything else: another string, a quoted identifier, a number, an
    /// operator.
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
                b'\'' => {
                    let start = self.at + 1;
                    self.skip_quoted(byte, false);
                    let end = self.at.saturating_sub(1).max(start);
                    return Some(Token::Quoted(&self.sql[start..end]));
                }
                b'"' => {
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
mod tests;
