//! Finding the PostgreSQL binaries, and running them as a user PostgreSQL
//! accepts.
//!
//! Search order, first match wins:
//! 1. `PG_BINDIR`, if set. It must hold `initdb` and `postgres`; a wrong value
//!    is an error, never silently replaced by another installation.
//! 2. The first `PATH` entry holding both `initdb` and `pg_ctl`, resolved
//!    through symlinks (so `/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb`
//!    finds the real directory, where `psql` and `postgres` live too).
//! 3. `pg_config --bindir`.
//! 4. The newest `/usr/lib/postgresql/<version>/bin` (Debian and Ubuntu).
//!
//! PostgreSQL refuses to run as root. When the effective uid is 0, every
//! PostgreSQL command runs as the `postgres` user, switched to by
//! [`CommandExt::uid`]/[`CommandExt::gid`] in the child itself (no `runuser`
//! in between, so the pid we hold is the real process's, and no PAM session
//! per command). Otherwise commands run as the current user.
//!
//! Every command gets a scrubbed environment: `PG*` variables (`PGOPTIONS`,
//! `PGPASSWORD`, `PGHOST`, ...) would change what psql connects to or how the
//! server session behaves, so none are inherited; `LC_ALL=C` keeps messages
//! in English, which the kit matches on.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Result, TempDbError};
use crate::exec;

/// The user the server runs as when the kit runs as root.
const SERVER_USER_WHEN_ROOT: &str = "postgres";
/// Bound for the small look-up commands (`pg_config`, `postgres --version`, `id`).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Where Debian and Ubuntu install versioned server binaries.
const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";

/// The located binaries and the identity to run them under.
#[derive(Debug)]
pub(crate) struct Installation {
    /// The directory holding `initdb` and `postgres`.
    pub(crate) bindir: PathBuf,
    pub(crate) initdb: PathBuf,
    pub(crate) postgres: PathBuf,
    /// `psql` from `bindir` if present, else from `PATH`.
    pub(crate) psql: PathBuf,
    /// The server version, e.g. `15.18`.
    pub(crate) version: String,
    /// The major version, e.g. `15`.
    pub(crate) major: u32,
    /// Who runs the PostgreSQL processes.
    pub(crate) user: ServerUser,
}

/// The uid/gid PostgreSQL processes run as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// True when we are root and must switch to `uid`/`gid` in the child.
    pub(crate) switch: bool,
}

impl Installation {
    /// Locates the binaries and the server user. Costs a few milliseconds.
    pub(crate) fn discover() -> Result<Self> {
        let bindir = locate_bindir()?;
        let postgres = bindir.join("postgres");
        let version_line = version_of(&postgres)?;
        let (version, major) =
            parse_version(&version_line).ok_or_else(|| TempDbError::UnexpectedOutput {
                command: format!("{} --version", postgres.display()),
                output: version_line.clone(),
            })?;
        let psql = [bindir.join("psql")]
            .into_iter()
            .chain(find_in_path("psql"))
            .find(|p| is_executable(p))
            .unwrap_or_else(|| PathBuf::from("psql"));
        Ok(Self {
            initdb: bindir.join("initdb"),
            postgres,
            psql,
            version,
            major,
            user: ServerUser::discover()?,
            bindir,
        })
    }

    /// A command for `program`, with the scrubbed environment, run as the
    /// server user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir("/");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LC_ALL", "C");
        if self.user.switch {
            cmd.uid(self.user.uid).gid(self.user.gid);
        }
        cmd
    }

    /// Gives `path` to the server user (a no-op unless we switch users).
    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        if !self.user.switch {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(self.user.uid), Some(self.user.gid))
            .map_err(|e| TempDbError::io(format!("changing the owner of {}", path.display()), e))
    }
}

impl ServerUser {
    fn discover() -> Result<Self> {
        let euid = rustix::process::geteuid();
        if !euid.is_root() {
            return Ok(Self {
                uid: euid.as_raw(),
                gid: rustix::process::getegid().as_raw(),
                switch: false,
            });
        }
        let uid = id_of(SERVER_USER_WHEN_ROOT, "-u").ok_or(TempDbError::NoServerUser)?;
        let gid = id_of(SERVER_USER_WHEN_ROOT, "-g").ok_or(TempDbError::NoServerUser)?;
        if uid == 0 {
            return Err(TempDbError::NoServerUser);
        }
        Ok(Self {
            uid,
            gid,
            switch: true,
        })
    }
}

fn locate_bindir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        for missing in ["initdb", "postgres"] {
            if !is_executable(&dir.join(missing)) {
                return Err(TempDbError::InvalidBinDir { dir, missing });
            }
        }
        return Ok(dir);
    }
    from_path()
        .or_else(from_pg_config)
        .or_else(newest_debian_bindir)
        .ok_or(TempDbError::BinariesNotFound)
}

fn has_server(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn from_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl")))
        .find_map(|dir| {
            let real = std::fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .filter(|real| has_server(real));
            real.or_else(|| has_server(&dir).then_some(dir))
        })
}

fn from_pg_config() -> Option<PathBuf> {
    let pg_config = find_in_path("pg_config")?;
    let mut cmd = Command::new(pg_config);
    cmd.arg("--bindir");
    let done = exec::run(&mut cmd, "pg_config --bindir", None, LOOKUP_TIMEOUT).ok()?;
    let dir = PathBuf::from(done.stdout.trim());
    (done.status.success() && has_server(&dir)).then_some(dir)
}

fn newest_debian_bindir() -> Option<PathBuf> {
    std::fs::read_dir(DEBIAN_LIB_DIR)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = version_key(&entry.file_name())?;
            let bindir = entry.path().join("bin");
            has_server(&bindir).then_some((version, bindir))
        })
        .max()
        .map(|(_, bindir)| bindir)
}

/// `"15"` -> `[15]`, `"9.6"` -> `[9, 6]`; anything else is not a version.
fn version_key(name: &OsStr) -> Option<Vec<u32>> {
    name.to_str()?.split('.').map(|p| p.parse().ok()).collect()
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// An existing regular file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn version_of(postgres: &Path) -> Result<String> {
    let what = format!("{} --version", postgres.display());
    let mut cmd = Command::new(postgres);
    cmd.arg("--version").env("LC_ALL", "C");
    let done =
        exec::run(&mut cmd, &what, None, LOOKUP_TIMEOUT)?.success_or_error(&what, None, || None)?;
    Ok(done.stdout.trim().to_owned())
}

/// `"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"` -> `("15.18", 15)`.
fn parse_version(line: &str) -> Option<(String, u32)> {
    let version = line
        .split("(PostgreSQL)")
        .nth(1)?
        .split_whitespace()
        .next()?;
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version.to_owned(), major))
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let mut cmd = Command::new("id");
    cmd.args([flag, user]);
    let done = exec::run(&mut cmd, "id", None, LOOKUP_TIMEOUT).ok()?;
    if !done.status.success() {
        return None;
    }
    done.stdout.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_parsed_from_postgres_version_output() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(("15.18".to_owned(), 15))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 17beta1"),
            Some(("17beta1".to_owned(), 17))
        );
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn debian_version_directories_sort_numerically() {
        let mut keys: Vec<_> = ["9.6", "15", "10", "x"]
            .iter()
            .filter_map(|n| version_key(OsStr::new(n)))
            .collect();
        keys.sort();
        assert_eq!(keys, vec![vec![9, 6], vec![10], vec![15]]);
    }
}
