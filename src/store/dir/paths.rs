//! Which names may become paths, and walking the objects directory.
//!
//! Names come from callers that validate Kubernetes names already; this is
//! the last line of defence and must never let a key or filter name a path
//! outside the objects directory, or one of the store's own files.

use std::path::{Path, PathBuf};

use crate::store::{ObjectKey, StoreError};

/// The namespace directory of cluster-scoped objects; no valid namespace
/// starts with `_`.
pub(super) const CLUSTER_SCOPE_DIR: &str = "_cluster";

/// Refuses anything that could escape the objects directory or collide with
/// the store's own names. Callers validate Kubernetes names; this is the
/// last line of defence.
pub(super) fn validate_key(key: &ObjectKey) -> Result<(), StoreError> {
    let check = |what: &str, value: &str, may_be_empty: bool| {
        component_problem(what, value, may_be_empty).map_or(Ok(()), |reason| {
            Err(StoreError::InvalidKey {
                key: format!("{:?}", key.to_string()),
                reason,
            })
        })
    };
    check("kind", &key.kind, false)?;
    check("namespace", &key.namespace, true)?;
    check("name", &key.name, false)
}

/// Why `value` cannot be a path component of an object file, if it cannot.
fn component_problem(what: &str, value: &str, may_be_empty: bool) -> Option<String> {
    if value.is_empty() {
        (!may_be_empty).then(|| format!("{what} is empty"))
    } else if value.len() > 253 {
        Some(format!("{what} is longer than 253 bytes"))
    } else if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some(format!("{what} must start with a letter or digit"))
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        Some(format!(
            "{what} may hold only letters, digits, '-', '.' and '_'"
        ))
    } else {
        None
    }
}

/// Checks a `list` filter the way [`validate_key`] checks keys.
pub(super) fn validate_filter(what: &str, value: Option<&str>) -> Result<(), StoreError> {
    match value.and_then(|v| component_problem(what, v, what == "namespace")) {
        Some(reason) => Err(StoreError::InvalidKey {
            key: format!("{what} filter {:?}", value.unwrap_or_default()),
            reason,
        }),
        None => Ok(()),
    }
}

/// The subdirectories of `dir`, or just `only` if given (and present).
pub(super) fn subdirs(dir: &Path, only: Option<&str>) -> Result<Vec<PathBuf>, StoreError> {
    match only {
        Some(name) => {
            let path = dir.join(name);
            Ok(if path.is_dir() { vec![path] } else { vec![] })
        }
        None => entries(dir, true),
    }
}

/// The entries of `dir` that are directories (or files), skipping
/// temporary files; a missing `dir` is empty.
pub(super) fn entries(dir: &Path, dirs: bool) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_dir = entry
            .file_type()
            .map_err(|e| StoreError::io(entry.path(), e))?
            .is_dir();
        if name.starts_with('.') || is_dir != dirs {
            continue;
        }
        paths.push(entry.path());
    }
    Ok(paths)
}
