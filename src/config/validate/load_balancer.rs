//! A DestinationRule's `loadBalancer`: the simple algorithms, one
//! `consistentHash` key (header, cookie, source IP or query parameter) and
//! `warmupDurationSecs`.

use http::HeaderName;

use super::super::checked::destination_rule::{HashKey, LbAlgorithm, LoadBalancer};
use super::super::destination_rule::{ConsistentHash, LoadBalancerSettings};
use super::super::error::FieldErrors;
use super::duration_ms;

pub(super) fn load_balancer(
    lb: &LoadBalancerSettings,
    p: &str,
    e: &mut FieldErrors,
) -> Option<LoadBalancer> {
    let before = e.0.len();
    let simple = match lb.simple.as_deref() {
        None => None,
        Some("UNSPECIFIED" | "LEAST_REQUEST" | "LEAST_CONN") => Some(LbAlgorithm::LeastRequest),
        Some("ROUND_ROBIN") => Some(LbAlgorithm::RoundRobin),
        Some("RANDOM") => Some(LbAlgorithm::Random),
        Some("PASSTHROUGH") => {
            e.push(
                format!("{p}.simple"),
                "PASSTHROUGH (to the connection's original destination) has no meaning at an \
                 ingress gateway; use ROUND_ROBIN, LEAST_REQUEST, RANDOM or consistentHash",
            );
            None
        }
        Some(v) => {
            e.push(
                format!("{p}.simple"),
                format!(
                    "unknown load balancer {v:?} (ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, \
                     RANDOM, UNSPECIFIED)"
                ),
            );
            None
        }
    };
    let hash = lb
        .consistent_hash
        .as_ref()
        .and_then(|h| hash_key(h, &format!("{p}.consistentHash"), e));
    if simple.is_some() && hash.is_some() {
        e.push(p, "set either simple or consistentHash, not both");
    }
    let warmup = lb
        .warmup_duration_secs
        .as_deref()
        .and_then(|w| duration_ms(w, format!("{p}.warmupDurationSecs"), e));
    if e.0.len() != before {
        return None;
    }
    Some(LoadBalancer {
        algorithm: hash
            .map(LbAlgorithm::Hash)
            .or(simple)
            .unwrap_or(LbAlgorithm::LeastRequest),
        warmup,
    })
}

fn hash_key(h: &ConsistentHash, p: &str, e: &mut FieldErrors) -> Option<HashKey> {
    let mut keys = Vec::new();
    if let Some(name) = &h.http_header_name {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => keys.push(HashKey::Header(n)),
            Err(_) => e.push(
                format!("{p}.httpHeaderName"),
                format!("{name:?} is not a header name"),
            ),
        }
    }
    if let Some(c) = &h.http_cookie {
        let ok = !c.name.is_empty()
            && c.name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !ok {
            e.push(
                format!("{p}.httpCookie.name"),
                format!("{:?} is not a cookie name", c.name),
            );
        }
        let ttl = match c.ttl.as_deref() {
            Some("0s" | "0") => None,
            Some(t) => duration_ms(t, format!("{p}.httpCookie.ttl"), e),
            None => None,
        };
        keys.push(HashKey::Cookie {
            name: c.name.clone(),
            path: c.path.clone(),
            ttl,
        });
    }
    if h.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(q) = &h.http_query_parameter_name {
        if q.is_empty() {
            e.push(
                format!("{p}.httpQueryParameterName"),
                "the parameter name is empty",
            );
        }
        keys.push(HashKey::QueryParameter(q.clone()));
    }
    match keys.len() {
        1 => keys.pop(),
        0 => {
            e.push(
                p,
                "name one hash key: httpHeaderName, httpCookie, useSourceIp or \
                 httpQueryParameterName",
            );
            None
        }
        _ => {
            e.push(p, "only one hash key may be set");
            None
        }
    }
}
