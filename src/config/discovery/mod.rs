//! Kubernetes cluster state that service discovery reads: core `v1`
//! `Service` and `discovery.k8s.io` `EndpointSlice` (`v1` and `v1beta1`).
//!
//! These are not gatehouse configuration but what a cluster says about
//! itself, so unlike the Istio kinds they tolerate every field they do not
//! read (an API server adds fields with each release) and `apply` never
//! warns about those. Only what discovery uses is kept, typed and checked
//! (`check.rs`): Service ports, type and external name; a slice's service
//! label, address type, endpoints (addresses, readiness) and ports. This
//! module never resolves anything: `upstream::kube` does.

mod check;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::meta::ObjectMeta;
pub use check::{
    AddressType, CheckedEndpointSlice, CheckedService, KubePort, ReadyEndpoint, SlicePortRef,
    check_endpoint_slice, check_service,
};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The apiVersions an EndpointSlice is read in: `v1` (Kubernetes 1.21 and
/// later) and `v1beta1` (before, the test API server's 1.20 included).
pub const ENDPOINT_SLICE_VERSIONS: &[&str] = &["discovery.k8s.io/v1", "discovery.k8s.io/v1beta1"];

/// `null` read as the type's default: the API server writes `null` for
/// empty lists and maps.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `metadata` as an API server writes it: name, namespace, labels and
/// annotations are kept; every other field (owner references, finalizers,
/// managed fields...) is tolerated and dropped.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LooseMeta {
    #[serde(default, deserialize_with = "null_default")]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    creation_timestamp: Option<String>,
}

fn loose_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m: LooseMeta = null_default(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels,
        annotations: m.annotations,
        creation_timestamp: m.creation_timestamp,
        ..ObjectMeta::default()
    })
}

/// A number or a name, as `targetPort` is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

/// Core `v1` `Service`: what discovery reads of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub api_version: String,
    pub kind: String,
    #[serde(deserialize_with = "loose_meta")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `ClusterIP` (the default), `NodePort`, `LoadBalancer` or
    /// `ExternalName`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<ServicePortSpec>,
}

/// One `spec.ports[]` entry of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// `discovery.k8s.io` `EndpointSlice` (`v1` or `v1beta1`: the fields read
/// are the same in both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    pub api_version: String,
    pub kind: String,
    #[serde(deserialize_with = "loose_meta")]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_type: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub endpoints: Vec<SliceEndpoint>,
    #[serde(default, deserialize_with = "null_default")]
    pub ports: Vec<SlicePort>,
}

impl EndpointSlice {
    /// Whether its addresses are DNS names, which gatehouse does not use.
    pub fn is_fqdn(&self) -> bool {
        self.address_type.as_deref() == Some("FQDN")
    }
}

/// One `endpoints[]` entry of a slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceEndpoint {
    #[serde(default, deserialize_with = "null_default")]
    pub addresses: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Conditions::is_empty"
    )]
    pub conditions: Conditions,
}

/// `endpoints[].conditions`: only `ready` is read; absent means ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

impl Conditions {
    fn is_empty(&self) -> bool {
        self.ready.is_none()
    }
}

/// One `ports[]` entry of a slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

impl Service {
    /// `kubectl get services` columns between NAME and AGE: TYPE,
    /// CLUSTER-IP, PORT(S).
    pub fn columns(&self) -> Vec<String> {
        let ports: Vec<String> = self
            .spec
            .ports
            .iter()
            .map(|p| format!("{}/{}", p.port, p.protocol.as_deref().unwrap_or("TCP")))
            .collect();
        vec![
            self.spec
                .service_type
                .clone()
                .unwrap_or_else(|| "ClusterIP".into()),
            self.spec
                .cluster_ip
                .clone()
                .unwrap_or_else(|| "<none>".into()),
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(",")
            },
        ]
    }
}

impl EndpointSlice {
    /// `kubectl get endpointslices` columns between NAME and AGE:
    /// ADDRESSTYPE, PORTS, ENDPOINTS.
    pub fn columns(&self) -> Vec<String> {
        let or_none = |v: Vec<String>| {
            if v.is_empty() {
                "<unset>".to_owned()
            } else {
                v.join(",")
            }
        };
        let ports = self
            .ports
            .iter()
            .filter_map(|p| p.port.map(|n| n.to_string()))
            .collect();
        let addresses = self
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter().cloned())
            .collect();
        vec![
            self.address_type.clone().unwrap_or_default(),
            or_none(ports),
            or_none(addresses),
        ]
    }
}
