//! Writing PKI files to disk: every file lands whole (written beside its
//! target, synced, then renamed or linked into place) so a gateway watching
//! the directory never reads half a certificate.
//!
//! Private keys are created with mode 0600 by `open(2)` itself and their
//! directories with 0700; this module must never write key bytes into a file
//! that was opened with a wider mode, nor chmod a key after writing it.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::PkiError;

/// Mode of files holding private keys.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificates, chains, CRLs and the revocation index.
pub(crate) const PUBLIC_MODE: u32 = 0o644;
/// Mode of `private/` directories.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;

/// Whether an existing target may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overwrite {
    Refuse,
    Replace,
}

pub(crate) fn io_error(action: &'static str, path: &Path, source: io::Error) -> PkiError {
    PkiError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` and its parents (mode 0755 minus umask).
pub(crate) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| io_error("create directory", dir, e))
}

/// Creates a `private/` directory with mode 0700. An existing one that is
/// open to group or others is closed down before any key goes into it.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    if let Some(parent) = dir.parent() {
        create_dir(parent)?;
    }
    match DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::metadata(dir).map_err(|e| io_error("inspect", dir, e))?;
            if !meta.is_dir() {
                return Err(io_error(
                    "create directory",
                    dir,
                    io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way"),
                ));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))
                    .map_err(|e| io_error("restrict permissions of", dir, e))?;
            }
            Ok(())
        }
        Err(e) => Err(io_error("create directory", dir, e)),
    }
}

/// Writes `contents` to `path` with `mode`, atomically. With
/// [`Overwrite::Refuse`] an existing file is left alone and reported as
/// [`PkiError::Exists`].
pub(crate) fn write_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    overwrite: Overwrite,
) -> Result<(), PkiError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io_error("write", path, io::ErrorKind::InvalidInput.into()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        crate::crypto::hex(&crate::crypto::random_bytes::<6>()?)
    ));

    let result = write_new(&tmp, contents, mode).and_then(|()| match overwrite {
        Overwrite::Replace => fs::rename(&tmp, path).map_err(|e| io_error("replace", path, e)),
        // link(2) refuses to replace an existing name, so nothing is clobbered
        // even if the file appeared after the caller checked.
        Overwrite::Refuse => match fs::hard_link(&tmp, path) {
            Ok(()) => {
                let _ = fs::remove_file(&tmp);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(PkiError::Exists {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(io_error("create", path, e)),
        },
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_new(tmp: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| io_error("create", tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", tmp, e))
}

/// Reads a whole text file, naming it in the error.
pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| io_error("read", path, e))
}

/// Refuses to go on when `path` exists and `force` is off.
pub(crate) fn refuse_existing(path: &Path, force: bool) -> Result<(), PkiError> {
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(PkiError::Exists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// `Overwrite` for a `force` flag.
pub(crate) fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    }
}

/// A path for messages: the path as the user gave it.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}
