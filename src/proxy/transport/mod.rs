//! How a request reaches a backend: the one place that chooses the client
//! a cluster's requests go through. The primary request, each retry and
//! each mirrored copy ask here, so a cluster's transport is decided once
//! for all three: the cluster's own TLS client when its DestinationRule
//! originates TLS (`origin.rs`; HTTP/2 when the backend picks `h2` by
//! ALPN, `connector.rs`); else HTTP/2 with prior knowledge (h2c,
//! `../h2c.rs`) when the destination's ServiceEntry port is `HTTP2` or
//! `GRPC` or its DestinationRule says `h2UpgradePolicy: UPGRADE` (with
//! `useClientProtocol`, the protocol the client spoke); else HTTP/1.1:
//! a request (or a retry) to a plain cluster that keeps the gateway's
//! pool settings goes over a connection its own task drives
//! (`direct.rs`), the others (and mirrors) through a pooled client.

mod connector;
mod direct;
mod origin;
mod pool;

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;

use super::Shared;
use super::counted::CountingConnector;
use super::h2c::{H2c, H2cError};
use super::handler::body::ClientBody;
use crate::upstream::Upstream;
pub use connector::Connector;
pub use direct::Direct;
use direct::{DirectBody, DirectError};
pub use origin::{Base, Origination, Origins};

/// The pooled client every transport is built on.
pub type HttpClient = Client<Connector, ClientBody>;

/// The counted TCP connector of every upstream client.
pub fn tcp_connector(connect_timeout: Duration, gauge: Gauge) -> CountingConnector {
    CountingConnector::new(tcp(connect_timeout), gauge)
}

/// The TCP connector every upstream client starts from (no Nagle).
fn tcp(connect_timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector
}

/// How long an idle pooled upstream connection is kept, unless a
/// DestinationRule's `idleTimeout` says otherwise.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per backend, by the pooled client and the direct
/// path alike: enough for busy traffic, not one per client ever seen. Not
/// nginx's `keepalive 64` (that is per worker): HTTP/2 clients put 100
/// streams in flight on a few connections, and with fewer idle places than
/// requests in flight, every burst closed and opened the difference again
/// (bench/README.md, "Where the time and memory go"; `traffic_reuse`).
pub(crate) const MAX_IDLE_PER_BACKEND: usize = 256;

/// A pooled client over `connector`, with the pool every upstream client
/// has.
pub fn pooled(connector: Connector) -> HttpClient {
    pooled_for(connector, IDLE_TIMEOUT)
}

/// The direct HTTP/1.1 connections (`direct.rs`) over `connector`, kept
/// idle as long as the pooled client's.
pub fn direct(connector: CountingConnector) -> Direct {
    Direct::new(connector, IDLE_TIMEOUT)
}

/// [`pooled`], keeping idle connections for `idle`.
fn pooled_for(connector: Connector, idle: Duration) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(MAX_IDLE_PER_BACKEND)
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

/// Why a request got no answer from the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Http1(#[from] hyper_util::client::legacy::Error),
    #[error(transparent)]
    H2c(#[from] H2cError),
    #[error(transparent)]
    Direct(#[from] DirectError),
}

impl Error {
    /// The connection could not be made (nothing was sent).
    pub fn is_connect(&self) -> bool {
        match self {
            Error::Http1(e) => e.is_connect(),
            Error::H2c(e) => matches!(e, H2cError::Connect { .. }),
            Error::Direct(e) => matches!(e, DirectError::Connect(_)),
        }
    }
}

/// The HTTP version a cluster speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Http1,
    H2c,
    /// `useClientProtocol`: HTTP/2 to the backend when the client spoke it.
    AsClient,
}

fn speaks(up: &Upstream) -> Speaks {
    // TLS to the backend: ALPN decides (`connector.rs`), never h2c.
    if up.origin.is_some() {
        return Speaks::Http1;
    }
    let as_client = up
        .policy
        .connection_pool
        .as_ref()
        .is_some_and(|c| c.use_client_protocol);
    // Istio: useClientProtocol makes h2UpgradePolicy ineffective.
    if as_client {
        Speaks::AsClient
    } else if up.h2c {
        Speaks::H2c
    } else {
        Speaks::Http1
    }
}

/// A cluster's transport, cheap to clone (a mirror's task keeps one).
#[derive(Clone)]
pub(crate) struct Transport {
    http1: HttpClient,
    h2c: H2c,
    speaks: Speaks,
}

impl Transport {
    /// Sends `req` (its URI already names the endpoint; its version is the
    /// client's).
    pub(crate) async fn request(
        &self,
        req: Request<ClientBody>,
    ) -> Result<Response<Incoming>, Error> {
        dispatch(&self.http1, &self.h2c, self.speaks, req).await
    }
}

/// The transport for `up`'s requests.
pub(crate) fn client(shared: &Shared, up: &Upstream) -> Transport {
    Transport {
        http1: match &up.origin {
            Some(o) => o.client(),
            None => plain(shared, up).clone(),
        },
        h2c: shared.h2c.clone(),
        speaks: speaks(up),
    }
}

/// `up`'s plain HTTP/1.1 client: its own when its DestinationRule's
/// connection pool sets a connect timeout, keepalive or idle timeout
/// (`pool.rs`), else the process's.
fn plain<'a>(shared: &'a Shared, up: &'a Upstream) -> &'a HttpClient {
    pool::own_client(shared, up).unwrap_or(&shared.client)
}

/// A backend's answer body: from a pooled client (or h2c), or from a
/// direct exchange, whose body drives its connection.
pub(crate) enum Answer {
    Pooled(Incoming),
    Direct(DirectBody),
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Answer::Pooled(b) => Pin::new(b).poll_frame(cx),
            Answer::Direct(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Pooled(b) => b.is_end_stream(),
            Answer::Direct(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Answer::Pooled(b) => b.size_hint(),
            Answer::Direct(b) => b.size_hint(),
        }
    }
}

/// Sends `req` (its URI already names the endpoint `addr`; its version is
/// the client's) over `up`'s transport.
pub(crate) async fn send(
    shared: &Shared,
    up: &Upstream,
    addr: SocketAddr,
    req: Request<ClientBody>,
) -> Result<Response<Answer>, Error> {
    let answer = match &up.origin {
        Some(o) => dispatch(&o.client(), &shared.h2c, Speaks::Http1, req).await,
        None if goes_direct(up, req.version()) => {
            let resp = shared.direct.send(addr, req).await?;
            return Ok(resp.map(Answer::Direct));
        }
        None => dispatch(plain(shared, up), &shared.h2c, speaks(up), req).await,
    };
    Ok(answer?.map(Answer::Pooled))
}

/// Whether a request the client sent as `version` to plain `up` goes
/// over a direct connection: HTTP/1.1 to a cluster without its own pool
/// (`pool.rs`) or a per-connection request limit (which needs the pooled
/// client's connection facts, `handler/lease.rs`).
fn goes_direct(up: &Upstream, version: Version) -> bool {
    !wants_h2(speaks(up), version)
        && up.transport.is_none()
        && up.limits().is_none_or(|l| !l.limits_connections())
}

/// Whether a request the client sent as `version` goes to `up` over h2c
/// (else HTTP/1.1, or over TLS what ALPN picks).
pub(crate) fn goes_h2c(up: &Upstream, version: Version) -> bool {
    wants_h2(speaks(up), version)
}

/// Whether a request the client sent as `version` goes out as HTTP/2.
fn wants_h2(speaks: Speaks, version: Version) -> bool {
    match speaks {
        Speaks::Http1 => false,
        Speaks::H2c => true,
        Speaks::AsClient => version == Version::HTTP_2,
    }
}

async fn dispatch(
    http1: &HttpClient,
    h2c: &H2c,
    speaks: Speaks,
    mut req: Request<ClientBody>,
) -> Result<Response<Incoming>, Error> {
    if wants_h2(speaks, req.version()) {
        return Ok(h2c.request(req).await?);
    }
    *req.version_mut() = Version::HTTP_11;
    Ok(http1.request(req).await?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::checked::destination_rule::{
        CheckedDestinationRule, ClusterPolicy, ConnectionPool, H2Upgrade, Policy,
    };
    use crate::config::checked::{CheckedServiceEntry, Resolution, ServicePort};

    fn entry(protocol: &str) -> CheckedServiceEntry {
        CheckedServiceEntry {
            namespace: "default".into(),
            name: "grpc".into(),
            hosts: vec!["grpc.example.com".into()],
            ports: vec![ServicePort {
                number: 50051,
                name: "grpc".into(),
                target_port: None,
                protocol: protocol.into(),
            }],
            resolution: Resolution::Static,
            endpoints: Vec::new(),
        }
    }

    fn rule(pool: ConnectionPool) -> CheckedDestinationRule {
        CheckedDestinationRule {
            namespace: "default".into(),
            name: "grpc".into(),
            host: "grpc.example.com".into(),
            creation_timestamp: None,
            policy: Policy {
                parts: ClusterPolicy {
                    connection_pool: Some(pool),
                    ..ClusterPolicy::default()
                },
                ports: Vec::new(),
            },
            subsets: Vec::new(),
        }
    }

    /// What a cluster of this port protocol and rule speaks.
    fn speaks_for(protocol: &str, pool: Option<ConnectionPool>) -> Speaks {
        let se = entry(protocol);
        let entries: HashMap<&str, &CheckedServiceEntry> =
            HashMap::from([("grpc.example.com", &se)]);
        let r = pool.map(rule);
        let up =
            crate::upstream::resolve("grpc.example.com", Some(50051), None, &entries, r.as_ref());
        speaks(&up)
    }

    #[test]
    fn the_port_protocol_and_the_rule_choose_http2() {
        assert_eq!(speaks_for("GRPC", None), Speaks::H2c);
        assert_eq!(speaks_for("HTTP2", None), Speaks::H2c);
        assert_eq!(speaks_for("HTTP", None), Speaks::Http1);
        assert_eq!(speaks_for("", None), Speaks::Http1);
        let upgrade = |h2_upgrade| ConnectionPool {
            h2_upgrade,
            ..ConnectionPool::default()
        };
        assert_eq!(
            speaks_for("HTTP", Some(upgrade(H2Upgrade::Upgrade))),
            Speaks::H2c
        );
        assert_eq!(
            speaks_for("HTTP", Some(upgrade(H2Upgrade::DoNotUpgrade))),
            Speaks::Http1
        );
        // DO_NOT_UPGRADE leaves an HTTP/2 port alone.
        assert_eq!(
            speaks_for("GRPC", Some(upgrade(H2Upgrade::DoNotUpgrade))),
            Speaks::H2c
        );
        // useClientProtocol wins over both, as in Istio.
        let as_client = ConnectionPool {
            use_client_protocol: true,
            h2_upgrade: H2Upgrade::Upgrade,
            ..ConnectionPool::default()
        };
        assert_eq!(speaks_for("GRPC", Some(as_client)), Speaks::AsClient);
    }

    #[test]
    fn as_the_client_follows_the_clients_version() {
        assert!(wants_h2(Speaks::AsClient, Version::HTTP_2));
        assert!(!wants_h2(Speaks::AsClient, Version::HTTP_11));
        assert!(wants_h2(Speaks::H2c, Version::HTTP_11));
        assert!(!wants_h2(Speaks::Http1, Version::HTTP_2));
    }
}
