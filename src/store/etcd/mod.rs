//! The etcd backend: one key per object under a prefix, the object's
//! resource version is etcd's mod revision, an apply is one transaction,
//! watches resume from the last seen revision. Secrets are encrypted before
//! they leave the process (see `crypt`).
//!
//! It speaks etcd's v3 gRPC API through the generated stubs of the
//! `etcd-rpc` crate, with a thin client of its own on top: `client` (one
//! member: TLS, login, one call with a deadline), `members` (failover and
//! retry while the cluster elects a leader), `keys` (object keys and
//! sealing), `write` (apply and delete), `watch` (resume and compaction).
//!
//! It must never store a Secret in plain text, never lose or repeat a watch
//! event across reconnects, and never print a value or a password.

mod client;
mod keys;
mod members;
mod watch;
mod write;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::OnceCell;

use self::client::{Member, prefix_end, range, timed};
use super::crypt::Keyring;
use super::{Object, ObjectKey, StoreError};

/// How to reach and use an etcd cluster.
#[derive(Clone, Default)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    /// Key prefix, e.g. `/gatehouse/`; several installations can share a cluster.
    pub prefix: String,
    pub ca_pem: Option<Vec<u8>>,
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub user: Option<(String, String)>,
    pub keyring: Option<Arc<Keyring>>,
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("tls", &self.ca_pem.is_some())
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("keyring", &self.keyring)
            .finish()
    }
}

/// One call's deadline: an unreachable cluster must not hang a command.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in an etcd cluster.
///
/// It keeps one connection per member rather than one channel balancing
/// over all of them: a balancer keeps sending a share of the calls to a
/// member that is down (etcdv3/etcd-client#39), so one stopped member would
/// fail every third command. Calls go to the member that answered last and
/// move on to the next one when it cannot be reached (`members`).
#[derive(Clone)]
pub struct EtcdStore {
    opts: Arc<EtcdOptions>,
    clients: Arc<Vec<OnceCell<Member>>>,
    /// Index of the member that answered last.
    preferred: Arc<AtomicUsize>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("opts", &self.opts)
            .finish()
    }
}

impl EtcdStore {
    pub fn new(opts: EtcdOptions) -> EtcdStore {
        let clients = (0..opts.endpoints.len().max(1))
            .map(|_| OnceCell::new())
            .collect();
        EtcdStore {
            opts: Arc::new(opts),
            clients: Arc::new(clients),
            preferred: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        let k = self.key_bytes(key)?;
        let (_, resp) = self
            .kv_read(|m| {
                let req = range(k.clone());
                async move { timed("get", m.kv().range(req)).await }
            })
            .await?;
        let Some(kv) = resp.kvs.first() else {
            return Ok(None);
        };
        // One object asked for by name: if it cannot be read, say why
        // rather than "not found" (a listing skips it with a warning).
        let value = self
            .unseal(&kv.key, &kv.value)
            .map_err(|why| StoreError::BadUrl(format!("{key}: cannot read it: {why}")))?;
        Ok(Some(Object {
            key: key.clone(),
            resource_version: u64::try_from(kv.mod_revision).unwrap_or(0),
            value,
        }))
    }

    pub async fn list(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        let prefix = match (kind, namespace) {
            (Some(k), Some(ns)) => format!("{}{k}/{ns}/", self.opts.prefix),
            (Some(k), None) => format!("{}{k}/", self.opts.prefix),
            (None, _) => self.opts.prefix.clone(),
        };
        let (_, resp) = self
            .kv_read(|m| {
                let mut req = range(prefix.clone().into_bytes());
                req.range_end = prefix_end(&req.key);
                async move { timed("list", m.kv().range(req)).await }
            })
            .await?;
        let rev = resp
            .header
            .map_or(0, |h| u64::try_from(h.revision).unwrap_or(0));
        let mut objects: Vec<Object> = resp
            .kvs
            .iter()
            .filter_map(|kv| self.decode(kv))
            .filter(|o| namespace.is_none_or(|ns| o.key.namespace == ns))
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((objects, rev))
    }
}
