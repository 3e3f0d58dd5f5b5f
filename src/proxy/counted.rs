//! The upstream connector: hyper-util's `HttpConnector`, whose connections
//! are counted in `gatehouse_upstream_connections_active` from the moment
//! they connect until they close (in use or idle in the pool).
//!
//! It must change nothing else about a connection: every read, write and
//! the `Connection` facts hyper's pool reads pass through untouched.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Active;

/// `HttpConnector` with its connections counted.
#[derive(Debug, Clone)]
pub struct CountingConnector {
    inner: HttpConnector,
    gauge: Gauge,
}

impl CountingConnector {
    pub fn new(inner: HttpConnector, gauge: Gauge) -> CountingConnector {
        CountingConnector { inner, gauge }
    }
}

impl tower_service::Service<Uri> for CountingConnector {
    type Response = Counted<<HttpConnector as tower_service::Service<Uri>>::Response>;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        Connecting {
            inner: self.inner.call(dst),
            gauge: self.gauge.clone(),
        }
    }
}

type Inner = <HttpConnector as tower_service::Service<Uri>>::Future;

/// A connection attempt; counted once it succeeds.
pub struct Connecting {
    inner: Inner,
    gauge: Gauge,
}

impl Future for Connecting {
    type Output = Result<
        Counted<<HttpConnector as tower_service::Service<Uri>>::Response>,
        <HttpConnector as tower_service::Service<Uri>>::Error,
    >;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll(cx).map_ok(|io| Counted {
            io,
            _active: Active::new(&this.gauge),
        })
    }
}

/// An upstream connection that counts itself down when dropped.
#[derive(Debug)]
pub struct Counted<T> {
    io: T,
    _active: Active,
}

impl<T: Connection> Connection for Counted<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
