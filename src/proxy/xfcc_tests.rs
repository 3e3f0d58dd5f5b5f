//! The XFCC encoder: RFC 2253 escapes as OpenSSL writes them, quoting, and
//! properties over generated certificates (`prop_*`; `PROPTEST_CASES` sets
//! how many cases run, 256 by default): every field reads back exactly
//! through a strict reader, and nothing adds a field or an element.

use proptest::prelude::*;

use super::reader::{parse, parse_dn, values};
use super::*;
use crate::pki::{LeafSpec, self_signed};

#[test]
fn escapes() {
    let cases: [(&str, &str); 6] = [
        ("plain", "plain"),
        ("a,b+c", "a\\,b\\+c"),
        (" #lead", "\\ #lead"),
        ("#x", "\\#x"),
        ("trail ", "trail\\ "),
        ("é\t\"q\"", "\\C3\\A9\\09\\\"q\\\""),
    ];
    for (input, want) in cases {
        let mut out = String::new();
        let chars: Vec<char> = input.chars().collect();
        let last = chars.len() - 1;
        for (i, c) in chars.iter().enumerate() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).as_bytes() {
                escape(*byte, i == 0, i == last, &mut out);
            }
        }
        assert_eq!(out, want, "{input:?}");
    }
}

fn value_of(v: &str) -> String {
    let mut out = String::new();
    push_value(v, &mut out);
    out
}

#[test]
fn quoting() {
    assert_eq!(
        value_of("spiffe://foocorp.com/ns/ux"),
        "spiffe://foocorp.com/ns/ux"
    );
    assert_eq!(value_of(""), "");
    assert_eq!(value_of("urn:a;b=\"c\""), "\"urn:a;b=\\\"c\\\"\"");
    assert_eq!(value_of("a\\b"), "\"a\\\\b\"");
    assert_eq!(value_of("a b"), "\"a b\"");
}

/// A certificate with `cn`, `o` and the SANs, self-signed.
fn cert(cn: &str, o: &str, uris: &[String], dns: &[String]) -> Vec<u8> {
    let mut spec = LeafSpec::client(cn).organization(o);
    spec.dns = dns.to_vec();
    spec.uris = uris.to_vec();
    self_signed(&spec).unwrap().cert_der().unwrap().to_vec()
}

#[test]
fn subject_and_sans_with_every_delimiter_read_back_exactly() {
    let cn = "a,b;c\"d=e\\f+g<h>#i ";
    let o = " x=y, z;\"w\"";
    let uris = ["urn:a;b=\"c\",d\\e".to_owned(), "spiffe://x/y".to_owned()];
    let dns = ["x y;z=w,v".to_owned()];
    let der = cert(cn, o, &uris, &dns);
    let p = peer_cert(&der).unwrap();
    let elements = parse(&p.xfcc).unwrap();
    assert_eq!(elements.len(), 1, "{}", p.xfcc);
    let e = &elements[0];
    let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["Hash", "Subject", "URI", "URI", "DNS"], "{}", p.xfcc);
    assert_eq!(values(e, "Hash"), [crate::crypto::sha256_hex(&der)]);
    assert_eq!(values(e, "Subject"), [p.subject.as_str()]);
    assert_eq!(
        parse_dn(&p.subject).unwrap(),
        [
            ("CN".to_owned(), cn.to_owned()),
            ("O".to_owned(), o.to_owned())
        ]
    );
    assert_eq!(values(e, "URI"), uris);
    assert_eq!(values(e, "DNS"), dns);
    // The same facts, kept apart for the access log.
    assert_eq!(p.sha256, crate::crypto::sha256_hex(&der));
    assert_eq!(p.uri_sans, uris);
    assert_eq!(p.dns_sans, dns);
}

#[test]
fn control_characters_make_a_certificate_unrepresentable() {
    let none: [String; 0] = [];
    for (cn, o, uri, dns, field) in [
        ("evil\r\nx-admin: 1", "ok", None, None, "subject's CN"),
        ("ok", "nul\0byte", None, None, "subject's O"),
        ("del\u{7f}", "ok", None, None, "subject's CN"),
        ("c1\u{85}", "ok", None, None, "subject's CN"),
        ("ok", "ok", Some("urn:a\nb"), None, "URI SAN"),
        ("ok", "ok", None, Some("a\rb.example"), "DNS SAN"),
        ("ok", "ok", None, Some("tab\tb.example"), "DNS SAN"),
    ] {
        let uris: Vec<String> = uri.into_iter().map(str::to_owned).collect();
        let dns: Vec<String> = dns.into_iter().map(str::to_owned).collect();
        let der = cert(cn, o, &uris, if dns.is_empty() { &none } else { &dns });
        let u = peer_cert(&der).unwrap_err();
        assert!(u.why.contains(field), "{cn:?} {o:?}: {u:?}");
        assert_eq!(u.sha256, crate::crypto::sha256_hex(&der));
        assert!(
            u.subject.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "the logged subject must be escaped: {u:?}"
        );
    }
    assert!(peer_cert(b"not a certificate").is_err());
}

/// Text for a subject attribute: the delimiters of both grammars, spaces,
/// `#`, non-ASCII letters; no control characters.
fn attribute() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,;=\"\\\\+<>#'/:@.é漢-]{1,24}"
}

/// Text for a SAN: printable ASCII, delimiters included.
fn san() -> impl Strategy<Value = String> {
    "[ -~]{1,24}"
}

/// One control character, somewhere in a string.
fn with_control() -> impl Strategy<Value = String> {
    ("[a-z]{0,6}", "[\\x00-\\x1f\\x7f]", "[a-z]{0,6}").prop_map(|(a, c, b)| format!("{a}{c}{b}"))
}

proptest! {
    #[test]
    fn prop_values_round_trip_and_never_add_fields(v in "\\PC*", w in "\\PC*") {
        let mut header = String::from("A=");
        push_value(&v, &mut header);
        header.push_str(";B=");
        push_quoted(&w, &mut header);
        let want = vec![vec![("A".to_owned(), v), ("B".to_owned(), w)]];
        prop_assert_eq!(parse(&header), Ok(want), "{}", header);
    }

    #[test]
    fn prop_certificates_round_trip(
        cn in attribute(),
        o in attribute(),
        uris in proptest::collection::vec(san(), 0..3),
        dns in proptest::collection::vec(san(), 0..3),
    ) {
        let der = cert(&cn, &o, &uris, &dns);
        let p = peer_cert(&der).unwrap();
        prop_assert!(http::HeaderValue::from_str(&p.xfcc).is_ok(), "{}", p.xfcc);
        let elements = parse(&p.xfcc).map_err(TestCaseError::fail)?;
        prop_assert_eq!(elements.len(), 1, "{}", p.xfcc);
        let e = &elements[0];
        let uri_count = uris.len().max(1);
        prop_assert_eq!(e.len(), 2 + uri_count + dns.len(), "{}", p.xfcc);
        prop_assert_eq!(values(e, "Subject"), vec![p.subject.as_str()]);
        prop_assert_eq!(
            parse_dn(&p.subject).map_err(TestCaseError::fail)?,
            vec![("CN".to_owned(), cn), ("O".to_owned(), o)]
        );
        let want_uris: Vec<&str> = if uris.is_empty() { vec![""] } else { uris.iter().map(String::as_str).collect() };
        prop_assert_eq!(values(e, "URI"), want_uris);
        prop_assert_eq!(values(e, "DNS"), dns.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(&p.uri_sans, &uris);
        prop_assert_eq!(&p.dns_sans, &dns);
    }

    #[test]
    fn prop_a_control_character_anywhere_is_refused(
        bad in with_control(),
        at in 0..4usize,
    ) {
        let ok = "ok".to_owned();
        let (cn, o) = match at { 0 => (bad.clone(), ok.clone()), 1 => (ok.clone(), bad.clone()), _ => (ok.clone(), ok.clone()) };
        let uris = if at == 2 { vec![bad.clone()] } else { vec![] };
        let dns = if at == 3 { vec![bad] } else { vec![] };
        prop_assert!(peer_cert(&cert(&cn, &o, &uris, &dns)).is_err());
    }
}
