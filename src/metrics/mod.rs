//! gatehouse's Prometheus metrics: one [`Metrics`] per process, its
//! families in one explicit prometheus-client registry, served by the admin
//! endpoint as `GET /metrics` (OpenMetrics text).
//!
//! One instance is made by `proxy::Shared::new` and reached through it: the
//! data plane records requests, connections and handshakes into
//! `shared.metrics`, the control loop (which holds the same `Shared`)
//! records SDS pushes and config applies, and the admin endpoint encodes
//! it. Handing it along rather than keeping a process-wide static keeps
//! every instance (a test's, `gatehouse demo`'s) separate and its owner
//! explicit. The credential expiry gauges and the config generation are not
//! stored here at all: they are computed at scrape time from the admin
//! `Status` the control loop published, so they are exact and a deleted
//! secret leaves no stale series.
//!
//! What it must never do: take a label value from a client (paths, Host
//! headers, the SNI of a refused handshake, user agents; see `labels`),
//! take a lock of its own on the request path (its histograms are atomic,
//! and a keep-alive connection asking the same route again counts through
//! its `ConnCache` without touching the families' read-mostly `RwLock`:
//! see `requests`), or hold key material.

mod handshake;
mod histogram;
mod labels;
mod requests;
mod tcp;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use handshake::Outcome;
pub use histogram::Latency;
pub use labels::MethodClass;
use labels::{
    ExpiryLabels, HandshakeLabels, PortLabel, RequestLabels, ResourceLabel, RouteLabels,
    SessionLabels, UpstreamLabel, VersionLabel,
};
pub use requests::ConnCache;

use crate::control::Status;
use crate::secret::sds::ResourceKind;

/// `gatehouse_upstream_overflows_total{upstream, subset}`.
fn register_overflows(r: &mut Registry, family: &Family<UpstreamLabel, Counter>) {
    r.register(
        "upstream_overflows",
        "Requests refused by a destination's circuit breakers, DestinationRule connectionPool (response flag UO)",
        family.clone(),
    );
}

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of one gateway process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Latency>,
    upstream_duration: Family<UpstreamLabel, Latency>,
    upstream_connect_failures: Family<UpstreamLabel, Counter>,
    upstream_timeouts: Family<UpstreamLabel, Counter>,
    upstream_resets: Family<UpstreamLabel, Counter>,
    upstream_overflows: Family<UpstreamLabel, Counter>,
    downstream_active: Family<PortLabel, Gauge>,
    upstream_active: Gauge,
    handshakes: Family<HandshakeLabels, Counter>,
    sessions: Family<SessionLabels, Counter>,
    sds_pushes: Family<ResourceLabel, Counter>,
    sds_rejections: Family<ResourceLabel, Counter>,
    tcp_connections: Family<tcp::TcpLabels, Counter>,
    tcp_bytes: Family<tcp::TcpBytesLabels, Counter>,
    last_apply: Gauge<f64, AtomicU64>,
    /// The namespace the gateway reads its Secrets from (the `namespace`
    /// label of the expiry gauges), set once by the control loop.
    namespace: OnceLock<Arc<str>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("gatehouse"),
            requests: Family::default(),
            request_duration: Family::default(),
            upstream_duration: Family::default(),
            upstream_connect_failures: Family::default(),
            upstream_timeouts: Family::default(),
            upstream_resets: Family::default(),
            upstream_overflows: Family::default(),
            downstream_active: Family::default(),
            upstream_active: Gauge::default(),
            handshakes: Family::default(),
            sessions: Family::default(),
            sds_pushes: Family::default(),
            sds_rejections: Family::default(),
            tcp_connections: Family::default(),
            tcp_bytes: Family::default(),
            last_apply: Gauge::default(),
            namespace: OnceLock::new(),
        };
        m.register()
    }

    /// Puts every family into the registry (a clone shares its values).
    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "requests",
            "Requests answered, by gateway server, VirtualService, route (http index or name), method class and status code",
            self.requests.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from a request's start to its response headers",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register_with_unit(
            "upstream_request_duration",
            "Time from sending a request upstream to its response headers (or its failure), by destination host:port",
            Unit::Seconds,
            self.upstream_duration.clone(),
        );
        r.register(
            "upstream_connect_failures",
            "Requests whose upstream connection failed (response flag UF)",
            self.upstream_connect_failures.clone(),
        );
        r.register(
            "upstream_timeouts",
            "Requests whose upstream did not answer in time (response flag UT)",
            self.upstream_timeouts.clone(),
        );
        r.register(
            "upstream_resets",
            "Requests whose upstream connection ended before the response headers (response flag UC)",
            self.upstream_resets.clone(),
        );
        register_overflows(r, &self.upstream_overflows);
        r.register(
            "downstream_connections_active",
            "Open client connections, by Gateway port",
            self.downstream_active.clone(),
        );
        r.register(
            "upstream_connections_active",
            "Open connections to upstreams (in use or pooled)",
            self.upstream_active.clone(),
        );
        r.register(
            "tls_handshakes",
            "TLS handshakes by gateway server and result (success or the refusal reason)",
            self.handshakes.clone(),
        );
        r.register(
            "tls_sessions",
            "Successful TLS handshakes by gateway server, full or resumed",
            self.sessions.clone(),
        );
        r.register(
            "sds_pushes",
            "Credentials pushed to the proxy, by SDS resource",
            self.sds_pushes.clone(),
        );
        r.register(
            "sds_rejections",
            "Secret updates rejected (the last good credential kept serving), by SDS resource",
            self.sds_rejections.clone(),
        );
        tcp::register(r, &self.tcp_connections, &self.tcp_bytes);
        r.register_with_unit(
            "config_last_apply_timestamp",
            "When the running config was last applied (unix time)",
            Unit::Seconds,
            self.last_apply.clone(),
        );
        r.register(
            "build",
            "The gatehouse build",
            Info::new(VersionLabel(env!("CARGO_PKG_VERSION"))),
        );
        self
    }

    /// The open-connections gauge of one Gateway port (taken once per
    /// listener; each connection holds an [`Active`] of it).
    pub fn downstream_gauge(&self, port: u16) -> Gauge {
        self.downstream_active
            .get_or_create(&PortLabel(port))
            .clone()
    }

    /// The open upstream connections gauge.
    pub fn upstream_gauge(&self) -> Gauge {
        self.upstream_active.clone()
    }

    /// Counts one handshake; `server` is `None` before a server was chosen.
    pub fn handshake(&self, server: Option<&Arc<str>>, result: Outcome) {
        let key = HandshakeLabels {
            server: server.cloned(),
            result,
        };
        self.handshakes.get_or_create(&key).inc();
    }

    /// Counts one successful handshake as full or resumed.
    pub fn session(&self, server: &Arc<str>, resumed: bool) {
        let key = SessionLabels {
            server: server.clone(),
            resumed,
        };
        self.sessions.get_or_create(&key).inc();
    }

    pub fn sds_pushed(&self, resource: &str) {
        let key = ResourceLabel(resource.to_owned());
        self.sds_pushes.get_or_create(&key).inc();
    }

    pub fn sds_rejected(&self, resource: &str) {
        let key = ResourceLabel(resource.to_owned());
        self.sds_rejections.get_or_create(&key).inc();
    }

    /// Counts one passed-on connection that ended, and its bytes.
    pub fn tcp_connection(
        &self,
        server: &Arc<str>,
        route: Option<&Arc<str>>,
        flags: &'static str,
        (received, sent): (u64, u64),
    ) {
        let key = tcp::TcpLabels {
            server: server.clone(),
            route: route.cloned(),
            flags,
        };
        self.tcp_connections.get_or_create(&key).inc();
        for (direction, n) in [("received", received), ("sent", sent)] {
            let key = tcp::TcpBytesLabels {
                server: server.clone(),
                route: route.cloned(),
                direction,
            };
            self.tcp_bytes.get_or_create(&key).inc_by(n);
        }
    }

    /// The control loop published a config now.
    pub fn config_applied(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_apply.set(now);
    }

    /// The namespace of the gateway's Secrets (first call wins).
    pub fn set_namespace(&self, namespace: &str) {
        let _ = self.namespace.set(Arc::from(namespace));
    }

    /// The whole exposition: the registry, then what is computed from
    /// `status` now (config generation, credential expiry), then `# EOF`.
    pub fn encode(&self, status: &Status) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let live = self.scrape_time(status);
        // Writing into a String cannot fail; an encoder error would be a
        // bug in a label set, and the scrape then says so.
        let result = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &live))
            .and_then(|()| encode_eof(&mut out));
        if result.is_err() {
            tracing::error!("cannot encode the metrics");
            return "# EOF\n".to_owned();
        }
        out
    }

    /// The metrics read from the published `Status` at scrape time.
    fn scrape_time(&self, status: &Status) -> Registry {
        let mut live = Registry::with_prefix("gatehouse");
        let generation: Gauge = Gauge::default();
        generation.set(i64::try_from(status.snapshot_version).unwrap_or(i64::MAX));
        live.register(
            "config_generation",
            "The generation (snapshot version) of the config the data plane serves",
            generation,
        );
        let expiry: Family<ExpiryLabels, Gauge> = Family::default();
        let namespace = self
            .namespace
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::from(""));
        for row in status.credentials.iter() {
            // A CA bundle's first expiry is the one that breaks handshakes.
            let Some(not_after) = row.certs.iter().map(|c| c.not_after).min() else {
                continue;
            };
            let key = ExpiryLabels {
                namespace: namespace.clone(),
                resource: row.resource.clone(),
                kind: match row.kind {
                    ResourceKind::KeyCertPair => "cert",
                    ResourceKind::RootCert => "ca",
                },
            };
            expiry.get_or_create(&key).set(not_after);
        }
        live.register_with_unit(
            "credential_expiry_timestamp",
            "The notAfter (unix time) of each served certificate (kind=cert) and the earliest of each client CA bundle (kind=ca)",
            Unit::Seconds,
            expiry,
        );
        live
    }
}

/// One open connection on a gauge: counted up when made, down when dropped.
#[derive(Debug)]
pub struct Active(Gauge);

impl Active {
    pub fn new(gauge: &Gauge) -> Active {
        gauge.inc();
        Active(gauge.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}
