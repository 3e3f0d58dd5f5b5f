//! HTTP/2 with prior knowledge over cleartext (h2c) to backends: one
//! multiplexed connection per endpoint, made on first use through the
//! same counting connector as the HTTP/1.1 pool, kept while it lives and
//! made again when the backend closes it.
//!
//! Why not hyper-util's pooled client with `http2_only`: it takes the
//! endpoint from the request's URI and sends that URI's authority as
//! `:authority`, so the backend would see the endpoint's address there and
//! the client's host in a `host` header, which RFC 9113 §8.3.1 forbids
//! ("MUST NOT generate a request with a Host header field that differs
//! from the :authority"). Here the endpoint is only where the connection
//! goes, and `:authority` is the request's `Host`, as Envoy sends it.
//!
//! The map of connections is read without a lock (`ArcSwap`); it is
//! copied only when a connection is made or found closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::HOST;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::counted::CountingConnector;
use super::handler::body::ClientBody;

/// How often an open connection is pinged, and how long a ping may take,
/// so that a backend gone silent is found before a request waits on it.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an h2c request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum H2cError {
    /// The connection to the endpoint could not be made.
    #[error("h2c connection to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request's URI names no endpoint address.
    #[error("h2c request has no endpoint address in its URI")]
    NoEndpoint,
    /// The request was sent (or was being sent) and failed.
    #[error("h2c request failed: {0}")]
    Send(#[source] hyper::Error),
}

/// The h2c connections, one per endpoint; cheap to clone.
#[derive(Clone)]
pub struct H2c(Arc<Pool>);

struct Pool {
    connector: CountingConnector,
    conns: ArcSwap<HashMap<SocketAddr, SendRequest<ClientBody>>>,
}

impl H2c {
    pub fn new(connector: CountingConnector) -> H2c {
        H2c(Arc::new(Pool {
            connector,
            conns: ArcSwap::default(),
        }))
    }

    /// Sends `req`, whose URI names the endpoint (`http://ADDR/path`), over
    /// that endpoint's connection. A request a reused connection could not
    /// take (it had closed) is sent once more on a new one.
    pub async fn request(&self, req: Request<ClientBody>) -> Result<Response<Incoming>, H2cError> {
        let addr = endpoint(req.uri()).ok_or(H2cError::NoEndpoint)?;
        let mut req = for_h2(req);
        let mut fresh = false;
        loop {
            let mut tx = match self.cached(addr) {
                Some(tx) if !fresh => tx,
                _ => {
                    fresh = true;
                    self.connect(addr).await?
                }
            };
            if let Err(e) = tx.ready().await {
                self.forget_closed(addr);
                if fresh {
                    return Err(H2cError::Send(e));
                }
                fresh = true;
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(r) => return Ok(r),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => {
                        self.forget_closed(addr);
                        req = unsent;
                        fresh = true;
                    }
                    _ => return Err(H2cError::Send(e.into_error())),
                },
            }
        }
    }

    /// The open connection to `addr`, if there is one.
    fn cached(&self, addr: SocketAddr) -> Option<SendRequest<ClientBody>> {
        self.0
            .conns
            .load()
            .get(&addr)
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    /// Drops `addr`'s connection from the map if it has closed.
    fn forget_closed(&self, addr: SocketAddr) {
        self.0.conns.rcu(|m| {
            let mut m = HashMap::clone(m);
            if m.get(&addr).is_some_and(SendRequest::is_closed) {
                m.remove(&addr);
            }
            m
        });
    }

    /// A new connection to `addr`, kept for the next requests.
    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<ClientBody>, H2cError> {
        let failed =
            |source: Box<dyn std::error::Error + Send + Sync>| H2cError::Connect { addr, source };
        let uri: Uri = format!("http://{addr}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| failed(e.into()))?;
        let io = self
            .0
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(|e| failed(e.into()))?;
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_EVERY)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .handshake(io)
            .await
            .map_err(|e| failed(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(upstream = %addr, error = %e, "h2c connection ended with an error");
            }
        });
        self.0.conns.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(addr, tx.clone());
            m
        });
        Ok(tx)
    }
}

/// The endpoint a request's URI names.
fn endpoint(uri: &Uri) -> Option<SocketAddr> {
    uri.authority()?.as_str().parse().ok()
}

/// `req` as HTTP/2 sends it: its `Host` becomes the `:authority` (and is
/// no header of its own), the scheme `http`, the version 2.
fn for_h2(mut req: Request<ClientBody>) -> Request<ClientBody> {
    *req.version_mut() = Version::HTTP_2;
    let Some(host) = req.headers_mut().remove(HOST) else {
        return req;
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = host
        .to_str()
        .ok()
        .and_then(|h| format!("http://{h}{pq}").parse::<Uri>().ok());
    match uri {
        Some(uri) => *req.uri_mut() = uri,
        // A Host that is no authority (it passed the gateway's checks, so
        // this should not happen): sent as it was, as a header.
        None => {
            req.headers_mut().insert(HOST, host);
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderValue;

    #[test]
    fn host_becomes_the_authority() {
        let mut req = Request::new(ClientBody::replay(Bytes::new()));
        *req.uri_mut() = "http://127.0.0.1:9000/a/b?x=1".parse().unwrap();
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("grpc.example.com"));
        assert_eq!(
            endpoint(req.uri()),
            Some(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        let req = for_h2(req);
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.uri().to_string(), "http://grpc.example.com/a/b?x=1");
        assert!(req.headers().get(HOST).is_none());
    }
}
