//! Wakes the control loop when a directory holding file-mounted
//! certificates changes (inotify, through the `notify` crate).
//!
//! It watches directories, not files: the kubelet updates a Secret volume by
//! renaming a new `..data` symlink over the old one, which a watch on the
//! old file would never see. For each path it watches the directory the
//! path is in and the directory its symlinks resolve to (an edit in place).
//! It only says "look again"; deciding what changed is `files.rs`'s job.
//! It must never read the files itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// The directories watched for one set of file paths.
pub struct DirWatch {
    /// `None`: inotify is unavailable here; the caller polls faster.
    watcher: Option<notify::RecommendedWatcher>,
    dirs: BTreeSet<PathBuf>,
    /// Paths whose directory could not be watched (it may not exist yet).
    unwatched: bool,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatch")
            .field("dirs", &self.dirs)
            .field("inotify", &self.watcher.is_some())
            .finish()
    }
}

impl DirWatch {
    pub fn new() -> DirWatch {
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            match e {
                // Opening a file to read it is not a change (and our own
                // reads would wake us).
                Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
                // An error may mean lost events (queue overflow): look again.
                _ => w.notify_one(),
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch file-mounted certificates with inotify; polling them instead");
                None
            }
        };
        DirWatch {
            watcher,
            dirs: BTreeSet::new(),
            unwatched: false,
            wake,
        }
    }

    /// Watches the directories of `paths` (and of their symlink targets),
    /// and stops watching any other.
    pub fn set<'a>(&mut self, paths: impl Iterator<Item = &'a str>) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let mut wanted = BTreeSet::new();
        for p in paths {
            let p = Path::new(p);
            wanted.extend(p.parent().map(Path::to_path_buf));
            if let Ok(real) = std::fs::canonicalize(p) {
                wanted.extend(real.parent().map(Path::to_path_buf));
            }
        }
        for gone in self.dirs.difference(&wanted) {
            // A deleted directory (an old `..2024_…` version) has already
            // lost its watch; nothing to undo then.
            let _ = watcher.unwatch(gone);
        }
        let mut watched = BTreeSet::new();
        self.unwatched = false;
        for dir in wanted {
            if self.dirs.contains(&dir) {
                watched.insert(dir);
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot watch; polling it");
                    self.unwatched = true;
                }
            }
        }
        self.dirs = watched;
    }

    /// Whether every path is covered by a watch (else poll more often).
    pub fn complete(&self) -> bool {
        self.watcher.is_some() && !self.unwatched
    }

    /// Resolves after the next change in a watched directory (or at once if
    /// one happened since the last call).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::DirWatch;

    #[tokio::test]
    async fn a_symlink_swap_in_the_directory_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/tls.crt"), "one").unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/tls.crt", d.join("tls.crt")).unwrap();
        let path = d.join("tls.crt").display().to_string();
        let mut w = DirWatch::new();
        w.set(std::iter::once(path.as_str()));
        assert!(w.complete());
        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/tls.crt"), "two").unwrap();
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        // Take the wake-ups of the preparation, so only the swap can wake.
        let _ = tokio::time::timeout(Duration::from_millis(200), w.changed()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = tokio::time::timeout(Duration::from_millis(10), w.changed()).await;
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), w.changed())
            .await
            .expect("the swap wakes the watch");
    }

    #[test]
    fn a_missing_directory_is_reported_as_not_watched() {
        let mut w = DirWatch::new();
        w.set(std::iter::once("/nonexistent-gatehouse-dir/tls.crt"));
        assert!(!w.complete());
    }
}
