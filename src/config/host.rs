//! Host names as Istio writes them: FQDNs, `*.suffix` wildcards, `*`,
//! short names, and the Gateway's `namespace/host` form.
//!
//! The one place that says what a DNS label, a host and a namespace are,
//! and how a short name becomes a fully qualified one: every validator and
//! the compiler use these, so a name never means two things. Nothing here
//! resolves a name or does I/O.

use std::net::IpAddr;

/// Istio's default cluster domain: a short name `x` in namespace `ns` is
/// `x.ns.svc.cluster.local`.
pub const DOMAIN_SUFFIX: &str = "svc.cluster.local";

/// Letter case a DNS label may use: Kubernetes object names and namespaces
/// are lower case (DNS-1123); host names are compared without case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Lower,
    Any,
}

/// A DNS label: 1-63 letters, digits and `-`, not starting or ending with `-`.
pub fn is_label(label: &str, case: Case) -> bool {
    let letter = |b: u8| match case {
        Case::Lower => b.is_ascii_lowercase(),
        Case::Any => b.is_ascii_alphabetic(),
    };
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| letter(b) || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A DNS-1123 label: what a namespace must be.
pub fn is_dns1123_label(s: &str) -> bool {
    is_label(s, Case::Lower)
}

/// A DNS-1123 subdomain: what an object name must be.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Istio's rule for a host named in an object of `namespace`
/// (`ResolveShortnameToFQDN`): `*`, IP addresses and names with a dot are
/// already qualified; a short name `x` is `x.NAMESPACE.svc.cluster.local`.
/// Lower-cased, since host names are compared without case.
pub fn qualify(host: &str, namespace: &str) -> String {
    let h = host.to_ascii_lowercase();
    if h == "*" || h.contains('.') || h.parse::<IpAddr>().is_ok() {
        h
    } else {
        format!("{h}.{namespace}.{DOMAIN_SUFFIX}")
    }
}

/// A DNS name, or a wildcard in the left-most label only (`*.foocorp.com`,
/// `*`). Returns the reason when it is not.
pub fn check_host(host: &str) -> Result<(), String> {
    if host == "*" {
        return Ok(());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.contains('*') {
        return Err(format!(
            "host {host:?}: a wildcard is only allowed as the whole left-most label (*.example.com)"
        ));
    }
    check_fqdn(name).map_err(|why| format!("host {host:?}: {why}"))
}

fn check_fqdn(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() {
            return Err("empty label (two dots in a row, or a leading dot)".into());
        }
        if !is_label(label, Case::Any) {
            return Err(format!("{label:?} is not a valid DNS label"));
        }
    }
    Ok(())
}

/// Which VirtualServices a Gateway server host admits, by their namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// `host` or `*/host`: any namespace.
    Any,
    /// `./host`: the Gateway's own namespace.
    Same,
    /// `ns/host`.
    Named(String),
}

/// A Gateway server host entry, parsed once: `[namespace/]host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayHost {
    pub scope: NamespaceScope,
    /// Lower-cased: a fully qualified name, `*.suffix`, `*` or an IP.
    pub host: String,
}

impl GatewayHost {
    /// Istio's rule for a Gateway server host: `host` or `namespace/host`
    /// (namespace `*`, `.` or a namespace name), where host is a fully
    /// qualified name, a wildcard, or an IP address. Short names are
    /// refused: a Gateway has no namespace to qualify them with that a
    /// client would send.
    pub fn parse(entry: &str) -> Result<GatewayHost, String> {
        let (scope, host) = match entry.split_once('/') {
            None | Some(("*", _)) => (NamespaceScope::Any, gateway_host_name(entry)),
            Some((".", host)) => (NamespaceScope::Same, host),
            Some((ns, host)) if is_dns1123_label(ns) => {
                (NamespaceScope::Named(ns.to_owned()), host)
            }
            Some((ns, _)) => {
                return Err(format!(
                    "{entry:?}: {ns:?} is not a namespace (*, . or a namespace name)"
                ));
            }
        };
        if host.parse::<IpAddr>().is_err() {
            if host != "*" && !host.contains('.') {
                return Err(format!(
                    "host {host:?}: short names are not allowed in a Gateway; use a fully qualified name"
                ));
            }
            check_host(host)?;
        }
        Ok(GatewayHost {
            scope,
            host: host.to_ascii_lowercase(),
        })
    }

    /// Whether a VirtualService of `vs_ns` may bind to this host of a
    /// Gateway in `gw_ns`.
    pub fn admits(&self, gw_ns: &str, vs_ns: &str) -> bool {
        match &self.scope {
            NamespaceScope::Any => true,
            NamespaceScope::Same => vs_ns == gw_ns,
            NamespaceScope::Named(ns) => ns == vs_ns,
        }
    }
}

/// The host part of a Gateway server host entry.
pub fn gateway_host_name(entry: &str) -> &str {
    entry.split_once('/').map_or(entry, |(_, h)| h)
}

/// Whether every name `host` covers is covered by `by` (both valid hosts).
pub fn covers(by: &str, host: &str) -> bool {
    let (host, by) = (host.to_ascii_lowercase(), by.to_ascii_lowercase());
    if by == "*" || host == by {
        return true;
    }
    match by.strip_prefix('*') {
        Some(suffix) => host != "*" && host.ends_with(suffix),
        None => false,
    }
}

/// Whether `host` (a concrete name or a wildcard pattern) and `pattern`
/// overlap, as Istio intersects VirtualService and Gateway hosts.
pub fn intersects(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == "*" || b == "*" || a == b {
        return true;
    }
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => false,
    }
}

/// Whether concrete `name` is covered by `pattern` (exact or `*.suffix`, or `*`).
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            name.len() > suffix.len()
                && name
                    .to_ascii_lowercase()
                    .ends_with(&suffix.to_ascii_lowercase())
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "*",
            "frontend.foocorp.com",
            "*.foocorp.com",
            "localhost",
            "a-b.c",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "foo.*.com",
            "*foo.com",
            "a..b",
            "-a.com",
            "a_b.com",
            "**",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
        let gw = |s: &str| GatewayHost::parse(s);
        assert_eq!(gw("ns1/Foo.com").unwrap().host, "foo.com");
        assert_eq!(
            gw("ns1/foo.com").unwrap().scope,
            NamespaceScope::Named("ns1".into())
        );
        assert_eq!(gw("*/foo.com").unwrap().scope, NamespaceScope::Any);
        assert_eq!(gw("./foo.com").unwrap().scope, NamespaceScope::Same);
        assert!(gw("Bad_NS/foo.com").is_err());
        assert!(gw("10.0.0.1").is_ok());
        assert!(gw("~/foo.com").is_err());
        assert!(gw("localhost").is_err());
        assert!(gw("ns/localhost").is_err());
        assert!(gw("*").is_ok());
        let same = gw("./foo.com").unwrap();
        assert!(same.admits("a", "a") && !same.admits("a", "b"));
    }

    #[test]
    fn labels_and_names() {
        for ok in ["a", "foocorp-gateway", "frontend.credential", "x1"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "Foo", "-a", "a-", "a..b", "a_b", "a/b", ".."] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(is_label("Foo", Case::Any) && !is_label("Foo", Case::Lower));
    }

    #[test]
    fn short_names_are_qualified_in_the_namespace() {
        let cases = [
            ("httpbin", "default", "httpbin.default.svc.cluster.local"),
            ("HttpBin", "shop", "httpbin.shop.svc.cluster.local"),
            ("httpbin.default", "x", "httpbin.default"),
            ("httpbin.org", "x", "httpbin.org"),
            ("*.foocorp.com", "x", "*.foocorp.com"),
            ("*", "x", "*"),
            ("10.0.0.1", "x", "10.0.0.1"),
            ("::1", "x", "::1"),
        ];
        for (host, ns, want) in cases {
            assert_eq!(qualify(host, ns), want, "{host} in {ns}");
        }
    }

    #[test]
    fn covering() {
        assert!(covers("*.foo.com", "a.foo.com"));
        assert!(covers("*.foo.com", "*.a.foo.com"));
        assert!(covers("a.FOO.com", "A.foo.com"));
        assert!(covers("*", "x.y"));
        assert!(!covers("*.foo.com", "foo.com"));
        assert!(!covers("*.foo.com", "*"));
        assert!(!covers("a.foo.com", "*.foo.com"));
        assert!(!covers("a.com", "b.com"));
    }

    #[test]
    fn intersect_and_match() {
        assert!(intersects("*.foocorp.com", "frontend.foocorp.com"));
        assert!(intersects("*", "x.y"));
        assert!(!intersects("a.com", "b.com"));
        assert!(matches("*.foocorp.com", "Frontend.FooCorp.com"));
        assert!(!matches("*.foocorp.com", "foocorp.com"));
        assert!(matches("frontend.foocorp.com", "FRONTEND.foocorp.com"));
    }
}
