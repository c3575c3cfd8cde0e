//! The configuration files: one per Patroni member, one for the Raft
//! witness.
//!
//! Written as JSON, which Patroni's YAML loader reads as it is, so no YAML
//! is ever assembled by hand. What the settings are for:
//!
//! * **Failover in seconds.** `loop_wait = 1` (Patroni's minimum; a node
//!   looks at the cluster every second), `ttl = 20` (the minimum; only a
//!   node that dies with its Patroni waits for it), `retry_timeout = 5`
//!   (`loop_wait + 2 * retry_timeout <= ttl`), and `primary_start_timeout
//!   = 0`: a primary whose postmaster crashed is not restarted in place but
//!   failed over at once when a healthy synchronous standby exists.
//! * **No acknowledged write lost.** `synchronous_mode = true` with
//!   `synchronous_commit = on`: a commit returns once the synchronous
//!   standby has it, and only that standby may be promoted. Not strict:
//!   with the standby gone the primary keeps accepting writes.
//! * **The old primary rejoins.** `use_pg_rewind` and `wal_log_hints`, and
//!   replication slots, so it can follow the new timeline after a crash.
//! * **Isolated.** Every address is `127.0.0.1` on a port of its own, the
//!   Unix socket lives in the member's directory, and `pg_hba.conf` trusts
//!   only the private socket and loopback, except the application role,
//!   which needs its password (SCRAM).
//!
//! Invariant: no password is ever written here (the application role's is
//! set over `psql`'s standard input after the cluster is up).

use std::path::Path;

use serde_json::{json, Value};

use crate::server::HOST;
use crate::template::SUPERUSER;

/// The ports and directories of one member.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) pg_port: u16,
    pub(crate) api_port: u16,
    pub(crate) raft_port: u16,
    /// The member's own directory (data, socket, Raft journal inside).
    pub(crate) dir: &'a Path,
}

/// Everything shared by the members of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterSpec<'a> {
    /// Patroni's `scope`: unique per cluster, so two never mix.
    pub(crate) scope: &'a str,
    /// The PostgreSQL binaries.
    pub(crate) bin_dir: &'a Path,
    /// The role that logs in with a password over TCP.
    pub(crate) app_user: &'a str,
    /// Every Raft address: the members' and the witness's.
    pub(crate) raft_peers: Vec<String>,
}

/// The Patroni configuration of `member`.
pub(crate) fn member(cluster: &ClusterSpec<'_>, member: &MemberSpec<'_>) -> Value {
    let dir = member.dir;
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let self_addr = format!("{HOST}:{}", member.raft_port);
    let api = format!("{HOST}:{}", member.api_port);
    let pg = format!("{HOST}:{}", member.pg_port);
    json!({
        "scope": cluster.scope,
        "name": member.name,
        "log": { "level": "INFO" },
        "restapi": { "listen": api, "connect_address": api },
        "raft": {
            "data_dir": path("raft"),
            "self_addr": self_addr,
            "partner_addrs": partners(cluster, &self_addr),
        },
        "bootstrap": {
            "dcs": {
                "ttl": 20,
                "loop_wait": 1,
                "retry_timeout": 5,
                "primary_start_timeout": 0,
                "synchronous_mode": true,
                "postgresql": {
                    "use_pg_rewind": true,
                    "use_slots": true,
                    "parameters": {
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",
                        "synchronous_commit": "on",
                        "max_wal_senders": 8,
                        "max_replication_slots": 8,
                        // Durability against a crash of the server, not of
                        // the machine: a killed postmaster loses nothing the
                        // kernel already has.
                        "fsync": "off",
                        // A standby that lost its primary retries this often
                        // (default 5 s), so a promotion is not held up.
                        "wal_retrieve_retry_interval": "100ms",
                    },
                },
            },
            "initdb": [ { "encoding": "UTF8" }, { "locale": "C" } ],
        },
        "postgresql": {
            "listen": pg,
            "connect_address": pg,
            "data_dir": path("data"),
            "bin_dir": cluster.bin_dir.to_string_lossy(),
            "pgpass": path("pgpass"),
            "authentication": {
                "superuser": { "username": SUPERUSER },
                "replication": { "username": SUPERUSER },
                "rewind": { "username": SUPERUSER },
            },
            "parameters": { "unix_socket_directories": path("socket") },
            "pg_hba": pg_hba(cluster.app_user),
        },
        "watchdog": { "mode": "off" },
        "tags": { "nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false },
    })
}

/// The Raft witness (`patroni_raft_controller`): a voter that holds no
/// PostgreSQL, so the DCS keeps its quorum whichever member is busy.
pub(crate) fn witness(cluster: &ClusterSpec<'_>, raft_port: u16, dir: &Path) -> Value {
    let self_addr = format!("{HOST}:{raft_port}");
    json!({
        "raft": {
            "data_dir": dir.join("raft").to_string_lossy(),
            "self_addr": self_addr,
            "partner_addrs": partners(cluster, &self_addr),
        },
    })
}

fn partners(cluster: &ClusterSpec<'_>, self_addr: &str) -> Vec<String> {
    cluster
        .raft_peers
        .iter()
        .filter(|addr| *addr != self_addr)
        .cloned()
        .collect()
}

/// Trust over the private socket and loopback (the superuser, replication,
/// `pg_rewind`), except `app_user`, which needs its password over TCP.
/// First match wins, so the password line comes first.
fn pg_hba(app_user: &str) -> Vec<String> {
    let app = quote_hba(app_user);
    vec![
        "local all all trust".to_owned(),
        "local replication all trust".to_owned(),
        format!("host all {app} {HOST}/32 scram-sha-256"),
        format!("host all all {HOST}/32 trust"),
        format!("host replication all {HOST}/32 trust"),
    ]
}

/// A role name for `pg_hba.conf`: double-quoted, quotes doubled.
fn quote_hba(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterSpec<'static> {
        ClusterSpec {
            scope: "s",
            bin_dir: Path::new("/usr/lib/postgresql/15/bin"),
            app_user: "app",
            raft_peers: vec![
                "127.0.0.1:1".into(),
                "127.0.0.1:2".into(),
                "127.0.0.1:3".into(),
            ],
        }
    }

    #[test]
    fn a_member_names_every_raft_peer_but_itself_and_fails_over_on_a_crash() {
        let spec = MemberSpec {
            name: "m0",
            pg_port: 10,
            api_port: 11,
            raft_port: 2,
            dir: Path::new("/x/m0"),
        };
        let config = member(&cluster(), &spec);
        assert_eq!(
            config["raft"]["partner_addrs"],
            json!(["127.0.0.1:1", "127.0.0.1:3"])
        );
        assert_eq!(config["raft"]["self_addr"], "127.0.0.1:2");
        assert_eq!(config["bootstrap"]["dcs"]["primary_start_timeout"], 0);
        assert_eq!(config["bootstrap"]["dcs"]["synchronous_mode"], true);
        assert_eq!(config["postgresql"]["data_dir"], "/x/m0/data");
        assert_eq!(config["postgresql"]["listen"], "127.0.0.1:10");
        assert_eq!(config["restapi"]["listen"], "127.0.0.1:11");
    }

    #[test]
    fn the_application_role_needs_its_password_before_loopback_trust_applies() {
        let lines = pg_hba("a\"pp");
        let password = lines
            .iter()
            .position(|l| l.contains("scram-sha-256"))
            .expect("a password line");
        let trust = lines
            .iter()
            .position(|l| l.starts_with("host all all"))
            .expect("a trust line");
        assert!(password < trust, "{lines:?}");
        assert!(lines[password].contains("\"a\"\"pp\""), "{lines:?}");
    }

    #[test]
    fn the_witness_names_the_members_only() {
        let config = witness(&cluster(), 3, Path::new("/x/w"));
        assert_eq!(
            config["raft"]["partner_addrs"],
            json!(["127.0.0.1:1", "127.0.0.1:2"])
        );
        assert_eq!(config["raft"]["data_dir"], "/x/w/raft");
    }
}
