//! Object files: where an object's file lives, reading one (checking it
//! holds the key its path says), writing one atomically, and bringing the
//! files up to a run of log records.
//!
//! It must never write a file in place (a reader or a crash would see it
//! torn) or trust a file that names another object.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Inner;
use super::paths::{CLUSTER_SCOPE_DIR, validate_key};
use crate::store::fsutil;
use crate::store::log::{Record, StoredValue};
use crate::store::{EventType, Object, ObjectKey, StoreError};

/// What an object file holds.
#[derive(Serialize, Deserialize)]
struct ObjectFile {
    kind: String,
    namespace: String,
    name: String,
    resource_version: u64,
    #[serde(flatten)]
    value: StoredValue,
}

impl Inner {
    pub(super) fn object_dir(&self, kind: &str, namespace: &str) -> PathBuf {
        let namespace = if namespace.is_empty() {
            CLUSTER_SCOPE_DIR
        } else {
            namespace
        };
        self.objects.join(kind).join(namespace)
    }

    pub(super) fn object_path(&self, key: &ObjectKey) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.object_dir(&key.kind, &key.namespace).join(&key.name))
    }

    pub(super) fn read_object(&self, path: &Path) -> Result<Option<Object>, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let file: ObjectFile =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt(path, e.to_string()))?;
        let key = ObjectKey::new(file.kind, file.namespace, file.name);
        if !matches!(self.object_path(&key), Ok(expected) if expected == path) {
            return Err(StoreError::corrupt(path, "holds another object's key"));
        }
        Ok(Some(Object {
            key,
            resource_version: file.resource_version,
            value: file
                .value
                .decode()
                .map_err(|e| StoreError::corrupt(path, e))?,
        }))
    }

    pub(super) fn write_object(&self, path: &Path, record: &Record) -> Result<(), StoreError> {
        let file = ObjectFile {
            kind: record.kind.clone(),
            namespace: record.namespace.clone(),
            name: record.name.clone(),
            resource_version: record.revision,
            value: record.value.clone(),
        };
        let bytes =
            serde_json::to_vec(&file).map_err(|e| StoreError::corrupt(path, e.to_string()))?;
        if let Some(dir) = path.parent() {
            fsutil::ensure_dir(dir)?;
        }
        fsutil::write_atomic(path, &bytes)
    }

    /// Makes the object files reflect `records`. With `replay`, the files
    /// may already reflect them (or later changes of the same objects), so
    /// each record is applied only to a file that is older than it.
    pub(super) fn apply_records(&self, records: &[Record], replay: bool) -> Result<(), StoreError> {
        let mut dirs = BTreeSet::new();
        for record in records {
            let path = self.object_path(&record.key())?;
            let older = !replay
                || self
                    .read_object(&path)?
                    .is_none_or(|current| current.resource_version < record.revision);
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_owned());
            }
            match record.event_type {
                EventType::Added | EventType::Modified if older => {
                    self.write_object(&path, record)?;
                }
                EventType::Deleted if older => {
                    fsutil::remove_if_exists(&path)?;
                }
                _ => {}
            }
        }
        for dir in &dirs {
            if replay {
                fsutil::remove_stale_temp(dir)?;
            }
            if dir.exists() {
                fsutil::fsync_dir(dir)?;
            }
        }
        Ok(())
    }
}
