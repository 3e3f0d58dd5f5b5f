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

use super::super::Shared;
use super::super::counted::CountingConnector;
use super::{HttpClient, IDLE_TIMEOUT, pooled_for, tcp};
use crate::config::checked::destination_rule::ConnectionPool;
use crate::upstream::Upstream;

/// Linux's default `tcp_keepalive_time`, for a `tcpKeepalive` without
/// `time` (Istio: "the OS default").
const OS_KEEPALIVE_TIME: Duration = Duration::from_secs(7200);

/// `up`'s own client, if its connection pool needs one.
pub(super) fn own_client<'a>(shared: &Shared, up: &'a Upstream) -> Option<&'a HttpClient> {
    let slot = up.transport.as_ref()?;
    let pool = up.policy.connection_pool.as_ref()?;
    slot.get_or_init(|| Box::new(build(shared, pool)))
        .downcast_ref::<HttpClient>()
}

fn build(shared: &Shared, pool: &ConnectionPool) -> HttpClient {
    let mut connector = tcp(pool
        .connect_timeout
        .unwrap_or(shared.settings.upstream_connect_timeout));
    if let Some(k) = &pool.keepalive {
        connector.set_keepalive(Some(k.time.unwrap_or(OS_KEEPALIVE_TIME)));
        connector.set_keepalive_interval(k.interval);
        connector.set_keepalive_retries(k.probes);
    }
    let connector = CountingConnector::new(connector, shared.metrics.upstream_gauge());
    pooled_for(connector.into(), pool.idle_timeout.unwrap_or(IDLE_TIMEOUT))
}
