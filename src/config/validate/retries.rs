//! Rules for a route's `retries` and `mirror`/`mirrors`, producing their
//! checked form (`checked::retry`): Envoy's retry conditions by name,
//! unknown ones refused with the field named; status codes in `retryOn`
//! as Istio reads them; the per-try timeout as a `Duration`; each mirror's
//! destination qualified and its share in millionths.
//!
//! It never accepts a condition the proxy does not know: a typo would
//! silently turn retries off.

use super::super::checked::retry::{Mirror, RetryOn, RetryPolicy};
use super::super::error::FieldErrors;
use super::super::virtual_service::{Destination, HttpRoute, Percent};
use super::destination::destination;
use super::{duration_ms, percentage};

/// `retries`: `Some` only with `attempts` > 0 and no error.
pub(super) fn retries(r: &HttpRoute, p: &str, e: &mut FieldErrors) -> Option<RetryPolicy> {
    let retry = r.retries.as_ref()?;
    let rp = format!("{p}.retries");
    let before = e.0.len();
    if retry.attempts < 0 {
        e.push(format!("{rp}.attempts"), "attempts is negative");
    }
    let attempts = match u32::try_from(retry.attempts) {
        Ok(a) if i32::try_from(a).is_ok() => a,
        Ok(_) => {
            e.push(
                format!("{rp}.attempts"),
                "attempts is out of range (an int32)",
            );
            0
        }
        Err(_) => 0,
    };
    if retry.attempts == 0
        && (retry.per_try_timeout.is_some()
            || retry.retry_on.is_some()
            || retry.retry_remote_localities.is_some())
    {
        e.push(
            format!("{rp}.attempts"),
            "a retry policy is set but attempts is 0 (retries disabled)",
        );
    }
    let per_try = retry
        .per_try_timeout
        .as_ref()
        .and_then(|t| duration_ms(t, format!("{rp}.perTryTimeout"), e));
    let mut policy = RetryPolicy::new(attempts, per_try);
    if let Some(on) = &retry.retry_on {
        let (conditions, codes) = retry_on(on, &format!("{rp}.retryOn"), e);
        policy = policy.with_conditions(&conditions, codes);
    }
    (e.0.len() == before && attempts > 0).then_some(policy)
}

/// `retryOn`: Envoy's conditions and HTTP status codes, comma-separated
/// (Istio trims the spaces around each).
fn retry_on(on: &str, p: &str, e: &mut FieldErrors) -> (Vec<RetryOn>, Vec<u16>) {
    let mut conditions = Vec::new();
    let mut codes = Vec::new();
    for policy in on.split(',').map(str::trim) {
        if let Some(c) = RetryOn::parse(policy) {
            conditions.push(c);
            continue;
        }
        let status = policy
            .parse::<u16>()
            .ok()
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .filter(|c| c.canonical_reason().is_some());
        match status {
            Some(s) => codes.push(s.as_u16()),
            None => e.push(
                p,
                format!(
                    "{policy:?} is not a retry policy (expected {})",
                    RetryOn::NAMES
                ),
            ),
        }
    }
    (conditions, codes)
}

/// `mirror` with `mirrorPercentage`, or each of `mirrors` with its
/// `percentage` (100% when absent).
pub(super) fn mirrors(r: &HttpRoute, namespace: &str, p: &str, e: &mut FieldErrors) -> Vec<Mirror> {
    if r.mirror.is_some() && !r.mirrors.is_empty() {
        e.push(
            format!("{p}.mirrors"),
            "mirror and mirrors exclude each other: use one",
        );
    }
    let mut out = Vec::new();
    if let Some(m) = &r.mirror {
        let pct = r.mirror_percentage.as_ref();
        let pct_path = format!("{p}.mirrorPercentage.value");
        out.extend(mirror(
            m,
            pct,
            namespace,
            &format!("{p}.mirror"),
            &pct_path,
            e,
        ));
    }
    for (i, m) in r.mirrors.iter().enumerate() {
        let mp = format!("{p}.mirrors[{i}]");
        let pct_path = format!("{mp}.percentage.value");
        let dp = format!("{mp}.destination");
        out.extend(mirror(
            &m.destination,
            m.percentage.as_ref(),
            namespace,
            &dp,
            &pct_path,
            e,
        ));
    }
    out
}

fn mirror(
    d: &Destination,
    pct: Option<&Percent>,
    namespace: &str,
    p: &str,
    pct_path: &str,
    e: &mut FieldErrors,
) -> Option<Mirror> {
    let before = e.0.len();
    let dest = destination(d, namespace, p, e);
    if let Some(pct) = pct {
        percentage(pct.value, pct_path, e);
    }
    let dest = dest?;
    (e.0.len() == before).then(|| Mirror {
        host: dest.host,
        port: dest.port,
        subset: dest.subset,
        millionths: pct.map_or(1_000_000, |v| Mirror::millionths(v.value)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> (Option<RetryPolicy>, Vec<Mirror>, Vec<String>) {
        let r: HttpRoute = serde_json::from_value(serde_saphyr::from_str(yaml).unwrap()).unwrap();
        let mut e = FieldErrors::default();
        let rt = retries(&r, "r", &mut e);
        let m = mirrors(&r, "ns", "r", &mut e);
        let e = e.0.into_iter().map(|(p, m)| format!("{p}: {m}")).collect();
        (rt, m, e)
    }

    #[test]
    fn retry_conditions_are_typed() {
        let (rt, _, e) = check(
            "retries: {attempts: 3, perTryTimeout: 2s, retryOn: 'gateway-error, 409,unavailable'}",
        );
        assert!(e.is_empty(), "{e:?}");
        let rt = rt.unwrap();
        assert_eq!(rt.attempts, 3);
        assert_eq!(rt.per_try_timeout, Some(std::time::Duration::from_secs(2)));
        assert!(rt.has(RetryOn::GatewayError) && rt.has(RetryOn::GrpcUnavailable));
        assert!(rt.has(RetryOn::RetriableStatusCodes) && !rt.has(RetryOn::ConnectFailure));
        assert_eq!(rt.status_codes, [409]);
        let (rt, _, e) = check("retries: {attempts: 0}");
        assert!(rt.is_none() && e.is_empty());
        let (rt, _, e) = check("retries: {attempts: 2, retryOn: '5xx,connect-faliure'}");
        assert!(rt.is_none());
        assert!(
            e[0].starts_with("r.retries.retryOn: \"connect-faliure\" is not a retry policy"),
            "{e:?}"
        );
        let (_, _, e) = check("retries: {attempts: 2, retryOn: '999'}");
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn mirrors_are_resolved() {
        let (_, m, e) = check("mirror: {host: v2}\nmirrorPercentage: {value: 50}");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(m[0].host, "v2.ns.svc.cluster.local");
        assert_eq!(m[0].millionths, 500_000);
        let (_, m, e) = check(
            "mirrors: [{destination: {host: a}}, {destination: {host: b}, percentage: {value: 0.5}}]",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!((m[0].millionths, m[1].millionths), (1_000_000, 5_000));
        let (_, _, e) = check("mirror: {host: a}\nmirrors: [{destination: {host: b}}]");
        assert!(e[0].starts_with("r.mirrors: mirror and mirrors"), "{e:?}");
        let (_, m, e) = check("mirror: {host: a}\nmirrorPercentage: {value: 101}");
        assert!(
            m.is_empty() && e[0].starts_with("r.mirrorPercentage.value"),
            "{e:?}"
        );
    }
}
