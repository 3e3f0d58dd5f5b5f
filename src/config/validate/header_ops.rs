//! Header operations (`headers.request`/`headers.response` of a route or
//! a destination): names and values built once, the authority set only on
//! the request, never a pseudo-header.

use http::{HeaderName, HeaderValue};

use super::super::checked::route::HeaderOps;
use super::super::error::FieldErrors;
use super::super::virtual_service::{HeaderOperations, Headers};

/// A value that must fit in a header.
pub(super) fn header_text(s: &str, p: String, e: &mut FieldErrors) {
    if HeaderValue::from_str(s).is_err() {
        e.push(p, format!("{s:?} cannot be sent in a header"));
    }
}

pub(super) fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Header manipulation: names Envoy can set, never the pseudo-headers, and
/// the Host header only through the request (where it is the authority:
/// `:authority` and `host` both set the Host header sent upstream).
pub(super) fn headers(h: &Headers, p: &str, e: &mut FieldErrors) -> (HeaderOps, HeaderOps) {
    let mut out = [HeaderOps::default(), HeaderOps::default()];
    for (i, (dir, ops)) in [("request", &h.request), ("response", &h.response)]
        .into_iter()
        .enumerate()
    {
        if let Some(ops) = ops {
            out[i] = header_ops(ops, dir == "request", &format!("{p}.{dir}"), e);
        }
    }
    let [request, response] = out;
    (request, response)
}

fn header_ops(ops: &HeaderOperations, request: bool, p: &str, e: &mut FieldErrors) -> HeaderOps {
    let mut out = HeaderOps::default();
    for name in &ops.remove {
        if let Some(n) = op_name(name, request, false, &format!("{p}.remove.{name}"), e) {
            out.remove.push(n);
        }
    }
    for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let np = format!("{p}.{op}.{name}");
            let n = op_name(name, request, true, &np, e);
            let v = if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                e.push(&np, "a header value cannot hold control characters");
                None
            } else {
                HeaderValue::from_str(value)
                    .map_err(|_| e.push(&np, "not a valid header value"))
                    .ok()
            };
            if let (Some(n), Some(v)) = (n, v) {
                let list = if op == "set" {
                    &mut out.set
                } else {
                    &mut out.add
                };
                list.push((n, v));
            }
        }
    }
    out
}

fn op_name(
    name: &str,
    request: bool,
    sets: bool,
    np: &str,
    e: &mut FieldErrors,
) -> Option<HeaderName> {
    if name.is_empty() {
        e.push(np, "a header name is required");
    } else if request && sets && is_authority(name) {
        return Some(http::header::HOST);
    } else if name.eq_ignore_ascii_case("host") {
        e.push(np, "the Host header cannot be changed here");
    } else if name.starts_with(':') {
        e.push(np, format!("{name:?}: pseudo-headers cannot be changed"));
    } else if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
        return Some(n);
    } else {
        e.push(np, format!("{name:?} is not a header name"));
    }
    None
}
