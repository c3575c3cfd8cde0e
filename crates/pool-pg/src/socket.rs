//! [`PgSocket`]: the pool's own TCP or Unix-domain socket to a server, and
//! opening one with the connection settings.
//!
//! The pool opens sockets itself (rather than through
//! `tokio_postgres::Config::connect`) so that it can wrap them in the wire
//! tap (see `wire.rs`). Opening one does what tokio-postgres does: the TCP
//! connect bounded by `connect_timeout`, `TCP_NODELAY`, `TCP_USER_TIMEOUT`
//! (Linux) and keepalives as configured; for a Unix-domain socket, the
//! `.s.PGSQL.<port>` file in the host's directory.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio_postgres::Config;

/// A connection's socket, TCP or Unix-domain. TLS connectors used with the
/// pool connect over it (`MakeTlsConnect<PgSocket>`); connectors generic
/// over the stream, such as `NoTls`, `tokio-postgres-rustls` and
/// `postgres-openssl`, already do.
#[derive(Debug)]
pub struct PgSocket(Inner);

#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Where one connect attempt goes.
#[derive(Clone, Debug)]
pub(crate) enum Address {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

/// The socket settings of a [`Config`], as the socket needs them.
#[derive(Clone, Debug)]
pub(crate) struct SocketOptions {
    connect_timeout: Option<Duration>,
    tcp_user_timeout: Option<Duration>,
    keepalive: Option<(Duration, Option<Duration>, Option<u32>)>,
}

impl SocketOptions {
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            connect_timeout: config.get_connect_timeout().copied(),
            tcp_user_timeout: config.get_tcp_user_timeout().copied(),
            keepalive: config.get_keepalives().then(|| {
                (
                    config.get_keepalives_idle(),
                    config.get_keepalives_interval(),
                    config.get_keepalives_retries(),
                )
            }),
        }
    }
}

impl Address {
    /// A TCP address.
    pub(crate) fn tcp(ip: IpAddr, port: u16) -> Self {
        Address::Tcp(SocketAddr::new(ip, port))
    }

    /// The socket file in `dir` for `port`.
    #[cfg(unix)]
    pub(crate) fn unix(dir: &std::path::Path, port: u16) -> Self {
        Address::Unix(dir.join(format!(".s.PGSQL.{port}")))
    }

    /// Opens a socket to this address with `options`.
    pub(crate) async fn open(&self, options: &SocketOptions) -> io::Result<PgSocket> {
        match self {
            Address::Tcp(addr) => {
                let stream = bounded(TcpStream::connect(addr), options.connect_timeout).await?;
                stream.set_nodelay(true)?;
                let socket = SockRef::from(&stream);
                #[cfg(target_os = "linux")]
                if let Some(timeout) = options.tcp_user_timeout {
                    socket.set_tcp_user_timeout(Some(timeout))?;
                }
                if let Some((idle, interval, retries)) = options.keepalive {
                    let mut keepalive = TcpKeepalive::new().with_time(idle);
                    if let Some(interval) = interval {
                        keepalive = keepalive.with_interval(interval);
                    }
                    if let Some(retries) = retries {
                        keepalive = keepalive.with_retries(retries);
                    }
                    socket.set_tcp_keepalive(&keepalive)?;
                }
                Ok(PgSocket(Inner::Tcp(stream)))
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                let stream = bounded(UnixStream::connect(path), options.connect_timeout)
                    .await
                    .map_err(|error| {
                        io::Error::new(error.kind(), format!("{}: {error}", path.display()))
                    })?;
                Ok(PgSocket(Inner::Unix(stream)))
            }
        }
    }
}

async fn bounded<T>(
    connect: impl std::future::Future<Output = io::Result<T>>,
    timeout: Option<Duration>,
) -> io::Result<T> {
    match timeout {
        Some(timeout) => match tokio::time::timeout(timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connection timed out after {} ms (connect_timeout)",
                    timeout.as_millis()
                ),
            )),
        },
        None => connect.await,
    }
}

impl AsyncRead for PgSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            #[cfg(unix)]
            Inner::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PgSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            #[cfg(unix)]
            Inner::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            #[cfg(unix)]
            Inner::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            #[cfg(unix)]
            Inner::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
