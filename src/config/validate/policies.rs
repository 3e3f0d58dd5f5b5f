//! Rules for the parts of an http route that are checked but not yet
//! applied by gatehouse (retries, mirror): Istio refuses these values, so
//! `apply` does too, whatever is served. Fault and CORS, which are
//! applied, are checked in `fault.rs` and `cors.rs`.

use super::super::error::FieldErrors;
use super::super::virtual_service::HttpRoute;
use super::destination::destination;
use super::{duration_ms, percentage};

/// Envoy's retry policies (`x-envoy-retry-on`, `x-envoy-retry-grpc-on`), as Istio lists them.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Retries and mirror of one route (fault and CORS: `fault.rs`, `cors.rs`).
pub(super) fn policies(r: &HttpRoute, namespace: &str, p: &str, e: &mut FieldErrors) {
    retries(r, p, e);
    if let Some(m) = &r.mirror {
        destination(m, namespace, &format!("{p}.mirror"), e);
    }
    if let Some(pct) = &r.mirror_percentage {
        percentage(pct.value, format!("{p}.mirrorPercentage.value"), e);
    }
}

fn retries(r: &HttpRoute, p: &str, e: &mut FieldErrors) {
    if let Some(retry) = &r.retries {
        let rp = format!("{p}.retries");
        if retry.attempts < 0 {
            e.push(format!("{rp}.attempts"), "attempts is negative");
        }
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
        if let Some(t) = &retry.per_try_timeout {
            duration_ms(t, format!("{rp}.perTryTimeout"), e);
        }
        if let Some(on) = &retry.retry_on {
            for policy in on.split(',') {
                let status = policy
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| http::StatusCode::from_u16(c).ok())
                    .is_some_and(|c| c.canonical_reason().is_some());
                if !status && !RETRY_ON.contains(&policy) {
                    e.push(
                        format!("{rp}.retryOn"),
                        format!("{policy:?} is not a retry policy or an HTTP status code"),
                    );
                }
            }
        }
    }
}
