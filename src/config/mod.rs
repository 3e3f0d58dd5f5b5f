//! The API objects as users write them: Istio `Gateway`, `VirtualService`,
//! `ServiceEntry`, `DestinationRule` and core `Secret`.
//!
//! YAML and JSON are parsed at this edge into typed objects that reject
//! unknown fields, then validated with Istio's rules; every error names the
//! file, the document, the object and the field. `validate::check` returns
//! the checked form (`checked`), the only thing the snapshot compiler reads:
//! code past it never parses a string again. This module never touches the
//! store or the network.

pub mod checked;
pub mod conflicts;
pub mod destination_rule;
pub mod discovery;
pub mod duration;
pub mod error;
pub mod gateway;
pub mod gateway_api;
pub mod host;
pub mod ignored;
pub mod load;
pub mod meta;
pub mod secret;
pub mod service_entry;
pub mod validate;
pub mod virtual_service;

use std::fmt;

pub use destination_rule::DestinationRule;
pub use discovery::{EndpointSlice, Service};
pub use error::ConfigError;
pub use gateway::Gateway;
pub use meta::ObjectMeta;
pub use secret::Secret;
pub use service_entry::ServiceEntry;
pub use virtual_service::VirtualService;

/// The Istio API versions accepted for the networking kinds (same schema).
pub const ISTIO_VERSIONS: &[&str] = &[
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1",
];

/// The kinds of object gatehouse knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Gateway,
    VirtualService,
    ServiceEntry,
    DestinationRule,
    Secret,
    Service,
    EndpointSlice,
    GatewayClass,
    /// The Gateway API's Gateway (`Gateway.gateway.networking.k8s.io`).
    K8sGateway,
    HttpRoute,
    ReferenceGrant,
    ConfigMap,
    Namespace,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Gateway,
        Kind::VirtualService,
        Kind::ServiceEntry,
        Kind::DestinationRule,
        Kind::Secret,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::GatewayClass,
        Kind::K8sGateway,
        Kind::HttpRoute,
        Kind::ReferenceGrant,
        Kind::ConfigMap,
        Kind::Namespace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gateway => "Gateway",
            Kind::VirtualService => "VirtualService",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::DestinationRule => "DestinationRule",
            Kind::Secret => "Secret",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::GatewayClass => "GatewayClass",
            Kind::K8sGateway => "Gateway.gateway.networking.k8s.io",
            Kind::HttpRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::ConfigMap => "ConfigMap",
            Kind::Namespace => "Namespace",
        }
    }

    /// kubectl's `resource.group` spelling, used in `apply` output.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Gateway => "gateway.networking.istio.io",
            Kind::VirtualService => "virtualservice.networking.istio.io",
            Kind::ServiceEntry => "serviceentry.networking.istio.io",
            Kind::DestinationRule => "destinationrule.networking.istio.io",
            Kind::Secret => "secret",
            Kind::Service => "service",
            Kind::EndpointSlice => "endpointslice.discovery.k8s.io",
            Kind::GatewayClass => "gatewayclass.gateway.networking.k8s.io",
            Kind::K8sGateway => "gateway.gateway.networking.k8s.io",
            Kind::HttpRoute => "httproute.gateway.networking.k8s.io",
            Kind::ReferenceGrant => "referencegrant.gateway.networking.k8s.io",
            Kind::ConfigMap => "configmap",
            Kind::Namespace => "namespace",
        }
    }

    /// The apiVersions this kind is accepted with.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::Secret | Kind::Service => &["v1"],
            Kind::EndpointSlice => discovery::ENDPOINT_SLICE_VERSIONS,
            Kind::ConfigMap | Kind::Namespace => &["v1"],
            Kind::GatewayClass | Kind::K8sGateway | Kind::HttpRoute => gateway_api::V1,
            Kind::ReferenceGrant => gateway_api::GRANT_VERSIONS,
            _ => ISTIO_VERSIONS,
        }
    }

    pub fn from_kind(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Resolves what users type after `get` / `delete`: kind names, plurals,
    /// short names, and `kind.group` forms, case-insensitively.
    pub fn from_cli(s: &str) -> Option<Kind> {
        if let Some(k) = gateway_api::from_cli(s) {
            return Some(k);
        }
        let lower = s.to_ascii_lowercase();
        let base = lower.split('.').next().unwrap_or("");
        match base {
            "gateway" | "gateways" | "gw" => Some(Kind::Gateway),
            "virtualservice" | "virtualservices" | "vs" => Some(Kind::VirtualService),
            "serviceentry" | "serviceentries" | "se" => Some(Kind::ServiceEntry),
            "destinationrule" | "destinationrules" | "dr" => Some(Kind::DestinationRule),
            "secret" | "secrets" => Some(Kind::Secret),
            "service" | "services" | "svc" => Some(Kind::Service),
            "endpointslice" | "endpointslices" => Some(Kind::EndpointSlice),
            _ => None,
        }
    }

    /// The supported `apiVersion`/`kind` pairs, for error messages.
    pub fn supported_list() -> String {
        Kind::ALL
            .iter()
            .map(|k| format!("{} ({})", k.as_str(), k.api_versions().join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API object of any supported kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Gateway(Gateway),
    VirtualService(VirtualService),
    ServiceEntry(ServiceEntry),
    DestinationRule(Box<DestinationRule>),
    Secret(Secret),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    /// The Gateway API kinds and the core objects they read.
    GatewayApi(Box<gateway_api::Object>),
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Gateway(_) => Kind::Gateway,
            Resource::VirtualService(_) => Kind::VirtualService,
            Resource::ServiceEntry(_) => Kind::ServiceEntry,
            Resource::DestinationRule(_) => Kind::DestinationRule,
            Resource::Secret(_) => Kind::Secret,
            Resource::Service(_) => Kind::Service,
            Resource::EndpointSlice(_) => Kind::EndpointSlice,
            Resource::GatewayApi(o) => o.kind(),
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Resource::Gateway(o) => &o.metadata,
            Resource::VirtualService(o) => &o.metadata,
            Resource::ServiceEntry(o) => &o.metadata,
            Resource::DestinationRule(o) => &o.metadata,
            Resource::Secret(o) => &o.metadata,
            Resource::Service(o) => &o.metadata,
            Resource::EndpointSlice(o) => &o.metadata,
            Resource::GatewayApi(o) => o.meta(),
        }
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Resource::Gateway(o) => &mut o.metadata,
            Resource::VirtualService(o) => &mut o.metadata,
            Resource::ServiceEntry(o) => &mut o.metadata,
            Resource::DestinationRule(o) => &mut o.metadata,
            Resource::Secret(o) => &mut o.metadata,
            Resource::Service(o) => &mut o.metadata,
            Resource::EndpointSlice(o) => &mut o.metadata,
            Resource::GatewayApi(o) => o.meta_mut(),
        }
    }

    /// `Kind namespace/name`, as errors name an object.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.kind(), self.meta().ns(), self.meta().name)
    }

    /// The canonical JSON the store keeps.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Resource::Gateway(o) => serde_json::to_vec(o),
            Resource::VirtualService(o) => serde_json::to_vec(o),
            Resource::ServiceEntry(o) => serde_json::to_vec(o),
            Resource::DestinationRule(o) => serde_json::to_vec(o),
            Resource::Secret(o) => serde_json::to_vec(o),
            Resource::Service(o) => serde_json::to_vec(o),
            Resource::EndpointSlice(o) => serde_json::to_vec(o),
            Resource::GatewayApi(o) => serde_json::to_vec(&o.to_value()?),
        }
    }

    /// The object as a JSON value, for `-o yaml|json` output.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Resource::Gateway(o) => serde_json::to_value(o),
            Resource::VirtualService(o) => serde_json::to_value(o),
            Resource::ServiceEntry(o) => serde_json::to_value(o),
            Resource::DestinationRule(o) => serde_json::to_value(o),
            Resource::Secret(o) => serde_json::to_value(o),
            Resource::Service(o) => serde_json::to_value(o),
            Resource::EndpointSlice(o) => serde_json::to_value(o),
            Resource::GatewayApi(o) => o.to_value(),
        }
    }

    /// Reads back what the store keeps. The store only holds validated
    /// objects, but another writer may have put anything there: a failure is
    /// an error, never a panic.
    pub fn from_json(kind: Kind, bytes: &[u8]) -> Result<Resource, serde_json::Error> {
        if let Some(o) = gateway_api::Object::from_json(kind, bytes) {
            return o.map(Resource::from);
        }
        Ok(match kind {
            Kind::Gateway => Resource::Gateway(serde_json::from_slice(bytes)?),
            Kind::VirtualService => Resource::VirtualService(serde_json::from_slice(bytes)?),
            Kind::ServiceEntry => Resource::ServiceEntry(serde_json::from_slice(bytes)?),
            Kind::DestinationRule => {
                Resource::DestinationRule(Box::new(serde_json::from_slice(bytes)?))
            }
            Kind::Secret => Resource::Secret(serde_json::from_slice(bytes)?),
            Kind::Service => Resource::Service(Box::new(serde_json::from_slice(bytes)?)),
            Kind::EndpointSlice => {
                Resource::EndpointSlice(Box::new(serde_json::from_slice(bytes)?))
            }
            // Every other kind was read above.
            _ => return Err(serde::de::Error::custom(format!("unknown kind {kind}"))),
        })
    }
}
