//! Facts: what one request came to (its server, route, upstream, the
//! upstream's time to answer, Envoy's response flags, its request id),
//! gathered by the steps of the request path and read once at the end by
//! the access log and the metrics. Nothing here looks at the request's
//! own strings: every value is the gateway's (or the config's), so the
//! metrics' labels stay bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::snapshot::routes::RouteId;
use crate::upstream::Upstream;

/// Envoy's response flags (`%RESPONSE_FLAGS%`), the ones gatehouse can
/// set: why a response is not simply the backend's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `NR`: no route (nobody serves the host on this port, no route
    /// matched, or another server's host: 421).
    NoRoute,
    /// `UH`: no healthy upstream endpoint.
    NoHealthyUpstream,
    /// `UF`: the upstream connection failed.
    UpstreamConnectFailure,
    /// `UC`: the upstream connection ended before the response headers.
    UpstreamConnectionTermination,
    /// `UT`: the route's (or the upstream) timeout passed.
    UpstreamTimeout,
    /// `DPE`: the request broke HTTP's rules (framing, limits, headers).
    DownstreamProtocolError,
    /// `SI`: the client's body stalled past the stream idle timeout, or
    /// the whole-request deadline passed.
    StreamIdleTimeout,
    /// `DC`: the client went away (its body broke off).
    DownstreamConnectionTermination,
    /// `DI`: the route's `fault.delay` held the request.
    DelayInjected,
    /// `FI`: the route's `fault.abort` answered the request.
    FaultInjected,
    /// `URX`: the request was retried as often as the route allows and
    /// the last attempt failed too (its answer, or the failure's status,
    /// is what the client gets).
    UpstreamRetryLimitExceeded,
    /// `NC`: the route names a destination that does not exist (a subset
    /// no DestinationRule defines).
    NoClusterFound,
    /// `UO`: the destination's connection pool was full (DestinationRule
    /// `connectionPool`: circuit breaking).
    UpstreamOverflow,
}

impl Flag {
    /// Envoy's short name.
    pub fn code(self) -> &'static str {
        match self {
            Flag::NoRoute => "NR",
            Flag::NoHealthyUpstream => "UH",
            Flag::UpstreamConnectFailure => "UF",
            Flag::UpstreamConnectionTermination => "UC",
            Flag::UpstreamTimeout => "UT",
            Flag::DownstreamProtocolError => "DPE",
            Flag::StreamIdleTimeout => "SI",
            Flag::DownstreamConnectionTermination => "DC",
            Flag::DelayInjected => "DI",
            Flag::FaultInjected => "FI",
            Flag::UpstreamRetryLimitExceeded => "URX",
            Flag::NoClusterFound => "NC",
            Flag::UpstreamOverflow => "UO",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    const ALL: [Flag; 13] = [
        Flag::NoRoute,
        Flag::NoHealthyUpstream,
        Flag::UpstreamConnectFailure,
        Flag::UpstreamConnectionTermination,
        Flag::UpstreamTimeout,
        Flag::DownstreamProtocolError,
        Flag::StreamIdleTimeout,
        Flag::DownstreamConnectionTermination,
        Flag::DelayInjected,
        Flag::FaultInjected,
        Flag::UpstreamRetryLimitExceeded,
        Flag::NoClusterFound,
        Flag::UpstreamOverflow,
    ];
}

/// A set of [`Flag`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    pub fn set(&mut self, f: Flag) {
        self.0 |= f.bit();
    }

    pub fn has(self, f: Flag) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.has(*f))
    }
}

impl std::fmt::Display for Flags {
    /// Envoy's form: `UF,URX`-style codes joined by `,`, or `-` for none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.code())?;
        }
        Ok(())
    }
}

/// What one request came to. Each step fills in what it learns.
#[derive(Debug)]
pub struct Facts {
    pub start: Instant,
    /// The id of the Gateway server that answered (`namespace/gateway/port-name`).
    pub server: Option<Arc<str>>,
    /// The matched route.
    pub route: Option<Arc<RouteId>>,
    /// The destination the route chose (its host and port).
    pub destination: Option<Arc<Upstream>>,
    /// The endpoint the request was sent to.
    pub upstream: Option<SocketAddr>,
    /// From sending the request upstream to its response headers.
    pub upstream_time: Option<Duration>,
    pub flags: Flags,
    /// The `x-request-id` sent upstream (generated here, never the client's).
    pub request_id: Option<String>,
}

impl Facts {
    pub fn new(start: Instant) -> Facts {
        Facts {
            start,
            server: None,
            route: None,
            destination: None,
            upstream: None,
            upstream_time: None,
            flags: Flags::default(),
            request_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_as_envoy_does() {
        let mut f = Flags::default();
        assert_eq!(f.to_string(), "-");
        f.set(Flag::UpstreamConnectFailure);
        assert_eq!(f.to_string(), "UF");
        f.set(Flag::NoRoute);
        assert_eq!(f.to_string(), "NR,UF");
        assert!(f.has(Flag::NoRoute) && !f.has(Flag::UpstreamTimeout));
        let mut fault = Flags::default();
        fault.set(Flag::FaultInjected);
        fault.set(Flag::DelayInjected);
        assert_eq!(fault.to_string(), "DI,FI");
        f.set(Flag::UpstreamRetryLimitExceeded);
        assert_eq!(f.to_string(), "NR,UF,URX");
    }
}
