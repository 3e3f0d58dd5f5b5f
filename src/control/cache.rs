//! The replica's local copy of the last objects it served, for static
//! stability: when the shared store (etcd) is unreachable at start, the
//! gateway serves from here.
//!
//! The file holds Secrets, so it is written 0600 from the start, atomically
//! (temp file, fsync, rename), and sealed with the store's encryption key
//! when there is one; it is never printed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::store::crypt::Keyring;
use crate::store::{Object, ObjectKey};

/// What the sealed cache is bound to, so it cannot pass for anything else.
const CONTEXT: &[u8] = b"gatehouse replica cache";

#[derive(Serialize, Deserialize)]
struct Entry {
    kind: String,
    namespace: String,
    name: String,
    resource_version: u64,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    revision: u64,
    objects: Vec<Entry>,
}

/// Writes the objects and the store revision they reflect.
pub fn save<'a>(
    path: &Path,
    keyring: Option<&Keyring>,
    revision: u64,
    objects: impl Iterator<Item = &'a Object>,
) -> std::io::Result<()> {
    let file = File {
        revision,
        objects: objects
            .map(|o| Entry {
                kind: o.key.kind.clone(),
                namespace: o.key.namespace.clone(),
                name: o.key.name.clone(),
                resource_version: o.resource_version,
                value: STANDARD.encode(&o.value),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec(&file)?;
    if let Some(k) = keyring {
        bytes = k
            .seal(CONTEXT, &bytes)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads a cache written by [`save`].
pub fn load(path: &Path, keyring: Option<&Keyring>) -> Result<(u64, Vec<Object>), String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if Keyring::is_sealed(&bytes) {
        let k = keyring.ok_or_else(|| {
            format!(
                "{}: the cache is encrypted; pass --encryption-key-file",
                path.display()
            )
        })?;
        bytes = k
            .open(CONTEXT, &bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let file: File = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a cache: {e}", path.display()))?;
    let mut objects = Vec::with_capacity(file.objects.len());
    for e in file.objects {
        let value = STANDARD
            .decode(&e.value)
            .map_err(|_| format!("{}: corrupt value", path.display()))?;
        objects.push(Object {
            key: ObjectKey::new(e.kind, e.namespace, e.name),
            resource_version: e.resource_version,
            value,
        });
    }
    Ok((file.revision, objects))
}
