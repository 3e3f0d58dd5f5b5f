//! The path normalizer: a table of the cases an attacker tries, and
//! properties over generated paths (`prop_*`; `PROPTEST_CASES` sets how
//! many cases run, 256 by default).

use proptest::prelude::*;

use super::{EscapedSlashes, PathError, normalize};
use crate::snapshot::routes::{self, Matcher, RequestView, Route, RouteMatch, UriMatch};

use EscapedSlashes::{Keep, Reject};

fn norm(path: &str, slashes: EscapedSlashes) -> Result<String, PathError> {
    normalize(path, slashes).map(|p| p.into_owned())
}

#[test]
fn attacks_table() {
    let ok = |s: &str| Ok::<String, PathError>(s.to_owned());
    let cases = [
        ("/", ok("/")),
        ("/a/b", ok("/a/b")),
        ("/a/b/", ok("/a/b/")),
        ("/a//b", ok("/a/b")),
        ("//admin", ok("/admin")),
        ("/./admin", ok("/admin")),
        ("/a/./b/../c", ok("/a/c")),
        ("/../..", ok("/")),
        ("/a/.", ok("/a/")),
        ("/a/b/..", ok("/a/")),
        ("/%2e%2e/admin", ok("/admin")),
        ("/public/%2E%2E/admin", ok("/admin")),
        ("/public/.%2e/admin", ok("/admin")),
        ("/%2e/admin", ok("/admin")),
        ("/a%2eb", ok("/a.b")),
        ("/%41dmin%7e%5F%2D", ok("/Admin~_-")),
        ("/caf%c3%a9", ok("/caf%C3%A9")),
        ("/a%20b", ok("/a%20b")),
        ("/q%3fx", ok("/q%3Fx")),
        ("/a%2Fb", Err(PathError::EscapedSlash)),
        ("/a%2fb", Err(PathError::EscapedSlash)),
        ("/a%5cb", Err(PathError::EscapedSlash)),
        ("/a\\b", Err(PathError::EscapedSlash)),
        ("/public/..%2fadmin", Err(PathError::EscapedSlash)),
        ("/a%00", Err(PathError::Nul)),
        ("/a%", Err(PathError::BadEscape)),
        ("/a%4", Err(PathError::BadEscape)),
        ("/a%zz", Err(PathError::BadEscape)),
        ("a/b", Err(PathError::NotAbsolute)),
        ("*", Err(PathError::NotAbsolute)),
        ("", Err(PathError::NotAbsolute)),
    ];
    for (input, want) in cases {
        assert_eq!(norm(input, Reject), want, "{input}");
    }
}

#[test]
fn keep_leaves_escaped_slashes_encoded_and_never_splits_on_them() {
    let cases = [
        ("/a%2fb", "/a%2Fb"),
        ("/a%5cb", "/a%5Cb"),
        ("/a\\b", "/a%5Cb"),
        // `..%2f` is one segment named `..%2F`, not `..` and a separator.
        ("/public/..%2fadmin", "/public/..%2Fadmin"),
        ("/public/%2e%2e%2fadmin", "/public/..%2Fadmin"),
        ("/x/..%2F/../y", "/x/y"),
    ];
    for (input, want) in cases {
        assert_eq!(norm(input, Keep).as_deref(), Ok(want), "{input}");
    }
    assert_eq!(norm("/a%00", Keep), Err(PathError::Nul));
}

#[test]
fn a_normal_path_is_borrowed() {
    for p in ["/", "/a", "/a/b/", "/a.b/c..d/.e", "/caf\u{e9}"] {
        assert!(
            matches!(normalize(p, Reject), Ok(std::borrow::Cow::Borrowed(_))),
            "{p}"
        );
    }
}

// ---------------------------------------------------------------- properties

/// Paths made of the pieces that matter: separators, dots in every
/// spelling, escapes good and bad, and plain names.
fn tricky_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E"),
        Just("%2f"),
        Just("%2F"),
        Just("%5c"),
        Just("\\"),
        Just("%00"),
        Just("%41"),
        Just("%7e"),
        Just("%7E"),
        Just("%c3%a9"),
        Just("%"),
        Just("%4"),
        Just("%zz"),
        Just("%25"),
        Just("a"),
        Just("admin"),
        Just("public"),
        Just(";"),
        Just("\u{e9}"),
    ];
    (proptest::collection::vec(piece, 0..24), proptest::bool::ANY).prop_map(|(pieces, rooted)| {
        let mut s = String::from(if rooted { "/" } else { "" });
        s.extend(pieces);
        s
    })
}

/// Any path: tricky pieces or arbitrary text after a `/`.
fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        tricky_path(),
        "\\PC*".prop_map(|s| format!("/{s}")),
        "\\PC*"
    ]
}

fn slashes() -> impl Strategy<Value = EscapedSlashes> {
    prop_oneof![Just(Reject), Just(Keep)]
}

/// Every escape in `p` is upper-case hex of a reserved character.
fn no_decodable_escape(p: &str) -> bool {
    let b = p.as_bytes();
    b.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'%')
        .all(|(i, _)| {
            let hex = b.get(i + 1..i + 3).unwrap_or(b"");
            hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'))
                && hex_byte(hex).is_some_and(|v| !super::unreserved(v) && v != 0)
        })
}

/// Two hex digits (and only those: `from_str_radix` alone takes `+4`).
fn hex_byte(h: &[u8]) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    match h {
        [a, b] => u8::try_from(digit(*a)? * 16 + digit(*b)?).ok(),
        _ => None,
    }
}

/// What a backend that decodes every escape and then resolves dot
/// segments itself would take the path for (bytes: a decoded path need
/// not be UTF-8). Written apart from the normalizer on purpose.
fn backend_view(p: &str) -> Vec<u8> {
    let b = p.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3).and_then(hex_byte)) {
            (b'%', Some(v)) => {
                decoded.push(v);
                i += 3;
            }
            (c, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let segs: Vec<&[u8]> = decoded.split(|c| *c == b'/').skip(1).collect();
    for seg in &segs {
        match *seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut view = Vec::new();
    for s in out {
        view.push(b'/');
        view.extend_from_slice(s);
    }
    let dir = segs.last().is_none_or(|l| matches!(*l, b"" | b"." | b".."));
    if view.is_empty() || dir {
        view.push(b'/');
    }
    view
}

/// A route table with the shapes that route-confusion attacks aim at.
fn route_table() -> Vec<Route> {
    let prefix = |name: &str, p: &str| route(name, Matcher::Prefix(p.into()));
    vec![
        route("root", Matcher::Exact("/".into())),
        prefix("admin", "/admin"),
        prefix("public", "/public/"),
        route("api", Matcher::regex("/api/v[0-9]+(/.*)?").unwrap()),
        prefix("rest", "/"),
    ]
}

fn route(name: &str, matcher: Matcher) -> Route {
    Route::answering_ok(
        name,
        vec![RouteMatch {
            uri: Some(UriMatch {
                matcher,
                ignore_case: false,
            }),
            ..Default::default()
        }],
    )
}

fn chosen(routes: &[Route], path: &str) -> Option<String> {
    let refs: Vec<&Route> = routes.iter().collect();
    let headers = http::HeaderMap::new();
    let view = RequestView {
        path,
        query: None,
        method: "GET",
        scheme: "https",
        authority: "frontend.foocorp.com",
        headers: &headers,
        port: 443,
    };
    routes::select(&refs, &view).and_then(|r| r.name.clone())
}

proptest! {
    #[test]
    fn prop_never_panics(path in any_path(), slashes in slashes()) {
        let _ = normalize(&path, slashes);
    }

    #[test]
    fn prop_idempotent(path in any_path(), slashes in slashes()) {
        if let Ok(once) = norm(&path, slashes) {
            prop_assert_eq!(norm(&once, slashes), Ok(once.clone()));
        }
    }

    #[test]
    fn prop_output_is_normal(path in any_path(), slashes in slashes()) {
        if let Ok(p) = norm(&path, slashes) {
            prop_assert!(p.starts_with('/'), "{p}");
            for bad in ["/./", "/../", "//", "\\"] {
                prop_assert!(!p.contains(bad), "{path:?} -> {p:?} holds {bad:?}");
            }
            prop_assert!(!p.ends_with("/.") && !p.ends_with("/.."), "{p:?}");
            prop_assert!(no_decodable_escape(&p), "{path:?} -> {p:?}");
        }
    }

    /// The forwarded path is the matched one and normalizes to itself, so
    /// the route it would get is the route that was chosen.
    #[test]
    fn prop_forwarded_path_gets_the_chosen_route(path in any_path(), slashes in slashes()) {
        let routes = route_table();
        if let Ok(matched) = norm(&path, slashes) {
            let forwarded = matched.clone();
            prop_assert_eq!(norm(&forwarded, slashes), Ok(forwarded.clone()));
            prop_assert_eq!(chosen(&routes, &forwarded), chosen(&routes, &matched));
        }
    }

    /// With escaped slashes refused, a backend that decodes everything and
    /// resolves dot segments itself sees the path that was matched (only
    /// decoded): it cannot climb out of, or into, another route's prefix.
    #[test]
    fn prop_a_decoding_backend_sees_what_was_matched(path in any_path()) {
        if let Ok(matched) = norm(&path, Reject) {
            prop_assert_eq!(backend_view(&path), backend_view(&matched));
            prop_assert_eq!(
                String::from_utf8_lossy(&backend_view(&matched)).into_owned(),
                String::from_utf8_lossy(&backend_view_no_dots(&matched)).into_owned()
            );
        }
    }
}

/// [`backend_view`] without dot resolution: for a normalized path the two
/// agree (decoding it creates no separator and no dot segment).
fn backend_view_no_dots(p: &str) -> Vec<u8> {
    let b = p.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3).and_then(hex_byte)) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}
