//! Picking where a request goes: a destination by weight, then (after
//! the destination's circuit breakers admit it, `upstream::limits`) one of
//! its endpoints by the destination's load balancer, with the request's
//! `consistentHash` key: a header, a cookie (made and set on the answer
//! when absent and a `ttl` is given, as Envoy does), the client's address
//! or a query parameter.
//!
//! It reads the request and never changes it; the one thing it adds to
//! the answer is that cookie.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::Body;
use super::facts::{Facts, Flag};
use super::respond::local;
use crate::config::checked::destination_rule::HashKey;
use crate::snapshot::routes::{self, WeightedUpstream};
use crate::upstream::limits::{Admission, Refused};
use crate::upstream::ring::hash;

/// What a request offers the balancer to hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys<'a> {
    pub headers: Option<&'a HeaderMap>,
    pub query: Option<&'a str>,
    pub peer: IpAddr,
}

impl Keys<'_> {
    /// A connection's keys: its client's address only (TCP, passthrough).
    pub(crate) fn peer(peer: IpAddr) -> Keys<'static> {
        Keys {
            headers: None,
            query: None,
            peer,
        }
    }
}

/// Where a request goes.
#[derive(Debug)]
pub(crate) struct Picked<'d> {
    pub dest: &'d WeightedUpstream,
    pub addr: SocketAddr,
    /// The `Set-Cookie` for a hash cookie the gateway made.
    pub cookie: Option<HeaderValue>,
}

/// The hash of the request's key for `key`, and a cookie to set when the
/// key is a cookie the request lacks (and `ttl` says to make one).
fn key_hash(key: &HashKey, keys: &Keys<'_>) -> (Option<u64>, Option<HeaderValue>) {
    match key {
        HashKey::Header(name) => (
            keys.headers
                .and_then(|h| h.get(name))
                .map(|v| hash(v.as_bytes())),
            None,
        ),
        HashKey::SourceIp => (Some(hash(keys.peer.to_string().as_bytes())), None),
        HashKey::QueryParameter(name) => (
            keys.query.and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| hash(v.as_bytes()))
            }),
            None,
        ),
        HashKey::Cookie { name, path, ttl } => {
            if let Some(v) = keys.headers.and_then(|h| cookie(h, name)) {
                return (Some(hash(v.as_bytes())), None);
            }
            match ttl {
                Some(ttl) => {
                    let value = new_cookie_value();
                    let set = set_cookie(name, &value, path.as_deref(), *ttl);
                    (Some(hash(value.as_bytes())), set)
                }
                None => (None, None),
            }
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, without
/// the quotes the gateway's own cookie carries.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// 16 hex digits, as Envoy's generated cookies.
fn new_cookie_value() -> String {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    format!("{:016x}", u64::from_le_bytes(b))
}

/// Envoy's form: `name="value"; Max-Age=N; Path=p; HttpOnly` (a zero
/// `ttl`: a session cookie, without Max-Age).
fn set_cookie(name: &str, value: &str, path: Option<&str>, ttl: Duration) -> Option<HeaderValue> {
    let mut c = format!("{name}=\"{value}\"");
    if !ttl.is_zero() {
        c.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if let Some(p) = path {
        c.push_str(&format!("; Path={p}"));
    }
    c.push_str("; HttpOnly");
    HeaderValue::from_str(&c).ok()
}

/// A destination by weight, then one of its endpoints by its balancer;
/// or the response flag for why there is none (`NC`: a subset no rule
/// defines, `UH`: no endpoint, or all ejected).
pub(crate) async fn pick_upstream<'d>(
    dests: &'d [WeightedUpstream],
    keys: &Keys<'_>,
) -> Result<Picked<'d>, Flag> {
    // One random number only when there is a choice to make.
    let n = if dests.len() > 1 {
        let mut b = [0u8; 4];
        let _ = aws_lc_rs::rand::fill(&mut b);
        u32::from_le_bytes(b)
    } else {
        0
    };
    let dest = routes::pick_weighted(dests, n).ok_or(Flag::NoHealthyUpstream)?;
    let up = &dest.upstream;
    if let Some(why) = &up.unavailable {
        tracing::debug!(upstream = %up.cluster(), "{why}");
        return Err(Flag::NoClusterFound);
    }
    let (h, cookie) = up.hash_key().map_or((None, None), |k| key_hash(k, keys));
    match up.pick_by(h).await {
        Ok(addr) => Ok(Picked { dest, addr, cookie }),
        Err(e) => {
            tracing::debug!(error = %e, "no upstream endpoint");
            Err(Flag::NoHealthyUpstream)
        }
    }
}

/// The destination's circuit breakers' admission for a request (none
/// when it sets no limits), waiting at most `wait` for a connection; or
/// the answer when it overflows (503 `UO`) or waited too long (504 `UT`).
pub(super) async fn admit(
    dest: &WeightedUpstream,
    wait: Duration,
    facts: &mut Facts,
) -> Result<Option<Admission>, Response<Body>> {
    let Some(limits) = dest.upstream.limits() else {
        return Ok(None);
    };
    match limits.admit(wait).await {
        Ok(a) => Ok(Some(a)),
        Err(Refused::Overflow) => {
            facts.flags.set(Flag::UpstreamOverflow);
            Err(local(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            ))
        }
        Err(Refused::Timeout) => {
            facts.flags.set(Flag::UpstreamTimeout);
            Err(local(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream request timeout",
            ))
        }
    }
}

/// The answer as it goes to the client: with the hash cookie the
/// gateway made, and holding the request's admission until its body ends.
pub(super) fn answered(
    mut resp: Response<Body>,
    cookie: Option<HeaderValue>,
    admission: Option<Admission>,
) -> Response<Body> {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    match admission {
        Some(a) => super::lease::hold(resp, a),
        None => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_made_as_envoy_makes_them() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; user=\"abc\"; b=2"),
        );
        assert_eq!(cookie(&h, "user"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "none"), None);
        let c = set_cookie("user", "00ff", Some("/"), Duration::from_secs(60)).unwrap();
        assert_eq!(c, "user=\"00ff\"; Max-Age=60; Path=/; HttpOnly");
        let c = set_cookie("user", "00ff", None, Duration::ZERO).unwrap();
        assert_eq!(c, "user=\"00ff\"; HttpOnly");
    }

    #[test]
    fn keys_hash_the_same_value_the_same_way() {
        let peer: IpAddr = [192, 0, 2, 1].into();
        let q = Keys {
            headers: None,
            query: Some("a=1&user=bob&c"),
            peer,
        };
        let (h, _) = key_hash(&HashKey::QueryParameter("user".into()), &q);
        assert_eq!(h, Some(hash(b"bob")));
        let (h, _) = key_hash(&HashKey::QueryParameter("c".into()), &q);
        assert_eq!(h, Some(hash(b"")));
        let (h, _) = key_hash(&HashKey::SourceIp, &q);
        assert_eq!(h, Some(hash(b"192.0.2.1")));
        let cookie_key = HashKey::Cookie {
            name: "user".into(),
            path: None,
            ttl: None,
        };
        assert_eq!(key_hash(&cookie_key, &q), (None, None));
    }
}
