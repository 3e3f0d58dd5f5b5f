//! Object metadata shared by every kind, as Kubernetes writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata` of an object. Fields the API server fills in (`uid`,
/// `resourceVersion`, `creationTimestamp`, ...) are accepted so that
/// `kubectl ... -o yaml` output applies as is, and dropped when stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the store writer when an object is first created; kept on updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing)]
    pub resource_version: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub uid: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub generation: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub managed_fields: Option<serde_json::Value>,
}

impl ObjectMeta {
    /// The namespace, once defaulted by the loader.
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

pub use super::host::{is_dns1123_label, is_dns1123_subdomain};
