//! Rules for `Gateway`: servers, ports, hosts and TLS settings.

use std::collections::BTreeSet;

use super::super::checked::{CheckedGateway, CheckedServer, ServerProtocol};
use super::super::error::FieldErrors;
use super::super::gateway::{
    Gateway, SUPPORTED_CIPHER_SUITES, Server, ServerTls, TlsMode, TlsVersion,
};
use super::super::host::{GatewayHost, is_dns1123_label, is_dns1123_subdomain};
use super::{port, port_number};

/// Protocols a Gateway server port may carry.
const GATEWAY_PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS", "MONGO"];

/// Checks a Gateway; `Some` only when it has no error.
pub(super) fn gateway(g: &Gateway, e: &mut FieldErrors) -> Option<CheckedGateway> {
    let before = e.0.len();
    rules(g, e);
    if e.0.len() != before {
        return None;
    }
    let ns = g.metadata.ns();
    let mut servers = Vec::new();
    for (i, s) in g.spec.servers.iter().enumerate() {
        let p = format!("spec.servers[{i}]");
        let Some(port_spec) = &s.port else { continue };
        let number = port(port_spec.number, format!("{p}.port.number"), e);
        let hosts: Vec<GatewayHost> = s
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(j, h)| {
                GatewayHost::parse(h)
                    .map_err(|why| e.push(format!("{p}.hosts[{j}]"), why))
                    .ok()
            })
            .collect();
        let mode = s.tls.as_ref().map(ServerTls::effective_mode);
        let protocol = match port_spec.protocol.to_ascii_uppercase().as_str() {
            "HTTPS" | "TLS" if mode == Some(TlsMode::Passthrough) => ServerProtocol::Passthrough,
            "HTTPS" | "TLS" if mode == Some(TlsMode::AutoPassthrough) => {
                ServerProtocol::AutoPassthrough
            }
            "HTTPS" | "TLS" => ServerProtocol::Tls,
            "TCP" | "MONGO" => ServerProtocol::Tcp,
            _ => ServerProtocol::Plain,
        };
        if let Some(number) = number {
            servers.push(CheckedServer {
                id: format!("{ns}/{}/{}", g.metadata.name, port_spec.name),
                port: number,
                protocol,
                hosts,
                tls: s.tls.clone().unwrap_or_default(),
            });
        }
    }
    (e.0.len() == before).then(|| CheckedGateway {
        namespace: ns.to_owned(),
        name: g.metadata.name.clone(),
        selector: g.spec.selector.clone(),
        servers,
    })
}

fn rules(g: &Gateway, e: &mut FieldErrors) {
    // VirtualServices name a Gateway as `namespace/name`: Istio wants a
    // DNS label here, not the dotted names other kinds may have.
    let name = &g.metadata.name;
    if is_dns1123_subdomain(name) && !is_dns1123_label(name) {
        e.push(
            "metadata.name",
            format!("{name:?}: a Gateway name must be a DNS label (no dots)"),
        );
    }
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
            port_number(port.number, format!("{p}.port.number"), e);
            if port.name.is_empty() {
                e.push(format!("{p}.port.name"), "port name is required");
            }
            if port.target_port.is_some() {
                e.push(
                    format!("{p}.port.targetPort"),
                    "targetPort has no effect on a Gateway; remove it",
                );
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
        if let Err(why) = GatewayHost::parse(h) {
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
            format!("{} server needs tls settings", a_protocol(&protocol)),
        ),
        None => {}
        Some(tls) => server_tls(tls, &protocol, &format!("{p}.tls"), e),
    }
}

/// "an HTTPS", "a TLS": the article as the protocol name is spoken.
fn a_protocol(protocol: &str) -> String {
    let article = if protocol.starts_with(['H', 'M']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {protocol}")
}

fn server_tls(t: &ServerTls, protocol: &str, p: &str, e: &mut FieldErrors) {
    if !matches!(protocol, "HTTPS" | "TLS") {
        // On a plain HTTP server, tls may only ask for the redirect.
        if t.mode.is_some() || t.credential().is_some() || t.server_certificate.is_some() {
            e.push(
                p,
                format!(
                    "{} server takes only tls.httpsRedirect; use protocol HTTPS for TLS",
                    a_protocol(protocol)
                ),
            );
        }
        return;
    }
    let mode = t.effective_mode();
    match mode {
        // The backend terminates TLS: no certificate of ours is involved.
        TlsMode::Passthrough | TlsMode::AutoPassthrough => return,
        TlsMode::IstioMutual => {
            e.push(
                format!("{p}.mode"),
                format!(
                    "mode {} is not supported yet by gatehouse (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, PASSTHROUGH and AUTO_PASSTHROUGH are)",
                    mode.as_str()
                ),
            );
            return;
        }
        TlsMode::Simple | TlsMode::Mutual | TlsMode::OptionalMutual => {}
    }
    cert_source(t, mode, p, e);
    client_ca(t, mode, p, e);
    versions_and_ciphers(t, p, e);
    pinning(t, p, e);
}

/// Exactly one certificate source: a Secret (or two) or a pair of files.
fn cert_source(t: &ServerTls, mode: TlsMode, p: &str, e: &mut FieldErrors) {
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
        (
            "credentialNames[0]",
            t.credential_names.first().map(String::as_str),
        ),
        (
            "credentialNames[1]",
            t.credential_names.get(1).map(String::as_str),
        ),
    ] {
        if let Some(v) = v
            && !is_dns1123_subdomain(v)
        {
            let why = match v.split_once('/') {
                Some((ns, _)) => format!(
                    "{v:?} names a Secret in namespace {ns:?}: a gateway reads Secrets only in its own namespace (`gatehouse run -n`); create the Secret there and name it without a namespace"
                ),
                None => format!("{v:?} is not a valid Secret name"),
            };
            e.push(format!("{p}.{field}"), why);
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
}

/// Where the client CA and CRL come from: the Secret, or files.
fn client_ca(t: &ServerTls, mode: TlsMode, p: &str, e: &mut FieldErrors) {
    let has_cred_name = t.credential_name.is_some();
    let has_cred_names = !t.credential_names.is_empty();
    if t.ca_crl.is_some() {
        if has_cred_name || has_cred_names {
            e.push(
                format!("{p}.caCrl"),
                "caCrl is not allowed with credentialName: put the CRL in the secret (ca.crl)",
            );
        } else if !mode.is_mutual() {
            e.push(
                format!("{p}.caCrl"),
                format!(
                    "caCrl is not supported with mode {}: no client certificate is asked for",
                    mode.as_str()
                ),
            );
        }
    }
    if (has_cred_name || has_cred_names) && t.ca_certificates.is_some() {
        e.push(
            format!("{p}.caCertificates"),
            "caCertificates is not allowed with credentialName: put the CA in the secret (cacert) or in <name>-cacert",
        );
    }
}

/// TLS 1.2 and 1.3 only, and the cipher suites gatehouse can serve.
fn versions_and_ciphers(t: &ServerTls, p: &str, e: &mut FieldErrors) {
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
}

/// Client certificate pins: SHA-256 of the certificate or of its key.
fn pinning(t: &ServerTls, p: &str, e: &mut FieldErrors) {
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
