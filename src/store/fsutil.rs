//! The filesystem steps the directory store is built from: private
//! directories, atomic file replacement, directory fsync and the store lock.
//!
//! Nothing here may leave a half-written file under its final name, or create
//! a file or directory that anyone but the owner can read.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Every file the store writes holds values (or could), so all are private.
pub(crate) const FILE_MODE: u32 = 0o600;
pub(crate) const DIR_MODE: u32 = 0o700;

/// Suffix of the temporary files [`write_atomic`] renames into place; they
/// also start with a dot, which no valid name component does.
const TEMP_SUFFIX: &str = ".tmp";

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

fn temp_path(path: &Path) -> Result<PathBuf, StoreError> {
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::corrupt(path, "not a file path"))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(TEMP_SUFFIX);
    Ok(path.with_file_name(temp))
}

/// Replaces `path` with `bytes` atomically: a reader (or a crash) sees the
/// old file or the new one, never a mix. The file is created 0600 from the
/// start. The caller must hold the exclusive store lock (the temporary name
/// is fixed) and must fsync the directory afterwards to make the rename
/// durable; batches do that once per directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = temp_path(path)?;
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

/// Removes the temporary files a killed writer left in `dir`.
pub(crate) fn remove_stale_temps(dir: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
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
