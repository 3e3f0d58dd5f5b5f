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
//! **Watching**: a thread per watch looks at the log's length when inotify
//! says the log, the head or the lock file changed (`wakeup`: one inotify
//! instance per opened store), and every [`FALLBACK_POLL`] in case the
//! filesystem reports nothing. The log below the head's offset is immutable, so the thread reads it
//! without a lock and sends every event past its starting revision, checking
//! that revisions run without a gap. When the log is longer than the head,
//! it tries the shared lock without waiting: if a writer holds the lock it is
//! busy and the watcher comes back when it is done (its release of the lock
//! is an inotify event); if not, the writer died and the watcher repairs. A watcher never waits on the lock, so a busy writer
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

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use self::paths::{CLUSTER_SCOPE_DIR, entries, subdirs, validate_filter};
use self::wakeup::Wakeup;
use super::fsutil::{self, StoreLock};
use super::{Object, ObjectKey, Outcome, Put, Store, StoreError, WatchReceiver};

mod objects;
mod paths;
mod repair;
mod wakeup;
mod watch;
mod write;

pub use wakeup::FALLBACK_POLL;

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
    /// inotify on the root, started by the first watch.
    wakeup: OnceLock<Wakeup>,
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
            wakeup: OnceLock::new(),
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
    fn wakeup(&self) -> &Wakeup {
        self.wakeup.get_or_init(|| Wakeup::new(&self.root))
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
