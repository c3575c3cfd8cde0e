//! The initdb template: `initdb` runs once per machine, every server starts
//! from a copy.
//!
//! `initdb` costs about a second of CPU; copying its result costs about a
//! tenth of that. Each test binary is its own process, so the template is
//! cached across processes, in
//! `$TMPDIR/pg-tempdb-template-<version>-u<uid>-<fingerprint>`, where the
//! fingerprint covers the binaries' directory and [`TEMPLATE_FORMAT`].
//!
//! Invariant: the cache path only ever holds a complete template. A template
//! is built in a private staging directory and published with one `rename(2)`;
//! a process that loses the race to publish deletes its staging copy and uses
//! the winner's. A crash leaves at worst a staging directory behind, never a
//! half-written cache. Correctness rests on the rename alone; an advisory
//! `flock(2)` on `<cache>.lock` only saves work, so that processes starting
//! together (e.g. under cargo-nextest) run `initdb` once instead of once
//! each. The kernel drops the lock when its holder dies, and a process that
//! cannot get it in time builds anyway.
//!
//! Before first use in a process, the cache is checked: it must be a real
//! directory (not a symlink), owned by the server user, private (mode 0700),
//! and its file count and total size must match the manifest written when it
//! was built. A template damaged by a tmp cleaner is moved aside and rebuilt;
//! one owned by someone else is refused.
//!
//! Within a process the template is prepared once, under a mutex, and shared
//! as an `Arc`. A failure is not cached, so the next `TempDb::start()` retries.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::binaries::Installation;
use crate::error::{Result, TempDbError};
use crate::exec::{self, Backoff};

/// Bump when the `initdb` arguments change, so old caches are not reused.
const TEMPLATE_FORMAT: u32 = 1;
/// The superuser `initdb` creates; the kit's admin connections use it.
pub(crate) const SUPERUSER: &str = "postgres";
/// Bound for `initdb`.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for another process building the same template.
const BUILD_LOCK_WAIT: Duration = Duration::from_secs(150);
/// Name of the manifest file next to the template's data directory.
const MANIFEST: &str = "manifest";

/// A ready template and the installation that built it.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) install: Installation,
    /// The template data directory; copy it, never start a server in it.
    pub(crate) data_dir: PathBuf,
}

static TEMPLATE: Mutex<Option<Arc<Template>>> = Mutex::new(None);

/// The process-wide template, prepared on first use.
pub(crate) fn shared() -> Result<Arc<Template>> {
    // A panic while preparing leaves `None` behind, which is a valid state.
    let mut slot = TEMPLATE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(template) = slot.as_ref() {
        return Ok(Arc::clone(template));
    }
    let install = Installation::discover()?;
    let root = prepare(&install)?;
    let template = Arc::new(Template {
        data_dir: root.join("data"),
        install,
    });
    *slot = Some(Arc::clone(&template));
    Ok(template)
}

enum CacheState {
    Valid,
    Missing,
    /// Ours, but incomplete or damaged: safe to replace.
    Damaged(String),
}

/// Returns the cache directory, building and publishing it if needed.
fn prepare(install: &Installation) -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    let name = format!(
        "pg-tempdb-template-{}-u{}-{:016x}",
        sanitize(&install.version),
        install.user.uid,
        fingerprint(install)
    );
    let cache = tmp.join(&name);
    // Two rounds: a damaged cache is replaced once; if the replacement is
    // damaged too, something else is wrong and we say so.
    let mut build_lock = None;
    for _ in 0..2 {
        let mut state = inspect(&cache, install)?;
        if !matches!(state, CacheState::Valid) && build_lock.is_none() {
            // Wait for whoever is building it now, then look again.
            build_lock = Some(BuildLock::acquire(&tmp.join(format!("{name}.lock"))));
            state = inspect(&cache, install)?;
        }
        match state {
            CacheState::Valid => return Ok(cache),
            CacheState::Missing => {}
            CacheState::Damaged(reason) => {
                tracing::warn!(target: "pg_tempdb", path = %cache.display(), %reason,
                    "rebuilding a damaged initdb template");
                discard(&cache, &tmp, &name)?;
            }
        }
        build_and_publish(install, &cache, &tmp, &name)?;
    }
    match inspect(&cache, install)? {
        CacheState::Valid => Ok(cache),
        CacheState::Missing => Err(TempDbError::TemplateUnusable {
            path: cache,
            reason: "it disappeared right after it was built".into(),
        }),
        CacheState::Damaged(reason) => Err(TempDbError::TemplateUnusable {
            path: cache,
            reason,
        }),
    }
}

fn inspect(cache: &Path, install: &Installation) -> Result<CacheState> {
    let meta = match fs::symlink_metadata(cache) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheState::Missing),
        Err(e) => {
            return Err(TempDbError::io(
                format!("inspecting {}", cache.display()),
                e,
            ))
        }
    };
    let unusable = |reason: String| TempDbError::TemplateUnusable {
        path: cache.to_path_buf(),
        reason,
    };
    if !meta.is_dir() {
        return Err(unusable("it is not a directory".into()));
    }
    if meta.uid() != install.user.uid {
        return Err(unusable(format!(
            "it is owned by uid {}, not by the server user (uid {})",
            meta.uid(),
            install.user.uid
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(unusable("it is accessible to other users".into()));
    }
    let recorded = match fs::read_to_string(cache.join(MANIFEST)) {
        Ok(text) => text,
        Err(e) => return Ok(CacheState::Damaged(format!("no manifest: {e}"))),
    };
    let actual = match manifest(&cache.join("data")) {
        Ok(text) => text,
        Err(e) => return Ok(CacheState::Damaged(format!("unreadable: {e}"))),
    };
    Ok(if recorded == actual {
        CacheState::Valid
    } else {
        CacheState::Damaged(format!(
            "manifest {:?} does not match contents {:?}",
            recorded.trim(),
            actual.trim()
        ))
    })
}

fn build_and_publish(install: &Installation, cache: &Path, tmp: &Path, name: &str) -> Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(&format!("{name}.staging-"))
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(tmp)
        .map_err(|e| TempDbError::io("creating the template staging directory", e))?;
    install.chown(staging.path())?;
    let data = staging.path().join("data");

    let mut cmd = install.command(&install.initdb);
    cmd.arg("-D").arg(&data).args([
        "-U",
        SUPERUSER,
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "-N",
    ]);
    if install.major >= 11 {
        // 1 MB WAL segments instead of 16 MB: each copy is 15 MB smaller.
        cmd.arg("--wal-segsize=1");
    }
    exec::run(&mut cmd, "initdb", None, INITDB_TIMEOUT)?.success_or_error(
        "initdb",
        None,
        || None,
    )?;
    let manifest_text =
        manifest(&data).map_err(|e| TempDbError::io("reading the new template", e))?;
    fs::write(staging.path().join(MANIFEST), manifest_text)
        .map_err(|e| TempDbError::io("writing the template manifest", e))?;

    match fs::rename(staging.path(), cache) {
        Ok(()) => {
            let kept = staging.keep();
            tracing::debug!(target: "pg_tempdb", path = %kept.display(), "published initdb template");
            Ok(())
        }
        // Another process published first (rename refuses to replace a
        // non-empty directory): use theirs; `staging` is removed on drop.
        Err(_) if cache.exists() => Ok(()),
        Err(e) => Err(TempDbError::io(
            format!("publishing the template to {}", cache.display()),
            e,
        )),
    }
}

/// An advisory, best-effort exclusive lock; released when dropped (the file
/// closes) or when the process dies.
struct BuildLock {
    _file: Option<fs::File>,
}

impl BuildLock {
    fn acquire(path: &Path) -> Self {
        let opened = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            // A lock file created by another user can still be locked.
            .or_else(|_| fs::File::open(path));
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                tracing::debug!(target: "pg_tempdb", path = %path.display(), error = %e,
                    "no template build lock; building without it");
                return Self { _file: None };
            }
        };
        let deadline = Instant::now() + BUILD_LOCK_WAIT;
        let mut backoff = Backoff::new();
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Self { _file: Some(file) },
                Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                    backoff.sleep_until_next(deadline);
                }
                Err(e) => {
                    tracing::warn!(target: "pg_tempdb", path = %path.display(), error = %e,
                        "could not take the template build lock; building without it");
                    return Self { _file: None };
                }
            }
        }
    }
}

/// Moves a damaged cache aside (atomically, so no reader sees it half
/// deleted) and deletes it.
fn discard(cache: &Path, tmp: &Path, name: &str) -> Result<()> {
    let trash = tempfile::Builder::new()
        .prefix(&format!("{name}.trash-"))
        .tempdir_in(tmp)
        .map_err(|e| TempDbError::io("creating a directory for a damaged template", e))?;
    match fs::rename(cache, trash.path().join("old")) {
        Ok(()) => {}
        // Someone else already moved it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(TempDbError::io(
                format!("moving {} aside", cache.display()),
                e,
            ))
        }
    }
    trash
        .close()
        .map_err(|e| TempDbError::io("deleting a damaged template", e))
}

/// `files=<n> bytes=<total>` over every regular file under `dir`.
fn manifest(dir: &Path) -> std::io::Result<String> {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok(format!("files={files} bytes={bytes}\n"))
}

/// FNV-1a over what makes two templates interchangeable (stable across
/// processes and Rust versions, unlike `DefaultHasher`).
fn fingerprint(install: &Installation) -> u64 {
    let key = format!("{}\0{}", install.bindir.display(), TEMPLATE_FORMAT);
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn sanitize(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_counts_files_and_bytes_recursively() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"12345").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/b"), b"67").unwrap();
        assert_eq!(manifest(dir.path()).unwrap(), "files=2 bytes=7\n");
    }

    #[test]
    fn version_is_sanitized_for_a_directory_name() {
        assert_eq!(sanitize("15.18"), "15.18");
        assert_eq!(sanitize("17beta1 (x/y)"), "17beta1__x_y_");
    }
}
