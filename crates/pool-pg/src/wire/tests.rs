//! The wire's judgement of synthetic protocol streams.

use super::*;

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![kind];
    bytes.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn ready(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

fn complete(tag: &str) -> Vec<u8> {
    message(b'C', format!("{tag}\0").as_bytes())
}

fn error(code: &str) -> Vec<u8> {
    message(b'E', format!("SERROR\0VERROR\0C{code}\0Mno\0\0").as_bytes())
}

fn parameter(name: &str, value: &str) -> Vec<u8> {
    message(b'S', format!("{name}\0{value}\0").as_bytes())
}

/// An armed watch for a server that reports `default_transaction_read_only`
/// as `reports`.
fn armed(reports: bool) -> (Arc<Wire>, Watch) {
    let wire = Arc::new(Wire::default());
    let watch = Watch::new(Arc::clone(&wire));
    wire.arm(reports);
    (wire, watch)
}

/// The frontend half of an extended-protocol request.
fn extended() -> Vec<u8> {
    [
        message(b'B', b"\0s0\0\0\0\0\0"),
        message(b'E', b"\0\0\0\0\0"),
        message(b'S', b""),
    ]
    .concat()
}

#[test]
fn a_request_is_in_flight_until_its_ready_for_query() {
    let (wire, mut watch) = armed(true);
    watch.wrote(&extended());
    assert_eq!(wire.unclean(), Some(Unclean::InFlight));
    watch.read(&[complete("SELECT 1"), ready(b'I')].concat());
    assert_eq!(wire.unclean(), None);
    assert_eq!(wire.statements(), 1);
}

#[test]
fn a_transaction_block_is_read_from_the_status_byte() {
    let (wire, mut watch) = armed(true);
    watch.wrote(&message(b'Q', b"BEGIN\0"));
    watch.read(&[complete("BEGIN"), ready(b'T')].concat());
    assert_eq!(wire.unclean(), Some(Unclean::InTransaction));
    watch.wrote(&message(b'Q', b"oops\0"));
    watch.read(&[error("42601"), ready(b'E')].concat());
    assert_eq!(wire.status(), Status::Failed);
    watch.wrote(&message(b'Q', b"ROLLBACK\0"));
    watch.read(&[complete("ROLLBACK"), ready(b'I')].concat());
    assert_eq!(wire.unclean(), None);
    assert_eq!(wire.statements(), 3, "BEGIN, the error, ROLLBACK");
}

#[test]
fn a_copy_started_by_execute_skips_its_sync() {
    let (wire, mut watch) = armed(true);
    watch.wrote(&extended());
    watch.read(&message(b'G', b"\0\0\0"));
    watch.wrote(
        &[
            message(b'd', b"1\n"),
            message(b'c', b""),
            message(b'S', b""),
        ]
        .concat(),
    );
    watch.read(&[complete("COPY 1"), ready(b'I')].concat());
    assert_eq!(wire.unclean(), None);
}

#[test]
fn a_copy_started_by_a_simple_query_has_no_sync_to_skip() {
    let (wire, mut watch) = armed(true);
    watch.wrote(&message(b'Q', b"COPY t FROM STDIN\0"));
    watch.read(&message(b'G', b"\0\0\0"));
    watch.wrote(&[message(b'd', b"1\n"), message(b'c', b"")].concat());
    watch.read(&[complete("COPY 1"), ready(b'I')].concat());
    assert_eq!(wire.unclean(), None);
}

#[test]
fn a_read_only_default_after_a_set_is_the_callers() {
    let (wire, mut watch) = armed(true);
    watch.wrote(&message(b'Q', b"SET default_transaction_read_only = on\0"));
    watch.read(
        &[
            complete("SET"),
            parameter("default_transaction_read_only", "on"),
            ready(b'I'),
        ]
        .concat(),
    );
    assert_eq!(wire.unclean(), Some(Unclean::CallerReadOnly));
    watch.wrote(&extended());
    watch.read(&[error("25006"), ready(b'I')].concat());
    assert_eq!(wire.unclean(), Some(Unclean::CallerReadOnly));
    watch.wrote(&message(b'Q', b"RESET ALL\0"));
    watch.read(
        &[
            complete("RESET"),
            parameter("default_transaction_read_only", "off"),
            ready(b'I'),
        ]
        .concat(),
    );
    assert_eq!(wire.unclean(), None);
}

#[test]
fn a_read_only_default_without_a_set_is_the_servers() {
    let (wire, mut watch) = armed(true);
    watch.wrote(&extended());
    watch.read(
        &[
            error("25006"),
            parameter("default_transaction_read_only", "on"),
            ready(b'I'),
        ]
        .concat(),
    );
    assert!(matches!(wire.unclean(), Some(Unclean::ServerLost(_))));
}

#[test]
fn a_refusal_outside_a_transaction_is_the_servers_only_where_nothing_is_reported() {
    for (reports, lost) in [(true, false), (false, true)] {
        let (wire, mut watch) = armed(reports);
        watch.wrote(&extended());
        watch.read(&[error("25006"), ready(b'I')].concat());
        assert_eq!(
            matches!(wire.unclean(), Some(Unclean::ServerLost(_))),
            lost,
            "reports: {reports}"
        );
    }
    // Inside the caller's own read-only transaction it is the caller's.
    let (wire, mut watch) = armed(false);
    watch.wrote(&extended());
    watch.read(&[error("25006"), ready(b'E')].concat());
    assert_eq!(wire.unclean(), Some(Unclean::InTransaction));
}

#[test]
fn a_standby_and_a_terminated_session_are_noticed() {
    let (wire, mut watch) = armed(true);
    watch.wrote(&message(b'Q', b"SELECT 1\0"));
    watch.read(
        &[
            complete("SELECT 1"),
            parameter("in_hot_standby", "on"),
            ready(b'I'),
        ]
        .concat(),
    );
    assert!(matches!(wire.unclean(), Some(Unclean::ServerLost(_))));
    let (wire, mut watch) = armed(true);
    watch.read(&error("57P01"));
    assert_eq!(wire.unclean(), Some(Unclean::ShutDown));
}

#[test]
fn discard_all_and_deallocate_all_change_the_epoch() {
    let (wire, mut watch) = armed(true);
    for tag in [
        "DISCARD ALL",
        "DEALLOCATE ALL",
        "DEALLOCATE",
        "DISCARD TEMP",
    ] {
        watch.read(&complete(tag));
    }
    assert_eq!(wire.epoch(), 2);
}

#[test]
fn nothing_is_read_before_the_wire_is_armed() {
    let wire = Arc::new(Wire::default());
    let mut watch = Watch::new(Arc::clone(&wire));
    // The SSLRequest answer and startup messages are not framed alike.
    watch.read(b"N");
    watch.wrote(&[0, 0, 0, 8, 4, 210, 22, 47]);
    wire.arm(true);
    watch.wrote(&message(b'Q', b"SELECT 1\0"));
    watch.read(&[complete("SELECT 1"), ready(b'I')].concat());
    assert_eq!(wire.unclean(), None);
    assert_eq!(wire.statements(), 1);
}

#[test]
fn a_stream_that_cannot_be_framing_is_never_clean() {
    let (wire, mut watch) = armed(true);
    watch.read(&[b'Z', 0, 0, 0, 1]);
    assert_eq!(wire.unclean(), Some(Unclean::LostSync));
}
