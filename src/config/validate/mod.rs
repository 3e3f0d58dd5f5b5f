//! Istio's validation rules, applied to typed objects before anything is
//! stored. Each rule reports the field path it is about, and the rules
//! build the checked form (`config::checked`) as they go: a value is
//! parsed once, here, and what is built is what the compiler serves.
//!
//! The rules follow istio/istio `pkg/config/validation` (what `istioctl
//! validate` and the admission webhook refuse), plus what gatehouse cannot
//! serve yet. Warnings Istio only logs are not errors here unless gatehouse
//! would otherwise do something the user did not ask for. Nothing here does
//! I/O; secret contents (PEM, key match, dates) are checked by
//! `secret::credential` at apply time.

mod cors;
mod destination;
mod destination_rule;
mod fault;
mod gateway;
mod header_ops;
mod http;
mod load_balancer;
mod matching;
mod retries;
mod rewrite;
mod service_entry;
mod virtual_service;

use std::net::IpAddr;
use std::time::Duration;

use super::checked::Checked;
use super::error::FieldErrors;
use super::host::{is_dns1123_label, is_dns1123_subdomain};
use super::secret::{SECRET_TYPES, Secret};
use super::{Resource, discovery, duration};

/// Every problem with `r`, by field; empty when it is valid.
pub fn validate(r: &Resource) -> FieldErrors {
    check(r).err().unwrap_or_default()
}

/// Applies Istio's rules and returns the checked form the compiler reads,
/// or every problem found, by field.
pub fn check(r: &Resource) -> Result<Checked, FieldErrors> {
    let mut e = FieldErrors::default();
    let meta = r.meta();
    if meta.name.is_empty() {
        e.push("metadata.name", "name is required");
    } else if !is_dns1123_subdomain(&meta.name) {
        e.push(
            "metadata.name",
            format!(
                "{:?} is not a valid name (lower-case letters, digits, '-' and '.')",
                meta.name
            ),
        );
    }
    // A cluster-scoped object (GatewayClass, Namespace) may come with none.
    let scopeless = super::gateway_api::is_cluster_scoped(r.kind()) && meta.ns().is_empty();
    if !scopeless && !is_dns1123_label(meta.ns()) {
        e.push(
            "metadata.namespace",
            format!("{:?} is not a valid namespace", meta.ns()),
        );
    }
    let checked = match r {
        Resource::Gateway(g) => gateway::gateway(g, &mut e).map(Checked::Gateway),
        Resource::VirtualService(v) => {
            virtual_service::virtual_service(v, &mut e).map(Checked::VirtualService)
        }
        Resource::ServiceEntry(s) => {
            service_entry::service_entry(s, &mut e).map(Checked::ServiceEntry)
        }
        Resource::DestinationRule(d) => destination_rule::destination_rule(d, &mut e)
            .map(|d| Checked::DestinationRule(Box::new(d))),
        Resource::Secret(s) => {
            secret(s, &mut e);
            Some(Checked::Secret)
        }
        Resource::Service(s) => discovery::check_service(s, &mut e).map(Checked::Service),
        Resource::EndpointSlice(s) => {
            discovery::check_endpoint_slice(s, &mut e).map(Checked::EndpointSlice)
        }
        Resource::GatewayApi(o) => Some(o.check(&mut e)),
    };
    match checked {
        Some(c) if e.is_empty() => Ok(c),
        // Every rule that refuses says why; this only guards that promise.
        None if e.is_empty() => {
            e.push("spec", "the object could not be checked");
            Err(e)
        }
        _ => Err(e),
    }
}

/// A port number: 1-65535.
fn port_number(n: u32, p: impl Into<String>, e: &mut FieldErrors) {
    port(n, p, e);
}

/// A port number (1-65535) as the `u16` it is.
fn port(n: u32, p: impl Into<String>, e: &mut FieldErrors) -> Option<u16> {
    match u16::try_from(n) {
        Ok(port) if port != 0 => Some(port),
        _ => {
            e.push(p, format!("{n} is not a port number (1-65535)"));
            None
        }
    }
}

/// A duration as Istio accepts one: at least 1ms, in whole milliseconds.
fn duration_ms(t: &str, p: impl Into<String>, e: &mut FieldErrors) -> Option<Duration> {
    match duration::parse(t) {
        None => e.push(p, format!("{t:?} is not a duration (like 5s or 250ms)")),
        Some(d) if d < Duration::from_millis(1) => {
            e.push(p, format!("{t:?}: a duration must be at least 1ms"));
        }
        Some(d) => {
            // Parsing goes through f64: allow a nanosecond of rounding.
            let rem = d.as_nanos() % 1_000_000;
            if rem > 1 && rem < 999_999 {
                e.push(p, format!("{t:?}: only whole milliseconds are supported"));
            } else if let Ok(ms) = u64::try_from((d.as_nanos() + 500_000) / 1_000_000) {
                return Some(Duration::from_millis(ms));
            } else {
                e.push(p, format!("{t:?} is too long"));
            }
        }
    }
    None
}

/// A percentage: 0 to 100.
fn percentage(v: f64, p: impl Into<String>, e: &mut FieldErrors) {
    if !(0.0..=100.0).contains(&v) {
        e.push(p, format!("percentage {v} is not between 0 and 100"));
    }
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
fn ip_or_cidr(s: &str) -> Result<(), String> {
    match s.split_once('/') {
        None => s
            .parse::<IpAddr>()
            .map(|_| ())
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block")),
        Some((ip, bits)) => {
            let max = match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => return Err(format!("{s:?} is not a valid CIDR block")),
            };
            match bits.parse::<u8>() {
                Ok(b) if b <= max && !bits.starts_with('+') => Ok(()),
                _ => Err(format!("{s:?} is not a valid CIDR block")),
            }
        }
    }
}

fn secret(s: &Secret, e: &mut FieldErrors) {
    if let Some(t) = &s.secret_type
        && !SECRET_TYPES.contains(&t.as_str())
    {
        e.push(
            "type",
            format!(
                "unsupported Secret type {t:?}; supported: {}",
                SECRET_TYPES.join(", ")
            ),
        );
    }
    for k in s.data.keys() {
        let ok = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            e.push(
                format!("data.{k}"),
                format!("{k:?} is not a valid key name"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(f: impl FnOnce(&mut FieldErrors)) -> Vec<String> {
        let mut e = FieldErrors::default();
        f(&mut e);
        e.0.into_iter().map(|(p, m)| format!("{p}: {m}")).collect()
    }

    #[test]
    fn durations() {
        for (ok, ms) in [
            ("1ms", 1),
            ("5s", 5000),
            ("1.5s", 1500),
            ("0.1s", 100),
            ("0.3s", 300),
            ("250ms", 250),
            ("1m", 60_000),
            ("1h", 3_600_000),
        ] {
            let mut e = FieldErrors::default();
            assert_eq!(
                duration_ms(ok, "t", &mut e),
                Some(Duration::from_millis(ms)),
                "{ok}"
            );
            assert!(e.is_empty(), "{ok}");
        }
        for bad in ["0s", "500us", "1.0005s", "5", "x"] {
            assert_eq!(
                errs(|e| {
                    duration_ms(bad, "t", e);
                })
                .len(),
                1,
                "{bad}"
            );
        }
    }

    #[test]
    fn addresses() {
        for ok in [
            "10.0.0.1",
            "10.0.0.0/8",
            "::1",
            "2001:db8::/32",
            "0.0.0.0/0",
        ] {
            assert!(ip_or_cidr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "::/129",
            "a.com",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            assert!(ip_or_cidr(bad).is_err(), "{bad}");
        }
    }
}
