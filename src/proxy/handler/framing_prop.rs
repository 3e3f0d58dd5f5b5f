//! Properties of the framing step: any header names and values give a
//! verdict, never a panic; the verdict is the one a plain reading of RFC
//! 9112/9110 gives (the model below) and does not depend on header order;
//! `Content-Length` with `Transfer-Encoding` is always refused; and after
//! `strip` no header only a proxy may set is left, while every
//! other header is.

use std::collections::BTreeMap;

use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri, Version};
use proptest::prelude::*;

use super::{Limits, is_untrusted, scan as scan_with, strip};
use crate::proxy::settings::UnderscoreAction;

/// The framing rules alone: no count or body limit (the model does not
/// know them), names with `_` refused as by default.
fn scan<B>(r: &Request<B>) -> Result<super::Scan, super::Refusal> {
    scan_with(
        r,
        Limits {
            max_headers: usize::MAX,
            max_body: 0,
            underscores: UnderscoreAction::Reject,
        },
    )
}

/// Names the step cares about, plus names it must pass through.
const NAMES: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "x_forwarded_for",
    "x-envoy-internal",
    "x-forwarded-proto",
    "client-cert",
    "x-forwarded-client-cert",
    "accept",
    "x-envoyish",
];

/// Values that sit on either side of each rule.
const VALUES: [&str; 17] = [
    "a.com",
    "A.com:443",
    "b.com",
    "[::1]",
    "[::1]:80",
    "",
    "5",
    "0",
    "05",
    "+5",
    "5, 5",
    "99999999999999999999999",
    "chunked",
    "Chunked",
    "gzip",
    "gzip, chunked",
    "chunked, gzip",
];

const TARGETS: [&str; 7] = [
    "/",
    "/x?y=1",
    "http://a.com/",
    "http://A.COM:8443/x",
    "https://b.com/",
    "http://[::1]:80/",
    "a.com:443",
];

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(vec![Version::HTTP_10, Version::HTTP_11, Version::HTTP_2])
}

/// A header from the pools above.
fn header() -> impl Strategy<Value = (HeaderName, HeaderValue)> {
    (
        prop::sample::select(NAMES.to_vec()),
        prop::sample::select(VALUES.to_vec()),
    )
        .prop_map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
}

/// A header from arbitrary bytes: whatever `http` accepts as a name and a
/// value (hyper hands the step nothing else).
fn arbitrary_header() -> impl Strategy<Value = Option<(HeaderName, HeaderValue)>> {
    let bytes = prop::collection::vec(any::<u8>(), 0..12);
    (bytes.clone(), bytes).prop_map(|(n, v)| {
        Some((
            HeaderName::from_bytes(&n).ok()?,
            HeaderValue::from_bytes(&v).ok()?,
        ))
    })
}

fn request(version: Version, target: &str, headers: &[(HeaderName, HeaderValue)]) -> Request<()> {
    let mut r = Request::new(());
    *r.version_mut() = version;
    *r.uri_mut() = target.parse::<Uri>().unwrap_or_default();
    for (n, v) in headers {
        r.headers_mut().append(n.clone(), v.clone());
    }
    r
}

/// `host[:port]` or `[v6][:port]` without the port, lower-cased.
fn host_part(a: &str) -> String {
    let h = match a.find(']') {
        Some(end) if a.starts_with('[') => &a[..=end],
        _ => a.rsplit_once(':').map_or(a, |(h, _)| h),
    };
    h.to_ascii_lowercase()
}

/// The verdict RFC 9112/9110 and gatehouse's rules give: `Err(())` for a
/// refusal, else (untrusted headers present, chunked body).
fn model(r: &Request<()>) -> Result<(bool, bool), ()> {
    let all: Vec<(&str, &[u8])> = r
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let count = |name: &str| all.iter().filter(|(n, _)| *n == name).count();
    let (hosts, lengths, codings) = (
        count("host"),
        count("content-length"),
        count("transfer-encoding"),
    );
    let bad_length = all.iter().any(|(n, v)| {
        *n == "content-length" && (v.is_empty() || v.iter().any(|b| !b.is_ascii_digit()))
    });
    let bad_coding = all
        .iter()
        .any(|(n, v)| *n == "transfer-encoding" && !v.eq_ignore_ascii_case(b"chunked"));
    let underscore = all.iter().any(|(n, _)| n.contains('_'));
    let host = r
        .headers()
        .get("host")
        .map(|h| String::from_utf8_lossy(h.as_bytes()));
    let mismatch = match (r.uri().authority(), host) {
        (Some(a), Some(h)) => host_part(a.as_str()) != host_part(&h),
        _ => false,
    };
    let refused = bad_length
        || bad_coding
        || underscore
        || hosts > 1
        || lengths > 1
        || codings > 1
        || (codings > 0 && lengths > 0)
        || (hosts == 0 && r.version() == Version::HTTP_11)
        || mismatch;
    if refused {
        return Err(());
    }
    let untrusted = all.iter().any(|(n, _)| {
        n.starts_with("x-envoy-")
            || [
                "x-forwarded-client-cert",
                "x-forwarded-proto",
                "client-cert",
                "client-cert-chain",
            ]
            .contains(n)
    });
    Ok((untrusted, codings == 1))
}

fn verdict(r: &Request<()>) -> Result<(bool, bool), ()> {
    scan(r).map(|s| (s.untrusted, s.chunked)).map_err(|_| ())
}

proptest! {
    #[test]
    fn prop_framing_scan_agrees_with_the_model(
        version in version(),
        target in prop::sample::select(TARGETS.to_vec()),
        headers in prop::collection::vec(header(), 0..6),
    ) {
        let r = request(version, target, &headers);
        prop_assert_eq!(verdict(&r), model(&r), "{:?}", r);
    }

    #[test]
    fn prop_framing_verdict_ignores_header_order(
        version in version(),
        target in prop::sample::select(TARGETS.to_vec()),
        (headers, shuffled) in prop::collection::vec(header(), 0..6)
            .prop_flat_map(|h| (Just(h.clone()), Just(h).prop_shuffle())),
    ) {
        let (a, b) = (request(version, target, &headers), request(version, target, &shuffled));
        prop_assert_eq!(verdict(&a), verdict(&b));
    }

    /// However the rest of the request looks, and wherever the two headers
    /// stand, `Content-Length` with `Transfer-Encoding: chunked` is refused.
    #[test]
    fn prop_framing_refuses_content_length_with_transfer_encoding(
        version in version(),
        target in prop::sample::select(TARGETS.to_vec()),
        headers in prop::collection::vec(header(), 0..6),
        length in "[0-9]{1,6}",
        coding in "(?i)chunked",
        at in (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
    ) {
        let mut h = headers;
        let cl = (HeaderName::from_static("content-length"), HeaderValue::from_str(&length));
        let te = (HeaderName::from_static("transfer-encoding"), HeaderValue::from_str(&coding));
        let (Ok(l), Ok(c)) = (cl.1, te.1) else {
            return Err(TestCaseError::fail("generated values are valid"));
        };
        h.insert(at.0.index(h.len() + 1), (cl.0, l));
        h.insert(at.1.index(h.len() + 1), (te.0, c));
        let r = request(version, target, &h);
        prop_assert!(scan(&r).is_err(), "{:?}", r);
    }

    #[test]
    fn prop_framing_arbitrary_headers_never_panic_and_strip_only_untrusted(
        version in version(),
        target in prop::sample::select(TARGETS.to_vec()),
        headers in prop::collection::vec(
            prop_oneof![arbitrary_header(), header().prop_map(Some)], 0..10),
    ) {
        let headers: Vec<_> = headers.into_iter().flatten().collect();
        let mut r = request(version, target, &headers);
        let found = scan(&r);
        // Per name, its values in order (removal may reorder names).
        let kept = |r: &Request<()>| {
            let mut m: BTreeMap<String, Vec<HeaderValue>> = BTreeMap::new();
            for (n, v) in r.headers().iter().filter(|(n, _)| !is_untrusted(n)) {
                m.entry(n.as_str().to_owned()).or_default().push(v.clone());
            }
            m
        };
        let before = kept(&r);
        strip(r.headers_mut(), false);
        prop_assert!(r.headers().keys().all(|n| !is_untrusted(n)));
        prop_assert_eq!(kept(&r), before);
        if let Ok(s) = found {
            prop_assert_eq!(s.untrusted, headers.iter().any(|(n, _)| is_untrusted(n)));
            let again = scan(&r);
            prop_assert!(again.is_ok_and(|s| !s.untrusted));
        }
    }
}
