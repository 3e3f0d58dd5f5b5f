//! Rules for where traffic goes, shared by http, tls and tcp routes:
//! destinations, their weights, and Gateway references.
//!
//! Weights follow Istio: each is an int32 that is never negative; several
//! destinations must not add up to 0; and, since Envoy's weights are 32-bit,
//! they must add up to at most `u32::MAX`. Checked here, so nothing later
//! sums them with an overflow.

use super::super::checked::route::Destination as CheckedDestination;
use super::super::error::FieldErrors;
use super::super::host::{check_host, is_dns1123_label, is_dns1123_subdomain, qualify};
use super::super::virtual_service::Destination;
use super::port;

pub(super) fn gateway_ref(g: &str, p: &str, e: &mut FieldErrors) {
    let name = g.split_once('/').map_or(g, |(ns, n)| {
        if !is_dns1123_label(ns) {
            e.push(p, format!("{g:?}: {ns:?} is not a namespace"));
        }
        n
    });
    if name != "mesh" && !is_dns1123_subdomain(name) {
        e.push(
            p,
            format!("{g:?} is not a Gateway name (name or namespace/name)"),
        );
    }
}

/// A destination: its host qualified in the VirtualService's namespace
/// (`host::qualify`), its port and subset (its weight is set by the caller).
pub(super) fn destination(
    d: &Destination,
    namespace: &str,
    p: &str,
    e: &mut FieldErrors,
) -> Option<CheckedDestination> {
    let before = e.0.len();
    if d.host.is_empty() {
        e.push(format!("{p}.host"), "destination host is required");
    } else if d.host == "*" {
        e.push(
            format!("{p}.host"),
            "\"*\" is not a destination host: name the service",
        );
    } else if let Err(why) = check_host(&d.host) {
        e.push(format!("{p}.host"), why);
    }
    if let Some(subset) = &d.subset
        && !is_dns1123_label(subset)
    {
        e.push(
            format!("{p}.subset"),
            format!("{subset:?} is not a subset name (a DNS label)"),
        );
    }
    let number = d
        .port
        .and_then(|sel| port(sel.number, format!("{p}.port.number"), e));
    (e.0.len() == before).then(|| CheckedDestination {
        host: qualify(&d.host, namespace),
        port: number,
        subset: d.subset.clone(),
        weight: 0,
        headers: None,
    })
}

/// One weight: an int32 that is not negative.
pub(super) fn weight(w: Option<i64>, p: &str, e: &mut FieldErrors) -> Option<u32> {
    match w {
        None => Some(0),
        Some(w) if w < 0 => {
            e.push(p, format!("weight {w} is negative"));
            None
        }
        Some(w) => match i32::try_from(w).ok().and_then(|w| u32::try_from(w).ok()) {
            Some(w) => Some(w),
            None => {
                e.push(
                    p,
                    format!("weight {w} is out of range (0 to {}, an int32)", i32::MAX),
                );
                None
            }
        },
    }
}

/// Each destination with its weight, checked as a whole: several must not
/// add up to 0, and all must fit in `u32`. A lone destination without a
/// weight gets all the traffic.
pub(super) fn weighted(
    dests: Vec<CheckedDestination>,
    p: &str,
    e: &mut FieldErrors,
) -> Option<Vec<CheckedDestination>> {
    let total: u64 = dests.iter().map(|d| u64::from(d.weight)).sum();
    if dests.len() > 1 && total == 0 {
        e.push(p, "the destination weights add up to 0");
        return None;
    }
    if total > u64::from(u32::MAX) {
        e.push(
            p,
            format!(
                "the destination weights add up to more than {} ({total})",
                u32::MAX
            ),
        );
        return None;
    }
    Some(
        dests
            .into_iter()
            .map(|d| CheckedDestination {
                weight: if total == 0 { 1 } else { d.weight },
                ..d
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        let mut e = FieldErrors::default();
        assert_eq!(
            weight(Some(i64::from(i32::MAX)), "w", &mut e),
            Some(2147483647)
        );
        assert_eq!(weight(None, "w", &mut e), Some(0));
        assert!(e.is_empty());
        for bad in [-1, i64::from(i32::MAX) + 1, i64::MAX] {
            assert_eq!(weight(Some(bad), "w", &mut e), None, "{bad}");
        }
        assert_eq!(e.0.len(), 3);
        let d = |w: u32| CheckedDestination {
            host: "a.b".to_owned(),
            port: None,
            subset: None,
            weight: w,
            headers: None,
        };
        let mut e = FieldErrors::default();
        let max = u32::try_from(i32::MAX).unwrap_or(0);
        assert!(weighted(vec![d(max), d(max), d(1)], "r", &mut e).is_some());
        assert!(weighted(vec![d(max), d(max), d(2)], "r", &mut e).is_none());
        assert!(weighted(vec![d(0), d(0)], "r", &mut e).is_none());
        assert_eq!(e.0.len(), 2);
        let lone = weighted(vec![d(0)], "r", &mut e);
        assert_eq!(lone.map(|v| v[0].weight), Some(1));
    }
}
