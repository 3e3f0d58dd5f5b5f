//! Rules for a route's `fault`, producing its checked form
//! (`checked::fault::Fault`): Istio's rules (a delay needs `fixedDelay`,
//! an abort exactly one of `httpStatus` and `grpcStatus`, percentages from
//! 0 to 100) with every problem named by its field. A delay or abort
//! without a percentage applies to no request, as Istio documents.

use super::super::checked::fault::{Abort, AbortWith, Delay, Fault, GRPC_CODES, Share, grpc_code};
use super::super::error::FieldErrors;
use super::super::virtual_service::{FaultAbort, FaultDelay, HttpFault};
use super::{duration_ms, percentage};

/// Checks `fault` at `p` (`spec.http[0].fault`); `Some` only when valid.
pub(super) fn fault(f: &HttpFault, p: &str, e: &mut FieldErrors) -> Option<Fault> {
    let before = e.0.len();
    if f.abort.is_none() && f.delay.is_none() {
        e.push(p, "a fault needs abort, delay or both");
    }
    let delay = f
        .delay
        .as_ref()
        .and_then(|d| delay(d, &format!("{p}.delay"), e));
    let abort = f
        .abort
        .as_ref()
        .and_then(|a| abort(a, &format!("{p}.abort"), e));
    (e.0.len() == before).then_some(Fault { delay, abort })
}

fn share(pct: Option<f64>, p: String, e: &mut FieldErrors) -> Share {
    match pct {
        None => Share::NONE,
        Some(v) => {
            percentage(v, p, e);
            Share::from_percent(v)
        }
    }
}

fn delay(d: &FaultDelay, p: &str, e: &mut FieldErrors) -> Option<Delay> {
    let duration = match &d.fixed_delay {
        Some(t) => duration_ms(t, format!("{p}.fixedDelay"), e),
        None => {
            e.push(format!("{p}.fixedDelay"), "a delay needs fixedDelay");
            None
        }
    };
    // The deprecated integer `percent` counts only without `percentage`
    // (Istio's order); `ignored.rs` warns when both are set.
    let share = match (&d.percentage, d.percent) {
        (Some(pct), _) => share(Some(pct.value), format!("{p}.percentage.value"), e),
        (None, Some(pct)) if !(0..=100).contains(&pct) => {
            e.push(
                format!("{p}.percent"),
                format!("percentage {pct} is not between 0 and 100"),
            );
            Share::NONE
        }
        #[allow(clippy::cast_precision_loss)] // 0..=100
        (None, Some(pct)) => Share::from_percent(pct as f64),
        (None, None) => Share::NONE,
    };
    Some(Delay {
        duration: duration?,
        share,
    })
}

fn abort(a: &FaultAbort, p: &str, e: &mut FieldErrors) -> Option<Abort> {
    let share = share(
        a.percentage.as_ref().map(|pct| pct.value),
        format!("{p}.percentage.value"),
        e,
    );
    let with = match (a.http_status, &a.grpc_status) {
        (Some(_), Some(_)) => {
            e.push(p, "httpStatus and grpcStatus exclude each other: use one");
            None
        }
        (None, None) => {
            e.push(p, "an abort needs httpStatus or grpcStatus");
            None
        }
        (Some(s), None) => {
            let status = u16::try_from(s)
                .ok()
                .filter(|s| (200..=599).contains(s))
                .and_then(|s| http::StatusCode::from_u16(s).ok());
            if status.is_none() {
                e.push(
                    format!("{p}.httpStatus"),
                    format!("{s} is not an HTTP status (200-599)"),
                );
            }
            status.map(AbortWith::Http)
        }
        (None, Some(name)) => {
            let code = grpc_code(name);
            if code.is_none() {
                e.push(
                    format!("{p}.grpcStatus"),
                    format!("{name:?} is not a gRPC status ({})", GRPC_CODES.join(", ")),
                );
            }
            code.map(AbortWith::Grpc)
        }
    };
    Some(Abort { with: with?, share })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(json: &str) -> Result<Fault, Vec<(String, String)>> {
        let f: HttpFault = serde_json::from_str(json).unwrap();
        let mut e = FieldErrors::default();
        fault(&f, "f", &mut e).ok_or(e.0)
    }

    #[test]
    fn shares_follow_istio() {
        let f = checked(r#"{"delay":{"fixedDelay":"7s","percentage":{"value":100.0}}}"#).unwrap();
        let d = f.delay.unwrap();
        assert_eq!((d.duration.as_secs(), d.share), (7, Share::ALL));
        // The deprecated integer percent, when percentage is absent.
        let f = checked(r#"{"delay":{"fixedDelay":"1s","percent":30}}"#).unwrap();
        assert_eq!(f.delay.unwrap().share.parts_per_million(), 300_000);
        // percentage wins over percent.
        let f = checked(r#"{"delay":{"fixedDelay":"1s","percent":30,"percentage":{"value":0.5}}}"#)
            .unwrap();
        assert_eq!(f.delay.unwrap().share.parts_per_million(), 5_000);
        // Neither: no request (Istio's documented default).
        let f = checked(r#"{"abort":{"httpStatus":500}}"#).unwrap();
        assert_eq!(f.abort.unwrap().share, Share::NONE);
        let f =
            checked(r#"{"abort":{"grpcStatus":"UNAVAILABLE","percentage":{"value":1}}}"#).unwrap();
        assert_eq!(f.abort.unwrap().with, AbortWith::Grpc(14));
    }

    #[test]
    fn refusals_name_the_field() {
        let fields = |json: &str| -> Vec<String> {
            checked(json)
                .unwrap_err()
                .into_iter()
                .map(|(p, _)| p)
                .collect()
        };
        assert_eq!(
            fields(r#"{"delay":{"percent":101,"fixedDelay":"1s"}}"#),
            ["f.delay.percent"]
        );
        assert_eq!(
            fields(r#"{"abort":{"httpStatus":500,"grpcStatus":"INTERNAL"}}"#),
            ["f.abort"]
        );
        assert_eq!(
            fields(r#"{"delay":{"fixedDelay":"0s"},"abort":{"httpStatus":199}}"#),
            ["f.delay.fixedDelay", "f.abort.httpStatus"]
        );
    }
}
