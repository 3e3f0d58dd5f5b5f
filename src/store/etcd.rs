//! The etcd backend: one key per object under a prefix, the object's
//! resource version is etcd's mod revision, an apply is one transaction,
//! watches resume from the last seen revision. Secrets are encrypted before
//! they leave the process (see `crypt`).
//!
//! It must never store a Secret in plain text, never lose or repeat a watch
//! event across reconnects, and never print a value or a password.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType as EtcdEventType, GetOptions, KeyValue,
    KvClient, TxnOp, TxnOpResponse, WatchOptions,
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

/// How one watch stream ended.
enum WatchEnd {
    /// The stream broke after its member confirmed it: resume elsewhere.
    Broken(StoreError),
    /// Tell the caller and stop: no member answers, or history is compacted.
    Final(StoreError),
}

/// A store in an etcd cluster.
///
/// It keeps one client per member rather than one client balancing over
/// all of them: etcd-client's balancer keeps sending a share of the calls
/// to a member that is down (etcdv3/etcd-client#39), so one stopped member
/// would fail every third command. Calls go to the member that answered
/// last and move on to the next one when it cannot be reached.
#[derive(Clone)]
pub struct EtcdStore {
    opts: Arc<EtcdOptions>,
    clients: Arc<Vec<OnceCell<Client>>>,
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

/// Whether a member answered that the cluster cannot serve right now but
/// soon will (a leader election): etcd's own client retries reads on these.
fn cluster_busy(e: &StoreError) -> bool {
    const BUSY: &[&str] = &[
        "etcdserver: leader changed",
        "etcdserver: no leader",
        "etcdserver: request timed out",
        "etcdserver: too many requests",
        "etcdserver: unhealthy cluster",
    ];
    matches!(e, StoreError::Unavailable(m) if BUSY.iter().any(|b| m.contains(b)))
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
        let clients = (0..opts.endpoints.len().max(1))
            .map(|_| OnceCell::new())
            .collect();
        EtcdStore {
            opts: Arc::new(opts),
            clients: Arc::new(clients),
            preferred: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The client of member `i` (connected lazily: no I/O unless a user
    /// must log in).
    async fn client_at(&self, i: usize) -> Result<Client, StoreError> {
        let c = self.clients[i]
            .get_or_try_init(|| async {
                let endpoint = self.opts.endpoints.get(i).ok_or_else(|| {
                    StoreError::BadUrl("the etcd store URL names no endpoint".into())
                })?;
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
                timed("connect", Client::connect([endpoint.as_str()], Some(o))).await
            })
            .await?;
        Ok(c.clone())
    }

    /// Runs `op` on the member that answered last, then on each other one
    /// in turn while the error is `Unavailable`. When a member answered
    /// that the cluster is busy (electing a leader), it goes round again
    /// after a pause, for up to [`CALL_TIMEOUT`]; when none could be
    /// reached it gives up at once. `op` must be safe to run again on
    /// another member after it failed (a read, or a first step that writes
    /// nothing). Returns the member that answered and the result.
    async fn on_any_member<T, F, Fut>(&self, mut op: F) -> Result<(usize, T), StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let n = self.clients.len();
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            let first = self.preferred.load(Ordering::Relaxed) % n;
            let mut last_error = None;
            let mut busy = false;
            for step in 0..n {
                let i = (first + step) % n;
                let result = match self.client_at(i).await {
                    Ok(client) => op(client).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok((i, v));
                    }
                    Err(e @ StoreError::Unavailable(_)) => {
                        tracing::debug!(endpoint = %self.opts.endpoints.get(i).map_or("", String::as_str), error = %e, "etcd member unavailable; trying the next one");
                        busy |= cluster_busy(&e);
                        last_error = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            let e =
                last_error.unwrap_or_else(|| StoreError::Unavailable("etcd: no endpoint".into()));
            if !busy || tokio::time::Instant::now() + pause > deadline {
                return Err(e);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Moves the preference away from member `i` after its stream broke.
    fn avoid(&self, i: usize) {
        let n = self.clients.len();
        let _ =
            self.preferred
                .compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A KV client on a member that answers, proven by `read`.
    async fn kv_read<T, F, Fut>(&self, mut read: F) -> Result<(KvClient, T), StoreError>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let (_, r) = self
            .on_any_member(|c| {
                let kv = c.kv_client();
                let fut = read(kv.clone());
                async move { Ok((kv, fut.await?)) }
            })
            .await?;
        Ok(r)
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
            None => Err("the value is encrypted; pass --encryption-key-file with the key it was written with".into()),
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

    pub async fn apply(
        &self,
        puts: Vec<Put>,
    ) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::with_capacity(puts.len());
        for p in &puts {
            if !seen.insert(p.key.clone()) {
                return Err(StoreError::DuplicateKey { key: p.key.clone() });
            }
            keys.push(self.key_bytes(&p.key)?);
        }
        // Optimistic: read, decide, then commit only if nothing moved. The
        // read finds a member that answers; the commit goes to the same
        // one and is never sent twice (a lost answer would be ambiguous).
        for _attempt in 0..8 {
            let (mut kv, read) = self
                .kv_read(|mut kv| {
                    let gets: Vec<TxnOp> =
                        keys.iter().map(|k| TxnOp::get(k.clone(), None)).collect();
                    async move { timed("read", kv.txn(etcd_client::Txn::new().and_then(gets))).await }
                })
                .await?;
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
                let actual = c
                    .as_ref()
                    .map_or(0, |(r, _)| u64::try_from(*r).unwrap_or(0));
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
                return Ok(puts
                    .iter()
                    .zip(outcomes)
                    .map(|(p, (o, r))| (p.key.clone(), o, r))
                    .collect());
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
                    .map(|(p, (o, r))| {
                        (
                            p.key.clone(),
                            o,
                            if o == Outcome::Unchanged { r } else { rev },
                        )
                    })
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
        let raw: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| self.key_bytes(k))
            .collect::<Result<_, _>>()?;
        // Finding a member that answers writes nothing; the delete itself
        // is sent once.
        let (mut kv, ()) = self
            .kv_read(|mut kv| async move {
                timed(
                    "status",
                    kv.get(
                        self.opts.prefix.clone(),
                        Some(GetOptions::new().with_keys_only().with_limit(1)),
                    ),
                )
                .await?;
                Ok(())
            })
            .await?;
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
        let (_, resp) = self
            .kv_read(|mut kv| {
                let k = k.clone();
                async move { timed("get", kv.get(k, None)).await }
            })
            .await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        // One object asked for by name: if it cannot be read, say why
        // rather than "not found" (a listing skips it with a warning).
        let value = self
            .unseal(kv.key(), kv.value())
            .map_err(|why| StoreError::BadUrl(format!("{key}: cannot read it: {why}")))?;
        Ok(Some(Object {
            key: key.clone(),
            resource_version: u64::try_from(kv.mod_revision()).unwrap_or(0),
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
            .kv_read(|mut kv| {
                let prefix = prefix.clone();
                async move {
                    timed(
                        "list",
                        kv.get(prefix, Some(GetOptions::new().with_prefix())),
                    )
                    .await
                }
            })
            .await?;
        let rev = resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0));
        let mut objects: Vec<Object> = resp
            .kvs()
            .iter()
            .filter_map(|kv| self.decode(kv))
            .filter(|o| namespace.is_none_or(|ns| o.key.namespace == ns))
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((objects, rev))
    }

    /// Every event after `from_revision`, in order, once. When the member
    /// it follows goes away, it resumes from the last revision seen on
    /// another member, so a member restart costs no event and repeats none.
    /// It ends with an error when no member accepts a watch (`Unavailable`:
    /// the caller is behind and lists again later) or after a compaction
    /// (`Compacted`: the caller lists again).
    pub async fn watch(&self, from_revision: u64) -> Result<WatchReceiver, StoreError> {
        let (tx, rx) = mpsc::channel(1024);
        let store = self.clone();
        tokio::spawn(async move {
            let mut last = from_revision;
            loop {
                match store.watch_once(&tx, &mut last).await {
                    Ok(()) => return,
                    Err(WatchEnd::Broken(e)) => {
                        if tx.is_closed() {
                            return;
                        }
                        tracing::warn!(error = %e, "etcd watch interrupted; resuming from revision {} on a member that answers", last + 1);
                        // Only a member that confirmed a watch can break
                        // one, so this cannot spin against a dead cluster.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(WatchEnd::Final(e)) => {
                        if matches!(e, StoreError::Unavailable(_)) {
                            tracing::warn!(error = %e, "no etcd member accepts a watch; ending it so the caller knows it is behind");
                        }
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// One watch stream from `last + 1`; Ok(()) when the receiver is gone.
    async fn watch_once(
        &self,
        tx: &mpsc::Sender<Result<Event, StoreError>>,
        last: &mut u64,
    ) -> Result<(), WatchEnd> {
        let start = i64::try_from(*last + 1).unwrap_or(i64::MAX);
        let prefix = self.opts.prefix.clone();
        let (member, (mut stream, first)) = self
            .on_any_member(|c| {
                let mut wc = c.watch_client();
                let prefix = prefix.clone();
                async move {
                    let opts = WatchOptions::new()
                        .with_prefix()
                        .with_prev_key()
                        .with_start_revision(start)
                        .with_progress_notify();
                    let mut stream = timed("watch", wc.watch(prefix, Some(opts))).await?;
                    // A member answers once it confirms the watch.
                    let first = match tokio::time::timeout(CALL_TIMEOUT, stream.message()).await {
                        Ok(Ok(Some(m))) => m,
                        Ok(Ok(None)) => return Err(unavailable("watch", "stream ended")),
                        Ok(Err(e)) => return Err(unavailable("watch", e)),
                        Err(_) => return Err(unavailable("watch", "timed out after 5 s")),
                    };
                    Ok((stream, first))
                }
            })
            .await
            .map_err(WatchEnd::Final)?;
        let mut next = Some(first);
        loop {
            let resp = match next.take() {
                Some(r) => r,
                None => {
                    let msg = tokio::select! {
                        m = stream.message() => m,
                        _ = tx.closed() => return Ok(()),
                    };
                    match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            self.avoid(member);
                            return Err(WatchEnd::Broken(unavailable("watch", "stream ended")));
                        }
                        Err(e) => {
                            self.avoid(member);
                            return Err(WatchEnd::Broken(unavailable("watch", e)));
                        }
                    }
                }
            };
            if resp.compact_revision() > 0 {
                return Err(WatchEnd::Final(StoreError::Compacted {
                    revision: u64::try_from(resp.compact_revision()).unwrap_or(0),
                }));
            }
            if resp.canceled() {
                return Err(WatchEnd::Final(unavailable(
                    "watch",
                    format!("canceled: {}", resp.cancel_reason()),
                )));
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
