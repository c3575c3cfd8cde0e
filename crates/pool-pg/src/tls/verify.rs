//! The rustls side of the libpq modes: one certificate verifier, and the
//! words for a failed handshake.
//!
//! [`ModeVerifier`] checks what the mode promises and nothing else:
//!
//! | Mode | Root certificate | Checked |
//! |---|---|---|
//! | `prefer` | ignored | the handshake signatures only |
//! | `require` | none | the handshake signatures only |
//! | `require`, `verify-ca` | given | the chain to a root (validity dates, key usage) |
//! | `verify-full` | given | the chain, and the host name or IP address in the subjectAltName |
//!
//! It is built from rustls's own public pieces for custom verifiers
//! (`verify_server_cert_signed_by_trust_anchor`, `verify_server_name`, and
//! the ring provider's signature algorithms), the same steps
//! `WebPkiServerVerifier` takes, minus revocation (libpq checks a CRL only
//! when `sslcrl` is set, which pool-pg does not support). `verify-ca` is
//! therefore "the chain, and *not* the name" by construction, rather than
//! by catching the name error of a full verification.
//!
//! Invariant: even when the certificate is not checked, the handshake
//! signatures are: the server proves it holds the key of the certificate
//! it sent. Only the ring provider is used, never the process default.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::connector::Handshake;
use super::SslMode;

/// What the server's certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing but the handshake signatures.
    Signatures,
    /// The chain up to a root.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

/// The verifier of one [`SslMode`]; see the module docs.
#[derive(Debug)]
struct ModeVerifier {
    check: Check,
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The rustls client configuration for `mode`, verifying against `roots`
/// when given (`prefer` never verifies).
pub(super) fn client_config(
    mode: SslMode,
    roots: Option<RootCertStore>,
) -> Result<ClientConfig, rustls::Error> {
    let check = match (mode, &roots) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Check::Signatures,
        (SslMode::VerifyFull, _) => Check::ChainAndName,
        (_, _) => Check::Chain,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = ModeVerifier {
        check,
        roots: Arc::new(roots.unwrap_or_else(RootCertStore::empty)),
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

impl ServerCertVerifier for ModeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Signatures {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.check == Check::ChainAndName {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Rewrites a failed handshake's error so it says what to change: rustls's
/// own words first, then the mode, the file or host involved, and the fix.
/// Errors that are not rustls's are returned as they were.
pub(super) fn explain(error: io::Error, handshake: &Handshake) -> io::Error {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return error;
    };
    let mode = handshake.mode;
    let roots = handshake
        .root_cert
        .as_deref()
        .map_or_else(|| "(none)".to_owned(), |path| path.display().to_string());
    let host = &handshake.hostname;
    let advice = match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate was not issued by a CA in sslrootcert {roots} (sslmode={mode}); set sslrootcert (in DATABASE_URL, or PGSSLROOTCERT) to the CA certificate that issued the server's certificate"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "sslmode={mode} requires the host name \"{host}\" to be in the server certificate's subjectAltName; connect with a name the certificate lists, reissue the certificate for \"{host}\", or use sslmode=verify-ca to check only the CA"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => format!(
            "the server's certificate is outside its validity period (sslmode={mode}); renew it on the server, or check this machine's clock"
        ),
        rustls::Error::InvalidCertificate(_) => format!(
            "the server's certificate failed verification against sslrootcert {roots} (sslmode={mode}); reissue it from that CA with basicConstraints CA:FALSE and a subjectAltName for \"{host}\""
        ),
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "the server requires a client certificate, which pool-pg does not send (sslcert/sslkey are not supported); use PgTls::with_rustls_config with a client certificate".to_owned()
        }
        _ => return error,
    };
    io::Error::new(error.kind(), format!("{tls}: {advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(mode: SslMode) -> Handshake {
        Handshake {
            mode,
            root_cert: Some(Arc::from(std::path::Path::new("/etc/db/ca.pem"))),
            hostname: "db.internal".to_owned(),
        }
    }

    fn explained(tls: rustls::Error, mode: SslMode) -> String {
        explain(
            io::Error::new(io::ErrorKind::InvalidData, tls),
            &handshake(mode),
        )
        .to_string()
    }

    #[test]
    fn an_unknown_issuer_names_the_root_certificate_file() {
        let text = explained(CertificateError::UnknownIssuer.into(), SslMode::VerifyFull);
        assert!(text.contains("sslrootcert /etc/db/ca.pem"), "{text}");
        assert!(text.contains("sslmode=verify-full"), "{text}");
    }

    #[test]
    fn a_name_mismatch_names_the_host_and_suggests_verify_ca() {
        let text = explained(
            CertificateError::NotValidForName.into(),
            SslMode::VerifyFull,
        );
        assert!(text.contains("\"db.internal\""), "{text}");
        assert!(text.contains("sslmode=verify-ca"), "{text}");
    }

    #[test]
    fn other_errors_pass_through_unchanged() {
        let error = explain(io::Error::other("reset"), &handshake(SslMode::Require));
        assert_eq!(error.to_string(), "reset");
    }
}
