//! `GET /config_dump`: what the running gateway serves, in one JSON
//! document shaped like istioctl's views: listeners → servers → hosts, TLS
//! mode, credential and its state, routes and their backends; clusters
//! (the destinations and their endpoints); secrets (certificate facts);
//! every object of the store as the gateway holds it, applied or skipped
//! and why; the `/warnings`; and the last SDS events.
//!
//! It is built on the admin task from the snapshot the data plane reads
//! and the control loop's `Status`, never on the request path. It must
//! never show key material: certificates appear only as facts (subject,
//! issuer, serial, dates, fingerprint), Secrets only by name and version.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::routes_view;
use crate::control::Status;
use crate::secret::credential::rfc3339;
use crate::snapshot::{Listener, Server, Snapshot, TlsState};
use crate::upstream::{Endpoints, Upstream};

/// The whole dump.
pub fn json(status: &Status) -> Value {
    let mut warnings = super::warnings::json(status);
    json!({
        "generation": status.snapshot_version,
        "source": status.source.key(),
        "listeners": listeners(status),
        "clusters": clusters(status.snapshot.as_deref()),
        "secrets": super::credential_rows(status),
        "objects": objects(status),
        "warnings": warnings["warnings"].take(),
        "events": events(status),
    })
}

/// Every Gateway port of the snapshot with its bound address (or why it
/// could not be bound) and its servers.
fn listeners(status: &Status) -> Vec<Value> {
    let Some(snap) = status.snapshot.as_deref() else {
        return Vec::new();
    };
    snap.listeners
        .values()
        .map(|l| {
            let address = status
                .listeners
                .iter()
                .find(|(p, _)| *p == l.port)
                .map(|(_, a)| a.to_string());
            let error = status
                .listener_errors
                .iter()
                .find(|e| e.port == l.port)
                .map(|e| e.error.clone());
            json!({
                "port": l.port,
                "address": address,
                "tls": l.tls,
                "error": error,
                "servers": servers(l),
            })
        })
        .collect()
}

fn servers(l: &Listener) -> Vec<Value> {
    l.servers.iter().map(|s| server(s)).collect()
}

fn server(s: &Server) -> Value {
    let (state, reason) = match &s.tls {
        None | Some(TlsState::Ready(_)) => ("READY", None),
        Some(TlsState::Unavailable(why)) => ("UNAVAILABLE", Some(why.as_str())),
    };
    let tls_mode = s.tls.as_ref().map(|_| {
        s.tls_settings
            .mode
            .map_or("SIMPLE", crate::config::gateway::TlsMode::as_str)
    });
    json!({
        "id": s.id.as_ref(),
        "hosts": s.hosts,
        "tls_mode": tls_mode,
        "https_redirect": s.https_redirect,
        "credential": s.credential,
        "state": state,
        "reason": reason,
        "routes": routes_view::routes(s),
    })
}

/// The destinations every route of the snapshot forwards to, once each,
/// named as istioctl names Envoy's clusters.
fn clusters(snap: Option<&Snapshot>) -> Vec<Value> {
    let mut seen: BTreeMap<String, &Upstream> = BTreeMap::new();
    for l in snap.into_iter().flat_map(|s| s.listeners.values()) {
        for s in &l.servers {
            for u in routes_view::upstreams(s) {
                seen.entry(u.cluster_name()).or_insert(u);
            }
        }
    }
    seen.iter()
        .map(|(name, u)| {
            let (resolution, endpoints): (&str, Vec<String>) = match &u.endpoints {
                Endpoints::Static(a) => ("STATIC", a.iter().map(ToString::to_string).collect()),
                Endpoints::Dns(n) => ("DNS", n.iter().map(|(h, p)| format!("{h}:{p}")).collect()),
            };
            json!({
                "name": name,
                "host": u.host,
                "port": u.port,
                "subset": u.subset,
                "destination_rule": u.rule.as_deref(),
                "unavailable": u.unavailable,
                "resolution": resolution,
                "endpoints": endpoints,
                "tls_mode": u.origin.as_ref().map_or("DISABLE", |o| o.mode_name()),
                "sni": u.origin.as_ref().map(|o| o.sni.as_str()),
                "credential": u.origin.as_ref().map(|o| o.credential.as_str()),
                "tls_error": u.origin.as_ref().and_then(|o| o.failure()),
                // HTTP/2 with prior knowledge (port protocol or UPGRADE).
                "h2c": u.h2c,
            })
        })
        .collect()
}

fn objects(status: &Status) -> Vec<Value> {
    status
        .objects
        .iter()
        .map(|o| {
            json!({
                "kind": o.kind,
                "namespace": o.namespace,
                "name": o.name,
                "resource_version": o.resource_version.to_string(),
                "serving_version": o.serving_version.map(|v| v.to_string()),
                "state": if o.skipped.is_some() { "skipped" } else { "applied" },
                "reason": o.skipped,
            })
        })
        .collect()
}

fn events(status: &Status) -> Vec<Value> {
    status
        .sds_events
        .iter()
        .map(|e| {
            json!({
                "time": rfc3339(e.time),
                "resource": e.resource,
                "event": e.kind.as_str(),
                "reason": e.reason,
            })
        })
        .collect()
}
