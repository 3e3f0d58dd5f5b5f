//! Objects between the API server and the store's JSON form.
//!
//! What the API server adds to an object (managedFields, resourceVersion,
//! timestamps, `status`) is dropped before the object enters the store, so
//! that a status write or a no-op update changes no bytes and wakes no one.
//! kubectl's last-applied-configuration annotation is dropped too: for a
//! Secret applied with `kubectl apply` it holds the whole Secret, key
//! included, and must never reach `get -o yaml`, a log or the admin view.

use kube::api::DynamicObject;
use kube::core::ApiResource;
use serde_json::{Map, Value};

use super::kinds::KindSpec;
use crate::store::{Object, ObjectKey, StoreError};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The metadata fields kept: what config's `ObjectMeta` reads (generation
/// and uid are for status; neither is stored back).
const KEPT_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "labels",
    "annotations",
    "generation",
    "uid",
];

/// The store's form of an object read from the API server; `None` for an
/// object without a name (never from a real server).
pub fn normalize(spec: &KindSpec, ar: &ApiResource, obj: &DynamicObject) -> Option<Object> {
    let name = obj.metadata.name.clone()?;
    let namespace = match spec.scope {
        super::kinds::Scope::Cluster => String::new(),
        _ => obj.metadata.namespace.clone().unwrap_or_default(),
    };
    let resource_version = obj
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let Ok(Value::Object(mut doc)) = serde_json::to_value(obj) else {
        return None;
    };
    doc.remove("status");
    doc.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
    doc.insert("kind".into(), Value::String(ar.kind.clone()));
    if let Some(Value::Object(meta)) = doc.get_mut("metadata") {
        meta.retain(|k, _| KEPT_META.contains(&k.as_str()));
        if let Some(Value::Object(a)) = meta.get_mut("annotations") {
            a.remove(LAST_APPLIED);
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    let value = serde_json::to_vec(&Value::Object(doc)).ok()?;
    Some(Object {
        key: ObjectKey::new(spec.key, namespace, name),
        resource_version,
        value,
    })
}

/// The body of a server-side apply for a stored value: the object without
/// what the server owns; `resource_version`, when set, is the apply's
/// precondition (the server refuses it with 409 if the object moved on).
pub fn apply_body(
    key: &ObjectKey,
    value: &[u8],
    resource_version: Option<u64>,
) -> Result<(String, Value), StoreError> {
    let bad = |why: &str| StoreError::InvalidKey {
        key: key.to_string(),
        reason: why.to_owned(),
    };
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(value) else {
        return Err(bad("the value is not a JSON object"));
    };
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the value has no apiVersion"))?
        .to_owned();
    doc.remove("status");
    let meta = doc
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        for k in [
            "creationTimestamp",
            "resourceVersion",
            "uid",
            "generation",
            "managedFields",
        ] {
            meta.remove(k);
        }
        if let Some(rv) = resource_version {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
    Ok((api_version, Value::Object(doc)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kube::kinds::by_key;

    #[test]
    fn server_fields_status_and_last_applied_are_dropped() {
        let Some(spec) = by_key("Secret") else {
            panic!("Secret is a known kind")
        };
        let ar = spec.resource("v1");
        let raw = serde_json::json!({
            "metadata": {"name": "c", "namespace": "istio-system", "resourceVersion": "42",
                "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{}],
                "annotations": {LAST_APPLIED: "{\"data\":{\"tls.key\":\"S0VZ\"}}"}},
            "type": "Opaque", "data": {"tls.key": "S0VZ"}, "status": {"x": 1}});
        let obj: DynamicObject = match serde_json::from_value(raw) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        let Some(o) = normalize(spec, &ar, &obj) else {
            panic!("normalized")
        };
        assert_eq!(o.key, ObjectKey::new("Secret", "istio-system", "c"));
        assert_eq!(o.resource_version, 42);
        let text = String::from_utf8_lossy(&o.value);
        for gone in ["last-applied", "managedFields", "resourceVersion", "status"] {
            assert!(!text.contains(gone), "{text}");
        }
        assert!(
            text.contains("\"apiVersion\":\"v1\"") && text.contains("\"kind\":\"Secret\""),
            "{text}"
        );
    }
}
