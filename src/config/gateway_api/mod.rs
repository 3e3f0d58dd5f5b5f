//! The Kubernetes Gateway API (`gateway.networking.k8s.io`, v1 standard
//! channel): GatewayClass, Gateway, HTTPRoute and ReferenceGrant, with the
//! core ConfigMap (client CA bundles) and Namespace (route selectors).
//!
//! `types.rs` and `route_types.rs` mirror the YAML; `validate.rs` refuses
//! what the spec forbids; `translate/` turns the objects a GatewayClass of
//! ours owns into the checked Istio forms the snapshot compiler already
//! reads (one Gateway server per listener, one VirtualService per listener
//! and hostname) and records, per object, the conditions `status.rs`
//! reports. Nothing here does I/O or reads a secret's bytes beyond
//! copying them into the synthetic credentials SDS checks.

pub mod ignored;
pub mod route_types;
pub mod status;
pub mod translate;
pub mod types;
mod validate;

use serde_json::Value;

pub use route_types::HttpRoute;
pub use types::{ConfigMap, GatewayClass, K8sGateway, Namespace, ReferenceGrant};

use super::checked::Checked;
use super::error::FieldErrors;
use super::meta::ObjectMeta;
use super::{Kind, Resource};

/// The `controllerName` of gatehouse's own GatewayClasses: only Gateways of
/// such a class are served.
pub const CONTROLLER_NAME: &str = "gatehouse.io/gateway-controller";

/// The API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The apiVersions of the Gateway API kinds.
pub const V1: &[&str] = &["gateway.networking.k8s.io/v1"];
/// ReferenceGrant: v1beta1, and v1.
pub const GRANT_VERSIONS: &[&str] = &[
    "gateway.networking.k8s.io/v1beta1",
    "gateway.networking.k8s.io/v1",
];

/// A Gateway API object, or one of the core objects it reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    GatewayClass(GatewayClass),
    Gateway(K8sGateway),
    HttpRoute(HttpRoute),
    ReferenceGrant(ReferenceGrant),
    ConfigMap(ConfigMap),
    Namespace(Namespace),
}

/// The kind a manifest names, by its apiVersion's group and its kind: a
/// `Gateway` of `gateway.networking.k8s.io` is the Gateway API's; `None`
/// leaves the choice to `Kind::from_kind`.
pub fn kind_of(api_version: &str, kind: &str) -> Option<Kind> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        (GROUP, "Gateway") => Some(Kind::K8sGateway),
        _ => None,
    }
}

/// What users type after `get`/`delete` for these kinds.
pub fn from_cli(s: &str) -> Option<Kind> {
    let lower = s.to_ascii_lowercase();
    let (base, group) = lower.split_once('.').unwrap_or((lower.as_str(), ""));
    match (base, group) {
        ("gateway" | "gateways" | "gtw", GROUP) | ("gtw", "") => Some(Kind::K8sGateway),
        ("gatewayclass" | "gatewayclasses" | "gc", _) => Some(Kind::GatewayClass),
        ("httproute" | "httproutes", _) => Some(Kind::HttpRoute),
        ("referencegrant" | "referencegrants" | "refgrant", _) => Some(Kind::ReferenceGrant),
        ("configmap" | "configmaps" | "cm", _) => Some(Kind::ConfigMap),
        ("namespace" | "namespaces" | "ns", _) => Some(Kind::Namespace),
        _ => None,
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::GatewayClass(_) => Kind::GatewayClass,
            Object::Gateway(_) => Kind::K8sGateway,
            Object::HttpRoute(_) => Kind::HttpRoute,
            Object::ReferenceGrant(_) => Kind::ReferenceGrant,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Namespace(_) => Kind::Namespace,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::HttpRoute(o) => &o.metadata,
            Object::ReferenceGrant(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
        }
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::GatewayClass(o) => &mut o.metadata,
            Object::Gateway(o) => &mut o.metadata,
            Object::HttpRoute(o) => &mut o.metadata,
            Object::ReferenceGrant(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
            Object::Namespace(o) => &mut o.metadata,
        }
    }

    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Object::GatewayClass(o) => serde_json::to_value(o),
            Object::Gateway(o) => serde_json::to_value(o),
            Object::HttpRoute(o) => serde_json::to_value(o),
            Object::ReferenceGrant(o) => serde_json::to_value(o),
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::Namespace(o) => serde_json::to_value(o),
        }
    }

    /// Reads one of these kinds from JSON (`None`: not one of ours).
    pub fn from_json(kind: Kind, bytes: &[u8]) -> Option<Result<Object, serde_json::Error>> {
        let parse = || -> Result<Object, serde_json::Error> {
            Ok(match kind {
                Kind::GatewayClass => Object::GatewayClass(serde_json::from_slice(bytes)?),
                Kind::K8sGateway => Object::Gateway(serde_json::from_slice(bytes)?),
                Kind::HttpRoute => Object::HttpRoute(serde_json::from_slice(bytes)?),
                Kind::ReferenceGrant => Object::ReferenceGrant(serde_json::from_slice(bytes)?),
                Kind::ConfigMap => Object::ConfigMap(serde_json::from_slice(bytes)?),
                _ => Object::Namespace(serde_json::from_slice(bytes)?),
            })
        };
        is_ours(kind).then(parse)
    }

    /// Reads one of these kinds from a manifest, errors naming the field
    /// (the loader's `typed_from`).
    pub fn typed(kind: Kind, doc: Value) -> Result<Object, (Option<String>, String)> {
        use super::load::typed_from;
        Ok(match kind {
            Kind::GatewayClass => Object::GatewayClass(typed_from(doc)?),
            Kind::K8sGateway => Object::Gateway(typed_from(doc)?),
            Kind::HttpRoute => Object::HttpRoute(typed_from(doc)?),
            Kind::ReferenceGrant => Object::ReferenceGrant(typed_from(doc)?),
            Kind::ConfigMap => Object::ConfigMap(typed_from(doc)?),
            Kind::Namespace => Object::Namespace(typed_from(doc)?),
            k => {
                return Err((
                    Some("kind".into()),
                    format!("{k} is not a Gateway API kind"),
                ));
            }
        })
    }

    /// The spec's rules for one object alone; the checked form is
    /// `Checked::GatewayApi` (what depends on other objects is decided
    /// by `translate`).
    pub fn check(&self, e: &mut FieldErrors) -> Checked {
        validate::object(self, e);
        Checked::GatewayApi
    }

    /// The `kubectl get` columns between NAME and AGE.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Object::GatewayClass(c) => vec![c.spec.controller_name.clone()],
            Object::Gateway(g) => vec![g.spec.gateway_class_name.clone()],
            Object::HttpRoute(r) => vec![format!("[{}]", r.spec.hostnames.join(","))],
            _ => Vec::new(),
        }
    }
}

/// Whether `kind` is one of this module's.
pub fn is_ours(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::GatewayClass
            | Kind::K8sGateway
            | Kind::HttpRoute
            | Kind::ReferenceGrant
            | Kind::ConfigMap
            | Kind::Namespace
    )
}

/// Whether `kind` is cluster-scoped in Kubernetes (GatewayClass,
/// Namespace): such objects are found by name, whatever namespace a store
/// keys them under (none, or `default` as `apply` gives every object).
pub fn is_cluster_scoped(kind: Kind) -> bool {
    matches!(kind, Kind::GatewayClass | Kind::Namespace)
}

/// Whether objects of `kind` have a Gateway API status.
pub fn has_status(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::GatewayClass | Kind::K8sGateway | Kind::HttpRoute
    )
}

/// The column titles for `kubectl get` of these kinds.
pub fn column_titles(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::GatewayClass => &["CONTROLLER", "AGE"],
        Kind::K8sGateway => &["CLASS", "AGE"],
        Kind::HttpRoute => &["HOSTNAMES", "AGE"],
        _ => &["AGE"],
    }
}

impl From<Object> for Resource {
    fn from(o: Object) -> Resource {
        Resource::GatewayApi(Box::new(o))
    }
}
