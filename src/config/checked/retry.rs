//! A route's `retries` and `mirror`/`mirrors` in their checked form: the
//! retry conditions as a set of Envoy's `retry_on` policies and status
//! codes, the per-try timeout as a `Duration`, each mirror's share of
//! requests in millionths.
//!
//! Validation builds these; the data plane reads them. Nothing here does
//! I/O, knows serde, or decides when a request may be replayed (that is
//! the proxy's `retry` step, which never replays a streamed body).

use std::time::Duration;

/// One of Envoy's `retry_on` conditions that gatehouse applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// `5xx`: any 5xx answer, or none (connect failure, reset, per-try timeout).
    FiveXx,
    /// `gateway-error`: 502, 503, 504, or no answer.
    GatewayError,
    /// `reset`: no answer at all (disconnect, reset, per-try timeout).
    Reset,
    /// `reset-before-request`: as `reset`, when the request was not sent
    /// yet: the connection failed or was reset before the request left.
    ResetBeforeRequest,
    /// `connect-failure`: the connection to the backend failed.
    ConnectFailure,
    /// `refused-stream`: an HTTP/2 backend refused the stream.
    RefusedStream,
    /// `retriable-4xx`: 409.
    Retriable4xx,
    /// `retriable-status-codes`: the codes listed (as numbers in `retryOn`).
    RetriableStatusCodes,
    /// `envoy-ratelimited`: the answer carries `x-envoy-ratelimited`.
    EnvoyRateLimited,
    /// The gRPC conditions, on the `grpc-status` of the response headers.
    GrpcCancelled,
    GrpcDeadlineExceeded,
    GrpcInternal,
    GrpcResourceExhausted,
    GrpcUnavailable,
    /// `http3-post-connect-failure`: gatehouse never speaks HTTP/3 to a
    /// backend, so this never fires.
    Http3PostConnectFailure,
    /// `retriable-headers`: Istio has no field for the headers, so this
    /// never fires (`apply` warns).
    RetriableHeaders,
}

impl RetryOn {
    /// Envoy's name of a condition, or `None` when it is not one.
    pub fn parse(name: &str) -> Option<RetryOn> {
        Some(match name {
            "5xx" => RetryOn::FiveXx,
            "gateway-error" => RetryOn::GatewayError,
            "reset" => RetryOn::Reset,
            "reset-before-request" => RetryOn::ResetBeforeRequest,
            "connect-failure" => RetryOn::ConnectFailure,
            "refused-stream" => RetryOn::RefusedStream,
            "retriable-4xx" => RetryOn::Retriable4xx,
            "retriable-status-codes" => RetryOn::RetriableStatusCodes,
            "retriable-headers" => RetryOn::RetriableHeaders,
            "envoy-ratelimited" => RetryOn::EnvoyRateLimited,
            "http3-post-connect-failure" => RetryOn::Http3PostConnectFailure,
            "cancelled" => RetryOn::GrpcCancelled,
            "deadline-exceeded" => RetryOn::GrpcDeadlineExceeded,
            "internal" => RetryOn::GrpcInternal,
            "resource-exhausted" => RetryOn::GrpcResourceExhausted,
            "unavailable" => RetryOn::GrpcUnavailable,
            _ => return None,
        })
    }

    /// Every name [`RetryOn::parse`] knows, for error messages.
    pub const NAMES: &'static str = "5xx, gateway-error, reset, reset-before-request, \
        connect-failure, refused-stream, retriable-4xx, retriable-status-codes, \
        retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, \
        deadline-exceeded, internal, resource-exhausted, unavailable, or an HTTP status code";

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Envoy's name of this condition.
    pub fn name(self) -> &'static str {
        match self {
            RetryOn::FiveXx => "5xx",
            RetryOn::GatewayError => "gateway-error",
            RetryOn::Reset => "reset",
            RetryOn::ResetBeforeRequest => "reset-before-request",
            RetryOn::ConnectFailure => "connect-failure",
            RetryOn::RefusedStream => "refused-stream",
            RetryOn::Retriable4xx => "retriable-4xx",
            RetryOn::RetriableStatusCodes => "retriable-status-codes",
            RetryOn::EnvoyRateLimited => "envoy-ratelimited",
            RetryOn::GrpcCancelled => "cancelled",
            RetryOn::GrpcDeadlineExceeded => "deadline-exceeded",
            RetryOn::GrpcInternal => "internal",
            RetryOn::GrpcResourceExhausted => "resource-exhausted",
            RetryOn::GrpcUnavailable => "unavailable",
            RetryOn::Http3PostConnectFailure => "http3-post-connect-failure",
            RetryOn::RetriableHeaders => "retriable-headers",
        }
    }

    const ALL: [RetryOn; 16] = [
        RetryOn::FiveXx,
        RetryOn::GatewayError,
        RetryOn::Reset,
        RetryOn::ResetBeforeRequest,
        RetryOn::ConnectFailure,
        RetryOn::RefusedStream,
        RetryOn::Retriable4xx,
        RetryOn::RetriableStatusCodes,
        RetryOn::EnvoyRateLimited,
        RetryOn::GrpcCancelled,
        RetryOn::GrpcDeadlineExceeded,
        RetryOn::GrpcInternal,
        RetryOn::GrpcResourceExhausted,
        RetryOn::GrpcUnavailable,
        RetryOn::Http3PostConnectFailure,
        RetryOn::RetriableHeaders,
    ];
}

/// Why an attempt got no answer from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// The connection could not be made.
    ConnectFailure,
    /// An HTTP/2 backend refused the stream (nothing was processed).
    RefusedStream,
    /// The connection broke or was reset before the response headers.
    Reset,
    /// The per-try timeout passed.
    PerTryTimeout,
}

/// What one attempt came to, as the retry conditions look at it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The backend answered with these response headers.
    Answer(http::StatusCode, &'a http::HeaderMap),
    /// It did not answer.
    NoAnswer(NoAnswer),
}

/// `retries`: how many more attempts, each bounded by `per_try_timeout`,
/// on which conditions. Built only with `attempts` > 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (Istio's `attempts`, Envoy's `num_retries`).
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// A set of [`RetryOn`] bits.
    on: u32,
    /// The status codes of `retriable-status-codes` (numbers in `retryOn`).
    pub status_codes: Vec<u16>,
}

impl RetryPolicy {
    /// Istio's default conditions when `retryOn` is not set:
    /// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`
    /// with 503.
    pub fn new(attempts: u32, per_try_timeout: Option<Duration>) -> RetryPolicy {
        let mut p = RetryPolicy {
            attempts,
            per_try_timeout,
            on: 0,
            status_codes: Vec::new(),
        };
        for c in [
            RetryOn::ConnectFailure,
            RetryOn::RefusedStream,
            RetryOn::GrpcUnavailable,
            RetryOn::GrpcCancelled,
            RetryOn::RetriableStatusCodes,
        ] {
            p.on |= c.bit();
        }
        p.status_codes.push(503);
        p
    }

    /// The conditions of an explicit `retryOn` (replacing the default).
    pub fn with_conditions(mut self, on: &[RetryOn], status_codes: Vec<u16>) -> RetryPolicy {
        self.on = on.iter().fold(0, |acc, c| acc | c.bit());
        if !status_codes.is_empty() {
            // Istio: a number in retryOn turns on retriable-status-codes.
            self.on |= RetryOn::RetriableStatusCodes.bit();
        }
        self.status_codes = status_codes;
        self
    }

    pub fn has(&self, c: RetryOn) -> bool {
        self.on & c.bit() != 0
    }

    /// The conditions in force, in Envoy's names.
    pub fn conditions(&self) -> impl Iterator<Item = RetryOn> + '_ {
        RetryOn::ALL.into_iter().filter(|c| self.has(*c))
    }

    /// Whether an attempt that came to `outcome` may be retried.
    pub fn retriable(&self, outcome: Outcome<'_>) -> bool {
        match outcome {
            Outcome::NoAnswer(why) => self.retriable_no_answer(why),
            Outcome::Answer(status, headers) => self.retriable_answer(status, headers),
        }
    }

    fn retriable_no_answer(&self, why: NoAnswer) -> bool {
        use RetryOn::{ConnectFailure, FiveXx, GatewayError, RefusedStream, Reset};
        let any = |cs: &[RetryOn]| cs.iter().any(|c| self.has(*c));
        match why {
            NoAnswer::ConnectFailure => {
                any(&[FiveXx, GatewayError, Reset, ConnectFailure])
                    || self.has(RetryOn::ResetBeforeRequest)
            }
            NoAnswer::RefusedStream => {
                any(&[FiveXx, GatewayError, Reset, RefusedStream])
                    || self.has(RetryOn::ResetBeforeRequest)
            }
            NoAnswer::Reset | NoAnswer::PerTryTimeout => any(&[FiveXx, GatewayError, Reset]),
        }
    }

    fn retriable_answer(&self, status: http::StatusCode, headers: &http::HeaderMap) -> bool {
        let code = status.as_u16();
        if self.has(RetryOn::FiveXx) && status.is_server_error() {
            return true;
        }
        if self.has(RetryOn::GatewayError) && matches!(code, 502..=504) {
            return true;
        }
        if self.has(RetryOn::Retriable4xx) && code == 409 {
            return true;
        }
        if self.has(RetryOn::RetriableStatusCodes) && self.status_codes.contains(&code) {
            return true;
        }
        if self.has(RetryOn::EnvoyRateLimited) && headers.contains_key("x-envoy-ratelimited") {
            return true;
        }
        self.retriable_grpc(headers)
    }

    /// The gRPC conditions look at `grpc-status` in the response headers
    /// (a trailers-only answer): one in the trailers comes after the body
    /// has reached the client, too late to retry.
    fn retriable_grpc(&self, headers: &http::HeaderMap) -> bool {
        let Some(status) = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return false;
        };
        let on = match status {
            1 => RetryOn::GrpcCancelled,
            4 => RetryOn::GrpcDeadlineExceeded,
            8 => RetryOn::GrpcResourceExhausted,
            13 => RetryOn::GrpcInternal,
            14 => RetryOn::GrpcUnavailable,
            _ => return false,
        };
        self.has(on)
    }
}

/// One mirror: where a copy of each chosen request goes, and the share of
/// requests copied, in millionths (Envoy's `runtime_fraction` over a
/// million; 100% when `mirrorPercentage`/`percentage` is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Qualified and lower-cased.
    pub host: String,
    pub port: Option<u16>,
    /// A DestinationRule subset of the host's endpoints.
    pub subset: Option<String>,
    pub millionths: u32,
}

impl Mirror {
    /// A percentage (0 to 100, checked) in millionths.
    pub fn millionths(percent: f64) -> u32 {
        let m = (percent * 10_000.0).round();
        if m <= 0.0 {
            0
        } else if m >= 1_000_000.0 {
            1_000_000
        } else {
            // In range by the checks above.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let m = m as u32;
            m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    #[test]
    fn conditions() {
        let none = HeaderMap::new();
        let p = RetryPolicy::new(2, None)
            .with_conditions(&[RetryOn::GatewayError, RetryOn::ConnectFailure], vec![]);
        let ans = |c: u16| Outcome::Answer(StatusCode::from_u16(c).unwrap(), &none);
        assert!(p.retriable(ans(503)) && p.retriable(ans(502)));
        assert!(!p.retriable(ans(500)) && !p.retriable(ans(200)));
        assert!(p.retriable(Outcome::NoAnswer(NoAnswer::PerTryTimeout)));
        let p = RetryPolicy::new(2, None).with_conditions(&[RetryOn::ConnectFailure], vec![418]);
        assert!(p.retriable(ans(418)) && !p.retriable(ans(503)));
        assert!(p.retriable(Outcome::NoAnswer(NoAnswer::ConnectFailure)));
        assert!(!p.retriable(Outcome::NoAnswer(NoAnswer::Reset)));
        let p = RetryPolicy::new(2, None).with_conditions(&[RetryOn::FiveXx], vec![]);
        assert!(p.retriable(ans(500)) && p.retriable(Outcome::NoAnswer(NoAnswer::Reset)));
    }

    #[test]
    fn istio_default_and_grpc() {
        let p = RetryPolicy::new(2, None);
        let mut h = HeaderMap::new();
        assert!(p.retriable(Outcome::Answer(StatusCode::SERVICE_UNAVAILABLE, &h)));
        assert!(!p.retriable(Outcome::Answer(StatusCode::BAD_GATEWAY, &h)));
        h.insert("grpc-status", HeaderValue::from_static("14"));
        assert!(p.retriable(Outcome::Answer(StatusCode::OK, &h)));
        h.insert("grpc-status", HeaderValue::from_static("13"));
        assert!(!p.retriable(Outcome::Answer(StatusCode::OK, &h)));
        assert_eq!(
            RetryOn::parse("unavailable"),
            Some(RetryOn::GrpcUnavailable)
        );
        assert_eq!(RetryOn::parse("5XX"), None);
        for c in RetryOn::ALL {
            assert_eq!(RetryOn::parse(c.name()), Some(c));
        }
        let names: Vec<_> = p.conditions().map(RetryOn::name).collect();
        assert_eq!(
            names,
            [
                "connect-failure",
                "refused-stream",
                "retriable-status-codes",
                "cancelled",
                "unavailable"
            ]
        );
    }

    #[test]
    fn mirror_share() {
        assert_eq!(Mirror::millionths(100.0), 1_000_000);
        assert_eq!(Mirror::millionths(50.0), 500_000);
        assert_eq!(Mirror::millionths(0.0001), 1);
        assert_eq!(Mirror::millionths(0.0), 0);
    }
}
