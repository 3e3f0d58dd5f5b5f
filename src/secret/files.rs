//! File-mounted certificates (Gateway `tls.serverCertificate`,
//! `privateKey`, `caCertificates`, `caCrl`): read, watched, and handed to
//! SDS as if they were a Secret, so validation, last-good and the push log
//! are the same as for `credentialName`.
//!
//! Changes wake the control loop through inotify on the files' directories
//! (`watch.rs`), with a slow poll kept as a fallback for file systems that
//! do not report changes. What changed is decided by a cheap stat of each
//! path (following symlinks, so the Kubernetes `..data` symlink swap is
//! seen) and a re-read only when the file's identity or times change. An
//! unreadable file never removes a good credential: the previous version
//! keeps serving.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use tokio::time::Instant;

use super::sds::SecretVersion;
pub use super::sds::{FILE_CERT_PREFIX, FILE_ROOT_PREFIX};
use super::watch::DirWatch;
use crate::config::Secret;
use crate::config::gateway::{Gateway, ServerTls};
use crate::config::secret::SecretBytes;

/// After an inotify wake, how long to let a burst of changes (a writer that
/// truncates then writes, a symlink swap in steps) settle before reading.
const SETTLE: Duration = Duration::from_millis(5);
/// How soon to look again when files moved while being read.
const RECHECK: Duration = Duration::from_millis(10);
/// The fallback poll while inotify covers every path: only for file
/// systems that do not report changes (some network mounts).
const SLOW_POLL: Duration = Duration::from_secs(10);
/// The poll when inotify is unavailable or a directory could not be watched.
const FALLBACK_POLL: Duration = Duration::from_secs(1);

/// The SDS resource a server's credential comes from: its `credentialName`,
/// or `file-cert:CERT~KEY` for file-mounted certificates.
pub fn resource_name(tls: &ServerTls) -> Option<String> {
    if let Some(name) = tls.credential() {
        return Some(name.to_owned());
    }
    match (&tls.server_certificate, &tls.private_key) {
        (Some(c), Some(k)) => Some(format!("{FILE_CERT_PREFIX}{c}~{k}")),
        _ => None,
    }
}

/// The files one server reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileRef {
    cert: String,
    key: String,
    ca: Option<String>,
    crl: Option<String>,
}

impl FileRef {
    fn paths(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![("cert", self.cert.as_str()), ("key", self.key.as_str())];
        if let Some(ca) = &self.ca {
            v.push(("cacert", ca));
        }
        if let Some(crl) = &self.crl {
            v.push(("crl", crl));
        }
        v
    }
}

/// What identifies one version of a file without reading it.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(path: &str) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// The watched files of every file-mounted server, as synthetic secrets.
#[derive(Debug, Default)]
pub struct FileCredentials {
    refs: BTreeMap<String, FileRef>,
    stamps: BTreeMap<String, Vec<Option<Stamp>>>,
    current: BTreeMap<String, SecretVersion>,
    next_version: u64,
    /// Made with the first file-mounted server: no inotify instance (and
    /// no thread) for a gateway that has none.
    watch: Option<DirWatch>,
    /// Some files moved while being read: look again soon.
    unsettled: bool,
    /// An inotify wake not yet followed by a poll.
    woken: bool,
    last_poll: Option<Instant>,
}

impl FileCredentials {
    /// Sets the files to watch from the selected Gateways.
    pub fn set_gateways(&mut self, gateways: &[&Gateway]) {
        let mut refs = BTreeMap::new();
        for g in gateways {
            for s in &g.spec.servers {
                let Some(tls) = &s.tls else { continue };
                if tls.credential().is_some() {
                    continue;
                }
                if let (Some(cert), Some(key)) = (&tls.server_certificate, &tls.private_key)
                    && let Some(name) = resource_name(tls)
                {
                    refs.insert(
                        name,
                        FileRef {
                            cert: cert.clone(),
                            key: key.clone(),
                            ca: tls.ca_certificates.clone(),
                            crl: tls.ca_crl.clone(),
                        },
                    );
                }
            }
        }
        if refs != self.refs {
            self.stamps.retain(|k, _| refs.contains_key(k));
            self.current.retain(|k, _| refs.contains_key(k));
            self.refs = refs;
            self.rewatch();
        }
    }

    /// Points the directory watch at the current paths (and their symlink
    /// targets, which move with every `..data` swap).
    fn rewatch(&mut self) {
        if self.refs.is_empty() {
            self.watch = None;
            return;
        }
        let watch = self.watch.get_or_insert_with(DirWatch::new);
        watch.set(
            self.refs
                .values()
                .flat_map(|r| r.paths().into_iter().map(|(_, p)| p)),
        );
    }

    /// Resolves when the files may have changed and [`Self::poll`] should
    /// look: an inotify event (after [`SETTLE`]), the re-check after a
    /// swap caught half-way, or the fallback poll. Never resolves while no
    /// server reads files. Cancel-safe: a wake taken by a call that was
    /// cancelled is kept for the next call until `poll` runs.
    pub async fn changed(&mut self) {
        let Some(watch) = &self.watch else {
            return std::future::pending().await;
        };
        let every = if self.unsettled {
            RECHECK
        } else if watch.complete() {
            SLOW_POLL
        } else {
            FALLBACK_POLL
        };
        let since = self.last_poll.unwrap_or_else(Instant::now);
        if !self.woken {
            tokio::select! {
                () = watch.changed() => self.woken = true,
                () = tokio::time::sleep_until(since + every) => return,
            }
        }
        tokio::time::sleep(SETTLE).await;
    }

    /// Re-reads files that changed; returns the synthetic secrets that did.
    pub fn poll(&mut self) -> Vec<String> {
        self.last_poll = Some(Instant::now());
        self.unsettled = false;
        self.woken = false;
        let mut changed = Vec::new();
        for (name, r) in &self.refs {
            let stamps: Vec<Option<Stamp>> = r.paths().iter().map(|(_, p)| stamp(p)).collect();
            if self.stamps.get(name) == Some(&stamps) {
                continue;
            }
            let mut secret = Secret::new(name, "", "Opaque");
            let mut unreadable = None;
            for (key, path) in r.paths() {
                match std::fs::read(path) {
                    Ok(bytes) => {
                        secret.data.insert(key.into(), SecretBytes(bytes));
                    }
                    Err(e) => {
                        unreadable = Some(format!("{path}: {e}"));
                        break;
                    }
                }
            }
            if let Some(why) = unreadable {
                // Keep the stamps unchanged so the next poll tries again;
                // the last good credential keeps serving meanwhile.
                tracing::warn!(target: "sds", "RESOURCE NAME:{name}, EVENT: cannot read {why}; the last good credential keeps serving");
                continue;
            }
            // A swap while we read (the `..data` symlink moving between the
            // certificate and the key) would give half old, half new files:
            // a spurious rejection. Take them only if nothing moved; the
            // next poll reads the new version whole.
            let after: Vec<Option<Stamp>> = r.paths().iter().map(|(_, p)| stamp(p)).collect();
            if after != stamps {
                self.unsettled = true;
                continue;
            }
            self.stamps.insert(name.clone(), stamps);
            let same = self
                .current
                .get(name)
                .is_some_and(|c| c.secret.data == secret.data);
            if !same {
                self.next_version += 1;
                self.current.insert(
                    name.clone(),
                    SecretVersion {
                        resource_version: self.next_version,
                        secret: std::sync::Arc::new(secret),
                    },
                );
                changed.push(name.clone());
            }
        }
        if !changed.is_empty() {
            self.rewatch();
        }
        changed
    }

    /// One synthetic secret.
    pub fn get(&self, name: &str) -> Option<&SecretVersion> {
        self.current.get(name)
    }

    /// The current synthetic secrets, by resource name.
    pub fn secrets(&self) -> impl Iterator<Item = (&String, &SecretVersion)> {
        self.current.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }
}
