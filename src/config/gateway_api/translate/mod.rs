//! Gateway API objects into the checked forms the snapshot compiler reads,
//! and their status, in one pure function ([`translate`]).
//!
//! Each served listener becomes a Gateway of its own (`GW/LISTENER`, one
//! server) so that a route attaches to exactly the listeners it names; the
//! routes attached to a listener become one VirtualService per effective
//! hostname, their rules' matches in the spec's precedence order
//! (`http.rs`). A listener's certificate is an SDS credential named
//! `k8s-gateway:NS/SECRET` (with mutual TLS, one per listener, whose
//! `-cacert` is built from its ConfigMaps): [`Translated::secrets`] holds
//! them. A reference that is not permitted or does not resolve is never
//! served; the reason is in the status. Nothing here does I/O.

mod http;
mod listeners;
pub(crate) mod refs;
mod routes;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::status::Report;
use super::types::{ConfigMap, GatewayClass, K8sGateway, Namespace, ReferenceGrant};
use super::{CONTROLLER_NAME, HttpRoute, Object};
use crate::config::Secret;
use crate::config::checked::{CheckedGateway, CheckedVirtualService};

/// Prefix of the SDS credentials of Gateway API listeners.
pub const CREDENTIAL_PREFIX: &str = "k8s-gateway:";

/// Looks a Secret up by namespace and name: its resource version and value.
pub type SecretLookup<'a> = &'a dyn Fn(&str, &str) -> Option<(u64, Arc<Secret>)>;

/// What the Gateway API objects serve, and their status.
#[derive(Debug, Default)]
pub struct Translated {
    pub gateways: Vec<CheckedGateway>,
    pub virtual_services: Vec<CheckedVirtualService>,
    /// The credentials the servers name, by SDS name: a resource version
    /// and the Secret (real, or built from ConfigMaps for client CAs).
    pub secrets: BTreeMap<String, (u64, Arc<Secret>)>,
    pub status: Report,
}

/// Every object of ours by kind, borrowed.
pub(crate) struct World<'a> {
    pub classes: HashMap<&'a str, &'a GatewayClass>,
    pub gateways: Vec<&'a K8sGateway>,
    pub routes: Vec<&'a HttpRoute>,
    pub grants: Vec<&'a ReferenceGrant>,
    pub config_maps: HashMap<(&'a str, &'a str), (u64, &'a ConfigMap)>,
    pub namespaces: HashMap<&'a str, &'a Namespace>,
    pub secret: SecretLookup<'a>,
}

impl<'a> World<'a> {
    fn new(objects: &[(u64, &'a Object)], secret: SecretLookup<'a>) -> World<'a> {
        let mut w = World {
            classes: HashMap::new(),
            gateways: Vec::new(),
            routes: Vec::new(),
            grants: Vec::new(),
            config_maps: HashMap::new(),
            namespaces: HashMap::new(),
            secret,
        };
        for (rv, o) in objects {
            match o {
                // Cluster-scoped: found by name whatever namespace a store keys them under.
                Object::GatewayClass(c) => {
                    w.classes.insert(c.metadata.name.as_str(), c);
                }
                Object::Namespace(n) => {
                    w.namespaces.insert(n.metadata.name.as_str(), n);
                }
                Object::Gateway(g) => w.gateways.push(g),
                Object::HttpRoute(r) => w.routes.push(r),
                Object::ReferenceGrant(g) => w.grants.push(g),
                Object::ConfigMap(c) => {
                    w.config_maps
                        .insert((c.metadata.ns(), c.metadata.name.as_str()), (*rv, c));
                }
            }
        }
        let key = |m: &crate::config::ObjectMeta| (m.ns().to_owned(), m.name.clone());
        w.gateways.sort_by_key(|g| key(&g.metadata));
        w.routes.sort_by_key(|r| key(&r.metadata));
        w
    }

    /// Whether Gateway `g`'s class is one of ours.
    fn owns(&self, g: &K8sGateway) -> bool {
        self.classes
            .get(g.spec.gateway_class_name.as_str())
            .is_some_and(|c| c.spec.controller_name == CONTROLLER_NAME)
    }

    /// A namespace's labels (none when the store has no Namespace object;
    /// `kubernetes.io/metadata.name` always, as the API server sets it).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespaces
            .get(ns)
            .map(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), ns.to_owned());
        labels
    }
}

/// Translates every Gateway API object in `objects` (with their resource
/// versions); `secret` finds the Secrets listeners name.
pub fn translate(objects: &[(u64, &Object)], secret: SecretLookup<'_>) -> Translated {
    let world = World::new(objects, secret);
    let mut out = Translated::default();
    classes(&world, &mut out.status);
    let served = listeners::gateways(&world, &mut out);
    routes::attach(&world, &served, &mut out);
    out
}

/// Only the status (what the Kubernetes store writes back).
pub fn status(objects: &[(u64, &Object)], secret: SecretLookup<'_>) -> Report {
    translate(objects, secret).status
}

fn classes(world: &World<'_>, report: &mut Report) {
    for (name, c) in &world.classes {
        if c.spec.controller_name != CONTROLLER_NAME {
            continue;
        }
        let mut conds = vec![
            super::status::Condition::new("Accepted", true, "Accepted", "handled by gatehouse"),
            super::status::Condition::new(
                "SupportedVersion",
                true,
                "SupportedVersion",
                "Gateway API v1 (standard channel)",
            ),
        ];
        super::status::observe(&mut conds, super::status::generation(&c.metadata));
        report.classes.insert((*name).to_owned(), conds);
    }
}
