//! Istio's validation rules, applied to typed objects before anything is
//! stored. Each rule reports the field path it is about.

use std::collections::BTreeSet;

use super::error::FieldErrors;
use super::gateway::{Gateway, Server, ServerTls, SUPPORTED_CIPHER_SUITES, TlsMode, TlsVersion};
use super::host::{check_gateway_host, check_host};
use super::meta::{is_dns1123_label, is_dns1123_subdomain};
use super::secret::{SECRET_TYPES, Secret};
use super::service_entry::{Resolution, ServiceEntry};
use super::virtual_service::{
    Destination, HttpMatchRequest, HttpRoute, StringMatch, VirtualService,
};
use super::{Resource, duration};

/// Protocols a Gateway server port may carry.
const GATEWAY_PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS", "MONGO"];
/// Protocols a ServiceEntry port may carry.
const SERVICE_PROTOCOLS: &[&str] = &[
    "HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS", "MONGO", "MYSQL", "REDIS", "UDP",
];

pub fn validate(r: &Resource) -> FieldErrors {
    let mut e = FieldErrors::default();
    let meta = r.meta();
    if meta.name.is_empty() {
        e.push("metadata.name", "name is required");
    } else if !is_dns1123_subdomain(&meta.name) {
        e.push(
            "metadata.name",
            format!(
                "{:?} is not a valid name (lower-case letters, digits, '-' and '.')",
                meta.name
            ),
        );
    }
    if !is_dns1123_label(meta.ns()) {
        e.push(
            "metadata.namespace",
            format!("{:?} is not a valid namespace", meta.ns()),
        );
    }
    match r {
        Resource::Gateway(g) => gateway(g, &mut e),
        Resource::VirtualService(v) => virtual_service(v, &mut e),
        Resource::ServiceEntry(s) => service_entry(s, &mut e),
        Resource::Secret(s) => secret(s, &mut e),
    }
    e
}

fn gateway(g: &Gateway, e: &mut FieldErrors) {
    if g.spec.servers.is_empty() {
        e.push("spec.servers", "a Gateway needs at least one server");
    }
    let mut port_names = BTreeSet::new();
    for (i, s) in g.spec.servers.iter().enumerate() {
        let p = format!("spec.servers[{i}]");
        server(s, &p, e);
        if let Some(port) = &s.port
            && !port.name.is_empty()
            && !port_names.insert(port.name.clone())
        {
            e.push(
                format!("{p}.port.name"),
                format!(
                    "port name {:?} is used by another server of this Gateway",
                    port.name
                ),
            );
        }
    }
}

fn server(s: &Server, p: &str, e: &mut FieldErrors) {
    let protocol = match &s.port {
        None => {
            e.push(format!("{p}.port"), "port is required");
            String::new()
        }
        Some(port) => {
            if port.number == 0 || port.number > 65535 {
                e.push(
                    format!("{p}.port.number"),
                    format!("{} is not a port number (1-65535)", port.number),
                );
            }
            if port.name.is_empty() {
                e.push(format!("{p}.port.name"), "port name is required");
            }
            let proto = port.protocol.to_ascii_uppercase();
            if !GATEWAY_PROTOCOLS.contains(&proto.as_str()) {
                e.push(
                    format!("{p}.port.protocol"),
                    format!(
                        "unknown protocol {:?}; one of {}",
                        port.protocol,
                        GATEWAY_PROTOCOLS.join(", ")
                    ),
                );
            }
            proto
        }
    };
    if s.hosts.is_empty() {
        e.push(format!("{p}.hosts"), "a server needs at least one host");
    }
    for (j, h) in s.hosts.iter().enumerate() {
        if let Err(why) = check_gateway_host(h) {
            e.push(format!("{p}.hosts[{j}]"), why);
        }
    }
    if let Some(bind) = &s.bind
        && bind.parse::<std::net::IpAddr>().is_err()
        && !bind.starts_with("unix://")
    {
        e.push(
            format!("{p}.bind"),
            format!("{bind:?} is not an IP address or unix:// path"),
        );
    }
    let tls_needed = matches!(protocol.as_str(), "HTTPS" | "TLS");
    match &s.tls {
        None if tls_needed => e.push(
            format!("{p}.tls"),
            format!("a {protocol} server needs tls settings"),
        ),
        None => {}
        Some(tls) => server_tls(tls, &protocol, &format!("{p}.tls"), e),
    }
}

fn server_tls(t: &ServerTls, protocol: &str, p: &str, e: &mut FieldErrors) {
    if !matches!(protocol, "HTTPS" | "TLS") {
        // On a plain HTTP server, tls may only ask for the redirect.
        if t.mode.is_some() || t.credential().is_some() || t.server_certificate.is_some() {
            e.push(
                p,
                format!("a {protocol} server takes only tls.httpsRedirect; use protocol HTTPS for TLS"),
            );
        }
        return;
    }
    let mode = t.effective_mode();
    match mode {
        TlsMode::Passthrough | TlsMode::AutoPassthrough | TlsMode::IstioMutual => {
            e.push(
                format!("{p}.mode"),
                format!(
                    "mode {} is not supported yet by gatehouse (SIMPLE, MUTUAL and OPTIONAL_MUTUAL are)",
                    mode.as_str()
                ),
            );
            return;
        }
        TlsMode::Simple | TlsMode::Mutual | TlsMode::OptionalMutual => {}
    }
    let has_cred_name = t.credential_name.is_some();
    let has_cred_names = !t.credential_names.is_empty();
    let has_files = t.server_certificate.is_some() || t.private_key.is_some();
    let sources = [has_cred_name, has_cred_names, has_files]
        .iter()
        .filter(|b| **b)
        .count();
    if sources > 1 {
        e.push(
            p,
            "only one certificate source: credentialName, credentialNames, or serverCertificate with privateKey",
        );
    }
    if t.credential_names.len() > 2 {
        e.push(
            format!("{p}.credentialNames"),
            "at most two credential names (one RSA, one ECDSA)",
        );
    }
    for (field, v) in [
        ("credentialName", t.credential_name.as_deref()),
        ("credentialNames[0]", t.credential_names.first().map(String::as_str)),
        ("credentialNames[1]", t.credential_names.get(1).map(String::as_str)),
    ] {
        if let Some(v) = v
            && !is_dns1123_subdomain(v)
        {
            e.push(
                format!("{p}.{field}"),
                format!("{v:?} is not a valid Secret name"),
            );
        }
    }
    if !has_cred_name && !has_cred_names {
        match (&t.server_certificate, &t.private_key) {
            (None, None) => {
                let ca = if mode.is_mutual() {
                    " or caCertificates"
                } else {
                    ""
                };
                e.push(
                    p,
                    format!(
                        "mode {} needs credentialName{ca}, or serverCertificate and privateKey",
                        mode.as_str()
                    ),
                )
            }
            (Some(_), None) => e.push(
                format!("{p}.privateKey"),
                "serverCertificate needs privateKey",
            ),
            (None, Some(_)) => e.push(
                format!("{p}.serverCertificate"),
                "privateKey needs serverCertificate",
            ),
            (Some(_), Some(_)) => {
                if mode.is_mutual() && t.ca_certificates.is_none() {
                    e.push(
                        format!("{p}.caCertificates"),
                        format!(
                            "mode {} with serverCertificate needs caCertificates",
                            mode.as_str()
                        ),
                    );
                }
            }
        }
    }
    if (has_cred_name || has_cred_names) && t.ca_crl.is_some() {
        e.push(
            format!("{p}.caCrl"),
            "caCrl is not allowed with credentialName: put the CRL in the secret (ca.crl)",
        );
    }
    if (has_cred_name || has_cred_names) && t.ca_certificates.is_some() {
        e.push(
            format!("{p}.caCertificates"),
            "caCertificates is not allowed with credentialName: put the CA in the secret (cacert) or in <name>-cacert",
        );
    }
    if let Some(max) = t.max_protocol_version {
        if max != TlsVersion::Auto && max < TlsVersion::V1_2 {
            e.push(
                format!("{p}.maxProtocolVersion"),
                "gatehouse never offers TLS below 1.2",
            );
        }
        if let Some(min) = t.min_protocol_version
            && min != TlsVersion::Auto
            && max != TlsVersion::Auto
            && min > max
        {
            e.push(
                format!("{p}.minProtocolVersion"),
                "minProtocolVersion is above maxProtocolVersion",
            );
        }
    }
    for (i, c) in t.cipher_suites.iter().enumerate() {
        if !SUPPORTED_CIPHER_SUITES.contains(&c.as_str()) {
            e.push(
                format!("{p}.cipherSuites[{i}]"),
                format!(
                    "unsupported cipher suite {c:?}; supported: {}",
                    SUPPORTED_CIPHER_SUITES.join(", ")
                ),
            );
        }
    }
    for (i, h) in t.verify_certificate_hash.iter().enumerate() {
        let hex: String = h.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            e.push(
                format!("{p}.verifyCertificateHash[{i}]"),
                "expected a hex SHA-256 fingerprint (64 hex digits, colons allowed)",
            );
        }
    }
    for (i, s) in t.verify_certificate_spki.iter().enumerate() {
        use base64::Engine;
        let ok = base64::engine::general_purpose::STANDARD
            .decode(s)
            .is_ok_and(|b| b.len() == 32);
        if !ok {
            e.push(
                format!("{p}.verifyCertificateSpki[{i}]"),
                "expected the base64 SHA-256 of a SubjectPublicKeyInfo",
            );
        }
    }
}

fn virtual_service(v: &VirtualService, e: &mut FieldErrors) {
    let s = &v.spec;
    if s.hosts.is_empty() {
        e.push("spec.hosts", "a VirtualService needs at least one host");
    }
    for (i, h) in s.hosts.iter().enumerate() {
        if let Err(why) = check_host(h) {
            e.push(format!("spec.hosts[{i}]"), why);
        }
    }
    for (i, g) in s.gateways.iter().enumerate() {
        gateway_ref(g, &format!("spec.gateways[{i}]"), e);
    }
    if s.http.is_empty() && s.tls.is_empty() && s.tcp.is_empty() {
        e.push("spec", "a VirtualService needs http, tls or tcp routes");
    }
    for (i, r) in s.http.iter().enumerate() {
        http_route(r, &format!("spec.http[{i}]"), e);
    }
    for (i, r) in s.tls.iter().enumerate() {
        let p = format!("spec.tls[{i}]");
        if r.matches.is_empty() {
            e.push(format!("{p}.match"), "a tls route needs a match with sniHosts");
        }
        for (j, m) in r.matches.iter().enumerate() {
            if m.sni_hosts.is_empty() {
                e.push(format!("{p}.match[{j}].sniHosts"), "sniHosts is required");
            }
            for (k, h) in m.sni_hosts.iter().enumerate() {
                if let Err(why) = check_host(h) {
                    e.push(format!("{p}.match[{j}].sniHosts[{k}]"), why);
                }
            }
        }
        l4_routes(&r.route, &p, e);
    }
    for (i, r) in s.tcp.iter().enumerate() {
        l4_routes(&r.route, &format!("spec.tcp[{i}]"), e);
    }
}

fn gateway_ref(g: &str, p: &str, e: &mut FieldErrors) {
    let name = g.split_once('/').map_or(g, |(ns, n)| {
        if !is_dns1123_label(ns) {
            e.push(p, format!("{g:?}: {ns:?} is not a namespace"));
        }
        n
    });
    if name != "mesh" && !is_dns1123_subdomain(name) {
        e.push(p, format!("{g:?} is not a Gateway name (name or namespace/name)"));
    }
}

fn l4_routes(routes: &[super::virtual_service::RouteDestination], p: &str, e: &mut FieldErrors) {
    if routes.is_empty() {
        e.push(format!("{p}.route"), "route needs at least one destination");
    }
    for (j, d) in routes.iter().enumerate() {
        destination(&d.destination, &format!("{p}.route[{j}].destination"), e);
        weight(d.weight, &format!("{p}.route[{j}].weight"), e);
    }
}

fn weight(w: Option<i64>, p: &str, e: &mut FieldErrors) {
    if let Some(w) = w
        && w < 0
    {
        e.push(p, format!("weight {w} is negative"));
    }
}

fn destination(d: &Destination, p: &str, e: &mut FieldErrors) {
    if d.host.is_empty() {
        e.push(format!("{p}.host"), "destination host is required");
    } else if let Err(why) = check_host(&d.host) {
        e.push(format!("{p}.host"), why);
    }
    if let Some(port) = d.port
        && (port.number == 0 || port.number > 65535)
    {
        e.push(
            format!("{p}.port.number"),
            format!("{} is not a port number (1-65535)", port.number),
        );
    }
}

fn http_route(r: &HttpRoute, p: &str, e: &mut FieldErrors) {
    let actions = [
        !r.route.is_empty(),
        r.redirect.is_some(),
        r.direct_response.is_some(),
    ];
    match actions.iter().filter(|a| **a).count() {
        0 => e.push(p, "an http route needs route, redirect or directResponse"),
        1 => {}
        _ => e.push(
            p,
            "route, redirect and directResponse exclude each other: use one",
        ),
    }
    if r.redirect.is_some() && r.rewrite.is_some() {
        e.push(
            format!("{p}.rewrite"),
            "rewrite is not allowed with redirect",
        );
    }
    for (i, m) in r.matches.iter().enumerate() {
        http_match(m, &format!("{p}.match[{i}]"), e);
    }
    for (i, d) in r.route.iter().enumerate() {
        destination(&d.destination, &format!("{p}.route[{i}].destination"), e);
        weight(d.weight, &format!("{p}.route[{i}].weight"), e);
    }
    if r.route.len() > 1 && r.route.iter().all(|d| d.weight == Some(0)) {
        e.push(format!("{p}.route"), "all route weights are 0");
    }
    if let Some(t) = &r.timeout
        && duration::parse(t).is_none()
    {
        e.push(
            format!("{p}.timeout"),
            format!("{t:?} is not a duration (like 5s or 250ms)"),
        );
    }
    if let Some(retry) = &r.retries {
        if retry.attempts < 0 {
            e.push(format!("{p}.retries.attempts"), "attempts is negative");
        }
        if let Some(t) = &retry.per_try_timeout
            && duration::parse(t).is_none()
        {
            e.push(
                format!("{p}.retries.perTryTimeout"),
                format!("{t:?} is not a duration"),
            );
        }
    }
    if let Some(redirect) = &r.redirect {
        if let Some(code) = redirect.redirect_code
            && !matches!(code, 301 | 302 | 303 | 307 | 308)
        {
            e.push(
                format!("{p}.redirect.redirectCode"),
                format!("{code} is not a redirect code (301, 302, 303, 307, 308)"),
            );
        }
        if redirect.port.is_some() && redirect.derive_port.is_some() {
            e.push(
                format!("{p}.redirect"),
                "port and derivePort exclude each other",
            );
        }
    }
    if let Some(d) = &r.direct_response
        && !(200..=599).contains(&d.status)
    {
        e.push(
            format!("{p}.directResponse.status"),
            format!("{} is not an HTTP status", d.status),
        );
    }
    if let Some(rw) = &r.rewrite
        && let Some(rr) = &rw.uri_regex_rewrite
    {
        if rw.uri.is_some() {
            e.push(
                format!("{p}.rewrite"),
                "uri and uriRegexRewrite exclude each other",
            );
        }
        if let Err(err) = regex::Regex::new(&rr.pattern) {
            e.push(
                format!("{p}.rewrite.uriRegexRewrite.match"),
                format!("invalid regex: {}", super::error::one_line(&err.to_string())),
            );
        }
    }
    if let Some(f) = &r.fault {
        if let Some(a) = &f.abort
            && let Some(s) = a.http_status
            && !(200..=599).contains(&s)
        {
            e.push(
                format!("{p}.fault.abort.httpStatus"),
                format!("{s} is not an HTTP status"),
            );
        }
        for (name, pct) in [
            ("delay", f.delay.as_ref().and_then(|d| d.percentage.as_ref())),
            ("abort", f.abort.as_ref().and_then(|a| a.percentage.as_ref())),
        ] {
            if let Some(pct) = pct
                && !(0.0..=100.0).contains(&pct.value)
            {
                e.push(
                    format!("{p}.fault.{name}.percentage.value"),
                    "percentage must be between 0 and 100",
                );
            }
        }
        if let Some(d) = &f.delay
            && let Some(t) = &d.fixed_delay
            && duration::parse(t).is_none()
        {
            e.push(
                format!("{p}.fault.delay.fixedDelay"),
                format!("{t:?} is not a duration"),
            );
        }
    }
    if let Some(m) = &r.mirror {
        destination(m, &format!("{p}.mirror"), e);
    }
}

fn http_match(m: &HttpMatchRequest, p: &str, e: &mut FieldErrors) {
    let mut check = |sm: &StringMatch, field: String| {
        if let StringMatch::Regex(re) = sm
            && let Err(err) = regex::Regex::new(re)
        {
            e.push(
                field,
                format!("invalid regex: {}", super::error::one_line(&err.to_string())),
            );
        }
    };
    for (name, sm) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            check(sm, format!("{p}.{name}"));
        }
    }
    for (group, map) in [
        ("headers", &m.headers),
        ("queryParams", &m.query_params),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (k, sm) in map {
            check(sm, format!("{p}.{group}.{k}"));
        }
    }
    for (group, map) in [("headers", &m.headers), ("withoutHeaders", &m.without_headers)] {
        for k in map.keys() {
            if k.is_empty() || http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                e.push(
                    format!("{p}.{group}.{k}"),
                    format!("{k:?} is not a header name"),
                );
            }
        }
    }
}

fn service_entry(s: &ServiceEntry, e: &mut FieldErrors) {
    let spec = &s.spec;
    if spec.hosts.is_empty() {
        e.push("spec.hosts", "a ServiceEntry needs at least one host");
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        if let Err(why) = check_host(h) {
            e.push(format!("spec.hosts[{i}]"), why);
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let p = format!("spec.ports[{i}]");
        if port.number == 0 || port.number > 65535 {
            e.push(
                format!("{p}.number"),
                format!("{} is not a port number (1-65535)", port.number),
            );
        }
        if port.name.is_empty() {
            e.push(format!("{p}.name"), "port name is required");
        } else if !names.insert(port.name.as_str()) {
            e.push(
                format!("{p}.name"),
                format!("port name {:?} is used twice", port.name),
            );
        }
        let proto = port.protocol.to_ascii_uppercase();
        if !SERVICE_PROTOCOLS.contains(&proto.as_str()) {
            e.push(
                format!("{p}.protocol"),
                format!("unknown protocol {:?}", port.protocol),
            );
        }
    }
    match spec.resolution {
        Resolution::None if !spec.endpoints.is_empty() => e.push(
            "spec.endpoints",
            "endpoints are not allowed with resolution NONE",
        ),
        Resolution::Static if spec.endpoints.is_empty() => e.push(
            "spec.endpoints",
            "resolution STATIC needs at least one endpoint",
        ),
        Resolution::Dns | Resolution::DnsRoundRobin if spec.endpoints.is_empty() => {
            for (i, h) in spec.hosts.iter().enumerate() {
                if h.contains('*') {
                    e.push(
                        format!("spec.hosts[{i}]"),
                        "resolution DNS without endpoints needs hosts without wildcards",
                    );
                }
            }
        }
        _ => {}
    }
    for (i, ep) in spec.endpoints.iter().enumerate() {
        let p = format!("spec.endpoints[{i}]");
        if ep.address.is_empty() {
            e.push(format!("{p}.address"), "address is required");
        } else if spec.resolution == Resolution::Static {
            if ep.address.parse::<std::net::IpAddr>().is_err()
                && !ep.address.starts_with("unix://")
            {
                e.push(
                    format!("{p}.address"),
                    format!(
                        "{:?} is not an IP address (resolution STATIC)",
                        ep.address
                    ),
                );
            }
        } else if let Err(why) = check_host(&ep.address) {
            e.push(format!("{p}.address"), why);
        }
        for (name, num) in &ep.ports {
            if !names.contains(name.as_str()) {
                e.push(
                    format!("{p}.ports.{name}"),
                    format!("{name:?} is not one of the ServiceEntry's port names"),
                );
            }
            if *num == 0 || *num > 65535 {
                e.push(
                    format!("{p}.ports.{name}"),
                    format!("{num} is not a port number (1-65535)"),
                );
            }
        }
    }
}

fn secret(s: &Secret, e: &mut FieldErrors) {
    if let Some(t) = &s.secret_type
        && !SECRET_TYPES.contains(&t.as_str())
    {
        e.push(
            "type",
            format!(
                "unsupported Secret type {t:?}; supported: {}",
                SECRET_TYPES.join(", ")
            ),
        );
    }
    for k in s.data.keys() {
        let ok = !k.is_empty()
            && k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            e.push(format!("data.{k}"), format!("{k:?} is not a valid key name"));
        }
    }
}
