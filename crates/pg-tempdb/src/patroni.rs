//! [`PatroniCluster`]: PostgreSQL under a real high-availability manager,
//! Patroni, with its built-in Raft DCS, for failover and switchover tests.
//!
//! Design: two or three members, each one Patroni process that runs its own
//! PostgreSQL, plus a Raft witness (`patroni_raft_controller`), all on
//! `127.0.0.1` ports of their own and in one private directory:
//!
//! ```text
//! pg-tempdb-patroni-XXXXXX/   mode 0700, owned by the server user
//!   reaper.py                 runs each process as a child subreaper (process.rs)
//!   m0/ m1/ [m2/]             one member each: patroni.json, patroni.log
//!                             (Patroni's and PostgreSQL's output), data/,
//!                             socket/, raft/
//!   witness/                  the Raft witness: patroni.json, patroni.log, raft/
//! ```
//!
//! Patroni bootstraps the cluster itself (`initdb` on the member that wins
//! the race, `pg_basebackup` on the others) and promotes, demotes and
//! rewinds as it would in production; the kit only starts and stops the
//! Patroni processes, reads the REST API, and kills a postmaster when a
//! test asks. The settings (`config.rs`) make a failover take about a
//! second and keep every acknowledged write (synchronous replication).
//!
//! Finding Patroni: see `install.rs`. [`PatroniCluster::builder`]`.start()`
//! returns `Ok(None)` when Patroni is not installed, so a test can say so
//! and skip; [`PatroniCluster::INSTALL_HINT`] says how to install it.
//!
//! Invariant: like a `TempDb`, every wait is bounded, and dropping a
//! `PatroniCluster` (also while a test panics) stops every process the kit
//! started (only our own children and their children, checked, are ever
//! signalled) and deletes the directory; a guardian does the same if this
//! process dies without `Drop`. Running as root, every process runs as the
//! `postgres` user, like the other servers of the kit.

mod builder;
mod config;
mod controls;
mod install;
mod member;
mod process;
mod rest;

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use crate::admin::quote_ident;
use crate::binaries::Installation;
use crate::error::{Result, TempDbError};
use crate::exec;
use crate::layout::{create_root, remove_patiently};
use crate::server::{percent_encode, HOST};

pub use builder::PatroniBuilder;
pub use member::PatroniMember;
pub use rest::MemberStatus;

use config::{ClusterSpec, MemberSpec};
use process::{Spawn, Supervised};

/// Bound for the whole cluster to come up: bootstrap (`initdb`), the
/// replicas' base backups, and synchronous streaming.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How many times a start is tried when a port picked as free was taken
/// meanwhile by someone else.
const START_ATTEMPTS: u32 = 3;

/// A Patroni-managed PostgreSQL cluster, stopped and deleted on drop.
///
/// ```no_run
/// # fn demo() -> Result<(), pg_tempdb::TempDbError> {
/// use pg_tempdb::PatroniCluster;
///
/// let Some(cluster) = PatroniCluster::builder().password("secret").start()? else {
///     println!("skipping: Patroni not found; {}", PatroniCluster::INSTALL_HINT);
///     return Ok(());
/// };
/// let url = cluster.url("read-write"); // postgres://app:secret@127.0.0.1:p0,127.0.0.1:p1/postgres?..
/// let old = cluster.leader()?;
/// cluster.kill_postmaster(old)?; // Patroni fails over
/// let (new, _reported_at) = cluster.wait_for_new_leader(old)?;
/// assert_ne!(new.name(), old.name());
/// # let _ = url;
/// # Ok(()) }
/// ```
pub struct PatroniCluster {
    /// Stopped first on drop: the members, then the witness.
    members: Vec<PatroniMember>,
    witness: Option<Supervised>,
    install: Arc<Installation>,
    version: String,
    user: String,
    password: Option<String>,
    /// `None` only during `Drop`.
    root: Option<TempDir>,
}

/// Why a launch failed, and whether trying again may help.
struct Launch {
    pub(super) error: TempDbError,
    pub(super) port_taken: bool,
}

impl PatroniCluster {
    /// How to install the pinned Patroni where the kit finds it.
    pub const INSTALL_HINT: &'static str =
        "install it with `python3 -m venv /opt/patroni-4.1.5 && \
         /opt/patroni-4.1.5/bin/pip install 'patroni[raft,psycopg2-binary]==4.1.5'`, or run \
         .ci/run, or set PATRONI to a `patroni` script whose Python has the raft extra";

    /// The Patroni version `.ci/run` installs, e.g. `4.1.5`.
    pub const PINNED_VERSION: &'static str = install::PINNED_VERSION;

    /// A builder: 2 members, role `app` without a password.
    pub fn builder() -> PatroniBuilder {
        PatroniBuilder {
            user: "app".to_owned(),
            password: None,
            members: 2,
        }
    }

    fn launch(
        builder: &PatroniBuilder,
        install: &Arc<Installation>,
        patroni: &install::Patroni,
    ) -> Result<Self, Launch> {
        let fail = |error| Launch {
            error,
            port_taken: false,
        };
        let root =
            create_root("pg-tempdb-patroni-", "the Patroni cluster directory").map_err(fail)?;
        install.chown(root.path()).map_err(fail)?;
        let reaper_script = root.path().join("reaper.py");
        write_owned(install, &reaper_script, process::REAPER_SCRIPT, 0o644).map_err(fail)?;
        let scope = root.path().file_name().map_or_else(
            || "pg-tempdb".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );

        let specs: Vec<(String, [u16; 3])> = (0..builder.members)
            .map(|i| {
                Ok((
                    format!("m{i}"),
                    [exec::free_port()?, exec::free_port()?, exec::free_port()?],
                ))
            })
            .collect::<Result<_>>()
            .map_err(fail)?;
        let witness_port = exec::free_port().map_err(fail)?;
        let cluster_spec = ClusterSpec {
            scope: &scope,
            bin_dir: &install.bindir,
            app_user: &builder.user,
            raft_peers: specs
                .iter()
                .map(|(_, [_, _, raft])| *raft)
                .chain([witness_port])
                .map(|port| format!("{HOST}:{port}"))
                .collect(),
        };
        let mut cluster = Self {
            members: Vec::new(),
            witness: None,
            install: Arc::clone(install),
            version: patroni.version.clone(),
            user: builder.user.clone(),
            password: builder.password.clone(),
            root: None,
        };
        // From here on, `Drop` cleans up whatever fails.
        let root_path = root.path().to_path_buf();
        cluster.root = Some(root);
        let spawn = |name: &str, program: &Path, config: serde_json::Value| -> Result<Supervised> {
            let dir = root_path.join(name);
            make_dir(install, &dir)?;
            let config_path = dir.join("patroni.json");
            write_owned(install, &config_path, &config.to_string(), 0o600)?;
            Supervised::spawn(Spawn {
                install,
                python: &patroni.python,
                reaper_script: &reaper_script,
                program,
                config: &config_path,
                home: &dir,
                log_path: dir.join("patroni.log"),
                cluster_root: &root_path,
                what: format!("patroni {name}"),
            })
        };
        let witness_dir = root_path.join("witness");
        cluster.witness = Some(
            spawn(
                "witness",
                &patroni.raft_controller,
                config::witness(&cluster_spec, witness_port, &witness_dir),
            )
            .map_err(fail)?,
        );
        for (name, [pg_port, api_port, raft_port]) in &specs {
            let dir = root_path.join(name);
            make_dir(install, &dir).map_err(fail)?;
            make_dir(install, &dir.join("socket")).map_err(fail)?;
            let spec = MemberSpec {
                name,
                pg_port: *pg_port,
                api_port: *api_port,
                raft_port: *raft_port,
                dir: &dir,
            };
            let process = spawn(name, &patroni.patroni, config::member(&cluster_spec, &spec));
            let process = process.map_err(fail)?;
            cluster.members.push(PatroniMember::new(
                name,
                [*pg_port, *api_port],
                &dir,
                process,
                builder.password.clone(),
            ));
        }
        if let Err(error) = cluster.wait_until_replicating_within(START_TIMEOUT) {
            let port_taken = cluster
                .members
                .iter()
                .any(|m| m.log_tail(200).contains("Address already in use"));
            return Err(Launch { error, port_taken });
        }
        cluster.provision().map_err(fail)?;
        Ok(cluster)
    }

    /// Creates the application role on the leader (it replicates).
    fn provision(&self) -> Result<()> {
        let user = quote_ident(&self.user);
        let password = self
            .password
            .as_deref()
            .map(|p| format!(" PASSWORD '{}'", p.replace('\'', "''")))
            .unwrap_or_default();
        let script = format!(
            "CREATE ROLE {user} LOGIN{password};\nGRANT CREATE ON SCHEMA public TO {user};\n"
        );
        self.leader()?.run_sql(
            &self.install,
            "creating the application role",
            script,
            self.password(),
        )?;
        Ok(())
    }

    /// A multi-host URL naming every member in order:
    /// `postgres://user[:password]@127.0.0.1:p0,127.0.0.1:p1/postgres?target_session_attrs=..`.
    pub fn url(&self, target_session_attrs: &str) -> String {
        let password = self
            .password
            .as_deref()
            .map(|p| format!(":{}", percent_encode(p)))
            .unwrap_or_default();
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{HOST}:{}", m.port()))
            .collect();
        format!(
            "postgres://{}{password}@{}/postgres?target_session_attrs={target_session_attrs}",
            percent_encode(&self.user),
            hosts.join(",")
        )
    }

    /// Every member, in the order of [`url`](Self::url).
    pub fn members(&self) -> &[PatroniMember] {
        &self.members
    }

    /// The member serving on TCP port `port`, if any.
    pub fn member_on_port(&self, port: u16) -> Option<&PatroniMember> {
        self.members.iter().find(|m| m.port() == port)
    }

    /// The Patroni version that runs the cluster.
    pub fn patroni_version(&self) -> &str {
        &self.version
    }

    /// The role [`url`](Self::url) connects as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// That role's password, if one was set.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Runs `sql` as the superuser on `member` (over its private socket)
    /// and returns what `psql -A -t` printed, trimmed.
    pub fn execute(&self, member: &PatroniMember, sql: &str) -> Result<String> {
        member.run_sql(&self.install, "psql", sql.to_owned(), self.password())
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.stop();
        }
        if let Some(mut witness) = self.witness.take() {
            witness.stop();
        }
        if let Some(root) = self.root.take() {
            remove_patiently(root);
        }
    }
}

impl fmt::Debug for PatroniCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatroniCluster")
            .field("members", &self.members)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn make_dir(install: &Installation, dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::create_dir(dir)
            .map_err(|e| TempDbError::io(format!("creating {}", dir.display()), e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| TempDbError::io(format!("restricting {}", dir.display()), e))?;
    }
    install.chown(dir)
}

fn write_owned(install: &Installation, path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| TempDbError::io(format!("writing {}", path.display()), e))?;
    install.chown(path)
}

#[cfg(test)]
mod tests;
