//! Rules for a DestinationRule, and its checked form: every enum value
//! named (an unknown one is refused with its field), durations parsed,
//! counts in range, `ISTIO_MUTUAL` refused (gatehouse has no mesh
//! identity to present), TLS settings that could not be honoured refused
//! rather than weakened.

use std::collections::HashSet;
use std::path::PathBuf;

use super::super::checked::destination_rule::{
    CheckedDestinationRule, CheckedSubset, ClusterPolicy, ConnectionPool, H2Upgrade, Keepalive,
    Outlier, Policy, ProxyVersion, UpstreamTls, UpstreamTlsMode,
};
use super::super::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, OutlierDetection, TrafficPolicy,
};
use super::super::error::FieldErrors;
use super::super::host::{check_host, is_dns1123_label, qualify};
use super::load_balancer::load_balancer;
use super::{duration_ms, port};

pub(super) fn destination_rule(
    d: &DestinationRule,
    e: &mut FieldErrors,
) -> Option<CheckedDestinationRule> {
    let before = e.0.len();
    let spec = &d.spec;
    let ns = d.metadata.ns();
    if spec.host.is_empty() {
        e.push("spec.host", "host is required");
    } else if let Err(why) = check_host(&spec.host) {
        e.push("spec.host", why);
    }
    let top = match &spec.traffic_policy {
        Some(tp) => policy(tp, "spec.trafficPolicy", true, e),
        None => Some(Policy::default()),
    };
    let mut names = HashSet::new();
    let mut subsets = Vec::new();
    for (i, s) in spec.subsets.iter().enumerate() {
        let p = format!("spec.subsets[{i}]");
        if !is_dns1123_label(&s.name) {
            e.push(
                format!("{p}.name"),
                format!("{:?} is not a subset name (a DNS label)", s.name),
            );
        } else if !names.insert(s.name.as_str()) {
            e.push(
                format!("{p}.name"),
                format!("subset {:?} is defined twice", s.name),
            );
        }
        let sp = match &s.traffic_policy {
            Some(tp) => policy(tp, &format!("{p}.trafficPolicy"), false, e).map(Some),
            None => Some(None),
        };
        if let Some(sp) = sp {
            subsets.push(CheckedSubset {
                name: s.name.clone(),
                labels: s.labels.clone(),
                policy: sp,
            });
        }
    }
    for (i, x) in spec.export_to.iter().enumerate() {
        if x != "*" && x != "." && x != "~" && !is_dns1123_label(x) {
            e.push(
                format!("spec.exportTo[{i}]"),
                format!("{x:?} is not a namespace, \".\" or \"*\""),
            );
        }
    }
    (e.0.len() == before).then(|| CheckedDestinationRule {
        namespace: ns.to_owned(),
        name: d.metadata.name.clone(),
        host: qualify(&spec.host, ns),
        creation_timestamp: d.metadata.creation_timestamp.clone(),
        policy: top.unwrap_or_default(),
        subsets,
    })
}

/// A `trafficPolicy` (`top`: the rule's own, where `proxyProtocol` may be).
fn policy(tp: &TrafficPolicy, p: &str, top: bool, e: &mut FieldErrors) -> Option<Policy> {
    let before = e.0.len();
    let mut parts = ClusterPolicy {
        load_balancer: tp
            .load_balancer
            .as_ref()
            .and_then(|lb| load_balancer(lb, &format!("{p}.loadBalancer"), e)),
        connection_pool: tp
            .connection_pool
            .as_ref()
            .and_then(|cp| connection_pool(cp, &format!("{p}.connectionPool"), e)),
        outlier: tp
            .outlier_detection
            .as_ref()
            .and_then(|o| outlier(o, &format!("{p}.outlierDetection"), e)),
        tls: tp.tls.as_ref().and_then(|t| tls(t, &format!("{p}.tls"), e)),
        proxy_protocol: None,
    };
    if let Some(pp) = &tp.proxy_protocol {
        let f = format!("{p}.proxyProtocol.version");
        match pp.version.as_deref() {
            Some("V1") => parts.proxy_protocol = Some(ProxyVersion::V1),
            Some("V2") => parts.proxy_protocol = Some(ProxyVersion::V2),
            Some(v) => e.push(
                f,
                format!("unknown PROXY protocol version {v:?} (V1 or V2)"),
            ),
            None => e.push(f, "version is required (V1 or V2)"),
        }
        if !top {
            e.push(
                format!("{p}.proxyProtocol"),
                "proxyProtocol is only allowed in the rule's own trafficPolicy",
            );
        }
    }
    let mut seen = HashSet::new();
    let mut ports = Vec::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let pp = format!("{p}.portLevelSettings[{i}]");
        let Some(sel) = pl.port else {
            e.push(format!("{pp}.port"), "port is required");
            continue;
        };
        let Some(n) = port(sel.number, format!("{pp}.port.number"), e) else {
            continue;
        };
        if !seen.insert(n) {
            e.push(
                format!("{pp}.port.number"),
                format!("port {n} has two entries"),
            );
        }
        ports.push((
            n,
            ClusterPolicy {
                load_balancer: pl
                    .load_balancer
                    .as_ref()
                    .and_then(|lb| load_balancer(lb, &format!("{pp}.loadBalancer"), e)),
                connection_pool: pl
                    .connection_pool
                    .as_ref()
                    .and_then(|cp| connection_pool(cp, &format!("{pp}.connectionPool"), e)),
                outlier: pl
                    .outlier_detection
                    .as_ref()
                    .and_then(|o| outlier(o, &format!("{pp}.outlierDetection"), e)),
                tls: pl
                    .tls
                    .as_ref()
                    .and_then(|t| tls(t, &format!("{pp}.tls"), e)),
                proxy_protocol: None,
            },
        ));
    }
    (e.0.len() == before).then_some(Policy { parts, ports })
}

/// A count Istio types as int32 and Envoy needs positive.
fn count(v: Option<i64>, p: String, zero_ok: bool, e: &mut FieldErrors) -> Option<u32> {
    let v = v?;
    let min = i64::from(!zero_ok);
    match u32::try_from(v) {
        Ok(n) if v >= min && v <= i64::from(i32::MAX) => Some(n),
        _ => {
            e.push(
                p,
                format!("{v} is out of range ({min} to {}, an int32)", i32::MAX),
            );
            None
        }
    }
}

fn connection_pool(
    cp: &ConnectionPoolSettings,
    p: &str,
    e: &mut FieldErrors,
) -> Option<ConnectionPool> {
    let before = e.0.len();
    let mut out = ConnectionPool::default();
    if let Some(t) = &cp.tcp {
        let tp = format!("{p}.tcp");
        out.max_connections = count(t.max_connections, format!("{tp}.maxConnections"), false, e);
        out.connect_timeout = t
            .connect_timeout
            .as_deref()
            .and_then(|d| duration_ms(d, format!("{tp}.connectTimeout"), e));
        out.max_connection_duration = t
            .max_connection_duration
            .as_deref()
            .and_then(|d| duration_ms(d, format!("{tp}.maxConnectionDuration"), e));
        out.tcp_idle_timeout = t
            .idle_timeout
            .as_deref()
            .and_then(|d| duration_ms(d, format!("{tp}.idleTimeout"), e));
        if let Some(k) = &t.tcp_keepalive {
            let kp = format!("{tp}.tcpKeepalive");
            out.keepalive = Some(Keepalive {
                probes: k.probes,
                time: k
                    .time
                    .as_deref()
                    .and_then(|d| duration_ms(d, format!("{kp}.time"), e)),
                interval: k
                    .interval
                    .as_deref()
                    .and_then(|d| duration_ms(d, format!("{kp}.interval"), e)),
            });
        }
    }
    if let Some(h) = &cp.http {
        let hp = format!("{p}.http");
        out.http1_max_pending_requests = count(
            h.http1_max_pending_requests,
            format!("{hp}.http1MaxPendingRequests"),
            false,
            e,
        );
        out.http2_max_requests = count(
            h.http2_max_requests,
            format!("{hp}.http2MaxRequests"),
            false,
            e,
        );
        out.max_requests_per_connection = count(
            h.max_requests_per_connection,
            format!("{hp}.maxRequestsPerConnection"),
            true,
            e,
        );
        out.max_retries = count(h.max_retries, format!("{hp}.maxRetries"), true, e);
        out.max_concurrent_streams = count(
            h.max_concurrent_streams,
            format!("{hp}.maxConcurrentStreams"),
            false,
            e,
        );
        out.idle_timeout = h
            .idle_timeout
            .as_deref()
            .and_then(|d| duration_ms(d, format!("{hp}.idleTimeout"), e));
        out.use_client_protocol = h.use_client_protocol.unwrap_or(false);
        out.h2_upgrade = match h.h2_upgrade_policy.as_deref() {
            None | Some("DEFAULT") => H2Upgrade::Default,
            Some("DO_NOT_UPGRADE") => H2Upgrade::DoNotUpgrade,
            Some("UPGRADE") => H2Upgrade::Upgrade,
            Some(v) => {
                e.push(
                    format!("{hp}.h2UpgradePolicy"),
                    format!("unknown h2UpgradePolicy {v:?} (DEFAULT, DO_NOT_UPGRADE, UPGRADE)"),
                );
                H2Upgrade::Default
            }
        };
    }
    (e.0.len() == before).then_some(out)
}

fn outlier(o: &OutlierDetection, p: &str, e: &mut FieldErrors) -> Option<Outlier> {
    let before = e.0.len();
    let percent = |v: Option<i64>, f: &str, default: u32, e: &mut FieldErrors| match v {
        None => default,
        Some(v) if (0..=100).contains(&v) => u32::try_from(v).unwrap_or(default),
        Some(v) => {
            e.push(
                format!("{p}.{f}"),
                format!("{v} is not a percentage (0-100)"),
            );
            default
        }
    };
    let consecutive_5xx = count(
        o.consecutive_5xx_errors.or(o.consecutive_errors),
        format!("{p}.consecutive5xxErrors"),
        true,
        e,
    );
    let out = Outlier {
        consecutive_5xx,
        consecutive_gateway: count(
            o.consecutive_gateway_errors,
            format!("{p}.consecutiveGatewayErrors"),
            true,
            e,
        ),
        consecutive_local_origin: count(
            o.consecutive_local_origin_failures,
            format!("{p}.consecutiveLocalOriginFailures"),
            true,
            e,
        ),
        split_local_origin: o.split_external_local_origin_errors.unwrap_or(false),
        interval: o
            .interval
            .as_deref()
            .map_or(Some(std::time::Duration::from_secs(10)), |d| {
                duration_ms(d, format!("{p}.interval"), e)
            })
            .unwrap_or_default(),
        base_ejection: o
            .base_ejection_time
            .as_deref()
            .map_or(Some(std::time::Duration::from_secs(30)), |d| {
                duration_ms(d, format!("{p}.baseEjectionTime"), e)
            })
            .unwrap_or_default(),
        max_ejection_percent: percent(o.max_ejection_percent, "maxEjectionPercent", 10, e),
        min_health_percent: percent(o.min_health_percent, "minHealthPercent", 0, e),
    };
    (e.0.len() == before).then_some(out)
}

fn path(v: Option<&String>, p: String, e: &mut FieldErrors) -> Option<PathBuf> {
    let v = v?;
    if v.is_empty() || v.contains('\0') {
        e.push(p, format!("{v:?} is not a file path"));
        return None;
    }
    Some(PathBuf::from(v))
}

fn tls(t: &ClientTlsSettings, p: &str, e: &mut FieldErrors) -> Option<UpstreamTls> {
    let before = e.0.len();
    let mode = match t.mode.as_deref() {
        None | Some("DISABLE") => UpstreamTlsMode::Disable,
        Some("SIMPLE") => UpstreamTlsMode::Simple,
        Some("MUTUAL") => UpstreamTlsMode::Mutual,
        Some("ISTIO_MUTUAL") => {
            e.push(
                format!("{p}.mode"),
                "ISTIO_MUTUAL needs Istio's mesh certificates, which gatehouse does not have; \
                 use MUTUAL with credentialName (or clientCertificate and privateKey)",
            );
            UpstreamTlsMode::Disable
        }
        Some(v) => {
            e.push(
                format!("{p}.mode"),
                format!("unknown TLS mode {v:?} (DISABLE, SIMPLE, MUTUAL)"),
            );
            UpstreamTlsMode::Disable
        }
    };
    let out = UpstreamTls {
        mode,
        credential_name: t.credential_name.clone().filter(|c| !c.is_empty()),
        client_certificate: path(
            t.client_certificate.as_ref(),
            format!("{p}.clientCertificate"),
            e,
        ),
        private_key: path(t.private_key.as_ref(), format!("{p}.privateKey"), e),
        ca_certificates: path(t.ca_certificates.as_ref(), format!("{p}.caCertificates"), e),
        ca_crl: path(t.ca_crl.as_ref(), format!("{p}.caCrl"), e),
        subject_alt_names: t.subject_alt_names.clone(),
        sni: t.sni.clone().filter(|s| !s.is_empty()),
        insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
    };
    if let Some(c) = &out.credential_name
        && !super::super::host::is_dns1123_subdomain(c)
    {
        e.push(
            format!("{p}.credentialName"),
            format!("{c:?} is not a Secret name"),
        );
    }
    if let Some(s) = &out.sni
        && let Err(why) = check_host(s)
    {
        e.push(format!("{p}.sni"), why);
    }
    if out.mode == UpstreamTlsMode::Mutual
        && out.credential_name.is_none()
        && (out.client_certificate.is_none() || out.private_key.is_none())
    {
        e.push(
            p,
            "mode MUTUAL needs credentialName, or clientCertificate and privateKey",
        );
    }
    if out.credential_name.is_some()
        && (out.client_certificate.is_some()
            || out.private_key.is_some()
            || out.ca_certificates.is_some())
    {
        e.push(
            format!("{p}.credentialName"),
            "credentialName cannot be combined with clientCertificate, privateKey or \
             caCertificates (the Secret holds them)",
        );
    }
    if out.mode == UpstreamTlsMode::Disable
        && (out.credential_name.is_some()
            || out.client_certificate.is_some()
            || out.ca_certificates.is_some())
    {
        e.push(
            format!("{p}.mode"),
            "certificates are set but mode is DISABLE (plaintext): set SIMPLE or MUTUAL",
        );
    }
    (e.0.len() == before).then_some(out)
}
