//! The DestinationRule fields gatehouse accepts but does not apply (yet),
//! for `apply`'s warnings. When a part is implemented, its line goes.

use super::Found;
use crate::config::destination_rule::{DestinationRule, TrafficPolicy};

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
    f.set(tp.connection_pool.is_some(), format!("{p}.connectionPool"));
    f.set(
        tp.outlier_detection.is_some(),
        format!("{p}.outlierDetection"),
    );
    f.set(tp.tls.is_some(), format!("{p}.tls"));
    f.set(tp.proxy_protocol.is_some(), format!("{p}.proxyProtocol"));
    f.set(tp.tunnel.is_some(), format!("{p}.tunnel"));
    f.set(tp.retry_budget.is_some(), format!("{p}.retryBudget"));
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let pp = format!("{p}.portLevelSettings[{i}]");
        f.set(pl.load_balancer.is_some(), format!("{pp}.loadBalancer"));
        f.set(pl.connection_pool.is_some(), format!("{pp}.connectionPool"));
        f.set(
            pl.outlier_detection.is_some(),
            format!("{pp}.outlierDetection"),
        );
        f.set(pl.tls.is_some(), format!("{pp}.tls"));
    }
}
