//! How a request reaches a backend: the one place that chooses the client
//! a cluster's requests go through. The primary request, each retry and
//! each mirrored copy ask here, so a cluster's transport is decided once
//! for all three: the process's plain HTTP/1.1 client, or the cluster's
//! own TLS client when its DestinationRule originates TLS (`origin.rs`;
//! HTTP/2 when the backend picks `h2` by ALPN, `connector.rs`).

mod connector;
mod origin;

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;

use super::Shared;
use super::counted::CountingConnector;
use super::handler::body::ClientBody;
use crate::upstream::Upstream;
pub use connector::Connector;
pub use origin::{Base, Origination, Origins};

/// The pooled client every transport is built on.
pub type HttpClient = Client<Connector, ClientBody>;

/// The counted TCP connector of every upstream client.
pub fn tcp_connector(connect_timeout: Duration, gauge: Gauge) -> CountingConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    CountingConnector::new(connector, gauge)
}

/// A pooled client over `connector`, with the pool every upstream client
/// has.
pub fn pooled(connector: Connector) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        // Like nginx's `keepalive 64`: enough idle connections per
        // backend for busy traffic, not one per client ever seen.
        .pool_max_idle_per_host(64)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// What TLS clients of the process are built on (for the compiler's
/// [`Origins`]).
pub fn base(shared: &Shared) -> Base {
    Base {
        tcp: tcp_connector(
            shared.settings.upstream_connect_timeout,
            shared.metrics.upstream_gauge(),
        ),
        handshake_timeout: shared.settings.upstream_connect_timeout,
    }
}

/// The client for `up`'s requests.
pub(crate) fn client(shared: &Shared, up: &Upstream) -> HttpClient {
    match &up.origin {
        Some(o) => o.client(),
        None => shared.client.clone(),
    }
}

/// Sends `req` (its URI already names the endpoint) over `up`'s transport.
pub(crate) async fn send(
    shared: &Shared,
    up: &Upstream,
    req: Request<ClientBody>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    match &up.origin {
        Some(o) => o.client().request(req).await,
        None => shared.client.request(req).await,
    }
}
