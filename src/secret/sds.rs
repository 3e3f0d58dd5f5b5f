//! Per-credential state for the running gateway: which secrets the Gateways
//! reference, what was last pushed, what was rejected and why.
//!
//! Last good wins: a bad update is logged and shown as REJECTED while the
//! previous good credential keeps serving. A deleted secret stops serving.
//! The log lines use the walkthrough's words, one line per resource.

use std::collections::{BTreeMap, BTreeSet};

use super::credential::{self, CertInfo, CredentialError, ServerCredential, TrustBundle, now_unix};
use super::events::Events;
use super::expiry;
use crate::config::Secret;

/// What the admin view says about a credential resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Referenced, never seen good yet.
    Warming,
    /// Serving the newest version of its secret.
    Active,
    /// The newest version was refused; the last good one (if any) serves.
    Rejected(String),
    /// Active, and its certificate's `notAfter` is within the expiry
    /// warning window (see `secret::expiry`). Only rows carry it.
    Expiring,
    /// Active, past its certificate's `notAfter`, and still serving (as
    /// Envoy does). Only rows carry it.
    Expired,
}

/// The two kinds of resource SDS pushes, as istioctl names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    KeyCertPair,
    RootCert,
}

/// One credential resource and its state.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    /// (secret name, resource version) the state was computed from.
    pub source: Option<(String, u64)>,
    pub good: Option<T>,
    pub status: Status,
}

impl<T> Default for Entry<T> {
    fn default() -> Self {
        Entry {
            source: None,
            good: None,
            status: Status::Warming,
        }
    }
}

/// A secret as the control loop sees it: its version and its parsed form.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    pub resource_version: u64,
    /// Shared with the control loop's state: cloning a version is cheap.
    pub secret: std::sync::Arc<Secret>,
}

/// What the Gateways want: credential names and the hosts each must cover.
pub type Wanted = BTreeMap<String, BTreeSet<String>>;

/// A row of `proxy-config secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub resource: String,
    pub kind: ResourceKind,
    pub status: Status,
    pub certs: Vec<CertInfo>,
}

/// All credential state of one gateway process.
#[derive(Debug, Default)]
pub struct Sds {
    pub certs: BTreeMap<String, Entry<ServerCredential>>,
    pub roots: BTreeMap<String, Entry<TrustBundle>>,
    /// `--expiry-warning` in seconds: how long before its `notAfter` a
    /// serving certificate's row says EXPIRING (0: never).
    pub expiry_warning_secs: i64,
    /// Where pushes, rejections and removals are reported: the log, the
    /// metrics, and the last ones for the admin view.
    pub events: Events,
}

/// Prefix of SDS resource names for file-mounted certificates (Istio's spelling).
pub const FILE_CERT_PREFIX: &str = "file-cert:";
/// Prefix of the matching client-CA resource.
pub const FILE_ROOT_PREFIX: &str = "file-root:";

/// The name of a credential's client-CA resource: `<name>-cacert` (also
/// the Secret it may come from), or `file-root:...` for file mounts.
pub fn cacert_name(credential: &str) -> String {
    match credential.strip_prefix(FILE_CERT_PREFIX) {
        Some(rest) => format!("{FILE_ROOT_PREFIX}{rest}"),
        None => format!("{credential}-cacert"),
    }
}

impl Sds {
    /// Brings every wanted credential up to date with the secrets. Returns
    /// the credentials whose state changed.
    pub fn refresh(
        &mut self,
        secrets: &BTreeMap<String, SecretVersion>,
        wanted: &Wanted,
    ) -> Vec<String> {
        self.certs.retain(|k, _| wanted.contains_key(k));
        self.roots.retain(|k, _| wanted.contains_key(k));
        self.refresh_names(&|n: &str| secrets.get(n).cloned(), wanted, wanted.keys())
    }

    /// As [`refresh`](Self::refresh) for the credentials that secrets named
    /// in `changed_secrets` feed (`X` and `X-cacert` feed `X`): a rotation
    /// costs the credentials it touches, not every credential.
    pub fn refresh_changed(
        &mut self,
        secret: &dyn Fn(&str) -> Option<SecretVersion>,
        wanted: &Wanted,
        changed_secrets: &[String],
    ) -> Vec<String> {
        let mut names: Vec<&String> = Vec::new();
        for s in changed_secrets {
            let base = s.strip_suffix("-cacert").unwrap_or(s);
            for candidate in [s.as_str(), base] {
                if let Some((k, _)) = wanted.get_key_value(candidate)
                    && !names.contains(&k)
                {
                    names.push(k);
                }
            }
        }
        self.refresh_names(secret, wanted, names.into_iter())
    }

    fn refresh_names<'a>(
        &mut self,
        secret: &dyn Fn(&str) -> Option<SecretVersion>,
        wanted: &Wanted,
        names: impl Iterator<Item = &'a String>,
    ) -> Vec<String> {
        let mut changed = Vec::new();
        let now = now_unix();
        for name in names {
            let Some(hosts) = wanted.get(name) else {
                continue;
            };
            let own = secret(name);
            let cert_changed = self.refresh_cert(name, hosts, own.as_ref(), now);
            let ca_name = cacert_name(name);
            // `<name>-cacert` wins over a CA inside the secret itself.
            let source = match secret(&ca_name) {
                Some(s) => Some((ca_name.clone(), s)),
                None => own
                    .filter(|s| {
                        credential::CA_KEYS
                            .iter()
                            .any(|k| s.secret.value(k).is_some())
                    })
                    .map(|s| (name.clone(), s)),
            };
            let root_changed =
                self.refresh_root(name, &ca_name, source.as_ref().map(|(n, s)| (n.clone(), s)));
            if cert_changed || root_changed {
                changed.push(name.clone());
            }
        }
        changed
    }

    fn refresh_cert(
        &mut self,
        name: &str,
        hosts: &BTreeSet<String>,
        secret: Option<&SecretVersion>,
        now: i64,
    ) -> bool {
        let entry = self.certs.entry(name.to_owned()).or_default();
        let Some(sv) = secret else {
            if entry.good.is_some() || entry.source.is_some() {
                self.events.removed(
                    name,
                    "secret deleted",
                    "new handshakes for its servers are refused",
                );
                *entry = Entry::default();
                return true;
            }
            return false;
        };
        let source = Some((name.to_owned(), sv.resource_version));
        if entry.source == source {
            return false;
        }
        entry.source = source;
        if hosts.is_empty() && credential::secret_server_credential(&sv.secret, now).is_none() {
            // Wanted by DestinationRules only (no Gateway host to cover):
            // a CA-only Secret for SIMPLE origination has no key pair to
            // push, and that is no fault (`secret::upstream` says what a
            // MUTUAL rule misses); a pair pushed before stays the last good.
            if entry.good.is_none() {
                entry.status = Status::Warming;
            }
            return true;
        }
        let result = match credential::secret_server_credential(&sv.secret, now) {
            None => Err(CredentialError {
                field: "cert".into(),
                reason: "the secret has no cert/key (or tls.crt/tls.key) pair".into(),
            }),
            Some(r) => {
                r.and_then(
                    |c| match hosts.iter().find(|h| *h != "*" && !c.leaf.covers(h)) {
                        Some(h) => Err(CredentialError {
                            field: "cert".into(),
                            reason: format!(
                                "the certificate does not cover host {h} (its names: {})",
                                c.leaf.names().join(", ")
                            ),
                        }),
                        None => Ok(c),
                    },
                )
            }
        };
        match result {
            Ok(c) => {
                entry.good = Some(c);
                entry.status = Status::Active;
                self.events.pushed(name, "pushed key/cert pair to proxy");
                true
            }
            Err(e) => {
                let why = e.to_string();
                self.events.rejected(name, name, &why);
                entry.status = Status::Rejected(why);
                true
            }
        }
    }

    fn refresh_root(
        &mut self,
        name: &str,
        ca_name: &str,
        source: Option<(String, &SecretVersion)>,
    ) -> bool {
        let entry = self.roots.entry(name.to_owned()).or_default();
        let Some((secret_name, sv)) = source else {
            if entry.good.is_some() {
                self.events.removed(
                    ca_name,
                    "root cert removed",
                    "new handshakes for its MUTUAL servers are refused",
                );
                *entry = Entry::default();
                return true;
            }
            return false;
        };
        let src = Some((secret_name.clone(), sv.resource_version));
        if entry.source == src {
            return false;
        }
        entry.source = src;
        match credential::secret_trust_bundle(&sv.secret) {
            Some(Ok(t)) => {
                entry.good = Some(t);
                entry.status = Status::Active;
                self.events.pushed(ca_name, "pushed root cert to proxy");
            }
            Some(Err(e)) => {
                let why = e.to_string();
                self.events.rejected(ca_name, &secret_name, &why);
                entry.status = Status::Rejected(why);
            }
            None => {
                let why = "the secret has no cacert or ca.crt".to_owned();
                self.events.rejected(ca_name, &secret_name, &why);
                entry.status = Status::Rejected(why);
            }
        }
        true
    }

    pub fn server_credential(&self, name: &str) -> Option<&ServerCredential> {
        self.certs.get(name).and_then(|e| e.good.as_ref())
    }

    pub fn trust(&self, name: &str) -> Option<&TrustBundle> {
        self.roots.get(name).and_then(|e| e.good.as_ref())
    }

    /// The rows of `proxy-config secret`: never key material.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .certs
            .keys()
            .chain(self.roots.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .flat_map(|name| self.rows_of(name))
            .collect();
        rows.sort_by(|a, b| (a.kind, &a.resource).cmp(&(b.kind, &b.resource)));
        rows
    }

    /// The rows of one credential: its key/cert pair, and its root cert
    /// when it has one.
    pub fn rows_of(&self, name: &str) -> Vec<Row> {
        let mut rows = Vec::new();
        if let Some(e) = self.certs.get(name) {
            let status = match (&e.status, &e.good) {
                (Status::Active, Some(c)) => {
                    match expiry::classify(c.leaf.not_after, now_unix(), self.expiry_warning_secs) {
                        expiry::Expiry::Valid => Status::Active,
                        expiry::Expiry::Expiring => Status::Expiring,
                        expiry::Expiry::Expired => Status::Expired,
                    }
                }
                (other, _) => other.clone(),
            };
            rows.push(Row {
                resource: name.to_owned(),
                kind: ResourceKind::KeyCertPair,
                status,
                certs: e.good.iter().map(|c| c.leaf.clone()).collect(),
            });
        }
        if let Some(e) = self.roots.get(name)
            && (e.source.is_some() || e.good.is_some())
        {
            rows.push(Row {
                resource: cacert_name(name),
                kind: ResourceKind::RootCert,
                status: e.status.clone(),
                certs: e.good.iter().flat_map(|t| t.info.clone()).collect(),
            });
        }
        rows
    }
}
