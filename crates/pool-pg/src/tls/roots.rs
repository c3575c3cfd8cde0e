//! Reading `sslrootcert`: a PEM file of one or more CA certificates.
//!
//! Invariant: a file is accepted only if it can be read, holds at least
//! one `CERTIFICATE` block, and every certificate in it parses as a trust
//! anchor; otherwise the [`Problem`] says which of these failed and what to
//! do. It is read once, when the configuration is built; a later change to
//! the file takes effect with the next configuration (a new pool).

use std::io;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// Why a root certificate file was refused: the end of a sentence that
/// starts with the file's name, and what to do.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) message: String,
    pub(super) suggestion: String,
}

impl Problem {
    fn new(message: impl Into<String>, suggestion: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            suggestion: suggestion.into(),
        }
    }
}

/// The trust anchors in the PEM file at `path`.
pub(super) fn load(path: &Path) -> Result<RootCertStore, Problem> {
    let bytes = std::fs::read(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => Problem::new(
            "does not exist",
            "set sslrootcert (in DATABASE_URL) or PGSSLROOTCERT to the path of the CA certificate's PEM file",
        ),
        io::ErrorKind::PermissionDenied => Problem::new(
            "cannot be read: permission denied",
            "make the file readable by the user this program runs as",
        ),
        _ => Problem::new(
            format!("cannot be read: {error}"),
            "set sslrootcert to a readable PEM file holding the CA certificate",
        ),
    })?;
    let mut roots = RootCertStore::empty();
    for (index, item) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = item.map_err(|error| {
            Problem::new(
                format!("is not valid PEM (certificate {}): {error}", index + 1),
                "give a PEM file of -----BEGIN CERTIFICATE----- blocks (convert DER with `openssl x509 -inform der -in ca.der -out ca.pem`)",
            )
        })?;
        roots.add(cert).map_err(|error| {
            Problem::new(
                format!(
                    "holds a certificate rustls cannot use as a CA (certificate {}): {error}",
                    index + 1
                ),
                "give the CA certificate that issued the server's certificate",
            )
        })?;
    }
    if roots.is_empty() {
        return Err(Problem::new(
            "holds no certificate (no -----BEGIN CERTIFICATE----- block)",
            "give a PEM file holding the CA certificate that issued the server's certificate",
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("pool-pg-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let problem = load(&path).unwrap_err();
        assert!(problem.message.contains("no certificate"), "{problem:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_says_so() {
        let problem = load(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(problem.message, "does not exist");
    }
}
