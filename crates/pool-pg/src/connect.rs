//! Opening a connection: hosts in order, the socket, TLS, startup, the
//! wire tap, and the `target_session_attrs` check.
//!
//! tokio-postgres's `Config::connect` opens its own socket, which the pool
//! could not watch; this is the same procedure around
//! `Config::connect_raw` with the pool's socket (`socket.rs`) wrapped in a
//! tap (`wire.rs`):
//!
//! * the hosts of the URL in order (shuffled with
//!   `load_balance_hosts=random`), each host's resolved addresses in order,
//!   `hostaddr` instead of resolving when given, Unix-domain sockets for
//!   directory hosts; the first that connects *and* matches
//!   `target_session_attrs` wins, else the last error is returned;
//! * TLS as the connector and `sslmode` say, the tap above it;
//! * `target_session_attrs=read-write|read-only` is judged from the
//!   `default_transaction_read_only` and `in_hot_standby` parameters the
//!   server reports at startup (PostgreSQL 14 and later, as libpq does),
//!   which costs no round trip; an older server is asked `SHOW
//!   transaction_read_only`, as tokio-postgres does.
//!
//! Invariant: the tap is armed exactly when the startup exchange is over,
//! before the connection's I/O task first runs, so it starts at a message
//! boundary in both directions.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use tokio_postgres::config::{Host, LoadBalanceHosts, TargetSessionAttrs};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::Config;

use crate::connection::{spawn, Canceller, PgConnection, TaskReport};
use crate::error::{Cause, Operation, PgError};
use crate::socket::{Address, PgSocket, SocketOptions};
use crate::wire::tap::{Tap, TapTls};
use crate::wire::{Watch, Wire};

/// What every connection of a manager shares.
pub(crate) struct Setup {
    pub(crate) server: Arc<str>,
    pub(crate) report: TaskReport,
    pub(crate) options: SocketOptions,
    pub(crate) cache_size: usize,
    pub(crate) cancel_timeout: std::time::Duration,
}

/// Opens one connection, trying the configuration's hosts in order.
pub(crate) async fn connect<T>(
    config: &Config,
    tls: &T,
    setup: &Setup,
) -> Result<PgConnection, PgError>
where
    T: MakeTlsConnect<PgSocket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<PgSocket>>::Future: Send,
{
    let failed =
        |cause: Cause| PgError::from_cause(Operation::Connect, Arc::clone(&setup.server), cause);
    let hosts = config.get_hosts();
    let hostaddrs = config.get_hostaddrs();
    let count = hosts.len().max(hostaddrs.len());
    if count == 0 {
        return Err(failed(Cause::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no host to connect to: set a host in DATABASE_URL",
        ))));
    }
    let ports = config.get_ports();
    let mut order: Vec<usize> = (0..count).collect();
    let balance = config.get_load_balance_hosts() == LoadBalanceHosts::Random;
    if balance {
        fastrand::shuffle(&mut order);
    }
    let mut last = None;
    for i in order {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        let host = hosts.get(i);
        let hostname = match host {
            Some(Host::Tcp(name)) => Some(name.as_str()),
            _ => None,
        };
        let addresses = match (hostaddrs.get(i), host) {
            (Some(ip), _) => vec![Address::tcp(*ip, port)],
            (None, Some(Host::Tcp(name))) => match resolve(name, port, balance).await {
                Ok(addresses) => addresses,
                Err(error) => {
                    last = Some(error);
                    continue;
                }
            },
            #[cfg(unix)]
            (None, Some(Host::Unix(dir))) => vec![Address::unix(dir, port)],
            _ => continue,
        };
        for address in addresses {
            match attempt(config, tls, setup, &address, hostname).await {
                Ok(conn) => return Ok(conn),
                Err(error) => last = Some(error),
            }
        }
    }
    Err(failed(last.unwrap_or_else(|| {
        Cause::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve any addresses",
        ))
    })))
}

/// The addresses of `host`: itself if it is an IP address, else a lookup
/// (shuffled when `balance`).
async fn resolve(host: &str, port: u16, balance: bool) -> Result<Vec<Address>, Cause> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![Address::tcp(ip, port)]);
    }
    let mut addresses: Vec<Address> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| {
            Cause::Io(io::Error::new(
                error.kind(),
                format!("failed to lookup address information for {host:?}: {error}"),
            ))
        })?
        .map(|addr| Address::tcp(addr.ip(), port))
        .collect();
    if balance {
        fastrand::shuffle(&mut addresses);
    }
    Ok(addresses)
}

/// One address: socket, TLS, startup, tap, session check.
async fn attempt<T>(
    config: &Config,
    tls: &T,
    setup: &Setup,
    address: &Address,
    hostname: Option<&str>,
) -> Result<PgConnection, Cause>
where
    T: MakeTlsConnect<PgSocket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<PgSocket>>::Future: Send,
{
    let socket = address.open(&setup.options).await.map_err(Cause::Io)?;
    let connector = tls
        .clone()
        .make_tls_connect(hostname.unwrap_or(""))
        .map_err(|error| Cause::Io(io::Error::other(error.into())))?;
    let wire = Arc::new(Wire::default());
    let tapped = Tap::new(socket, Box::new(Watch::new(Arc::clone(&wire))));
    let (client, connection) = config
        .connect_raw(tapped, TapTls(connector))
        .await
        .map_err(Cause::Postgres)?;
    let read_only = reported(&connection, "default_transaction_read_only");
    let standby = reported(&connection, "in_hot_standby");
    wire.arm(read_only.is_some());
    let cancel = canceller(tls.clone(), address.clone(), hostname, setup);
    let mut conn = spawn(client, connection, wire, setup, cancel);
    let wanted = config.get_target_session_attrs();
    if wanted != TargetSessionAttrs::Any {
        let read_only = match (read_only, standby) {
            (Some(read_only), standby) => read_only || standby == Some(true),
            _ => conn.ask_read_only().await.map_err(Cause::Postgres)?,
        };
        if read_only && wanted == TargetSessionAttrs::ReadWrite {
            return Err(Cause::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "database does not allow writes",
            )));
        }
        if !read_only && wanted == TargetSessionAttrs::ReadOnly {
            return Err(Cause::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "database is not read only",
            )));
        }
        if wanted == TargetSessionAttrs::ReadOnly && standby == Some(true) {
            conn.wire.wants_standby();
        }
    }
    conn.start_counting();
    Ok(conn)
}

/// Whether the server reported `name` as `on` at startup, if it reported it.
fn reported<S, T>(connection: &tokio_postgres::Connection<S, T>, name: &str) -> Option<bool>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    connection.parameter(name).map(|value| value == "on")
}

/// A [`Canceller`] that opens a new socket to `address` (with TLS as for
/// the connection) and gives up after the setup's cancel timeout.
fn canceller<T>(tls: T, address: Address, hostname: Option<&str>, setup: &Setup) -> Canceller
where
    T: MakeTlsConnect<PgSocket> + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<PgSocket>>::Future: Send,
{
    let server = Arc::clone(&setup.server);
    let options = setup.options.clone();
    let timeout = setup.cancel_timeout;
    let hostname = hostname.unwrap_or("").to_owned();
    Box::new(move |token| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                target: "pool_pg::connection",
                server = %server,
                "no tokio runtime to send a cancel request from; the server finishes the abandoned request on its own"
            );
            return;
        };
        let mut tls = tls;
        // Detached on purpose: the outcome is logged, and the timeout
        // bounds it.
        drop(runtime.spawn(async move {
            let cancel = async {
                let socket = address.open(&options).await.map_err(|e| e.to_string())?;
                let connector = tls
                    .make_tls_connect(&hostname)
                    .map_err(|e| e.into().to_string())?;
                token
                    .cancel_query_raw(socket, connector)
                    .await
                    .map_err(|e| crate::error::describe(&e))
            };
            match tokio::time::timeout(timeout, cancel).await {
                Ok(Ok(())) => tracing::debug!(
                    target: "pool_pg::connection",
                    server = %server,
                    "sent a cancel request for a request abandoned mid-way"
                ),
                Ok(Err(error)) => tracing::warn!(
                    target: "pool_pg::connection",
                    server = %server,
                    error = %error,
                    "could not cancel a request abandoned mid-way; the server finishes it on its own"
                ),
                Err(_elapsed) => tracing::warn!(
                    target: "pool_pg::connection",
                    server = %server,
                    timeout_ms = timeout.as_millis() as u64,
                    "the cancel request for a request abandoned mid-way timed out; the server finishes it on its own"
                ),
            }
        }));
    })
}
