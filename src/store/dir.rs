//! The embedded directory store: objects as files under one private
//! directory, shared safely by every gatehouse process on the machine.
//!
//! Layout under the root (directories 0700, files 0600):
//!
//! ```text
//! lock                              flock: exclusive to write, shared to read
//! log.jsonl                         the change log, one line per committed batch
//! head.json                         {"revision":R,"log_offset":N}
//! objects/<Kind>/<namespace>/<name> {"kind","namespace","name","resource_version","value"}
//! ```
//!
//! Object files carry no `.json` suffix so that every valid Kubernetes name
//! (up to 253 bytes) fits the 255-byte file name limit. Cluster-scoped
//! objects use the namespace directory `_cluster`, and temporary files start
//! with a dot: no valid name component starts with either.
//!
//! **Writing** (under the exclusive lock): repair (below), read every
//! object the batch touches and check every precondition, then append the
//! batch to the log as one line and fsync it. That append is the commit
//! point. Then each object file is replaced atomically (temp file, fsync,
//! rename), each touched directory is fsynced, and finally the head is
//! advanced past the new line.
//!
//! **Repair** (under the exclusive lock, by every writer first and by `open`):
//! if the log is longer than the head says, a writer died. Its whole lines
//! are committed changes; they are replayed onto the object files (an
//! object file already at or past a record's revision is left alone, so
//! replay is idempotent and may itself be interrupted), the torn tail after
//! the last whole line is cut off, and the head is advanced. A writer killed
//! at any instant therefore leaves each object old or new, never torn (each
//! file swap is atomic), and its batch either entirely committed (replayed
//! by the next lock holder) or entirely absent (torn tail, nothing else was
//! touched yet).
//!
//! **Reading**: `get` and `list` take the shared lock and read object files;
//! if the head disagrees with the log's length (a writer died), they repair
//! under the exclusive lock first, so a reader never sees half a batch. The
//! revision `list` returns is the head's.
//!
//! **Watching**: a thread polls the log's length every [`POLL_INTERVAL`].
//! The log below the head's offset is immutable, so the thread reads it
//! without a lock and sends every event past its starting revision, checking
//! that revisions run without a gap. When the log is longer than the head,
//! it tries the shared lock without waiting: if a writer holds the lock it is
//! busy and the watcher comes back later; if not, the writer died and the
//! watcher repairs. A watcher never waits on the lock, so a busy writer
//! cannot starve it.
//!
//! **Compaction** (not done yet): the log grows forever. Compacting needs a
//! `first_revision` in the head, a new log holding only the changes after
//! some revision written beside the old one and renamed over it under the
//! exclusive lock, watchers that notice the swap (inode change) and reopen at
//! the same revision, and `watch` from a revision older than
//! `first_revision` failing with a "too old, list again" error.
//!
//! This store must never write an object file before its change is in the
//! log, rewrite the log below the head, or let a value reach a log line or
//! error message.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use self::paths::{CLUSTER_SCOPE_DIR, entries, subdirs, validate_filter, validate_key};
use super::fsutil::{self, StoreLock};
use super::log::{self, Head, Record, StoredValue, Transaction};
use super::{EventType, Object, ObjectKey, Outcome, Put, Store, StoreError, WatchReceiver};

mod paths;
mod watch;

pub use watch::POLL_INTERVAL;

/// A store in a local directory. Cheap to clone. Two instances opened
/// separately share nothing but the directory, exactly like two processes.
/// Its futures run the file work on tokio's blocking pool, so they must be
/// polled inside a tokio runtime; watches run on a thread of their own.
#[derive(Clone)]
pub struct DirStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for DirStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

struct Inner {
    root: PathBuf,
    objects: PathBuf,
    lock: PathBuf,
    log: PathBuf,
    head: PathBuf,
}

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

impl DirStore {
    /// Opens the store at `root`, creating it (mode 0700) if missing, and
    /// repairs whatever a killed writer left.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let inner = Inner {
            objects: root.join("objects"),
            lock: root.join("lock"),
            log: root.join("log.jsonl"),
            head: root.join("head.json"),
            root,
        };
        fsutil::ensure_dir(&inner.root)?;
        let mode = std::fs::metadata(&inner.root)
            .map_err(|e| StoreError::io(&inner.root, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %inner.root.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "store directory is accessible to other users; chmod 700 it"
            );
        }
        fsutil::ensure_dir(&inner.objects)?;
        let _lock = StoreLock::exclusive(&inner.lock)?;
        if !inner.log.exists() {
            fsutil::write_atomic(&inner.log, b"")?;
            fsutil::fsync_dir(&inner.root)?;
        }
        inner.repair()?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where `key`'s file lives (whether or not it exists).
    pub fn object_path(&self, key: &ObjectKey) -> Result<PathBuf, StoreError> {
        self.inner.object_path(key)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Background(e.to_string()))?
    }
}

impl Store for DirStore {
    async fn apply(&self, puts: Vec<Put>) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        self.blocking(move |inner| inner.apply(puts)).await
    }

    async fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        self.blocking(move |inner| inner.delete(keys)).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        let key = key.clone();
        self.blocking(move |inner| inner.get(&key)).await
    }

    async fn list(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        let kind = kind.map(str::to_owned);
        let namespace = namespace.map(str::to_owned);
        self.blocking(move |inner| inner.list(kind.as_deref(), namespace.as_deref()))
            .await
    }

    async fn watch(&self, from_revision: u64) -> Result<WatchReceiver, StoreError> {
        let head = self.blocking(|inner| Ok(inner.read_view()?.1)).await?;
        watch::start(Arc::clone(&self.inner), head, from_revision)
    }
}

impl Inner {
    fn object_dir(&self, kind: &str, namespace: &str) -> PathBuf {
        let namespace = if namespace.is_empty() {
            CLUSTER_SCOPE_DIR
        } else {
            namespace
        };
        self.objects.join(kind).join(namespace)
    }

    fn object_path(&self, key: &ObjectKey) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.object_dir(&key.kind, &key.namespace).join(&key.name))
    }

    fn read_object(&self, path: &Path) -> Result<Option<Object>, StoreError> {
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

    fn write_object(&self, path: &Path, record: &Record) -> Result<(), StoreError> {
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
    fn apply_records(&self, records: &[Record], replay: bool) -> Result<(), StoreError> {
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

    /// Commits `records` (consecutive revisions after `head`) and applies
    /// them. The caller holds the exclusive lock and has repaired.
    fn commit(&self, head: Head, records: Vec<Record>) -> Result<(), StoreError> {
        let Some(last) = records.last().map(|r| r.revision) else {
            return Ok(());
        };
        let tx = Transaction { events: records };
        let log_offset = log::append(&self.log, &tx)?;
        self.apply_records(&tx.events, false)?;
        log::write_head(
            &self.head,
            Head {
                revision: last,
                log_offset,
            },
        )?;
        tracing::debug!(
            from = head.revision + 1,
            to = last,
            "store committed a change"
        );
        Ok(())
    }

    /// Brings the object files and the head up to the log; see the module
    /// documentation. The caller holds the exclusive lock.
    fn repair(&self) -> Result<Head, StoreError> {
        let head = match log::read_head(&self.head) {
            Ok(head) => head,
            Err(e @ StoreError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "replaying the whole store log");
                Head::default()
            }
            Err(e) => return Err(e),
        };
        let len = log::log_len(&self.log)?;
        if len == head.log_offset {
            return Ok(head);
        }
        if len < head.log_offset {
            return Err(StoreError::corrupt(
                &self.log,
                format!(
                    "{len} bytes long but the head says {} are applied",
                    head.log_offset
                ),
            ));
        }
        let tail = log::read_tail(&self.log, head.log_offset)?;
        let mut revision = head.revision;
        for tx in &tail.changes {
            for record in &tx.events {
                if record.revision != revision + 1 {
                    return Err(StoreError::corrupt(
                        &self.log,
                        format!("revision {} follows revision {revision}", record.revision),
                    ));
                }
                revision = record.revision;
            }
            self.apply_records(&tx.events, true)?;
        }
        if tail.end < len {
            log::truncate(&self.log, tail.end)?;
        }
        let repaired = Head {
            revision,
            log_offset: tail.end,
        };
        log::write_head(&self.head, repaired)?;
        fsutil::remove_stale_temp(&self.root)?;
        tracing::info!(
            path = %self.root.display(),
            replayed = tail.changes.len(),
            torn_bytes = len - tail.end,
            revision,
            "repaired the store after an interrupted write"
        );
        Ok(repaired)
    }

    /// A lock under which the object files match the head, and that head.
    fn read_view(&self) -> Result<(StoreLock, Head), StoreError> {
        let lock = StoreLock::shared(&self.lock)?;
        if let Ok(head) = log::read_head(&self.head)
            && log::log_len(&self.log)? == head.log_offset
        {
            return Ok((lock, head));
        }
        drop(lock);
        let lock = StoreLock::exclusive(&self.lock)?;
        let head = self.repair()?;
        Ok((lock, head))
    }

    /// For a watcher: the head, after a repair if a writer died; `None`
    /// while a writer holds the lock.
    fn head_if_idle(&self) -> Result<Option<Head>, StoreError> {
        let Some(lock) = StoreLock::try_shared(&self.lock)? else {
            return Ok(None);
        };
        if let Ok(head) = log::read_head(&self.head)
            && log::log_len(&self.log)? == head.log_offset
        {
            return Ok(Some(head));
        }
        drop(lock);
        let _lock = StoreLock::exclusive(&self.lock)?;
        self.repair().map(Some)
    }

    fn apply(&self, puts: Vec<Put>) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        let mut seen = HashSet::new();
        let mut paths = Vec::with_capacity(puts.len());
        for put in &puts {
            paths.push(self.object_path(&put.key)?);
            if !seen.insert(&put.key) {
                return Err(StoreError::DuplicateKey {
                    key: put.key.clone(),
                });
            }
        }
        let _lock = StoreLock::exclusive(&self.lock)?;
        let head = self.repair()?;
        let mut revision = head.revision;
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(puts.len());
        for (put, path) in puts.iter().zip(&paths) {
            let current = self.read_object(path)?;
            let actual = current.as_ref().map_or(0, |c| c.resource_version);
            if let Some(expected) = put.expected_version
                && expected != actual
            {
                return Err(StoreError::Conflict {
                    key: put.key.clone(),
                    expected,
                    actual,
                });
            }
            let (outcome, event_type) = match current {
                Some(current) if current.value == put.value => {
                    results.push((put.key.clone(), Outcome::Unchanged, actual));
                    continue;
                }
                Some(_) => (Outcome::Configured, EventType::Modified),
                None => (Outcome::Created, EventType::Added),
            };
            revision += 1;
            records.push(Record::new(revision, event_type, &put.key, &put.value));
            results.push((put.key.clone(), outcome, revision));
        }
        self.commit(head, records)?;
        Ok(results)
    }

    fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        let paths = keys
            .iter()
            .map(|key| self.object_path(key))
            .collect::<Result<Vec<_>, _>>()?;
        let _lock = StoreLock::exclusive(&self.lock)?;
        let head = self.repair()?;
        let mut revision = head.revision;
        let mut records = Vec::new();
        let mut deleted = HashSet::new();
        let mut results = Vec::with_capacity(keys.len());
        for (key, path) in keys.iter().zip(&paths) {
            let current = if deleted.insert(key) {
                self.read_object(path)?
            } else {
                None
            };
            if let Some(current) = &current {
                revision += 1;
                records.push(Record::new(
                    revision,
                    EventType::Deleted,
                    key,
                    &current.value,
                ));
            }
            results.push(current.is_some());
        }
        self.commit(head, records)?;
        Ok(results)
    }

    fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        let path = self.object_path(key)?;
        let _view = self.read_view()?;
        self.read_object(&path)
    }

    fn list(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        validate_filter("kind", kind)?;
        validate_filter("namespace", namespace)?;
        let (_lock, head) = self.read_view()?;
        let mut objects = Vec::new();
        for kind_dir in subdirs(&self.objects, kind)? {
            let namespace = namespace.map(|ns| match ns {
                "" => CLUSTER_SCOPE_DIR,
                ns => ns,
            });
            for ns_dir in subdirs(&kind_dir, namespace)? {
                for path in entries(&ns_dir, false)? {
                    if let Some(object) = self.read_object(&path)? {
                        objects.push(object);
                    }
                }
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((objects, head.revision))
    }
}
