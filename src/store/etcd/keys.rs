//! Object keys as etcd keys (`<prefix><Kind>/<namespace>/<name>`, with
//! `_cluster` for cluster-scoped objects) and values as etcd values
//! (Secrets sealed with the keyring, the etcd key as associated data).
//!
//! It must never write a Secret unsealed, and never accept a name part that
//! could reach outside its kind and namespace (`/`, `..`).

use etcd_rpc::mvccpb::KeyValue;

use super::EtcdStore;
use crate::store::crypt::Keyring;
use crate::store::{Object, ObjectKey, StoreError};

fn check_part(part: &str, key: &ObjectKey) -> Result<(), StoreError> {
    let ok = !part.is_empty()
        && part.len() <= 253
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !part.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason: format!("{part:?} is not a valid name part"),
        })
    }
}

impl EtcdStore {
    pub(super) fn key_bytes(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        check_part(&key.kind, key)?;
        let ns = if key.namespace.is_empty() {
            "_cluster"
        } else {
            check_part(&key.namespace, key)?;
            &key.namespace
        };
        check_part(&key.name, key)?;
        Ok(format!("{}{}/{ns}/{}", self.opts.prefix, key.kind, key.name).into_bytes())
    }

    pub(super) fn parse_key(&self, raw: &[u8]) -> Option<ObjectKey> {
        let s = std::str::from_utf8(raw).ok()?;
        let rest = s.strip_prefix(self.opts.prefix.as_str())?;
        let mut parts = rest.splitn(3, '/');
        let (kind, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
        let ns = if ns == "_cluster" { "" } else { ns };
        Some(ObjectKey::new(kind, ns, name))
    }

    pub(super) fn seal(
        &self,
        key: &ObjectKey,
        etcd_key: &[u8],
        value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        if key.kind != "Secret" {
            return Ok(value.to_vec());
        }
        match &self.opts.keyring {
            Some(k) => k.seal(etcd_key, value),
            None => Err(StoreError::NeedsEncryptionKey { key: key.clone() }),
        }
    }

    pub(super) fn unseal(&self, etcd_key: &[u8], value: &[u8]) -> Result<Vec<u8>, String> {
        if !Keyring::is_sealed(value) {
            return Ok(value.to_vec());
        }
        match &self.opts.keyring {
            Some(k) => k.open(etcd_key, value),
            None => Err("the value is encrypted; pass --encryption-key-file with the key it was written with".into()),
        }
    }

    pub(super) fn decode(&self, kv: &KeyValue) -> Option<Object> {
        let key = self.parse_key(&kv.key)?;
        match self.unseal(&kv.key, &kv.value) {
            Ok(value) => Some(Object {
                key,
                resource_version: u64::try_from(kv.mod_revision).unwrap_or(0),
                value,
            }),
            Err(why) => {
                tracing::warn!(object = %key, reason = %why, "cannot read an object from etcd; skipped");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EtcdOptions;

    #[test]
    fn keys_round_trip_and_reject_paths() {
        let store = EtcdStore::new(EtcdOptions {
            prefix: "/g/".into(),
            ..EtcdOptions::default()
        });
        let k = ObjectKey::new("Gateway", "ns", "gw");
        let raw = store.key_bytes(&k).ok();
        assert_eq!(raw.as_deref(), Some(&b"/g/Gateway/ns/gw"[..]));
        assert_eq!(store.parse_key(b"/g/Gateway/ns/gw"), Some(k));
        let cluster = ObjectKey::new("Node", "", "n1");
        assert_eq!(
            store.key_bytes(&cluster).ok().as_deref(),
            Some(&b"/g/Node/_cluster/n1"[..])
        );
        assert_eq!(store.parse_key(b"/g/Node/_cluster/n1"), Some(cluster));
        for bad in ["a/b", "..", ".x", ""] {
            assert!(
                store
                    .key_bytes(&ObjectKey::new("Gateway", "ns", bad))
                    .is_err()
            );
        }
    }

    #[test]
    fn a_secret_needs_a_key() {
        let store = EtcdStore::new(EtcdOptions::default());
        let k = ObjectKey::new("Secret", "ns", "s");
        assert!(matches!(
            store.seal(&k, b"k", b"v"),
            Err(StoreError::NeedsEncryptionKey { .. })
        ));
    }
}
