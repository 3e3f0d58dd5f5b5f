//! Where API objects live and how changes arrive.
//!
//! The store keeps opaque objects (the JSON bytes of a `Gateway`, a `Secret`,
//! ...) under an [`ObjectKey`], gives every change a store-wide revision, and
//! lets a caller [`list`](Store::list) the objects and then
//! [`watch`](Store::watch) every later change, exactly once and in order.
//! It is kind-agnostic: parsing and validation belong to `config`. Callers
//! hold an [`AnyStore`] from [`open`], so etcd and Kubernetes backends can be
//! added later without touching them; the first backend is the embedded
//! directory store in [`dir`].
//!
//! The store must never half-apply a batch, lose or reorder a change, print an
//! object's value (it can hold private keys) in a `Debug` string, a log line
//! or an error message, or leave a file readable by anyone but its owner.

pub mod crypt;
pub mod dir;
pub mod etcd;
mod fsutil;
mod log;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use tokio::sync::mpsc;

pub use dir::DirStore;
pub use etcd::{EtcdOptions, EtcdStore};

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
}

impl Store for AnyStore {
    async fn apply(&self, puts: Vec<Put>) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        match self {
            AnyStore::Dir(s) => s.apply(puts).await,
            AnyStore::Etcd(s) => s.apply(puts).await,
        }
    }

    async fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        match self {
            AnyStore::Dir(s) => s.delete(keys).await,
            AnyStore::Etcd(s) => s.delete(keys).await,
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        match self {
            AnyStore::Dir(s) => s.get(key).await,
            AnyStore::Etcd(s) => s.get(key).await,
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
        }
    }

    async fn watch(&self, from_revision: u64) -> Result<WatchReceiver, StoreError> {
        match self {
            AnyStore::Dir(s) => s.watch(from_revision).await,
            AnyStore::Etcd(s) => s.watch(from_revision).await,
        }
    }
}

const SUPPORTED: &str = "supported: \"dir:<path>\", \"dir:\" (the default location), a bare path, or \"etcd://HOST:PORT[,HOST:PORT...]\"";

/// Where a store URL points, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory store; `None` means [`default_location`].
    Dir(Option<PathBuf>),
    /// An etcd cluster: `http://` or `https://` endpoints.
    Etcd(Vec<String>),
}

/// Parses a store URL: `dir:/some/path`, `dir:` (the default location), or a
/// bare path. Any other scheme is [`StoreError::BadUrl`].
pub fn parse_url(url: &str) -> Result<Location, StoreError> {
    if url.is_empty() {
        return Err(StoreError::BadUrl(format!("empty store URL ({SUPPORTED})")));
    }
    if let Some(rest) = url.strip_prefix("dir:") {
        // Accept the URL form `dir:///abs/path` (empty authority) as well.
        let path = match rest.strip_prefix("//") {
            Some(after) if after.starts_with('/') => after,
            Some(_) => {
                return Err(StoreError::BadUrl(format!(
                    "store URL {url:?} names a host; a dir store is local ({SUPPORTED})"
                )));
            }
            None => rest,
        };
        return Ok(Location::Dir(
            (!path.is_empty()).then(|| PathBuf::from(path)),
        ));
    }
    for (scheme, tls) in [("etcd://", false), ("etcds://", true)] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let endpoints: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| format!("{}://{e}", if tls { "https" } else { "http" }))
                .collect();
            if endpoints.is_empty() {
                return Err(StoreError::BadUrl(format!(
                    "store URL {url:?} names no etcd endpoint ({SUPPORTED})"
                )));
            }
            return Ok(Location::Etcd(endpoints));
        }
    }
    if let Some((scheme, _)) = url.split_once(':') {
        let looks_like_scheme = scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if looks_like_scheme {
            return Err(StoreError::BadUrl(format!(
                "unsupported store scheme {scheme:?} in {url:?} ({SUPPORTED})"
            )));
        }
    }
    Ok(Location::Dir(Some(PathBuf::from(url))))
}

/// Opens the store `url` names (see [`parse_url`]), creating a directory
/// store (mode 0700) if it is missing.
pub fn open(url: &str) -> Result<AnyStore, StoreError> {
    open_with(url, EtcdOptions::default())
}

/// Opens a store; `etcd` carries the options an etcd URL needs (TLS, user,
/// prefix, encryption keys). Its `endpoints` are taken from the URL.
pub fn open_with(url: &str, etcd: EtcdOptions) -> Result<AnyStore, StoreError> {
    match parse_url(url)? {
        Location::Dir(path) => {
            let path = match path {
                Some(path) => path,
                None => default_location()?,
            };
            Ok(AnyStore::Dir(DirStore::open(path)?))
        }
        Location::Etcd(mut endpoints) => {
            if etcd.ca_pem.is_some() {
                for e in &mut endpoints {
                    if let Some(rest) = e.strip_prefix("http://") {
                        *e = format!("https://{rest}");
                    }
                }
            }
            let prefix = if etcd.prefix.is_empty() {
                "/gatehouse/".to_owned()
            } else {
                etcd.prefix.clone()
            };
            Ok(AnyStore::Etcd(EtcdStore::new(EtcdOptions {
                endpoints,
                prefix,
                ..etcd
            })))
        }
    }
}

/// `$XDG_DATA_HOME/gatehouse`, else `$HOME/.local/share/gatehouse`.
pub fn default_location() -> Result<PathBuf, StoreError> {
    location_from_env(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

/// [`default_location`] from explicit values of `XDG_DATA_HOME` and `HOME`.
/// As the XDG spec says, an empty or relative `XDG_DATA_HOME` is ignored.
pub fn location_from_env(
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, StoreError> {
    if let Some(xdg) = xdg_data_home.map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("gatehouse"));
    }
    match home {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".local/share/gatehouse")),
        _ => Err(StoreError::NoDefaultLocation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let dir = |p: Option<&str>| Some(Location::Dir(p.map(PathBuf::from)));
        for (url, want) in [
            ("dir:/var/lib/g", dir(Some("/var/lib/g"))),
            ("dir:", dir(None)),
            ("dir:///var/lib/g", dir(Some("/var/lib/g"))),
            ("dir:rel/path", dir(Some("rel/path"))),
            ("/abs/path", dir(Some("/abs/path"))),
            ("rel/path", dir(Some("rel/path"))),
            ("./x:y", dir(Some("./x:y"))),
        ] {
            assert_eq!(parse_url(url).ok(), want, "{url}");
        }
        assert_eq!(
            parse_url("etcd://127.0.0.1:2379,127.0.0.1:2381").ok(),
            Some(Location::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.1:2381".into()
            ]))
        );
        for url in ["", "etcd://", "dir://host/x", "https://k8s", "kubernetes:"] {
            let err = parse_url(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("dir:"), "{url}: {err}");
            assert!(!err.contains('\n'), "{url}: {err}");
        }
    }

    #[test]
    fn default_location_prefers_absolute_xdg() {
        let s = |v: &str| Some(OsString::from(v));
        let loc = |x, h| location_from_env(x, h).ok();
        assert_eq!(loc(s("/x"), s("/h")), Some(PathBuf::from("/x/gatehouse")));
        assert_eq!(
            loc(None, s("/h")),
            Some(PathBuf::from("/h/.local/share/gatehouse"))
        );
        assert_eq!(
            loc(s(""), s("/h")),
            Some(PathBuf::from("/h/.local/share/gatehouse"))
        );
        assert_eq!(
            loc(s("rel"), s("/h")),
            Some(PathBuf::from("/h/.local/share/gatehouse"))
        );
        assert!(matches!(
            location_from_env(None, None),
            Err(StoreError::NoDefaultLocation)
        ));
    }

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
