//! The DestinationRule fields gatehouse accepts but does not apply (yet),
//! for `apply`'s warnings. When a part is implemented, its line goes.

use super::Found;
use crate::config::destination_rule::{
    ConnectionPoolSettings, DestinationRule, LoadBalancerSettings, OutlierDetection, TrafficPolicy,
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
    if let Some(lb) = &tp.load_balancer {
        load_balancer(lb, &format!("{p}.loadBalancer"), f);
    }
    if let Some(cp) = &tp.connection_pool {
        connection_pool(cp, &format!("{p}.connectionPool"), f);
    }
    if let Some(od) = &tp.outlier_detection {
        outlier_detection(od, &format!("{p}.outlierDetection"), f);
    }
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
        if let Some(od) = &pl.outlier_detection {
            outlier_detection(od, &format!("{pp}.outlierDetection"), f);
        }
    }
}

fn load_balancer(lb: &LoadBalancerSettings, p: &str, f: &mut Found) {
    if let Some(h) = &lb.consistent_hash {
        let hp = format!("{p}.consistentHash");
        if h.ring_hash.is_some() || h.maglev.is_some() || h.minimum_ring_size.is_some() {
            let field = if h.maglev.is_some() {
                "maglev"
            } else if h.ring_hash.is_some() {
                "ringHash"
            } else {
                "minimumRingSize"
            };
            f.instead(
                format!("{hp}.{field}"),
                "gatehouse hashes onto a ring of at least 1024 points (Envoy's default \
                 minimumRingSize); the ring's size and Maglev are not configurable",
            );
        }
        let cookie_attributes = h
            .http_cookie
            .as_ref()
            .is_some_and(|c| !c.attributes.is_empty());
        f.set(cookie_attributes, format!("{hp}.httpCookie.attributes"));
    }
    f.set(
        lb.locality_lb_setting.is_some(),
        format!("{p}.localityLbSetting"),
    );
    f.set(lb.warmup.is_some(), format!("{p}.warmup"));
}

fn outlier_detection(od: &OutlierDetection, p: &str, f: &mut Found) {
    f.set(
        od.split_external_local_origin_errors == Some(true),
        format!("{p}.splitExternalLocalOriginErrors"),
    );
    f.set(
        od.consecutive_local_origin_failures.is_some(),
        format!("{p}.consecutiveLocalOriginFailures"),
    );
}

fn connection_pool(cp: &ConnectionPoolSettings, p: &str, f: &mut Found) {
    if let Some(t) = &cp.tcp {
        let tp = format!("{p}.tcp");
        f.set(
            t.max_connection_duration.is_some(),
            format!("{tp}.maxConnectionDuration"),
        );
        if t.idle_timeout.is_some() {
            f.instead(
                format!("{tp}.idleTimeout"),
                "applied to the connections of tcp[] and tls[] (passthrough) routes; HTTP \
                 routes' pooled connections close after http.idleTimeout",
            );
        }
    }
    if let Some(h) = &cp.http {
        let hp = format!("{p}.http");
        f.set(
            h.max_concurrent_streams.is_some(),
            format!("{hp}.maxConcurrentStreams"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warned(json: &str) -> Vec<String> {
        let d: DestinationRule = serde_json::from_str(json).unwrap();
        let mut f = Found::default();
        destination_rule(&d, &mut f);
        f.0.into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn balancing_pools_and_outlier_detection_are_applied() {
        // Istio's circuit-breaking task, plus the rest that is applied.
        let applied = warned(
            r#"{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule",
            "metadata":{"name":"httpbin"},"spec":{"host":"httpbin","trafficPolicy":{
             "loadBalancer":{"simple":"LEAST_REQUEST","warmupDurationSecs":"30s"},
             "connectionPool":{"tcp":{"maxConnections":1,"connectTimeout":"1s",
               "tcpKeepalive":{"time":"60s"}},
              "http":{"http1MaxPendingRequests":1,"maxRequestsPerConnection":1,
               "http2MaxRequests":10,"maxRetries":2,"idleTimeout":"30s"}},
             "outlierDetection":{"consecutive5xxErrors":1,"consecutiveGatewayErrors":2,
              "interval":"1s","baseEjectionTime":"3m","maxEjectionPercent":100,
              "minHealthPercent":50}},
             "subsets":[{"name":"v1","labels":{"version":"v1"},"trafficPolicy":{
              "loadBalancer":{"consistentHash":{"httpCookie":{"name":"u","ttl":"0s"}}}}}]}}"#,
        );
        assert!(applied.is_empty(), "{applied:?}");
    }

    #[test]
    fn what_is_not_applied_still_warns() {
        let ignored = warned(
            r#"{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule",
            "metadata":{"name":"r"},"spec":{"host":"r","trafficPolicy":{
             "loadBalancer":{"consistentHash":{"useSourceIp":true,"maglev":{}},
               "localityLbSetting":{}},
             "connectionPool":{"tcp":{"maxConnectionDuration":"1h"}},
             "outlierDetection":{"splitExternalLocalOriginErrors":true,
              "consecutiveLocalOriginFailures":2}}}}"#,
        );
        assert_eq!(
            ignored,
            [
                "spec.trafficPolicy.loadBalancer.consistentHash.maglev",
                "spec.trafficPolicy.loadBalancer.localityLbSetting",
                "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration",
                "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors",
                "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
            ]
        );
    }
}
