//! What a test does to a running [`PatroniCluster`]: read Patroni's view,
//! wait for a state, crash a postmaster, ask for a switchover.
//!
//! Every wait polls state (Patroni's REST API) with the kit's backoff (1 ms
//! doubling to 20 ms) under a deadline, and gives up early, with the log,
//! when a member's Patroni has exited: a test fails with evidence, never
//! hangs. Each REST request has its own short timeout, so a member that
//! hangs costs one poll, not the wait.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::error::{Result, TempDbError, LOG_TAIL_LINES};
use crate::exec::Backoff;

use super::rest::{self, MemberStatus};
use super::{PatroniCluster, PatroniMember};

/// Bound for a failover or switchover to produce a new leader, and for a
/// member to rejoin as a streaming replica.
const ROLE_CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one REST request of a poll.
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Bound for `POST /switchover`, which answers once the switch is done.
const SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(60);

impl PatroniCluster {
    /// The members as Patroni's `GET /cluster` shows them, from the first
    /// member whose REST API answers.
    pub fn status(&self) -> Result<Vec<MemberStatus>> {
        let mut last = String::from("no member to ask");
        for member in &self.members {
            match rest::get(member.api_port(), "/cluster", POLL_REQUEST_TIMEOUT) {
                Ok(response) if response.status == 200 => {
                    if let Some(members) = rest::parse_cluster(&response.body) {
                        return Ok(members);
                    }
                    last = format!("{}: unexpected body {:?}", member.name(), response.body);
                }
                Ok(response) => last = format!("{}: HTTP {}", member.name(), response.status),
                Err(e) => last = format!("{}: {e}", member.name()),
            }
        }
        Err(TempDbError::UnexpectedOutput {
            command: "GET /cluster (Patroni's REST API)".into(),
            output: last,
        })
    }

    /// The member Patroni shows as the running leader.
    pub fn leader(&self) -> Result<&PatroniMember> {
        let status = self.status()?;
        status
            .iter()
            .find(|m| m.is_running_leader())
            .and_then(|m| self.members.iter().find(|member| member.name() == m.name))
            .ok_or_else(|| TempDbError::UnexpectedOutput {
                command: "GET /cluster (looking for the running leader)".into(),
                output: format!("{status:?}"),
            })
    }

    /// Waits until one member leads with PostgreSQL running and every other
    /// member streams from it on its timeline, one of them as the
    /// synchronous standby: a cluster that can fail over without losing an
    /// acknowledged write. Bounded by 60 s.
    pub fn wait_until_replicating(&self) -> Result<()> {
        self.wait_until_replicating_within(ROLE_CHANGE_TIMEOUT)
    }

    pub(super) fn wait_until_replicating_within(&self, timeout: Duration) -> Result<()> {
        let count = self.members.len();
        self.wait_for(
            "every member to stream from the leader",
            timeout,
            |status| {
                let Some(leader) = status.iter().find(|m| m.is_running_leader()) else {
                    return false;
                };
                let followers = status.iter().filter(|m| m.name != leader.name);
                status.len() == count
                    && followers
                        .clone()
                        .all(|m| m.is_streaming() && m.timeline == leader.timeline)
                    && followers.clone().any(|m| m.role == "sync_standby")
            },
        )
    }

    /// Waits until a member other than `old` holds the leader lock (its
    /// `GET /leader` answers 200) and returns it with the moment Patroni
    /// reported it: the send time of the request that got the 200, so the
    /// report is never dated later than it was. Bounded by 60 s.
    pub fn wait_for_new_leader(&self, old: &PatroniMember) -> Result<(&PatroniMember, Instant)> {
        let deadline = Instant::now() + ROLE_CHANGE_TIMEOUT;
        let mut backoff = Backoff::new();
        loop {
            for member in self.members.iter().filter(|m| m.name() != old.name()) {
                let asked = Instant::now();
                if let Ok(response) = rest::get(member.api_port(), "/leader", POLL_REQUEST_TIMEOUT)
                {
                    if response.status == 200 {
                        return Ok((member, asked));
                    }
                }
            }
            self.check_running()?;
            if Instant::now() >= deadline {
                return Err(self.timeout("a new leader", ROLE_CHANGE_TIMEOUT));
            }
            backoff.sleep_until_next(deadline);
        }
    }

    /// `kill -9` of `member`'s postmaster, as a crash would be: SIGKILL, no
    /// shutdown. Patroni notices within a second (`loop_wait`) and, since
    /// `primary_start_timeout` is 0, fails over if the member led. Returns
    /// once the process is gone; returns its pid.
    pub fn kill_postmaster(&self, member: &PatroniMember) -> Result<u32> {
        member.kill_postmaster()
    }

    /// Asks Patroni (`POST /switchover` on `leader`'s REST API) to hand the
    /// leader lock to `candidate`: the leader shuts down cleanly, the
    /// candidate is promoted, the old leader comes back as a replica.
    /// Returns when Patroni answers, once the candidate leads.
    pub fn switchover(&self, leader: &PatroniMember, candidate: &PatroniMember) -> Result<()> {
        let body = json!({ "leader": leader.name(), "candidate": candidate.name() }).to_string();
        let what = format!("POST /switchover {body} (Patroni's REST API)");
        let response = rest::post(leader.api_port(), "/switchover", &body, SWITCHOVER_TIMEOUT)
            .map_err(|e| TempDbError::io(what.clone(), e))?;
        if response.status == 200 {
            return Ok(());
        }
        Err(TempDbError::CommandFailed {
            command: what,
            status: format!("HTTP {}", response.status),
            stderr: response.body,
            log_tail: Some(leader.log_tail(LOG_TAIL_LINES)),
        })
    }

    /// Polls `GET /cluster` until `done` holds, for at most `timeout`.
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[MemberStatus]) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new();
        loop {
            if let Ok(status) = self.status() {
                if done(&status) {
                    return Ok(());
                }
            }
            self.check_running()?;
            if Instant::now() >= deadline {
                return Err(self.timeout(what, timeout));
            }
            backoff.sleep_until_next(deadline);
        }
    }

    /// An error for the first member whose Patroni has exited.
    fn check_running(&self) -> Result<()> {
        for member in &self.members {
            if let Some(status) = member.exited() {
                return Err(member.exited_error(status));
            }
        }
        Ok(())
    }

    /// A timeout that carries Patroni's last view and every member's log.
    fn timeout(&self, what: &str, timeout: Duration) -> TempDbError {
        let mut evidence = match self.status() {
            Ok(status) => format!("last view: {status:?}\n"),
            Err(e) => format!("no view: {e}\n"),
        };
        for member in &self.members {
            evidence.push_str(&format!(
                "--- {} ({}) ---\n{}\n",
                member.name(),
                member.log_path().display(),
                member.log_tail(LOG_TAIL_LINES)
            ));
        }
        TempDbError::Timeout {
            operation: format!("waiting for {what}"),
            timeout,
            log_tail: Some(evidence),
        }
    }
}
