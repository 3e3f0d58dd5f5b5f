//! Gateways and their listeners: which are served, the server each one
//! becomes, its credential, and the conditions of the Gateway and of each
//! listener.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::refs::{From, To, permitted};
use super::{CREDENTIAL_PREFIX, Translated, World};
use crate::config::ObjectMeta;
use crate::config::Secret;
use crate::config::checked::{CheckedGateway, CheckedServer, ServerProtocol};
use crate::config::gateway::{ServerTls, TlsMode};
use crate::config::gateway_api::GROUP;
use crate::config::gateway_api::status::{
    Condition, GatewayStatus, ListenerStatus, generation, observe,
};
use crate::config::gateway_api::types::{K8sGateway, Listener, ObjectRef};
use crate::config::host::{GatewayHost, NamespaceScope};
use crate::config::secret::SecretBytes;

/// A listener of a Gateway of ours.
pub(crate) struct ListenerRef<'a> {
    pub gw: &'a K8sGateway,
    pub listener: &'a Listener,
    /// Its index in `spec.listeners` (and in the status).
    pub index: usize,
    /// Whether it is served: the name of its Gateway in the checked model.
    pub served: Option<String>,
}

/// Every Gateway of ours: its listeners' servers into `out`, the status
/// of each; returns every listener for routes to attach to.
pub(super) fn gateways<'a>(world: &World<'a>, out: &mut Translated) -> Vec<ListenerRef<'a>> {
    let mut all = Vec::new();
    for gw in world.gateways.iter().copied().filter(|g| world.owns(g)) {
        let mut status = GatewayStatus::default();
        let mut seen: Vec<(u32, &str, &str)> = Vec::new();
        for (index, l) in gw.spec.listeners.iter().enumerate() {
            let conditions = match listener(world, gw, l, &seen, out) {
                Ok((server, conditions)) => {
                    let name = format!("{}/{}", gw.metadata.name, l.name);
                    out.gateways.push(CheckedGateway {
                        namespace: gw.metadata.ns().to_owned(),
                        name: name.clone(),
                        selector: BTreeMap::new(),
                        servers: vec![server],
                    });
                    all.push(ListenerRef {
                        gw,
                        listener: l,
                        index,
                        served: Some(name),
                    });
                    conditions
                }
                Err(conditions) => {
                    all.push(ListenerRef {
                        gw,
                        listener: l,
                        index,
                        served: None,
                    });
                    conditions
                }
            };
            seen.push((
                l.port,
                l.protocol.as_str(),
                l.hostname.as_deref().unwrap_or(""),
            ));
            status.listeners.push(ListenerStatus {
                name: l.name.clone(),
                attached_routes: 0,
                conditions,
            });
        }
        let any = all
            .iter()
            .any(|l| std::ptr::eq(l.gw, gw) && l.served.is_some());
        status.conditions = if any {
            vec![
                Condition::new("Accepted", true, "Accepted", "accepted by gatehouse"),
                Condition::new("Programmed", true, "Programmed", "served"),
            ]
        } else {
            vec![
                Condition::new(
                    "Accepted",
                    false,
                    "ListenersNotValid",
                    "no listener can be served",
                ),
                Condition::new("Programmed", false, "Invalid", "no listener is served"),
            ]
        };
        let g = generation(&gw.metadata);
        observe(&mut status.conditions, g);
        for l in &mut status.listeners {
            observe(&mut l.conditions, g);
        }
        out.status.gateways.insert(
            (gw.metadata.ns().to_owned(), gw.metadata.name.clone()),
            status,
        );
    }
    all
}

fn refused(reason: &'static str, why: String, kind: &'static str) -> Vec<Condition> {
    let (accepted, resolved) = match kind {
        "Accepted" => (false, true),
        _ => (true, false),
    };
    let mut c = vec![
        Condition::new(
            "Accepted",
            accepted,
            if accepted { "Accepted" } else { reason },
            why.clone(),
        ),
        Condition::new("Programmed", false, "Invalid", why.clone()),
        Condition::new(
            "ResolvedRefs",
            resolved,
            if resolved { "ResolvedRefs" } else { reason },
            why.clone(),
        ),
    ];
    if kind == "Conflicted" {
        c.push(Condition::new("Conflicted", true, reason, why));
    }
    c
}

/// One listener: its server and conditions, or why it is not served.
fn listener(
    world: &World<'_>,
    gw: &K8sGateway,
    l: &Listener,
    seen: &[(u32, &str, &str)],
    out: &mut Translated,
) -> Result<(CheckedServer, Vec<Condition>), Vec<Condition>> {
    let passthrough = l.tls.as_ref().and_then(|t| t.mode.as_deref()) == Some("Passthrough");
    if !matches!(l.protocol.as_str(), "HTTP" | "HTTPS") || passthrough {
        return Err(refused(
            "UnsupportedProtocol",
            format!("protocol {} is not served by gatehouse", l.protocol),
            "Accepted",
        ));
    }
    let host = l.hostname.as_deref().unwrap_or("");
    if seen
        .iter()
        .any(|(p, proto, _)| *p == l.port && *proto != l.protocol)
    {
        return Err(refused(
            "ProtocolConflict",
            format!("port {} is used with another protocol", l.port),
            "Conflicted",
        ));
    }
    if seen.iter().any(|(p, _, h)| *p == l.port && *h == host) {
        return Err(refused(
            "HostnameConflict",
            format!("port {} already has hostname {host:?}", l.port),
            "Conflicted",
        ));
    }
    let kinds = l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref());
    if kinds.is_some_and(|k| {
        !k.iter()
            .any(|k| k.kind == "HTTPRoute" && k.group.as_deref().unwrap_or(GROUP) == GROUP)
    }) {
        return Err(refused(
            "InvalidRouteKinds",
            "allowedRoutes.kinds names no kind gatehouse serves (HTTPRoute)".into(),
            "ResolvedRefs",
        ));
    }
    let port = u16::try_from(l.port).unwrap_or(0);
    let hosts = vec![GatewayHost {
        scope: NamespaceScope::Any,
        host: l
            .hostname
            .clone()
            .unwrap_or_else(|| "*".into())
            .to_ascii_lowercase(),
    }];
    let mut server = CheckedServer {
        id: format!("{}/{}/{}", gw.metadata.ns(), gw.metadata.name, l.name),
        port,
        protocol: ServerProtocol::Plain,
        hosts,
        tls: ServerTls::default(),
    };
    if l.protocol == "HTTPS" {
        server.protocol = ServerProtocol::Tls;
        server.tls = tls(world, gw, l, out)?;
    }
    Ok((server, refused_none()))
}

fn refused_none() -> Vec<Condition> {
    vec![
        Condition::new("Accepted", true, "Accepted", "accepted"),
        Condition::new("Programmed", true, "Programmed", "served"),
        Condition::new(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "all references resolved",
        ),
        Condition::new("Conflicted", false, "NoConflicts", "no conflicts"),
    ]
}

/// An HTTPS listener's TLS: its certificate and, with `spec.tls.frontend`
/// for its port, the client CAs (mutual TLS).
fn tls(
    world: &World<'_>,
    gw: &K8sGateway,
    l: &Listener,
    out: &mut Translated,
) -> Result<ServerTls, Vec<Condition>> {
    let gw_ns = gw.metadata.ns();
    let Some(cert) = l.tls.as_ref().and_then(|t| t.certificate_refs.first()) else {
        return Err(refused(
            "InvalidCertificateRef",
            "no certificateRefs".into(),
            "ResolvedRefs",
        ));
    };
    let secret = resolve(world, gw_ns, cert, "Secret", "InvalidCertificateRef")?;
    let ns = cert.namespace.as_deref().unwrap_or(gw_ns);
    let (rv, value) = (world.secret)(ns, &cert.name).ok_or_else(|| {
        refused(
            "InvalidCertificateRef",
            format!("Secret {secret} does not exist"),
            "ResolvedRefs",
        )
    })?;
    let mut tls = ServerTls {
        mode: Some(TlsMode::Simple),
        ..ServerTls::default()
    };
    let cas = client_cas(world, gw, l.port)?;
    let name = if cas.is_empty() {
        format!("{CREDENTIAL_PREFIX}{secret}")
    } else {
        tls.mode = Some(TlsMode::Mutual);
        let name = format!(
            "{CREDENTIAL_PREFIX}{secret}@{gw_ns}/{}/{}",
            gw.metadata.name, l.name
        );
        let (ca_rv, ca) = ca_secret(&cas);
        out.secrets.insert(
            crate::secret::sds::cacert_name(&name),
            (ca_rv, Arc::new(ca)),
        );
        name
    };
    out.secrets.insert(name.clone(), (rv, value));
    tls.credential_name = Some(name);
    Ok(tls)
}

/// `ns/name` of what a Gateway's ref names, if its kind is `kind` in the
/// core group and the reference is permitted.
fn resolve(
    world: &World<'_>,
    gw_ns: &str,
    r: &ObjectRef,
    kind: &'static str,
    invalid: &'static str,
) -> Result<String, Vec<Condition>> {
    if r.group() != "" || r.kind.as_deref().unwrap_or(kind) != kind {
        return Err(refused(
            invalid,
            format!("{} is not a {kind}", r.name),
            "ResolvedRefs",
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(gw_ns);
    let from = From {
        group: GROUP,
        kind: "Gateway",
        namespace: gw_ns,
    };
    let to = To {
        group: "",
        kind,
        namespace: ns,
        name: &r.name,
    };
    if !permitted(&world.grants, &from, &to) {
        return Err(refused(
            "RefNotPermitted",
            format!(
                "no ReferenceGrant in namespace {ns} allows this Gateway to use {kind} {}",
                r.name
            ),
            "ResolvedRefs",
        ));
    }
    Ok(format!("{ns}/{}", r.name))
}

/// The client CA bundles (PEM) for a listener's port with their ConfigMaps' versions.
fn client_cas(
    world: &World<'_>,
    gw: &K8sGateway,
    port: u32,
) -> Result<Vec<(u64, Vec<u8>)>, Vec<Condition>> {
    let Some(front) = gw.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) else {
        return Ok(Vec::new());
    };
    let config = front
        .per_port
        .iter()
        .find(|p| p.port == port)
        .map(|p| &p.tls)
        .or(front.default.as_ref());
    let refs = config
        .and_then(|c| c.validation.as_ref())
        .map(|v| v.ca_certificate_refs.as_slice())
        .unwrap_or_default();
    let gw_ns = gw.metadata.ns();
    let mut out = Vec::new();
    for r in refs {
        let name = resolve(world, gw_ns, r, "ConfigMap", "InvalidCACertificateKind")?;
        let ns = r.namespace.as_deref().unwrap_or(gw_ns);
        let pem = world
            .config_maps
            .get(&(ns, r.name.as_str()))
            .and_then(|(rv, c)| {
                c.data
                    .get("ca.crt")
                    .map(|pem| (*rv, pem.as_bytes().to_vec()))
            })
            .ok_or_else(|| {
                refused(
                    "InvalidCACertificateRef",
                    format!("ConfigMap {name} has no ca.crt"),
                    "ResolvedRefs",
                )
            })?;
        out.push(pem);
    }
    Ok(out)
}

/// A Secret holding the client CAs as `ca.crt`, versioned by its sources.
fn ca_secret(cas: &[(u64, Vec<u8>)]) -> (u64, Secret) {
    let mut pem = Vec::new();
    let mut rv: u64 = 0;
    for (v, p) in cas {
        rv = rv.wrapping_mul(1_000_003).wrapping_add(*v);
        pem.extend_from_slice(p);
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
    }
    let secret = Secret {
        api_version: "v1".into(),
        kind: "Secret".into(),
        metadata: ObjectMeta::default(),
        secret_type: None,
        data: BTreeMap::from([("ca.crt".to_owned(), SecretBytes(pem))]),
        string_data: BTreeMap::new(),
        immutable: None,
    };
    (rv, secret)
}
