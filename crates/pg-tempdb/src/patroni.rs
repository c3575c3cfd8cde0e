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

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use tempfile::TempDir;

use crate::binaries::Installation;
use crate::error::{Result, TempDbError};
use crate::exec;
use crate::layout::remove_patiently;
use crate::server::HOST;
use crate::template::SUPERUSER;

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
/// Environment variable naming the directory for cluster directories.
const DIR_ENV: &str = "PG_TEMPDB_DIR";
/// The memory-backed directory preferred for cluster directories.
const SHM_DIR: &str = "/dev/shm";
/// Free space `/dev/shm` needs to be used (room for a few clusters).
const SHM_MIN_FREE: u64 = 1 << 30;

/// Configures a [`PatroniCluster`]; get one from [`PatroniCluster::builder`].
#[derive(Clone)]
pub struct PatroniBuilder {
    user: String,
    password: Option<String>,
    members: usize,
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
    error: TempDbError,
    port_taken: bool,
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
        let root = create_root().map_err(fail)?;
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

/// `"name"`, with double quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The cluster's directory: under `PG_TEMPDB_DIR` if set, else `/dev/shm`
/// when it has room (a data directory's ~1,000 files are created several
/// times faster in memory), else the system temp directory.
fn create_root() -> Result<TempDir> {
    let mut builder = tempfile::Builder::new();
    builder
        .prefix("pg-tempdb-patroni-")
        .permissions(fs::Permissions::from_mode(0o700));
    let created = if let Some(dir) = std::env::var_os(DIR_ENV).filter(|v| !v.is_empty()) {
        builder.tempdir_in(dir)
    } else {
        let shm_has_room = rustix::fs::statvfs(SHM_DIR)
            .is_ok_and(|s| s.f_bavail.saturating_mul(s.f_frsize) >= SHM_MIN_FREE);
        match shm_has_room.then(|| builder.tempdir_in(SHM_DIR)) {
            Some(Ok(root)) => Ok(root),
            _ => builder.tempdir(),
        }
    };
    created.map_err(|e| TempDbError::io("creating the Patroni cluster directory", e))
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

/// Every byte but the RFC 3986 unreserved characters, as in `TempDb::url`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_superuser_application_role_or_a_lone_member_is_refused_before_anything_starts() {
        for builder in [
            PatroniCluster::builder().user(SUPERUSER),
            PatroniCluster::builder().members(1),
            PatroniCluster::builder().members(4),
        ] {
            let error = builder.start().expect_err("refused");
            assert!(
                matches!(error, TempDbError::InvalidSetting { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn the_public_install_hint_names_the_pinned_version() {
        let pinned = format!(
            "patroni[raft,psycopg2-binary]=={}'",
            PatroniCluster::PINNED_VERSION
        );
        assert!(PatroniCluster::INSTALL_HINT.contains(&pinned));
        assert!(install::install_hint().contains(&pinned));
    }

    #[test]
    fn the_url_names_every_member_and_encodes_the_password() {
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    /// Says why a test is skipped; fails it instead under
    /// `POOL_REQUIRE_PATRONI=1` (set by `.ci/run`).
    fn skip_without_patroni() {
        assert!(
            std::env::var("POOL_REQUIRE_PATRONI").map_or(true, |v| v != "1"),
            "POOL_REQUIRE_PATRONI=1 but Patroni was not found; {}",
            PatroniCluster::INSTALL_HINT
        );
        println!(
            "skipping: Patroni not found; {}",
            PatroniCluster::INSTALL_HINT
        );
    }

    /// The postmaster pids of `cluster`'s members, from their pid files.
    fn postmaster_pids(cluster: &PatroniCluster) -> Vec<u32> {
        cluster
            .members()
            .iter()
            .filter_map(|m| std::fs::read_to_string(m.data_dir().join("postmaster.pid")).ok())
            .filter_map(|text| text.lines().next()?.trim().parse().ok())
            .collect()
    }

    /// In the child process of the test below: start a cluster and exit
    /// without running `Drop`, as a killed test process would.
    fn leak_a_cluster_and_exit() -> ! {
        let cluster = PatroniCluster::builder()
            .start()
            .expect("start a Patroni cluster")
            .expect("Patroni was found by the parent");
        let pids: Vec<String> = postmaster_pids(&cluster)
            .iter()
            .map(u32::to_string)
            .collect();
        let root = cluster
            .root
            .as_ref()
            .expect("root")
            .path()
            .display()
            .to_string();
        println!("LEAKED {} {root}", pids.join(","));
        std::process::exit(0);
    }

    #[test]
    fn a_cluster_leaked_by_a_dead_process_is_stopped_and_deleted_by_its_guardians() {
        const CHILD_ENV: &str = "PG_TEMPDB_LEAK_PATRONI_CHILD";
        if std::env::var_os(CHILD_ENV).is_some() {
            leak_a_cluster_and_exit();
        }
        let install = Installation::discover().expect("PostgreSQL binaries");
        if install::find(&install)
            .expect("a usable Patroni, or none")
            .is_none()
        {
            return skip_without_patroni();
        }
        let output = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .args(["--exact", "patroni::tests::a_cluster_leaked_by_a_dead_process_is_stopped_and_deleted_by_its_guardians", "--nocapture"])
            .env(CHILD_ENV, "1")
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("LEAKED "))
            .unwrap_or_else(|| panic!("the child printed no LEAKED line: {stdout}"));
        let (pids, root) = line.split_once(' ').expect("pids and a directory");
        let pids: Vec<u32> = pids.split(',').map(|p| p.parse().expect("a pid")).collect();
        assert_eq!(pids.len(), 2, "{line}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        assert!(
            exec::wait_gone(&pids, deadline),
            "postmasters {pids:?} outlived their test"
        );
        let mut backoff = exec::Backoff::new();
        while Path::new(root).exists() {
            assert!(std::time::Instant::now() < deadline, "{root} is left");
            backoff.sleep_until_next(deadline);
        }
    }

    /// Starts a real cluster (skipped, saying so, without Patroni), checks
    /// Patroni's view, and that dropping it leaves no process or file.
    #[test]
    fn a_cluster_has_a_streaming_synchronous_standby_and_leaves_nothing_on_drop() {
        let cluster = match PatroniCluster::builder().password("pw-secret").start() {
            Ok(Some(cluster)) => cluster,
            Ok(None) => return skip_without_patroni(),
            Err(e) => panic!("start a Patroni cluster: {e}"),
        };
        let status = cluster.status().expect("GET /cluster");
        assert_eq!(status.len(), 2, "{status:?}");
        assert_eq!(status.iter().filter(|m| m.is_running_leader()).count(), 1);
        assert!(
            status.iter().any(|m| m.role == "sync_standby"),
            "{status:?}"
        );
        let url = cluster.url("read-write");
        let ports: Vec<String> = cluster
            .members()
            .iter()
            .map(|m| m.port().to_string())
            .collect();
        assert!(
            url.starts_with("postgres://app:pw-secret@127.0.0.1:"),
            "{url}"
        );
        assert!(ports.iter().all(|p| url.contains(p.as_str())), "{url}");
        assert!(!format!("{cluster:?}").contains("pw-secret"));

        let leader = cluster.leader().expect("a leader");
        let in_recovery = cluster
            .execute(leader, "SELECT pg_is_in_recovery()")
            .expect("ask the leader");
        assert_eq!(in_recovery, "f");
        let root = cluster.root.as_ref().expect("root").path().to_path_buf();
        let postmasters = postmaster_pids(&cluster);
        assert_eq!(postmasters.len(), 2);
        drop(cluster);
        assert!(!root.exists(), "{} is left", root.display());
        assert!(
            exec::wait_gone(
                &postmasters,
                std::time::Instant::now() + Duration::from_secs(5)
            ),
            "postmasters {postmasters:?} outlived the cluster"
        );
    }
}
