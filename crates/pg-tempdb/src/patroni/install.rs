//! Finding Patroni, and checking that the server user can run it with the
//! Raft DCS.
//!
//! Search order, first usable match wins:
//! 1. `PATRONI`, if set: the path of the `patroni` script. A wrong value is
//!    an error, never silently replaced by another installation.
//! 2. `/opt/patroni-<PINNED_VERSION>/bin/patroni`, where `.ci/run` installs
//!    it (a virtual environment of the system Python, world-readable, so
//!    the `postgres` user can run it when the kit runs as root).
//! 3. The first `patroni` on `PATH`.
//!
//! A candidate is usable when its interpreter (the script's `#!` line),
//! run as the server user, imports Patroni's Raft module, `pysyncobj` and a
//! PostgreSQL driver. Nothing found at all is `Ok(None)`: the caller skips,
//! saying how to install it. Something found that does not work is an
//! error naming each candidate and why, because a half-done install is a
//! mistake to fix, not a reason to skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::binaries::{is_executable, Installation};
use crate::error::{Result, TempDbError};
use crate::exec;

/// The Patroni version `.ci/run` installs and the docs were measured with.
pub(crate) const PINNED_VERSION: &str = "4.1.5";
/// Environment variable naming the `patroni` script.
const BINARY_ENV: &str = "PATRONI";
/// Bound for the import probe (a cold Python start is ~0.3 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Prints the version when Patroni, its Raft DCS and a driver import.
const PROBE: &str = "import patroni.dcs.raft, pysyncobj\n\
try:\n    import psycopg2\n\
except ImportError:\n    import psycopg\n\
from patroni.version import __version__\n\
print(__version__)\n";

/// A usable Patroni: its scripts and the interpreter that runs them.
#[derive(Debug, Clone)]
pub(crate) struct Patroni {
    /// The `patroni` script.
    pub(crate) patroni: PathBuf,
    /// `patroni_raft_controller`, the Raft witness, beside it.
    pub(crate) raft_controller: PathBuf,
    /// The Python interpreter named by the script's `#!` line.
    pub(crate) python: PathBuf,
    /// What `patroni.version` says, e.g. `4.1.5`.
    pub(crate) version: String,
}

/// The command that installs the pinned version where the kit looks.
pub(crate) fn install_hint() -> String {
    format!(
        "python3 -m venv /opt/patroni-{PINNED_VERSION} && /opt/patroni-{PINNED_VERSION}/bin/pip \
         install 'patroni[raft,psycopg2-binary]=={PINNED_VERSION}' (or run .ci/run; or set \
         PATRONI to a `patroni` script whose Python has the raft extra)"
    )
}

/// Finds a usable Patroni (see the module docs).
pub(crate) fn find(install: &Installation) -> Result<Option<Patroni>> {
    if let Some(path) = std::env::var_os(BINARY_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        if !is_executable(&path) {
            return Err(TempDbError::InvalidSetting {
                name: BINARY_ENV.into(),
                reason: format!(
                    "{} is not an executable file; point it at the `patroni` script or unset it",
                    path.display()
                ),
            });
        }
        return probe(install, &path).map(Some);
    }
    let pinned = PathBuf::from(format!("/opt/patroni-{PINNED_VERSION}/bin/patroni"));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("patroni"));
    let mut failures = Vec::new();
    for candidate in std::iter::once(pinned).chain(on_path) {
        if !is_executable(&candidate) {
            continue;
        }
        match probe(install, &candidate) {
            Ok(found) => return Ok(Some(found)),
            Err(error) => failures.push(format!("{}: {error}", candidate.display())),
        }
    }
    if failures.is_empty() {
        return Ok(None);
    }
    Err(TempDbError::InvalidSetting {
        name: BINARY_ENV.into(),
        reason: format!(
            "Patroni was found but cannot run with the Raft DCS as the server user; install it \
             with: {}. Tried:\n{}",
            install_hint(),
            failures.join("\n")
        ),
    })
}

/// Checks one candidate script: interpreter, witness script, imports.
fn probe(install: &Installation, patroni: &Path) -> Result<Patroni> {
    let python = interpreter(patroni)?;
    let raft_controller = patroni.with_file_name("patroni_raft_controller");
    if !is_executable(&raft_controller) {
        return Err(TempDbError::InvalidSetting {
            name: BINARY_ENV.into(),
            reason: format!("{} is missing", raft_controller.display()),
        });
    }
    let what = format!(
        "{} -c 'import patroni.dcs.raft, pysyncobj, ...'",
        python.display()
    );
    let mut cmd = install.command(&python);
    cmd.arg("-c").arg(PROBE).env("PYTHONDONTWRITEBYTECODE", "1");
    let done =
        exec::run(&mut cmd, &what, None, PROBE_TIMEOUT)?.success_or_error(&what, None, || None)?;
    Ok(Patroni {
        patroni: patroni.to_path_buf(),
        raft_controller,
        python,
        version: done.stdout.trim().to_owned(),
    })
}

/// The interpreter of a Python script, from its `#!` line.
fn interpreter(script: &Path) -> Result<PathBuf> {
    let text = std::fs::read(script)
        .map_err(|e| TempDbError::io(format!("reading {}", script.display()), e))?;
    let first = String::from_utf8_lossy(&text[..text.len().min(512)])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    parse_shebang(&first).ok_or_else(|| TempDbError::UnexpectedOutput {
        command: format!("the first line of {}", script.display()),
        output: first,
    })
}

/// `#!/opt/v/bin/python3` -> `/opt/v/bin/python3`; `#!/usr/bin/env python3`
/// -> `python3`. `None` for anything but an interpreter line.
fn parse_shebang(line: &str) -> Option<PathBuf> {
    let mut words = line.strip_prefix("#!")?.split_whitespace();
    let first = words.next()?;
    let program = if Path::new(first).file_name()? == "env" {
        words.find(|w| !w.starts_with('-'))?
    } else {
        first
    };
    Some(PathBuf::from(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_is_read_from_the_shebang_line() {
        assert_eq!(
            parse_shebang("#!/opt/patroni-4.1.5/bin/python3"),
            Some(PathBuf::from("/opt/patroni-4.1.5/bin/python3"))
        );
        assert_eq!(
            parse_shebang("#! /usr/bin/env -S python3"),
            Some(PathBuf::from("python3"))
        );
        assert_eq!(parse_shebang("import sys"), None);
        assert_eq!(parse_shebang("#!"), None);
    }

    #[test]
    fn the_install_hint_pins_the_version_and_the_raft_extra() {
        let hint = install_hint();
        assert!(hint.contains(&format!("patroni[raft,psycopg2-binary]=={PINNED_VERSION}")));
        assert!(hint.contains(".ci/run"));
    }
}
