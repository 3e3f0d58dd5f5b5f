//! A route's `fault` in checked form: the delay and the abort, each with
//! the share of requests it applies to, and the pure draw that decides it.
//!
//! Validation builds these; the data plane only reads them. Nothing here
//! does I/O or knows serde, and nothing here draws a random number: the
//! caller brings the draw, so the decision is a plain, tested function.

use std::time::Duration;

use http::StatusCode;

/// A share of requests, in parts per million (Envoy's `FractionalPercent`
/// with denominator `MILLION`, which is what Istio turns a percentage
/// into: 0.0001 % is the finest step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share(u32);

impl Share {
    pub const NONE: Share = Share(0);
    pub const ALL: Share = Share(1_000_000);

    /// A percentage from 0 to 100 (checked by validation; anything else is
    /// clamped, never a panic).
    pub fn from_percent(p: f64) -> Share {
        let ppm = (p * 10_000.0).round().clamp(0.0, 1_000_000.0);
        // In range after the clamp; `as` cannot truncate it.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Share(ppm as u32)
    }

    /// Whether a draw uniform in `0..1_000_000` falls in this share.
    pub fn hit(self, draw: u32) -> bool {
        draw < self.0
    }

    pub fn parts_per_million(self) -> u32 {
        self.0
    }
}

/// `fault.delay`: wait this long before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub duration: Duration,
    pub share: Share,
}

/// What an aborted request is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortWith {
    /// `httpStatus`.
    Http(StatusCode),
    /// `grpcStatus`: HTTP 200 with this `grpc-status` code, as Envoy does.
    Grpc(u8),
}

/// `fault.abort`: answer without reaching the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    pub with: AbortWith,
    pub share: Share,
}

/// A route's fault injection: the delay comes first, then the abort, each
/// decided on its own draw (Envoy's fault filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

/// gRPC's status codes by the names Istio's `grpcStatus` takes.
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code of a gRPC status name (`UNAVAILABLE` is 14).
pub fn grpc_code(name: &str) -> Option<u8> {
    GRPC_CODES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u8::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_parts_per_million() {
        assert_eq!(Share::from_percent(100.0), Share::ALL);
        assert_eq!(Share::from_percent(0.0), Share::NONE);
        assert_eq!(Share::from_percent(25.0).parts_per_million(), 250_000);
        assert_eq!(Share::from_percent(0.0001).parts_per_million(), 1);
        assert_eq!(Share::from_percent(250.0), Share::ALL);
        let quarter = Share::from_percent(25.0);
        assert!(quarter.hit(0) && quarter.hit(249_999) && !quarter.hit(250_000));
        assert!(!Share::NONE.hit(0) && Share::ALL.hit(999_999));
    }

    #[test]
    fn grpc_names() {
        assert_eq!(grpc_code("OK"), Some(0));
        assert_eq!(grpc_code("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_code("UNAUTHENTICATED"), Some(16));
        assert_eq!(grpc_code("unavailable"), None);
    }
}
