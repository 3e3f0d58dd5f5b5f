//! The DestinationRule fields gatehouse accepts but does not apply (yet),
//! for `apply`'s warnings. When a part is implemented, its line goes.

use super::Found;
use crate::config::destination_rule::{
    ConnectionPoolSettings, DestinationRule, LoadBalancerSettings, TrafficPolicy,
};

pub(super) fn destination_rule(d: &DestinationRule, f: &mut Found) {
    let spec = &d.spec;
    if let Some(tp) = &spec.traffic_policy {
        traffic_policy(tp, "spec.trafficPolicy", f);
    }
    for (i, s) in spec.subsets.iter().enumerate() {
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(tp, &format!("spec.subsets[{i}].trafficPolicy"), f);
        }
    }
    f.set(!spec.export_to.is_empty(), "spec.exportTo");
    f.set(spec.workload_selector.is_some(), "spec.workloadSelector");
}

fn traffic_policy(tp: &TrafficPolicy, p: &str, f: &mut Found) {
    f.set(tp.load_balancer.is_some(), format!("{p}.loadBalancer"));
    if let Some(cp) = &tp.connection_pool {
        connection_pool(cp, &format!("{p}.connectionPool"), f);
    }
    f.set(
        tp.outlier_detection.is_some(),
        format!("{p}.outlierDetection"),
    );
    if tp.proxy_protocol.is_some() {
        f.instead(
            format!("{p}.proxyProtocol"),
            "the PROXY header is sent on the connections of tls[] (passthrough) and tcp[] \
             routes; HTTP routes' upstream connections are pooled and shared, and carry none",
        );
    }
    f.set(tp.tunnel.is_some(), format!("{p}.tunnel"));
    f.set(tp.retry_budget.is_some(), format!("{p}.retryBudget"));
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let pp = format!("{p}.portLevelSettings[{i}]");
        if let Some(lb) = &pl.load_balancer {
            load_balancer(lb, &format!("{pp}.loadBalancer"), f);
        }
        if let Some(cp) = &pl.connection_pool {
            connection_pool(cp, &format!("{pp}.connectionPool"), f);
        }
        f.set(
            pl.outlier_detection.is_some(),
            format!("{pp}.outlierDetection"),
        );
    }
}

fn load_balancer(lb: &LoadBalancerSettings, p: &str, f: &mut Found) {
    f.set(lb.simple.is_some(), format!("{p}.simple"));
    f.set(lb.consistent_hash.is_some(), format!("{p}.consistentHash"));
    f.set(
        lb.locality_lb_setting.is_some(),
        format!("{p}.localityLbSetting"),
    );
    f.set(
        lb.warmup_duration_secs.is_some(),
        format!("{p}.warmupDurationSecs"),
    );
    f.set(lb.warmup.is_some(), format!("{p}.warmup"));
}

fn connection_pool(cp: &ConnectionPoolSettings, p: &str, f: &mut Found) {
    if let Some(t) = &cp.tcp {
        let tp = format!("{p}.tcp");
        f.set(t.max_connections.is_some(), format!("{tp}.maxConnections"));
        f.set(t.connect_timeout.is_some(), format!("{tp}.connectTimeout"));
        f.set(t.tcp_keepalive.is_some(), format!("{tp}.tcpKeepalive"));
        f.set(
            t.max_connection_duration.is_some(),
            format!("{tp}.maxConnectionDuration"),
        );
        f.set(t.idle_timeout.is_some(), format!("{tp}.idleTimeout"));
    }
    if let Some(h) = &cp.http {
        let hp = format!("{p}.http");
        f.set(
            h.http1_max_pending_requests.is_some(),
            format!("{hp}.http1MaxPendingRequests"),
        );
        f.set(
            h.http2_max_requests.is_some(),
            format!("{hp}.http2MaxRequests"),
        );
        f.set(
            h.max_requests_per_connection.is_some(),
            format!("{hp}.maxRequestsPerConnection"),
        );
        f.set(h.max_retries.is_some(), format!("{hp}.maxRetries"));
        f.set(h.idle_timeout.is_some(), format!("{hp}.idleTimeout"));
        f.set(
            h.max_concurrent_streams.is_some(),
            format!("{hp}.maxConcurrentStreams"),
        );
    }
}
