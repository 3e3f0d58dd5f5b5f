//! The etcd backend: one key per object under a prefix, the object's
//! resource version is etcd's mod revision, an apply is one transaction,
//! watches resume from the last seen revision. Secrets are encrypted before
//! they leave the process (see `crypt`).
//!
//! It must never store a Secret in plain text, never lose or repeat a watch
//! event across reconnects, and never print a value or a password.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType as EtcdEventType, GetOptions, KeyValue,
    TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::{OnceCell, mpsc};

use super::crypt::Keyring;
use super::{Event, EventType, Object, ObjectKey, Outcome, Put, StoreError, WatchReceiver};

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
#[derive(Clone)]
pub struct EtcdStore {
    opts: Arc<EtcdOptions>,
    client: Arc<OnceCell<Client>>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore").field("opts", &self.opts).finish()
    }
}

fn unavailable(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd {what}: {e}"))
}

async fn timed<T>(
    what: &str,
    f: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(unavailable(what, "timed out after 5 s")),
    }
}

fn check_part(part: &str, key: &ObjectKey) -> Result<(), StoreError> {
    let ok = !part.is_empty()
        && part.len() <= 253
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !part.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason: format!("{part:?} is not a valid name part"),
        })
    }
}

impl EtcdStore {
    pub fn new(opts: EtcdOptions) -> EtcdStore {
        EtcdStore {
            opts: Arc::new(opts),
            client: Arc::new(OnceCell::new()),
        }
    }

    async fn client(&self) -> Result<Client, StoreError> {
        let c = self
            .client
            .get_or_try_init(|| async {
                let mut o = ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
                if let Some((u, p)) = &self.opts.user {
                    o = o.with_user(u.clone(), p.clone());
                }
                if let Some(ca) = &self.opts.ca_pem {
                    let mut tls = etcd_client::TlsOptions::new()
                        .ca_certificate(etcd_client::Certificate::from_pem(ca));
                    if let Some((cert, key)) = &self.opts.client_cert_pem {
                        tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
                    }
                    o = o.with_tls(tls);
                }
                timed("connect", Client::connect(self.opts.endpoints.clone(), Some(o))).await
            })
            .await?;
        Ok(c.clone())
    }

    fn key_bytes(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        check_part(&key.kind, key)?;
        let ns = if key.namespace.is_empty() {
            "_cluster"
        } else {
            check_part(&key.namespace, key)?;
            &key.namespace
        };
        check_part(&key.name, key)?;
        Ok(format!("{}{}/{ns}/{}", self.opts.prefix, key.kind, key.name).into_bytes())
    }

    fn parse_key(&self, raw: &[u8]) -> Option<ObjectKey> {
        let s = std::str::from_utf8(raw).ok()?;
        let rest = s.strip_prefix(self.opts.prefix.as_str())?;
        let mut parts = rest.splitn(3, '/');
        let (kind, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
        let ns = if ns == "_cluster" { "" } else { ns };
        Some(ObjectKey::new(kind, ns, name))
    }

    fn seal(&self, key: &ObjectKey, etcd_key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if key.kind != "Secret" {
            return Ok(value.to_vec());
        }
        match &self.opts.keyring {
            Some(k) => k.seal(etcd_key, value),
            None => Err(StoreError::NeedsEncryptionKey { key: key.clone() }),
        }
    }

    fn unseal(&self, etcd_key: &[u8], value: &[u8]) -> Result<Vec<u8>, String> {
        if !Keyring::is_sealed(value) {
            return Ok(value.to_vec());
        }
        match &self.opts.keyring {
            Some(k) => k.open(etcd_key, value),
            None => Err("the value is encrypted; pass --encryption-key-file".into()),
        }
    }

    fn decode(&self, kv: &KeyValue) -> Option<Object> {
        let key = self.parse_key(kv.key())?;
        match self.unseal(kv.key(), kv.value()) {
            Ok(value) => Some(Object {
                key,
                resource_version: u64::try_from(kv.mod_revision()).unwrap_or(0),
                value,
            }),
            Err(why) => {
                tracing::warn!(object = %key, reason = %why, "cannot read an object from etcd; skipped");
                None
            }
        }
    }

    pub async fn apply(&self, puts: Vec<Put>) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::with_capacity(puts.len());
        for p in &puts {
            if !seen.insert(p.key.clone()) {
                return Err(StoreError::DuplicateKey { key: p.key.clone() });
            }
            keys.push(self.key_bytes(&p.key)?);
        }
        let mut kv = self.client().await?.kv_client();
        // Optimistic: read, decide, then commit only if nothing moved.
        for _attempt in 0..8 {
            let gets: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(k.clone(), None)).collect();
            let read = timed("read", kv.txn(etcd_client::Txn::new().and_then(gets))).await?;
            let mut current: Vec<Option<(i64, Vec<u8>)>> = Vec::with_capacity(puts.len());
            for (op, k) in read.op_responses().into_iter().zip(&keys) {
                let found = match op {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| {
                        let plain = self.unseal(k, kv.value()).unwrap_or_default();
                        (kv.mod_revision(), plain)
                    }),
                    _ => None,
                };
                current.push(found);
            }
            for (p, c) in puts.iter().zip(&current) {
                let actual = c.as_ref().map_or(0, |(r, _)| u64::try_from(*r).unwrap_or(0));
                if let Some(expected) = p.expected_version
                    && expected != actual
                {
                    return Err(StoreError::Conflict {
                        key: p.key.clone(),
                        expected,
                        actual,
                    });
                }
            }
            let mut compares = Vec::new();
            let mut ops = Vec::new();
            let mut outcomes = Vec::new();
            for ((p, c), k) in puts.iter().zip(&current).zip(&keys) {
                match c {
                    Some((rev, value)) => {
                        compares.push(Compare::mod_revision(k.clone(), CompareOp::Equal, *rev));
                        if *value == p.value {
                            outcomes.push((Outcome::Unchanged, u64::try_from(*rev).unwrap_or(0)));
                            continue;
                        }
                        outcomes.push((Outcome::Configured, 0));
                    }
                    None => {
                        compares.push(Compare::version(k.clone(), CompareOp::Equal, 0));
                        outcomes.push((Outcome::Created, 0));
                    }
                }
                ops.push(TxnOp::put(k.clone(), self.seal(&p.key, k, &p.value)?, None));
            }
            if ops.is_empty() {
                return Ok(puts.iter().zip(outcomes).map(|(p, (o, r))| (p.key.clone(), o, r)).collect());
            }
            let txn = etcd_client::Txn::new().when(compares).and_then(ops);
            let resp = timed("transaction", kv.txn(txn)).await?;
            if resp.succeeded() {
                let rev = resp
                    .header()
                    .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0));
                return Ok(puts
                    .iter()
                    .zip(outcomes)
                    .map(|(p, (o, r))| (p.key.clone(), o, if o == Outcome::Unchanged { r } else { rev }))
                    .collect());
            }
            // Someone changed one of the keys between our read and commit:
            // read again; a put with a precondition will now report Conflict.
        }
        Err(StoreError::Unavailable(
            "etcd: the objects kept changing during this apply; try again".into(),
        ))
    }

    pub async fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        let raw: Vec<Vec<u8>> = keys.iter().map(|k| self.key_bytes(k)).collect::<Result<_, _>>()?;
        let mut kv = self.client().await?.kv_client();
        let ops: Vec<TxnOp> = raw.iter().map(|k| TxnOp::delete(k.clone(), None)).collect();
        let resp = timed("delete", kv.txn(etcd_client::Txn::new().and_then(ops))).await?;
        Ok(resp
            .op_responses()
            .into_iter()
            .map(|op| matches!(op, TxnOpResponse::Delete(d) if d.deleted() > 0))
            .collect())
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        let k = self.key_bytes(key)?;
        let mut kv = self.client().await?.kv_client();
        let resp = timed("get", kv.get(k, None)).await?;
        Ok(resp.kvs().first().and_then(|kv| self.decode(kv)))
    }

    pub async fn list(&self, kind: Option<&str>, namespace: Option<&str>) -> Result<(Vec<Object>, u64), StoreError> {
        let prefix = match (kind, namespace) {
            (Some(k), Some(ns)) => format!("{}{k}/{ns}/", self.opts.prefix),
            (Some(k), None) => format!("{}{k}/", self.opts.prefix),
            (None, _) => self.opts.prefix.clone(),
        };
        let mut kv = self.client().await?.kv_client();
        let resp = timed("list", kv.get(prefix, Some(GetOptions::new().with_prefix()))).await?;
        let rev = resp.header().map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0));
        let mut objects: Vec<Object> = resp
            .kvs()
            .iter()
            .filter_map(|kv| self.decode(kv))
            .filter(|o| namespace.is_none_or(|ns| o.key.namespace == ns))
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((objects, rev))
    }

    /// Every event after `from_revision`, in order, once; reconnects with
    /// backoff from the last revision seen. After a compaction it sends
    /// `Compacted` and ends: the caller lists again.
    pub async fn watch(&self, from_revision: u64) -> Result<WatchReceiver, StoreError> {
        let (tx, rx) = mpsc::channel(1024);
        let store = self.clone();
        tokio::spawn(async move {
            let mut last = from_revision;
            let mut backoff = Duration::from_millis(100);
            loop {
                match store.watch_once(&tx, &mut last).await {
                    Ok(()) => return,
                    Err(StoreError::Compacted { revision }) => {
                        let _ = tx.send(Err(StoreError::Compacted { revision })).await;
                        return;
                    }
                    Err(e) => {
                        if tx.is_closed() {
                            return;
                        }
                        tracing::warn!(error = %e, "etcd watch interrupted; reconnecting from revision {}", last + 1);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        Ok(rx)
    }

    /// One watch stream; Ok(()) when the receiver is gone.
    async fn watch_once(
        &self,
        tx: &mpsc::Sender<Result<Event, StoreError>>,
        last: &mut u64,
    ) -> Result<(), StoreError> {
        let mut wc = self.client().await?.watch_client();
        let start = i64::try_from(*last + 1).unwrap_or(i64::MAX);
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(start)
            .with_progress_notify();
        let mut stream = timed("watch", wc.watch(self.opts.prefix.clone(), Some(opts))).await?;
        loop {
            let msg = tokio::select! {
                m = stream.message() => m.map_err(|e| unavailable("watch", e))?,
                _ = tx.closed() => return Ok(()),
            };
            let Some(resp) = msg else {
                return Err(unavailable("watch", "stream ended"));
            };
            if resp.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    revision: u64::try_from(resp.compact_revision()).unwrap_or(0),
                });
            }
            if resp.canceled() {
                return Err(unavailable("watch", format!("canceled: {}", resp.cancel_reason())));
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                // A stream starts at `last + 1` and etcd sends revisions in
                // order (all events of one revision in one response).
                let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
                let (event_type, object) = match ev.event_type() {
                    EtcdEventType::Put => {
                        let t = if kv.create_revision() == kv.mod_revision() {
                            EventType::Added
                        } else {
                            EventType::Modified
                        };
                        (t, self.decode(kv))
                    }
                    EtcdEventType::Delete => {
                        let obj = ev.prev_kv().and_then(|p| self.decode(p)).or_else(|| {
                            self.parse_key(kv.key()).map(|key| Object {
                                key,
                                resource_version: 0,
                                value: Vec::new(),
                            })
                        });
                        (EventType::Deleted, obj)
                    }
                };
                *last = revision;
                let Some(mut object) = object else { continue };
                object.resource_version = revision;
                if tx
                    .send(Ok(Event {
                        revision,
                        event_type,
                        object,
                    }))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}
