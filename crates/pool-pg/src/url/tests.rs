//! How URLs with special characters are read, and that no password piece
//! reaches `redact_url`, `redacted_url_of`, a `Debug` output or an error.

use tokio_postgres::config::Host;

use super::*;

const SECRET: &str = "s3cr3t-p4ss";

/// The configuration `url` parses into; the test fails with the issue if
/// it is refused.
fn parsed(url: &str) -> Config {
    match parse_database_url(url) {
        Ok((config, _)) => config,
        Err(issue) => panic!("{url} was refused: {issue}"),
    }
}

/// The issue `url` is refused with, as text (message and suggestion).
fn refused(url: &str) -> String {
    match parse_database_url(url) {
        Ok((config, _)) => panic!("{url} was accepted: {config:?}"),
        Err(issue) => format!("{issue} | value: {} | {issue:?}", issue.value),
    }
}

/// No text made from `url` contains any of `secrets`: its redaction, and
/// if it parses, the rebuilt URL and the configuration's `Debug`.
fn assert_hidden(url: &str, secrets: &[&str]) {
    let mut texts = vec![redact_url(url)];
    match parse_database_url(url) {
        Ok((config, _)) => {
            texts.push(redacted_url_of(&config));
            texts.push(format!("{config:?}"));
        }
        Err(issue) => texts.push(format!("{issue} | {} | {issue:?}", issue.value)),
    }
    for text in texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{url}: {secret:?} shown in {text}");
        }
    }
}

fn tcp(names: &[&str]) -> Vec<Host> {
    names
        .iter()
        .map(|name| Host::Tcp((*name).to_owned()))
        .collect()
}

#[test]
fn a_password_in_the_query_with_an_at_sign_is_redacted_everywhere() {
    let url = "postgres://db/x?password=hunter@2";
    let config = parsed(url);
    assert_eq!(config.get_user(), None);
    assert_eq!(config.get_hosts(), tcp(&["db"]));
    assert_eq!(config.get_dbname(), Some("x"));
    assert_eq!(config.get_password(), Some(&b"hunter@2"[..]));
    assert_eq!(redact_url(url), "postgres://db/x?password=***");
    assert_hidden(url, &["hunter", "@2"]);
}

#[test]
fn an_at_sign_in_a_query_value_leaves_the_user_info_and_the_tls_settings_alone() {
    let url =
        "postgres://app@db:6543/x?password=hunter@2&sslrootcert=/etc/ca@1.pem&sslmode=disable";
    let config = parsed(url);
    assert_eq!(config.get_user(), Some("app"));
    assert_eq!(config.get_hosts(), tcp(&["db"]));
    assert_eq!(config.get_ports(), [6543]);
    assert_eq!(config.get_password(), Some(&b"hunter@2"[..]));
    assert_eq!(
        redact_url(url),
        "postgres://app@db:6543/x?password=***&sslrootcert=/etc/ca@1.pem&sslmode=disable"
    );
    assert_hidden(url, &["hunter"]);
}

#[test]
fn encoded_at_signs_and_an_unencoded_slash_in_the_password_are_read_as_meant() {
    let url = "postgres://us%40er:p%40ss:w/rd@h/db";
    let config = parsed(url);
    assert_eq!(config.get_user(), Some("us@er"));
    assert_eq!(config.get_password(), Some(&b"p@ss:w/rd"[..]));
    assert_eq!(config.get_hosts(), tcp(&["h"]));
    assert_eq!(config.get_dbname(), Some("db"));
    assert_eq!(redact_url(url), "postgres://us%40er:***@h/db");
    assert_hidden(url, &["p%40ss", "p@ss", "w/rd"]);
}

#[test]
fn the_last_at_sign_before_the_host_ends_the_user_info() {
    let url = "postgres://u:p@ss@h/db";
    let config = parsed(url);
    assert_eq!(config.get_user(), Some("u"));
    assert_eq!(config.get_password(), Some(&b"p@ss"[..]));
    assert_eq!(config.get_hosts(), tcp(&["h"]));
    assert_eq!(config.get_dbname(), Some("db"));
    assert_eq!(redact_url(url), "postgres://u:***@h/db");
    assert_eq!(
        redact_url(&format!("postgres://app:s3cr@{SECRET}@db/x")),
        "postgres://app:***@db/x"
    );
}

#[test]
fn passwords_in_the_user_info_and_the_query_of_a_host_list_are_redacted() {
    let url = "postgres://u:pw@h1:1,h2:2/db?password=x&sslmode=disable";
    let config = parsed(url);
    assert_eq!(config.get_user(), Some("u"));
    assert_eq!(config.get_hosts(), tcp(&["h1", "h2"]));
    assert_eq!(config.get_ports(), [1, 2]);
    assert_eq!(config.get_dbname(), Some("db"));
    assert_eq!(
        redact_url(url),
        "postgres://u:***@h1:1,h2:2/db?password=***&sslmode=disable"
    );
    assert_eq!(redacted_url_of(&config), "postgres://u:***@h1:1,h2:2/db");
}

#[test]
fn encoded_query_values_keep_their_meaning_and_the_password_is_hidden() {
    let url = "postgresql://h/db?options=-c%20x%3Dy&password=a%23b";
    let config = parsed(url);
    assert_eq!(config.get_options(), Some("-c x=y"));
    assert_eq!(config.get_password(), Some(&b"a#b"[..]));
    assert_eq!(
        redact_url(url),
        "postgresql://h/db?options=-c%20x%3Dy&password=***"
    );
    assert_hidden(url, &["a%23b", "a#b"]);
}

#[test]
fn an_ipv6_host_after_a_password_is_read_as_meant() {
    let url = "postgres://u:pw@[::1]:5432/db?password=p@[::2]";
    let config = parsed(url);
    assert_eq!(config.get_user(), Some("u"));
    assert_eq!(config.get_hosts(), tcp(&["::1"]));
    assert_eq!(config.get_ports(), [5432]);
    assert_eq!(config.get_password(), Some(&b"p@[::2]"[..]));
    assert_eq!(
        redact_url(url),
        "postgres://u:***@[::1]:5432/db?password=***"
    );
}

#[test]
fn a_question_mark_or_hash_in_the_password_is_read_as_meant() {
    for (url, password) in [
        (
            format!("postgres://u:{SECRET}?x@h/db"),
            format!("{SECRET}?x"),
        ),
        (
            format!("postgres://u:{SECRET}#x@h/db"),
            format!("{SECRET}#x"),
        ),
        (
            format!("postgres://u:{SECRET}?x@y@h/db?application_name=a@b"),
            format!("{SECRET}?x@y"),
        ),
    ] {
        let config = parsed(&url);
        assert_eq!(config.get_user(), Some("u"), "{url}");
        assert_eq!(config.get_password(), Some(password.as_bytes()), "{url}");
        assert_eq!(config.get_hosts(), tcp(&["h"]), "{url}");
        assert_eq!(config.get_dbname(), Some("db"), "{url}");
        assert_hidden(&url, &[SECRET, "?x", "#x"]);
    }
}

#[test]
fn a_fragment_is_refused_with_the_encoding_advice_and_without_the_password() {
    for url in [
        format!("postgres://u:{SECRET}@h/db#fr4g@x"),
        format!("postgres://h/db?password={SECRET}#fr4g"),
        format!("postgres://u:12#{SECRET}@h/db"),
    ] {
        let text = refused(&url);
        assert!(text.contains("`#` after the host"), "{text}");
        assert!(text.contains("# as %23"), "{text}");
        assert_hidden(&url, &[SECRET, "12#", "fr4g"]);
    }
}

#[test]
fn an_at_sign_that_could_end_the_user_info_or_sit_in_the_database_name_is_refused() {
    for (url, secret) in [
        (format!("postgres://u:{SECRET}@h/my@db"), "h/my"),
        (format!("postgres://u:1234/{SECRET}@h/db"), "1234/"),
        (format!("postgres://u:12?{SECRET}@h/db"), "12?"),
        (format!("postgres://u:p@{SECRET}/w@h/db"), "/w@"),
    ] {
        let text = refused(&url);
        assert!(
            text.contains("where the user info ends is unclear"),
            "{text}"
        );
        assert!(text.contains("/ as %2F"), "{text}");
        assert_hidden(&url, &[SECRET, secret]);
    }
    assert_eq!(
        redact_url(&format!("postgres://u:1234/{SECRET}@h/db")),
        "postgres://u:***@h/db"
    );
}

#[test]
fn password_keys_in_any_case_or_encoding_are_redacted() {
    assert_eq!(
        redact_url(&format!(
            "postgres://db/x?pass%77ord={SECRET}&PASSWORD={SECRET}&sslpassword={SECRET}&sslmode=disable"
        )),
        "postgres://db/x?pass%77ord=***&PASSWORD=***&sslpassword=***&sslmode=disable"
    );
    // An item without `=` may be the tail of a value with an unencoded `&`.
    assert_eq!(
        redact_url(&format!("postgres://db/x?password=a&{SECRET}")),
        "postgres://db/x?password=***&***"
    );
}

#[test]
fn an_unparsable_url_is_refused_without_its_password() {
    for url in [
        format!("postgres://app:{SECRET}@db:54x2/orders"),
        format!("postgres://app:{SECRET}/x@db:54x2/orders"),
        format!("postgres://app@db/orders?password={SECRET}@2&port=x"),
        format!("postgres://app:{SECRET}@[::1/orders"),
    ] {
        let text = refused(&url);
        assert!(text.contains("not a valid PostgreSQL URL"), "{text}");
        assert_hidden(&url, &[SECRET]);
    }
}

#[test]
fn a_url_without_a_password_is_unchanged() {
    let url = "postgresql://app@db:5432/x?application_name=api";
    assert_eq!(redact_url(url), url);
}

#[test]
fn key_value_strings_and_text_before_a_fake_scheme_are_not_shown() {
    for text in [
        format!("host=db password={SECRET}"),
        format!("host=db password='{SECRET} x' dbname=x"),
        format!("host=db password={SECRET}://x@y"),
        format!("app:{SECRET}://x@y"),
    ] {
        assert_eq!(redact_url(&text), NOT_SHOWN, "{text}");
        assert_hidden(&text, &[SECRET]);
    }
}

#[test]
fn a_rebuilt_url_shows_that_a_password_exists_but_not_which() {
    let config = parsed(&format!(
        "postgres://app:{SECRET}@db:6543/orders?application_name=api"
    ));
    assert_eq!(
        redacted_url_of(&config),
        "postgres://app:***@db:6543/orders?application_name=api"
    );
}

#[test]
fn a_user_name_misread_by_tokio_postgres_is_not_shown() {
    // tokio-postgres alone reads user `db/x?password=hunter` on host `2`.
    let config: Config = "postgres://db/x?password=hunter@2".parse().unwrap();
    assert_eq!(config.get_user(), Some("db/x?password=hunter"));
    let shown = redacted_url_of(&config);
    assert!(!shown.contains("hunter"), "{shown}");
    assert_eq!(shown, "postgres://***@2:5432/");
}

#[test]
fn unix_socket_and_ipv6_hosts_are_rebuilt_readably() {
    let config: Config = "postgres://app@[::1]:5433,%2Fvar%2Frun%2Fpostgresql/x"
        .parse()
        .unwrap();
    assert_eq!(
        servers(&config),
        vec![
            "[::1]:5433".to_owned(),
            "%2Fvar%2Frun%2Fpostgresql:5432".to_owned()
        ]
    );
}

#[test]
fn scrubbing_removes_raw_and_decoded_passwords() {
    let reading = Reading::of("app:p%40ss-word@db/x?password=other");
    assert_eq!(
        scrub("a p@ss-word b p%40ss-word c other", &reading.secrets()),
        "a *** b *** c ***"
    );
}

#[test]
fn prefer_standby_on_a_single_pool_points_to_read_write_pools() {
    let text = refused("postgres://app@a:5432,b:5432/x?target_session_attrs=prefer-standby");
    assert!(text.contains("ReadWritePools"), "{text}");
}

#[test]
fn encoding_keeps_unreserved_characters_only() {
    assert_eq!(encode("app_user-1.x~"), "app_user-1.x~");
    assert_eq!(encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
}

/// The hand-written encoder `encode` replaced.
fn encode_by_hand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[test]
fn encoding_matches_the_hand_written_encoder() {
    let every_ascii: String = (0..=127u8).map(char::from).collect();
    for text in [
        "u@h:p/d?q#f%25&a=b c",
        "pässwörd 密码 🐘",
        "-._~ AZaz09",
        every_ascii.as_str(),
    ] {
        assert_eq!(encode(text), encode_by_hand(text), "{text:?}");
    }
}
