//! [`Tap`]: a stream wrapper that shows every byte of a connection to its
//! [`Watch`], and [`TapTls`]: a TLS connector that moves the watch above
//! TLS.
//!
//! The pool hands tokio-postgres a `Tap` around its own socket. Without
//! TLS, the tap on the socket reads the plain protocol. With TLS,
//! tokio-postgres gives the tapped socket to the connector after the
//! `SSLRequest` exchange; [`TapTls`] unwraps it, hands the bare socket to
//! the real connector, and puts the watch on a tap around the TLS stream,
//! so the watch always reads plaintext, once.
//!
//! tokio-postgres asks a connector whether it can do TLS at all through a
//! private method, which a wrapper cannot forward: the manager therefore
//! turns `sslmode=prefer` into `disable` itself for connectors without TLS
//! (see `connect.rs`), as tokio-postgres would.
//!
//! Invariant: at most one tap of a connection holds its watch, and that tap
//! carries the plaintext.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

use super::Watch;

/// A stream whose bytes its watch (if it holds it) reads as they pass.
#[derive(Debug)]
pub(crate) struct Tap<S> {
    inner: S,
    watch: Option<Box<Watch>>,
}

impl<S> Tap<S> {
    /// Wraps `inner`, read by `watch`.
    pub(crate) fn new(inner: S, watch: Box<Watch>) -> Self {
        Self {
            inner,
            watch: Some(watch),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(watch)) = (&polled, &mut this.watch) {
            watch.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, bytes);
        if let (Poll::Ready(Ok(written)), Some(watch)) = (&polled, &mut this.watch) {
            watch.wrote(&bytes[..*written]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Tap<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector that moves the watch from the socket's tap to a tap
/// around the TLS stream.
pub(crate) struct TapTls<T>(pub(crate) T);

impl<S, T> TlsConnect<Tap<S>> for TapTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Stream: Unpin,
{
    type Stream = Tap<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, T::Error>> + Send>>;

    fn connect(self, stream: Tap<S>) -> Self::Future {
        let Tap { inner, watch } = stream;
        let handshake = self.0.connect(inner);
        Box::pin(async move {
            let inner = handshake.await?;
            Ok(Tap { inner, watch })
        })
    }
}
