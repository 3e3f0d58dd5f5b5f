//! Host names as Istio writes them: FQDNs, `*.suffix` wildcards, `*`, and
//! the Gateway's `namespace/host` form.

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
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{label:?} is not a valid DNS label"));
        }
    }
    Ok(())
}

/// A Gateway server host: `host` or `namespace/host` (namespace `*`, `.`
/// or a namespace name), where host is a fully qualified name, a wildcard,
/// or an IP address, as Istio accepts them.
pub fn check_gateway_host(entry: &str) -> Result<(), String> {
    let host = match entry.split_once('/') {
        None => entry,
        Some((ns, host)) => {
            let ns_ok = matches!(ns, "*" | ".") || super::meta::is_dns1123_label(ns);
            if !ns_ok {
                return Err(format!(
                    "{entry:?}: {ns:?} is not a namespace (*, . or a namespace name)"
                ));
            }
            host
        }
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host != "*" && !host.contains('.') {
        return Err(format!(
            "host {host:?}: short names are not allowed in a Gateway; use a fully qualified name"
        ));
    }
    check_host(host)
}

/// The host part of a Gateway server host entry.
pub fn gateway_host_name(entry: &str) -> &str {
    entry.split_once('/').map_or(entry, |(_, h)| h)
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
        assert!(check_gateway_host("ns1/foo.com").is_ok());
        assert!(check_gateway_host("*/foo.com").is_ok());
        assert!(check_gateway_host("Bad_NS/foo.com").is_err());
        assert!(check_gateway_host("./foo.com").is_ok());
        assert!(check_gateway_host("10.0.0.1").is_ok());
        assert!(check_gateway_host("~/foo.com").is_err());
        assert!(check_gateway_host("localhost").is_err());
        assert!(check_gateway_host("ns/localhost").is_err());
        assert!(check_gateway_host("*").is_ok());
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
