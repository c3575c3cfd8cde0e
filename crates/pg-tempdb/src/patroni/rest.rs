//! Patroni's REST API, over a plain HTTP/1.0 exchange on loopback.
//!
//! Only what the kit needs: `GET /cluster` (the DCS view: who leads, who
//! streams, on which timeline), `GET /leader` (200 only on the node that
//! holds the leader lock: the moment Patroni *reports* a new leader), and
//! `POST /switchover`. One request per connection (`Connection: close`),
//! each bounded by its own timeout, so a member that hangs costs a poll at
//! most that long and never blocks the kit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::server::HOST;

/// An answer: the status code and the body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// `GET path` on `127.0.0.1:port`, within `timeout`.
pub(crate) fn get(port: u16, path: &str, timeout: Duration) -> std::io::Result<Response> {
    exchange(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"),
        timeout,
    )
}

/// `POST path` with a JSON `body` on `127.0.0.1:port`, within `timeout`.
pub(crate) fn post(
    port: u16,
    path: &str,
    body: &str,
    timeout: Duration,
) -> std::io::Result<Response> {
    exchange(
        port,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: {HOST}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        timeout,
    )
}

fn exchange(port: u16, request: &str, timeout: Duration) -> std::io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&String::from_utf8_lossy(&raw)).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response from 127.0.0.1:{port}"),
        )
    })
}

/// `HTTP/1.0 200 OK\r\n...\r\n\r\nbody` -> status and body.
fn parse_response(raw: &str) -> Option<Response> {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Response {
        status,
        body: body.to_owned(),
    })
}

/// One member as `GET /cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member's name (`m0`, `m1`, ...).
    pub name: String,
    /// `leader`, `sync_standby`, `replica`, ...
    pub role: String,
    /// `running` (a leader), `streaming` (a replica that follows it),
    /// `stopped`, `starting`, `crashed`, ...
    pub state: String,
    /// The PostgreSQL timeline, when the member reports one.
    pub timeline: Option<u64>,
}

impl MemberStatus {
    /// The leader with PostgreSQL running.
    pub fn is_running_leader(&self) -> bool {
        self.role == "leader" && self.state == "running"
    }

    /// A replica streaming from the leader.
    pub fn is_streaming(&self) -> bool {
        self.role != "leader" && self.state == "streaming"
    }
}

/// The members of `GET /cluster`'s JSON, in its order; `None` if it is not
/// that shape.
pub(crate) fn parse_cluster(body: &str) -> Option<Vec<MemberStatus>> {
    let value: Value = serde_json::from_str(body).ok()?;
    value["members"]
        .as_array()?
        .iter()
        .map(|m| {
            Some(MemberStatus {
                name: m["name"].as_str()?.to_owned(),
                role: m["role"].as_str().unwrap_or_default().to_owned(),
                state: m["state"].as_str().unwrap_or_default().to_owned(),
                timeline: m["timeline"].as_u64(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_split_into_status_and_body() {
        let response = parse_response("HTTP/1.0 503 Service Unavailable\r\nA: b\r\n\r\n{\"x\": 1}")
            .expect("parsed");
        assert_eq!(response.status, 503);
        assert_eq!(response.body, "{\"x\": 1}");
        assert!(parse_response("garbage").is_none());
    }

    #[test]
    fn the_cluster_view_names_the_leader_and_the_streaming_replica() {
        let body = r#"{"members": [
            {"name": "m0", "role": "leader", "state": "running", "timeline": 2},
            {"name": "m1", "role": "sync_standby", "state": "streaming", "timeline": 2, "lag": 0},
            {"name": "m2", "role": "replica", "state": "stopped", "lag": "unknown"}
        ], "scope": "s"}"#;
        let members = parse_cluster(body).expect("parsed");
        assert_eq!(members.len(), 3);
        assert!(members[0].is_running_leader());
        assert!(members[1].is_streaming());
        assert_eq!(members[1].timeline, Some(2));
        assert!(!members[2].is_streaming());
        assert_eq!(members[2].timeline, None);
        assert!(parse_cluster("{}").is_none());
    }
}
