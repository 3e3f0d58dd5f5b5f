//! Where API objects live and how changes arrive.
//!
//! The store keeps opaque objects (the JSON bytes of a `Gateway`, a `Secret`,
//! ...) under an [`ObjectKey`], gives every change a store-wide revision, and
//! lets a caller [`list`](Store::list) the objects and then
//! [`watch`](Store::watch) every later change, exactly once and in order.
//! It is kind-agnostic: parsing and validation belong to `config`. Callers
//! hold an [`AnyStore`] from [`open`], so the etcd and Kubernetes backends (`kube`)
//! need nothing of them; the first backend is the embedded
//! directory store in [`dir`]; `url` says which backend a `--store` value
//! names and opens it.
//!
//! The store must never half-apply a batch, lose or reorder a change, print an
//! object's value (it can hold private keys) in a `Debug` string, a log line
//! or an error message, or leave a file readable by anyone but its owner.

pub mod crypt;
pub mod dir;
pub mod etcd;
mod fsutil;
pub mod kube;
mod log;
mod url;

use std::fmt;
use std::path::PathBuf;

use tokio::sync::mpsc;

pub use dir::DirStore;
pub use etcd::{EtcdOptions, EtcdStore};
pub use kube::{KubeOptions, KubeSource, KubeStore};
pub use url::{
    Location, default_location, location_from_env, open, open_any, open_with, parse_url,
};

/// The identity of an object: its kind, namespace (empty for cluster-scoped
/// kinds) and name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `Kind/namespace/name`, or `Kind/name` for a cluster-scoped object.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A stored object: its key, the revision of its last change, and its value
/// (the JSON bytes of the object).
#[derive(Clone, PartialEq, Eq)]
pub struct Object {
    pub key: ObjectKey,
    pub resource_version: u64,
    pub value: Vec<u8>,
}

/// Prints the value's length only: values can hold private keys.
impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("key", &self.key)
            .field("resource_version", &self.resource_version)
            .field("value", &Redacted(self.value.len()))
            .finish()
    }
}

struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

/// What [`Store::apply`] did to one object, in `kubectl apply`'s words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change. `object.resource_version` is `revision`; for `Deleted`,
/// `object.value` is the last value the object had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub revision: u64,
    pub event_type: EventType,
    pub object: Object,
}

/// One object to write. `expected_version`: `None` writes unconditionally,
/// `Some(0)` requires that the object does not exist yet, `Some(v)` requires
/// that it is currently at resource version `v`.
#[derive(Clone, PartialEq, Eq)]
pub struct Put {
    pub key: ObjectKey,
    pub value: Vec<u8>,
    pub expected_version: Option<u64>,
}

impl Put {
    /// An unconditional write.
    pub fn new(key: ObjectKey, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key,
            value: value.into(),
            expected_version: None,
        }
    }
}

/// Prints the value's length only: values can hold private keys.
impl fmt::Debug for Put {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put")
            .field("key", &self.key)
            .field("value", &Redacted(self.value.len()))
            .field("expected_version", &self.expected_version)
            .finish()
    }
}

/// Why a store operation failed. Every message is one line and names the
/// path or key involved, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store file {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("conflict on {key}: expected resource version {expected}, found {}", version_text(*actual))]
    Conflict {
        key: ObjectKey,
        expected: u64,
        actual: u64,
    },
    #[error("invalid object key {key}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("{key} appears more than once in one batch")]
    DuplicateKey { key: ObjectKey },
    #[error("{0}")]
    BadUrl(String),
    #[error("no default store location: set XDG_DATA_HOME or HOME, or pass a store URL")]
    NoDefaultLocation,
    #[error("store background task failed: {0}")]
    Background(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the store compacted history up to revision {revision}; list again")]
    Compacted { revision: u64 },
    #[error(
        "{key}: storing a Secret in etcd needs an encryption key: make one with `gatehouse keygen --out FILE` and pass --encryption-key-file FILE"
    )]
    NeedsEncryptionKey { key: ObjectKey },
}

fn version_text(actual: u64) -> String {
    if actual == 0 {
        "none (the object does not exist)".to_owned()
    } else {
        actual.to_string()
    }
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The stream a watch delivers. After an `Err` item the stream ends: list
/// and watch again.
pub type WatchReceiver = mpsc::Receiver<Result<Event, StoreError>>;

/// A place where objects live. Every method is safe to call from several
/// tasks, threads and processes at once.
pub trait Store: Send + Sync {
    /// Writes all `puts` or none of them: every precondition is checked
    /// before anything is written. Returns, per put and in order, the outcome
    /// and the object's resulting resource version. A put whose bytes equal
    /// the stored ones is `Unchanged`: no new revision, no event.
    fn apply(
        &self,
        puts: Vec<Put>,
    ) -> impl Future<Output = Result<Vec<(ObjectKey, Outcome, u64)>, StoreError>> + Send;

    /// Deletes `keys` in one change. Per key: `true` if it existed and was
    /// deleted.
    fn delete(
        &self,
        keys: Vec<ObjectKey>,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    fn get(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Option<Object>, StoreError>> + Send;

    /// The objects of `kind` (all kinds if `None`) in `namespace` (all if
    /// `None`), sorted by key, and the store revision they reflect: pass it
    /// to [`watch`](Store::watch) to see every later change.
    fn list(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<Object>, u64), StoreError>> + Send;

    /// Every event with `revision > from_revision`, exactly once and in
    /// order, until the receiver is dropped.
    fn watch(
        &self,
        from_revision: u64,
    ) -> impl Future<Output = Result<WatchReceiver, StoreError>> + Send;
}

/// The store callers hold, whatever the backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    Dir(DirStore),
    Etcd(EtcdStore),
    Kube(KubeStore),
}

impl AnyStore {
    /// The `status` each object should have, for a store that keeps status
    /// (Kubernetes); the others have nowhere to write it.
    pub fn publish_status(&self, desired: kube::status::Desired) {
        if let AnyStore::Kube(s) = self {
            s.publish_status(desired);
        }
    }
}

impl Store for AnyStore {
    async fn apply(&self, puts: Vec<Put>) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        match self {
            AnyStore::Dir(s) => s.apply(puts).await,
            AnyStore::Etcd(s) => s.apply(puts).await,
            AnyStore::Kube(s) => s.apply(puts).await,
        }
    }

    async fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        match self {
            AnyStore::Dir(s) => s.delete(keys).await,
            AnyStore::Etcd(s) => s.delete(keys).await,
            AnyStore::Kube(s) => s.delete(keys).await,
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        match self {
            AnyStore::Dir(s) => s.get(key).await,
            AnyStore::Etcd(s) => s.get(key).await,
            AnyStore::Kube(s) => s.get(key).await,
        }
    }

    async fn list(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        match self {
            AnyStore::Dir(s) => s.list(kind, namespace).await,
            AnyStore::Etcd(s) => s.list(kind, namespace).await,
            AnyStore::Kube(s) => s.list(kind, namespace).await,
        }
    }

    async fn watch(&self, from_revision: u64) -> Result<WatchReceiver, StoreError> {
        match self {
            AnyStore::Dir(s) => s.watch(from_revision).await,
            AnyStore::Etcd(s) => s.watch(from_revision).await,
            AnyStore::Kube(s) => s.watch(from_revision).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_values() {
        let key = ObjectKey::new("Secret", "ns", "tls");
        let object = Object {
            key: key.clone(),
            resource_version: 3,
            value: b"PRIVATE KEY".to_vec(),
        };
        let put = Put::new(key.clone(), b"PRIVATE KEY".to_vec());
        for text in [format!("{object:?}"), format!("{put:?}")] {
            assert!(!text.contains("PRIVATE"), "{text}");
            assert!(text.contains("<11 bytes>"), "{text}");
        }
        assert_eq!(key.to_string(), "Secret/ns/tls");
        assert_eq!(ObjectKey::new("Node", "", "n1").to_string(), "Node/n1");
    }
}
