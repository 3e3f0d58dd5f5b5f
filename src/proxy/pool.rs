//! A cluster's own connection pool, for a DestinationRule whose
//! `connectionPool` sets what the gateway's shared pool cannot vary per
//! request: `tcp.connectTimeout`, `tcp.tcpKeepalive` (SO_KEEPALIVE with
//! its time, interval and probes) and `http.idleTimeout` (how long an idle
//! pooled connection is kept). Made on the cluster's first request and
//! kept across recompiles while those settings hold
//! (`upstream::Registry`).
//!
//! It must change nothing else: the same connector (counted), the same
//! pool bounds and timers as the shared client.

use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Shared;
use super::counted::CountingConnector;
use super::transport::HttpClient;
use crate::config::checked::destination_rule::ConnectionPool;
use crate::upstream::Upstream;

/// Linux's default `tcp_keepalive_time`, for a `tcpKeepalive` without
/// `time` (Istio: "the OS default").
const OS_KEEPALIVE_TIME: Duration = Duration::from_secs(7200);
/// The shared client's idle timeout, for a pool without `idleTimeout`.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per backend (as nginx's `keepalive 64`).
pub(super) const MAX_IDLE_PER_HOST: usize = 64;

/// `up`'s own client, if its connection pool needs one.
pub(super) fn own_client<'a>(shared: &Shared, up: &'a Upstream) -> Option<&'a HttpClient> {
    let slot = up.transport.as_ref()?;
    let pool = up.policy.connection_pool.as_ref()?;
    slot.get_or_init(|| Box::new(build(shared, pool)))
        .downcast_ref::<HttpClient>()
}

fn build(shared: &Shared, pool: &ConnectionPool) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(
        pool.connect_timeout
            .unwrap_or(shared.settings.upstream_connect_timeout),
    ));
    connector.set_nodelay(true);
    if let Some(k) = &pool.keepalive {
        connector.set_keepalive(Some(k.time.unwrap_or(OS_KEEPALIVE_TIME)));
        connector.set_keepalive_interval(k.interval);
        connector.set_keepalive_retries(k.probes);
    }
    let connector = CountingConnector::new(connector, shared.metrics.upstream_gauge());
    let connector = super::transport::Connector::from(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(pool.idle_timeout.unwrap_or(IDLE_TIMEOUT))
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .build(connector)
}
