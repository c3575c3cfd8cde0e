//! [`PatroniBuilder`]: what a [`PatroniCluster`] is made of, checked
//! before anything starts, and the start with its retry when a port picked
//! as free was taken meanwhile.

use std::fmt;
use std::sync::Arc;

use super::{install, Launch, PatroniCluster, START_ATTEMPTS};
use crate::binaries::Installation;
use crate::error::{Result, TempDbError};
use crate::template::SUPERUSER;

/// Configures a [`PatroniCluster`]; get one from [`PatroniCluster::builder`].
#[derive(Clone)]
pub struct PatroniBuilder {
    pub(super) user: String,
    pub(super) password: Option<String>,
    pub(super) members: usize,
}

impl PatroniBuilder {
    /// The role [`PatroniCluster::url`] connects as (default `app`); created
    /// as an ordinary role with `LOGIN`, allowed to create objects in the
    /// `public` schema of the `postgres` database. It may not be the
    /// superuser, which Patroni itself uses.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// The role's password; with one, TCP logins as that role need it
    /// (SCRAM-SHA-256). Default: none (trust).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// How many PostgreSQL members (default 2, at most 3).
    pub fn members(mut self, members: usize) -> Self {
        self.members = members;
        self
    }

    /// Starts the cluster and waits (bounded) until it has a leader and
    /// every other member streams from it, one of them synchronously.
    /// `Ok(None)` when Patroni is not installed (see the module docs).
    /// Blocking: about 5–15 s.
    pub fn start(self) -> Result<Option<PatroniCluster>> {
        self.validate()?;
        let install = Arc::new(Installation::discover()?);
        let Some(patroni) = install::find(&install)? else {
            return Ok(None);
        };
        let mut attempt = 1;
        loop {
            match PatroniCluster::launch(&self, &install, &patroni) {
                Ok(cluster) => return Ok(Some(cluster)),
                Err(Launch { error, port_taken }) => {
                    if !port_taken || attempt == START_ATTEMPTS {
                        return Err(error);
                    }
                    tracing::debug!(target: "pg_tempdb", %error, attempt, "a port was taken; starting again");
                    attempt += 1;
                }
            }
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |name: &str, reason: String| {
            Err(TempDbError::InvalidSetting {
                name: name.into(),
                reason,
            })
        };
        if !(2..=3).contains(&self.members) {
            return invalid(
                "members",
                format!("{} members; 2 or 3 are supported", self.members),
            );
        }
        if self.user == SUPERUSER || self.user.is_empty() || self.user.contains('\0') {
            return invalid(
                "user",
                format!("{:?} cannot be the application role: Patroni logs in as the superuser `{SUPERUSER}`", self.user),
            );
        }
        Ok(())
    }
}

impl fmt::Debug for PatroniBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatroniBuilder")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("members", &self.members)
            .finish()
    }
}
