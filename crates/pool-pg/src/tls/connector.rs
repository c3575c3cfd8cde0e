//! [`PgTls`] as a tokio-postgres connector: `MakeTlsConnect` /
//! `TlsConnect` / `TlsStream` over either nothing or
//! `tokio-postgres-rustls`.
//!
//! Design: the rustls types stay private behind [`Connector`] and the
//! one-variant-per-backend enums inside [`PgTlsConnect`] and
//! [`PgTlsStream`], so the public types are the same with and without the
//! `tls` feature. Without it, the stream enum has only an uninhabited
//! variant: a TLS stream cannot exist, and the compiler proves it.
//!
//! Invariant: a handshake failure leaves here as an `io::Error` whose text
//! says what to change (`verify::explain`); a connector without TLS asked
//! to connect (only possible for `require` and stricter without the
//! feature) fails with the feature's name instead of tokio-postgres's
//! generic "no TLS implementation configured".

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::socket::PgSocket as Socket;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::{PgTls, SslMode};

#[cfg(feature = "tls")]
type RustlsConnect =
    <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
#[cfg(feature = "tls")]
type RustlsStream = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// What [`PgTls`] connects with.
#[derive(Clone)]
pub(super) enum Connector {
    /// No TLS: `disable`, or any mode without the `tls` feature.
    Off,
    /// rustls, with the verifier of the mode.
    #[cfg(feature = "tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// What a failed handshake is explained with.
#[derive(Debug)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(super) struct Handshake {
    pub(super) mode: SslMode,
    pub(super) root_cert: Option<Arc<std::path::Path>>,
    /// The host name (or address) verified against the certificate.
    pub(super) hostname: String,
}

/// One connection's TLS handshake, made by [`PgTls`] for a host.
pub struct PgTlsConnect {
    backend: ConnectBackend,
    handshake: Handshake,
}

enum ConnectBackend {
    Off,
    #[cfg(feature = "tls")]
    Rustls(RustlsConnect),
}

/// A TLS-encrypted connection made by [`PgTls`].
pub struct PgTlsStream(StreamBackend);

enum StreamBackend {
    #[cfg(feature = "tls")]
    Rustls(RustlsStream),
    /// Without the feature there is no TLS stream: uninhabited.
    #[cfg(not(feature = "tls"))]
    #[allow(dead_code)]
    Never(std::convert::Infallible),
}

impl MakeTlsConnect<Socket> for PgTls {
    type Stream = PgTlsStream;
    type TlsConnect = PgTlsConnect;
    type Error = std::convert::Infallible;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<PgTlsConnect, Self::Error> {
        let backend = match &mut self.connector {
            Connector::Off => ConnectBackend::Off,
            #[cfg(feature = "tls")]
            Connector::Rustls(make) => {
                ConnectBackend::Rustls(MakeTlsConnect::<Socket>::make_tls_connect(make, hostname)?)
            }
        };
        Ok(PgTlsConnect {
            backend,
            handshake: Handshake {
                mode: self.mode,
                root_cert: self.root_cert.clone(),
                hostname: hostname.to_owned(),
            },
        })
    }
}

impl TlsConnect<Socket> for PgTlsConnect {
    type Stream = PgTlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        match self.backend {
            ConnectBackend::Off => {
                drop(stream);
                let mode = self.handshake.mode;
                Box::pin(std::future::ready(Err(io::Error::other(format!(
                    "sslmode={mode} needs TLS, but this connector has none: enable the `tls` feature of pool-pg (features = [\"tls\"]) and configure sslmode through DATABASE_URL or PgTls::new"
                )))))
            }
            #[cfg(feature = "tls")]
            ConnectBackend::Rustls(connect) => {
                let handshake = self.handshake;
                Box::pin(async move {
                    // Cancel-safe: dropping it drops the half-done handshake
                    // and its socket.
                    connect
                        .connect(stream)
                        .await
                        .map(|stream| PgTlsStream(StreamBackend::Rustls(stream)))
                        .map_err(|error| super::verify::explain(error, &handshake))
                })
            }
        }
    }
}

/// Forwards one `AsyncRead`/`AsyncWrite` method to the backend's stream.
macro_rules! forward {
    ($self:ident, $stream:ident => $call:expr) => {
        match &mut $self.get_mut().0 {
            #[cfg(feature = "tls")]
            StreamBackend::Rustls($stream) => $call,
            #[cfg(not(feature = "tls"))]
            StreamBackend::Never(never) => match *never {},
        }
    };
}

// Without the feature the bodies are `match never {}`, which uses no argument.
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
impl AsyncRead for PgTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, stream => Pin::new(stream).poll_read(cx, buf))
    }
}

#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
impl AsyncWrite for PgTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, stream => Pin::new(stream).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, stream => Pin::new(stream).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, stream => Pin::new(stream).poll_shutdown(cx))
    }
}

impl TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.0 {
            #[cfg(feature = "tls")]
            StreamBackend::Rustls(stream) => stream.channel_binding(),
            #[cfg(not(feature = "tls"))]
            StreamBackend::Never(never) => match *never {},
        }
    }
}
