//! TLS against a real server: each test makes a CA, a server certificate
//! it signed (`basicConstraints CA:FALSE`, subjectAltName `localhost` and
//! `127.0.0.1`) and an unrelated "wrong" CA with rcgen, starts a throwaway
//! PostgreSQL with `ssl = on`, and configures the pool the way users do:
//! `DATABASE_URL` with `sslmode` / `sslrootcert`, through
//! `PgPool::from_vars`. Whether a session really is encrypted is asked of
//! the server (`pg_stat_ssl`), not assumed.
//!
//! Every connect is bounded by the pool's `create_timeout` (2 s here) and
//! every test step by [`BOUND`]: a failing handshake must fail, not hang.

#![cfg(feature = "tls")]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{assert_no_secret, capture_logs, every_rendering, PASSWORD};
use pg_tempdb::TempDb;
use pool_pg::{PgConfig, PgPool, SslMode};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The pool's `create_timeout` in these tests.
const CREATE_TIMEOUT: Duration = Duration::from_secs(2);
/// The bound of every step that talks to a server.
const BOUND: Duration = Duration::from_secs(15);

/// A CA, a server certificate and key it issued, and an unrelated CA, as
/// PEM files in a directory deleted on drop.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a directory for the test certificates");
        let (ca_params, ca_key) = ca("pool-pg test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let (wrong_params, wrong_key) = ca("pool-pg unrelated CA");
        let wrong_cert = wrong_params
            .self_signed(&wrong_key)
            .expect("self-sign the wrong CA");

        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server certificate names");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.is_ca = IsCa::ExplicitNoCa;
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().expect("a server key");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("sign the server certificate");

        for (name, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("wrong-ca.pem", wrong_cert.pem()),
            ("server.crt", server_cert.pem()),
            ("server.key", server_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).expect("write a test certificate");
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> String {
        self.path("ca.pem").display().to_string()
    }

    fn wrong_ca(&self) -> String {
        self.path("wrong-ca.pem").display().to_string()
    }

    /// A server with `ssl = on` presenting the server certificate.
    fn start_server(&self) -> TempDb {
        TempDb::builder()
            .user("app")
            .password(PASSWORD)
            .tls(self.path("server.crt"), self.path("server.key"))
            .start()
            .expect("start a throwaway PostgreSQL with TLS")
    }
}

/// The parameters and key of a CA certificate (`basicConstraints CA:TRUE`).
fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params, KeyPair::generate().expect("a CA key"))
}

/// A server without TLS, with the same user and password.
fn start_plain_server() -> TempDb {
    TempDb::builder()
        .user("app")
        .password(PASSWORD)
        .start()
        .expect("start a throwaway PostgreSQL")
}

/// `db`'s URL with host `host` and the query `query`.
fn url(db: &TempDb, host: &str, query: &str) -> String {
    format!(
        "postgres://{}:{PASSWORD}@{host}:{}/{}?{query}",
        db.user(),
        db.port(),
        db.dbname()
    )
}

/// A pool built from `DATABASE_URL` (plus `extra` variables) as
/// `from_env` would, within [`BOUND`].
async fn pool_from(url: &str, extra: &[(&str, &str)]) -> Result<PgPool, pool_pg::Error> {
    let create_timeout = CREATE_TIMEOUT.as_millis().to_string();
    let mut vars = vec![
        ("DATABASE_URL", url),
        ("POOL_MIN_SIZE", "1"),
        ("POOL_MAX_SIZE", "2"),
        ("POOL_CREATE_TIMEOUT_MS", create_timeout.as_str()),
    ];
    vars.extend_from_slice(extra);
    tokio::time::timeout(BOUND, PgPool::from_vars(vars))
        .await
        .expect("building the pool finishes within its bound")
}

/// Whether the server sees the pooled session as encrypted; also proves
/// that a query runs through the pool.
async fn session_is_encrypted(pool: &PgPool) -> bool {
    tokio::time::timeout(BOUND, async {
        let conn = pool.acquire().await.expect("acquire a connection");
        let one: i32 = conn
            .query_one("SELECT 1", &[])
            .await
            .expect("SELECT 1")
            .get(0);
        assert_eq!(one, 1);
        conn.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("read pg_stat_ssl")
        .get::<_, bool>(0)
    })
    .await
    .expect("the query finishes within its bound")
}

/// The failure of a pool that should not build, with the time it took.
async fn build_failure(url: &str) -> (String, Duration) {
    let started = Instant::now();
    let error = pool_from(url, &[])
        .await
        .expect_err("the pool must not build");
    (every_rendering(&error), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_right_ca_connects_over_tls_by_either_name_in_the_certificate() {
    let certs = Certs::new();
    let db = certs.start_server();
    for host in ["127.0.0.1", "localhost"] {
        let query = format!("sslmode=verify-full&sslrootcert={}", certs.ca());
        let pool = pool_from(&url(&db, host, &query), &[]).await.unwrap();
        assert!(session_is_encrypted(&pool).await, "{host}: not encrypted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_rejected_at_connect_with_an_error_naming_the_file() {
    let certs = Certs::new();
    let db = certs.start_server();
    let query = format!("sslmode=verify-full&sslrootcert={}", certs.wrong_ca());
    let (error, took) = build_failure(&url(&db, "127.0.0.1", &query)).await;
    assert!(
        took < CREATE_TIMEOUT + Duration::from_secs(1),
        "took {took:?}"
    );
    for expected in [
        "UnknownIssuer",
        "not issued by a CA",
        &certs.wrong_ca(),
        "sslmode=verify-full",
    ] {
        assert!(error.contains(expected), "missing {expected:?} in: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_missing_from_the_certificate_fails_verify_full_but_passes_verify_ca() {
    let certs = Certs::new();
    let db = certs.start_server();
    // Connect to 127.0.0.1 while verifying the name `db.invalid`.
    let host = "db.invalid";
    let full = format!(
        "sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
        certs.ca()
    );
    let (error, took) = build_failure(&url(&db, host, &full)).await;
    assert!(
        took < CREATE_TIMEOUT + Duration::from_secs(1),
        "took {took:?}"
    );
    for expected in ["\"db.invalid\"", "subjectAltName", "sslmode=verify-ca"] {
        assert!(error.contains(expected), "missing {expected:?} in: {error}");
    }

    let ca_only = format!(
        "sslmode=verify-ca&sslrootcert={}&hostaddr=127.0.0.1",
        certs.ca()
    );
    let pool = pool_from(&url(&db, host, &ca_only), &[]).await.unwrap();
    assert!(session_is_encrypted(&pool).await);
    // verify-ca still checks the chain.
    let wrong = format!(
        "sslmode=verify-ca&sslrootcert={}&hostaddr=127.0.0.1",
        certs.wrong_ca()
    );
    let (error, _) = build_failure(&url(&db, host, &wrong)).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_without_a_root_certificate_and_verifies_the_chain_with_one() {
    let certs = Certs::new();
    let db = certs.start_server();
    let pool = pool_from(&url(&db, "127.0.0.1", "sslmode=require"), &[])
        .await
        .unwrap();
    assert!(session_is_encrypted(&pool).await);
    assert_eq!(
        PgConfig::from_vars([("DATABASE_URL", url(&db, "h", "sslmode=require"))])
            .unwrap()
            .tls
            .mode(),
        SslMode::Require
    );

    // As libpq: `require` with a root certificate behaves like verify-ca.
    let query = format!("sslmode=require&sslrootcert={}", certs.wrong_ca());
    let (error, _) = build_failure(&url(&db, "127.0.0.1", &query)).await;
    assert!(
        error.contains("UnknownIssuer") && error.contains("sslmode=require"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_uses_tls_when_offered_and_falls_back_to_plain_text_otherwise() {
    let certs = Certs::new();
    let tls_db = certs.start_server();
    let plain_db = start_plain_server();
    let pool = pool_from(&url(&tls_db, "127.0.0.1", "sslmode=prefer"), &[])
        .await
        .unwrap();
    assert!(
        session_is_encrypted(&pool).await,
        "prefer uses TLS when offered"
    );
    // The default is prefer.
    let pool = pool_from(&url(&plain_db, "127.0.0.1", "application_name=t"), &[])
        .await
        .unwrap();
    assert!(!session_is_encrypted(&pool).await, "plain when not offered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_fails_clearly() {
    let db = start_plain_server();
    let (error, took) = build_failure(&url(&db, "127.0.0.1", "sslmode=require")).await;
    assert!(
        took < CREATE_TIMEOUT + Duration::from_secs(1),
        "took {took:?}"
    );
    assert!(error.contains("server does not support TLS"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsslmode_and_pgsslrootcert_apply_when_the_url_is_silent() {
    let certs = Certs::new();
    let db = certs.start_server();
    let ca = certs.ca();
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())];
    let pool = pool_from(&url(&db, "localhost", "application_name=t"), &env)
        .await
        .unwrap();
    assert!(session_is_encrypted(&pool).await);
    // The URL wins over the environment.
    let pool = pool_from(&url(&db, "localhost", "sslmode=disable"), &env)
        .await
        .unwrap();
    assert!(!session_is_encrypted(&pool).await);
}

#[test]
fn a_missing_root_certificate_is_a_configuration_error_before_any_connect() {
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:1/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
    let error = PgConfig::from_vars([("DATABASE_URL", url)]).unwrap_err();
    let text = error.to_string();
    for expected in [
        "/nonexistent/ca.pem",
        "does not exist",
        "sslmode=verify-full",
        "PGSSLROOTCERT",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in: {text}");
    }
    assert_no_secret("the configuration error", &every_rendering(&error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_and_tls_failures_never_show_the_password() {
    let logs = capture_logs();
    let certs = Certs::new();
    let db = certs.start_server();
    let good = url(
        &db,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", certs.ca()),
    );
    let config = PgConfig::from_vars([("DATABASE_URL", &good)]).unwrap();
    assert_no_secret("PgConfig", &format!("{config:?}"));
    assert_no_secret("PgTls", &format!("{:?} {}", config.tls, config.tls));
    assert!(format!("{config:?}").contains("VerifyFull"), "{config:?}");
    let pool = tokio::time::timeout(BOUND, config.build())
        .await
        .unwrap()
        .unwrap();
    assert!(session_is_encrypted(&pool).await);
    assert_no_secret("PgPool", &format!("{pool:?}"));

    let wrong = url(
        &db,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", certs.wrong_ca()),
    );
    let (error, _) = build_failure(&wrong).await;
    assert_no_secret("the TLS failure", &error);
    assert_no_secret("the logs", &logs.text());
}
