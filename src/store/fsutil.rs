//! The filesystem steps the directory store is built from: private
//! directories, atomic file replacement, directory fsync and the store lock.
//!
//! Nothing here may leave a half-written file under its final name, or create
//! a file or directory that anyone but the owner can read.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::StoreError;

/// Every file the store writes holds values (or could), so all are private.
pub(crate) const FILE_MODE: u32 = 0o600;
pub(crate) const DIR_MODE: u32 = 0o700;

/// The temporary file [`write_atomic`] renames into place. One fixed name
/// per directory suffices because writes happen one at a time under the
/// exclusive lock; it starts with a dot, which no valid name component does,
/// and is short, so that the longest valid name can still be a file name.
const TEMP_NAME: &str = ".write.tmp";

/// Creates `path` and any missing parents with mode 0700, fsyncing each
/// parent that gained an entry so the new directory survives a power loss.
pub(crate) fn ensure_dir(path: &Path) -> Result<(), StoreError> {
    if path.is_dir() {
        return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        ensure_dir(parent)?;
    }
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => match parent {
            Some(parent) => fsync_dir(parent),
            None => Ok(()),
        },
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Makes the entries of directory `path` (creations, renames, removals)
/// durable.
pub(crate) fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| StoreError::io(path, e))
}

/// Replaces `path` with `bytes` atomically: a reader (or a crash) sees the
/// old file or the new one, never a mix. The file is created 0600 from the
/// start. The caller must hold the exclusive store lock (the temporary name
/// is fixed) and must fsync the directory afterwards to make the rename
/// durable; batches do that once per directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = path.with_file_name(TEMP_NAME);
    // A leftover from a killed writer: remove it so that `create_new` below
    // guarantees the file is ours and has our mode.
    remove_if_exists(&temp)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&temp)
        .map_err(|e| StoreError::io(&temp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io(&temp, e))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| StoreError::io(path, e))
}

/// Removes `path`; `Ok(false)` if it did not exist.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Removes the temporary file a killed writer may have left in `dir`.
pub(crate) fn remove_stale_temp(dir: &Path) -> Result<(), StoreError> {
    remove_if_exists(&dir.join(TEMP_NAME)).map(drop)
}

/// An advisory lock on the store's lock file, released when dropped.
///
/// Each lock opens its own descriptor: `flock` locks belong to an open file
/// description, so sharing one descriptor would let two threads of one
/// process hold the "exclusive" lock at once.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub(crate) fn exclusive(path: &Path) -> Result<Self, StoreError> {
        let file = open_lock_file(path)?;
        file.lock().map_err(|e| StoreError::io(path, e))?;
        Ok(Self { _file: file })
    }

    pub(crate) fn shared(path: &Path) -> Result<Self, StoreError> {
        let file = open_lock_file(path)?;
        file.lock_shared().map_err(|e| StoreError::io(path, e))?;
        Ok(Self { _file: file })
    }

    /// The shared lock if nobody holds the exclusive one; `None` if a
    /// writer holds it.
    pub(crate) fn try_shared(path: &Path) -> Result<Option<Self>, StoreError> {
        let file = open_lock_file(path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(StoreError::io(path, e)),
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}
