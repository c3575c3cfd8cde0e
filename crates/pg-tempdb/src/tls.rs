//! TLS for a throwaway server: [`TempDbBuilder::tls`](crate::TempDbBuilder::tls)
//! hands the kit a certificate and a key, and the server starts with
//! `ssl = on`.
//!
//! Design: the builder only records the two paths and adds three settings,
//! `ssl = on`, `ssl_cert_file = server.crt` and `ssl_key_file = server.key`
//! (relative paths, which PostgreSQL resolves against the data directory).
//! When the data directory exists, [`TlsFiles::install`] copies both files
//! into it, so the server never depends on the caller's files staying
//! where they were (a test's temporary directory may be gone before a
//! `restart`), and the copies are deleted with the server.
//!
//! Invariant: the key PostgreSQL reads is owned by the user the server
//! runs as (`postgres` when we are root) and has mode 0600; PostgreSQL
//! refuses to start with a key that is readable by others ("private key
//! file has group or world access"). The certificate is 0644. A file that
//! cannot be read is a [`TempDbError::Io`] naming it, reported before the
//! server is started.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::binaries::Installation;
use crate::error::{Result, TempDbError};

/// The certificate's name inside the data directory.
pub(crate) const CERT_FILE: &str = "server.crt";
/// The key's name inside the data directory.
pub(crate) const KEY_FILE: &str = "server.key";

/// The server settings that turn TLS on, with the files installed by
/// [`TlsFiles::install`].
pub(crate) const TLS_SETTINGS: &[(&str, &str)] = &[
    ("ssl", "on"),
    ("ssl_cert_file", CERT_FILE),
    ("ssl_key_file", KEY_FILE),
];

/// The certificate (chain) and private key a TLS server presents, as PEM
/// files given by the caller.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    /// The server certificate, optionally followed by intermediates.
    pub(crate) cert: PathBuf,
    /// The certificate's private key (unencrypted PEM).
    pub(crate) key: PathBuf,
}

impl TlsFiles {
    /// Copies the certificate and key into `data_dir` under the names the
    /// settings use, owned by the server user; the key with mode 0600.
    pub(crate) fn install(&self, install: &Installation, data_dir: &Path) -> Result<()> {
        copy_private(
            &self.cert,
            &data_dir.join(CERT_FILE),
            0o644,
            install,
            "certificate",
        )?;
        copy_private(&self.key, &data_dir.join(KEY_FILE), 0o600, install, "key")
    }
}

/// Copies `from` to `to`, then sets `mode` and the server user as owner.
/// The copy is made with mode 0600 first, so the key is never readable by
/// others, not even for a moment.
fn copy_private(
    from: &Path,
    to: &Path,
    mode: u32,
    install: &Installation,
    what: &str,
) -> Result<()> {
    let bytes = fs::read(from).map_err(|e| {
        TempDbError::io(
            format!(
                "reading the TLS {what} {} given to TempDbBuilder::tls",
                from.display()
            ),
            e,
        )
    })?;
    let context = || format!("installing the TLS {what} as {}", to.display());
    let mut options = fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| TempDbError::io(context(), e))?;
    std::io::Write::write_all(&mut file, &bytes).map_err(|e| TempDbError::io(context(), e))?;
    drop(file);
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .map_err(|e| TempDbError::io(context(), e))?;
    install.chown(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_name_the_installed_files() {
        assert!(TLS_SETTINGS.contains(&("ssl", "on")));
        assert!(TLS_SETTINGS.contains(&("ssl_cert_file", CERT_FILE)));
        assert!(TLS_SETTINGS.contains(&("ssl_key_file", KEY_FILE)));
    }
}
