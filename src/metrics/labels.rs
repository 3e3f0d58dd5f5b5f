//! The label sets of gatehouse's metrics, each built from values the
//! gateway or its config owns: server ids, VirtualService names and http
//! indexes, destination `host:port`, Gateway ports, SDS resource names, a
//! method class and a status code.
//!
//! Nothing here may ever hold a string a client sent (a path, a Host
//! header, the SNI of a refused handshake, a user agent): each such value
//! would be a new time series, and the number of series must stay bounded
//! by the config.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use crate::snapshot::routes::RouteId;
use crate::upstream::Upstream;

/// A request's method, grouped: the nine methods of RFC 9110 and RFC 5789
/// by name, every other (extension) method as `OTHER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodClass {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Trace,
    Other,
}

impl MethodClass {
    pub fn of(m: &http::Method) -> MethodClass {
        match *m {
            http::Method::GET => MethodClass::Get,
            http::Method::HEAD => MethodClass::Head,
            http::Method::POST => MethodClass::Post,
            http::Method::PUT => MethodClass::Put,
            http::Method::DELETE => MethodClass::Delete,
            http::Method::PATCH => MethodClass::Patch,
            http::Method::OPTIONS => MethodClass::Options,
            http::Method::CONNECT => MethodClass::Connect,
            http::Method::TRACE => MethodClass::Trace,
            _ => MethodClass::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MethodClass::Get => "GET",
            MethodClass::Head => "HEAD",
            MethodClass::Post => "POST",
            MethodClass::Put => "PUT",
            MethodClass::Delete => "DELETE",
            MethodClass::Patch => "PATCH",
            MethodClass::Options => "OPTIONS",
            MethodClass::Connect => "CONNECT",
            MethodClass::Trace => "TRACE",
            MethodClass::Other => "OTHER",
        }
    }
}

pub(super) fn label(enc: &mut LabelSetEncoder, key: &str, value: &str) -> Result<(), fmt::Error> {
    (key, value).encode(enc.encode_label())
}

/// `{server, virtual_service, route}`: "" for what a request never reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteLabels {
    pub server: Option<Arc<str>>,
    pub route: Option<Arc<RouteId>>,
}

impl EncodeLabelSet for RouteLabels {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "server", self.server.as_deref().unwrap_or(""))?;
        let Some(r) = &self.route else {
            label(enc, "virtual_service", "")?;
            return label(enc, "route", "");
        };
        label(enc, "virtual_service", &r.virtual_service)?;
        match &r.name {
            Some(n) => label(enc, "route", n),
            None => ("route", r.index).encode(enc.encode_label()),
        }
    }
}

/// `{server, virtual_service, route, method, code}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub route: RouteLabels,
    pub method: MethodClass,
    pub code: u16,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        self.route.encode(enc)?;
        label(enc, "method", self.method.as_str())?;
        ("code", self.code).encode(enc.encode_label())
    }
}

/// `{upstream, subset}`: the destination's `host:port` and its
/// DestinationRule subset ("" for none), compared by those three only, so
/// a recompiled snapshot's new `Upstream` is the same series.
#[derive(Debug, Clone)]
pub struct UpstreamLabel(pub Arc<Upstream>);

impl PartialEq for UpstreamLabel {
    fn eq(&self, other: &Self) -> bool {
        self.0.port == other.0.port
            && self.0.host == other.0.host
            && self.0.subset == other.0.subset
    }
}

impl Eq for UpstreamLabel {}

impl Hash for UpstreamLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.host.hash(state);
        self.0.port.hash(state);
        self.0.subset.hash(state);
    }
}

impl EncodeLabelSet for UpstreamLabel {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        let value = format!("{}:{}", self.0.host, self.0.port);
        label(enc, "upstream", &value)?;
        label(enc, "subset", self.0.subset.as_deref().unwrap_or(""))
    }
}

/// `{port}`: a Gateway port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortLabel(pub u16);

impl EncodeLabelSet for PortLabel {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        ("port", self.0).encode(enc.encode_label())
    }
}

/// `{server, result}` of `gatehouse_tls_handshakes_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HandshakeLabels {
    /// `None` (rendered "") before a server was chosen.
    pub server: Option<Arc<str>>,
    pub result: super::handshake::Outcome,
}

impl EncodeLabelSet for HandshakeLabels {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "server", self.server.as_deref().unwrap_or(""))?;
        label(enc, "result", self.result.as_str())
    }
}

/// `{server, kind}` of `gatehouse_tls_sessions_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionLabels {
    pub server: Arc<str>,
    pub resumed: bool,
}

impl EncodeLabelSet for SessionLabels {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "server", &self.server)?;
        label(enc, "kind", if self.resumed { "resumed" } else { "full" })
    }
}

/// `{resource}`: an SDS resource name (a Secret the config names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceLabel(pub String);

impl EncodeLabelSet for ResourceLabel {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "resource", &self.0)
    }
}

/// `{namespace, resource, kind}` of the credential expiry gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExpiryLabels {
    pub namespace: Arc<str>,
    pub resource: String,
    /// `cert` or `ca`.
    pub kind: &'static str,
}

impl EncodeLabelSet for ExpiryLabels {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "namespace", &self.namespace)?;
        label(enc, "resource", &self.resource)?;
        label(enc, "kind", self.kind)
    }
}

/// `{version}` of `gatehouse_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionLabel(pub &'static str);

impl EncodeLabelSet for VersionLabel {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "version", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_nine_are_other() {
        let m = |s: &str| MethodClass::of(&http::Method::from_bytes(s.as_bytes()).unwrap());
        assert_eq!(m("GET").as_str(), "GET");
        assert_eq!(m("PATCH").as_str(), "PATCH");
        assert_eq!(m("PROPFIND").as_str(), "OTHER");
        assert_eq!(m("get").as_str(), "OTHER");
    }
}
