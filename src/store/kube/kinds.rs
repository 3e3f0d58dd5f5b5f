//! The kinds the Kubernetes store reads and writes: for each, its API
//! group, the versions gatehouse can read (preferred first), its plural and
//! where it is watched. Which version a server serves is found by API
//! discovery (`served`): EndpointSlice is `discovery.k8s.io/v1` from 1.21
//! and only `v1beta1` before.

use std::collections::BTreeMap;

use kube::Client;
use kube::core::ApiResource;

/// Where a kind's objects are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In the gateway's own namespace only (Secrets, ConfigMaps): a
    /// provider never needs, and never gets, other namespaces' Secrets.
    GatewayNamespace,
    /// In the namespaces of `--watch-namespaces` (all by default).
    Watched,
    /// A cluster-scoped kind.
    Cluster,
}

/// One kind as the store knows it.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    /// The kind string of an `ObjectKey` (the Gateway API's Gateway is
    /// `Gateway.gateway.networking.k8s.io`, the Istio one `Gateway`).
    pub key: &'static str,
    /// The `kind` field as the API server writes it.
    pub kind: &'static str,
    pub group: &'static str,
    pub versions: &'static [&'static str],
    pub plural: &'static str,
    pub scope: Scope,
}

const ISTIO: &str = "networking.istio.io";
const ISTIO_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const GWAPI: &str = "gateway.networking.k8s.io";

const fn spec(
    key: &'static str,
    kind: &'static str,
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    scope: Scope,
) -> KindSpec {
    KindSpec {
        key,
        kind,
        group,
        versions,
        plural,
        scope,
    }
}

/// Every kind the store mirrors.
pub const KINDS: &[KindSpec] = &[
    spec(
        "Secret",
        "Secret",
        "",
        &["v1"],
        "secrets",
        Scope::GatewayNamespace,
    ),
    spec(
        "ConfigMap",
        "ConfigMap",
        "",
        &["v1"],
        "configmaps",
        Scope::GatewayNamespace,
    ),
    spec(
        "Gateway",
        "Gateway",
        ISTIO,
        ISTIO_VERSIONS,
        "gateways",
        Scope::Watched,
    ),
    spec(
        "VirtualService",
        "VirtualService",
        ISTIO,
        ISTIO_VERSIONS,
        "virtualservices",
        Scope::Watched,
    ),
    spec(
        "DestinationRule",
        "DestinationRule",
        ISTIO,
        ISTIO_VERSIONS,
        "destinationrules",
        Scope::Watched,
    ),
    spec(
        "ServiceEntry",
        "ServiceEntry",
        ISTIO,
        ISTIO_VERSIONS,
        "serviceentries",
        Scope::Watched,
    ),
    spec(
        "Service",
        "Service",
        "",
        &["v1"],
        "services",
        Scope::Watched,
    ),
    spec(
        "EndpointSlice",
        "EndpointSlice",
        "discovery.k8s.io",
        &["v1", "v1beta1"],
        "endpointslices",
        Scope::Watched,
    ),
    // Their labels, for a Gateway API listener's `allowedRoutes` selector.
    spec(
        "Namespace",
        "Namespace",
        "",
        &["v1"],
        "namespaces",
        Scope::Cluster,
    ),
    spec(
        "GatewayClass",
        "GatewayClass",
        GWAPI,
        &["v1", "v1beta1"],
        "gatewayclasses",
        Scope::Cluster,
    ),
    spec(
        "Gateway.gateway.networking.k8s.io",
        "Gateway",
        GWAPI,
        &["v1", "v1beta1"],
        "gateways",
        Scope::Watched,
    ),
    spec(
        "HTTPRoute",
        "HTTPRoute",
        GWAPI,
        &["v1", "v1beta1"],
        "httproutes",
        Scope::Watched,
    ),
    spec(
        "GRPCRoute",
        "GRPCRoute",
        GWAPI,
        &["v1"],
        "grpcroutes",
        Scope::Watched,
    ),
    spec(
        "TLSRoute",
        "TLSRoute",
        GWAPI,
        &["v1", "v1alpha3", "v1alpha2"],
        "tlsroutes",
        Scope::Watched,
    ),
    spec(
        "ReferenceGrant",
        "ReferenceGrant",
        GWAPI,
        &["v1", "v1beta1"],
        "referencegrants",
        Scope::Watched,
    ),
    spec(
        "BackendTLSPolicy",
        "BackendTLSPolicy",
        GWAPI,
        &["v1", "v1alpha3"],
        "backendtlspolicies",
        Scope::Watched,
    ),
];

/// The spec of an `ObjectKey` kind string.
pub fn by_key(key: &str) -> Option<&'static KindSpec> {
    KINDS.iter().find(|k| k.key == key)
}

/// The spec of a manifest's `apiVersion` and `kind`.
pub fn by_manifest(api_version: &str, kind: &str) -> Option<&'static KindSpec> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    KINDS.iter().find(|k| k.kind == kind && k.group == group)
}

impl KindSpec {
    /// The `ApiResource` of this kind at `version`.
    pub fn resource(&self, version: &str) -> ApiResource {
        let api_version = if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        };
        ApiResource {
            group: self.group.to_owned(),
            version: version.to_owned(),
            api_version,
            kind: self.kind.to_owned(),
            plural: self.plural.to_owned(),
        }
    }
}

/// The kinds this server serves, each at the first of its versions the
/// server has. A kind whose CRD is not installed is left out (and logged
/// once): its objects cannot exist there.
pub async fn served(client: &Client) -> Result<Vec<(&'static KindSpec, ApiResource)>, kube::Error> {
    let mut lists: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    let mut out = Vec::new();
    for spec in KINDS {
        let mut found = None;
        for v in spec.versions {
            let ar = spec.resource(v);
            if !lists.contains_key(&ar.api_version) {
                let listed = if spec.group.is_empty() {
                    client.list_core_api_resources(v).await
                } else {
                    client.list_api_group_resources(&ar.api_version).await
                };
                let names = match listed {
                    Ok(l) => Some(l.resources.into_iter().map(|r| r.name).collect()),
                    Err(kube::Error::Api(e)) if e.code == 404 => None,
                    Err(e) => return Err(e),
                };
                lists.insert(ar.api_version.clone(), names);
            }
            let has = lists
                .get(&ar.api_version)
                .and_then(Option::as_ref)
                .is_some_and(|names| names.iter().any(|n| n == spec.plural));
            if has {
                found = Some(ar);
                break;
            }
        }
        match found {
            Some(ar) => out.push((spec, ar)),
            None => tracing::info!(
                kind = spec.key,
                group = spec.group,
                "the API server does not serve this kind (CRD not installed?): not watched"
            ),
        }
    }
    Ok(out)
}
