//! Status as data: the conditions the Gateway API defines for each
//! GatewayClass, Gateway (and its listeners) and HTTPRoute parent, computed
//! by `translate` from the objects alone (a pure function), rendered here
//! as the API server's `status` objects. The Kubernetes store writes them
//! back; `gatehouse get -o yaml` shows them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::CONTROLLER_NAME;
use super::route_types::ParentRef;

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn new(
        kind: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            kind,
            status,
            reason,
            message: message.into(),
            observed_generation: None,
        }
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "type": self.kind,
            "status": if self.status { "True" } else { "False" },
            "reason": self.reason,
            "message": self.message,
        });
        if let (Some(g), Some(map)) = (self.observed_generation, v.as_object_mut()) {
            map.insert("observedGeneration".into(), json!(g));
        }
        v
    }
}

/// One listener's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    pub name: String,
    pub attached_routes: u32,
    pub conditions: Vec<Condition>,
}

/// A Gateway's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStatus {
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
}

/// One parent of an HTTPRoute, as its status names it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentStatus {
    pub parent_ref: ParentRef,
    pub conditions: Vec<Condition>,
}

/// Every status `translate` computed, by `(namespace, name)` (a
/// GatewayClass by name).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub classes: BTreeMap<String, Vec<Condition>>,
    pub gateways: BTreeMap<(String, String), GatewayStatus>,
    pub routes: BTreeMap<(String, String), Vec<ParentStatus>>,
}

/// `metadata.generation`, which status conditions observe.
pub fn generation(meta: &crate::config::ObjectMeta) -> Option<i64> {
    meta.generation.as_ref().and_then(Value::as_i64)
}

/// Stamps every condition with the object's generation.
pub fn observe(conditions: &mut [Condition], generation: Option<i64>) {
    for c in conditions {
        c.observed_generation = generation;
    }
}

impl Report {
    /// The `status` of a GatewayClass as the API server holds it.
    pub fn class_status(&self, name: &str) -> Option<Value> {
        let c = self.classes.get(name)?;
        Some(json!({ "conditions": c.iter().map(Condition::to_value).collect::<Vec<_>>() }))
    }

    /// The `status` of a Gateway.
    pub fn gateway_status(&self, ns: &str, name: &str) -> Option<Value> {
        let g = self.gateways.get(&(ns.to_owned(), name.to_owned()))?;
        let listeners: Vec<Value> = g
            .listeners
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "attachedRoutes": l.attached_routes,
                    "supportedKinds": [{"group": super::GROUP, "kind": "HTTPRoute"}],
                    "conditions": l.conditions.iter().map(Condition::to_value).collect::<Vec<_>>(),
                })
            })
            .collect();
        Some(json!({
            "conditions": g.conditions.iter().map(Condition::to_value).collect::<Vec<_>>(),
            "listeners": listeners,
        }))
    }

    /// The `status` of an HTTPRoute: one entry per parent of ours.
    pub fn route_status(&self, ns: &str, name: &str) -> Option<Value> {
        let parents = self.routes.get(&(ns.to_owned(), name.to_owned()))?;
        let parents: Vec<Value> = parents
            .iter()
            .map(|p| {
                json!({
                    "parentRef": serde_json::to_value(&p.parent_ref).unwrap_or(Value::Null),
                    "controllerName": CONTROLLER_NAME,
                    "conditions": p.conditions.iter().map(Condition::to_value).collect::<Vec<_>>(),
                })
            })
            .collect();
        Some(json!({ "parents": parents }))
    }

    /// Every status, keyed as the store keys the object.
    pub fn all(&self) -> BTreeMap<crate::store::ObjectKey, Value> {
        use crate::config::Kind;
        use crate::store::ObjectKey;
        let mut out = BTreeMap::new();
        for name in self.classes.keys() {
            if let Some(v) = self.class_status(name) {
                out.insert(
                    ObjectKey::new(Kind::GatewayClass.as_str(), "", name.clone()),
                    v,
                );
            }
        }
        for (ns, name) in self.gateways.keys() {
            if let Some(v) = self.gateway_status(ns, name) {
                out.insert(
                    ObjectKey::new(Kind::K8sGateway.as_str(), ns.clone(), name.clone()),
                    v,
                );
            }
        }
        for (ns, name) in self.routes.keys() {
            if let Some(v) = self.route_status(ns, name) {
                out.insert(
                    ObjectKey::new(Kind::HttpRoute.as_str(), ns.clone(), name.clone()),
                    v,
                );
            }
        }
        out
    }

    /// Puts an object's status into its `-o yaml|json` document, beside
    /// what `status.gatehouse` already holds.
    pub fn merge_into(&self, kind: crate::config::Kind, ns: &str, name: &str, doc: &mut Value) {
        let (Some(Value::Object(status)), Some(obj)) =
            (self.status_of(kind, ns, name), doc.as_object_mut())
        else {
            return;
        };
        let entry = obj.entry("status").or_insert_with(|| json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.extend(status);
        }
    }

    /// The status of any object by kind, if it has one.
    pub fn status_of(&self, kind: crate::config::Kind, ns: &str, name: &str) -> Option<Value> {
        use crate::config::Kind;
        match kind {
            Kind::GatewayClass => self.class_status(name),
            Kind::K8sGateway => self.gateway_status(ns, name),
            Kind::HttpRoute => self.route_status(ns, name),
            _ => None,
        }
    }
}
