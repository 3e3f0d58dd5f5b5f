//! The control loop of `gatehouse run`: list and watch the store, keep the
//! last good version of every object, refresh credentials (SDS), compile a
//! snapshot, publish it with one swap, and open or close listeners.
//!
//! A bad object never replaces a good one, and nothing here blocks the data
//! plane: it only ever swaps in a whole new snapshot.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod cache;

use crate::config::checked::Checked;
use crate::config::{Kind, Resource, validate};
use crate::proxy::{self, Shared};
use crate::secret::files::FileCredentials;
use crate::secret::sds::{ResourceKind, Row, Sds, SecretVersion, cacert_name};
use crate::snapshot::{self, Compiler, Model, Snapshot};
use crate::store::{AnyStore, EventType, Object, ObjectKey, Store};

/// How often file-mounted certificates are checked for changes.
const FILE_POLL: Duration = Duration::from_millis(20);

/// How this gateway process was started.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Local cache of the served objects (static stability); `None`: none.
    pub cache: Option<std::path::PathBuf>,
    /// Seals the cache when set (the store's encryption key).
    pub cache_keyring: Option<Arc<crate::store::crypt::Keyring>>,
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
    pub listen: BTreeMap<u16, SocketAddr>,
    pub json_log: bool,
}

/// What the admin endpoint reads.
#[derive(Debug, Default)]
pub struct Status {
    pub ready: bool,
    pub snapshot_version: u64,
    pub credentials: Arc<Vec<Arc<Row>>>,
    pub listeners: Vec<(u16, SocketAddr)>,
    pub source: Source,
}

/// Last good parse of every object, by key.
#[derive(Default)]
struct Objects {
    /// The resource version of every object in the store, valid or not.
    versions: BTreeMap<ObjectKey, u64>,
    /// Last good parse of every object but Secrets, as stored and checked.
    parsed: HashMap<ObjectKey, (u64, Resource, Checked)>,
    /// Last good parse of every Secret, shared so SDS gets it without a copy.
    secrets: HashMap<ObjectKey, (u64, Arc<crate::config::Secret>)>,
}

impl Objects {
    fn upsert(&mut self, o: Object) {
        let kind = Kind::from_kind(&o.key.kind);
        let parsed = kind
            .ok_or_else(|| format!("unknown kind {}", o.key.kind))
            .and_then(|k| {
                let r = Resource::from_json(k, &o.value).map_err(|e| e.to_string())?;
                match validate::check(&r) {
                    Err(errs) => Err(errs
                        .0
                        .first()
                        .map(|(p, m)| format!("{p}: {m}"))
                        .unwrap_or_default()),
                    Ok(c) => Ok((r, c)),
                }
            });
        match parsed {
            Ok((Resource::Secret(secret), _)) => {
                self.secrets
                    .insert(o.key.clone(), (o.resource_version, Arc::new(secret)));
            }
            Ok((r, c)) => {
                self.parsed
                    .insert(o.key.clone(), (o.resource_version, r, c));
            }
            Err(e) => {
                tracing::error!(object = %o.key, error = %e, "refused an invalid object from the store; the last good version keeps serving");
            }
        }
        self.versions.insert(o.key, o.resource_version);
    }

    /// Replaces everything with a fresh listing, keeping the last good parse
    /// of objects whose new version is invalid.
    fn replace_all(&mut self, objects: Vec<Object>) {
        let keep: std::collections::HashSet<ObjectKey> =
            objects.iter().map(|o| o.key.clone()).collect();
        self.versions.retain(|k, _| keep.contains(k));
        self.parsed.retain(|k, _| keep.contains(k));
        self.secrets.retain(|k, _| keep.contains(k));
        for o in objects {
            if self.versions.get(&o.key) != Some(&o.resource_version) {
                self.upsert(o);
            }
        }
    }

    /// The last good objects as the store holds them, for the local cache.
    fn good_objects(&self) -> Vec<Object> {
        let parsed = self.parsed.iter().filter_map(|(k, (rv, r, _))| {
            r.to_json().ok().map(|value| Object {
                key: k.clone(),
                resource_version: *rv,
                value,
            })
        });
        let secrets = self.secrets.iter().filter_map(|(k, (rv, s))| {
            serde_json::to_vec(s.as_ref()).ok().map(|value| Object {
                key: k.clone(),
                resource_version: *rv,
                value,
            })
        });
        parsed.chain(secrets).collect()
    }

    fn remove(&mut self, key: &ObjectKey) {
        self.versions.remove(key);
        self.parsed.remove(key);
        self.secrets.remove(key);
    }
}

/// Binds and serves listeners as snapshots ask for them.
struct Listeners {
    running: BTreeMap<u16, (SocketAddr, watch::Sender<bool>)>,
}

impl Listeners {
    async fn reconcile(&mut self, snap: &Snapshot, opts: &RunOptions, shared: &Arc<Shared>) {
        let wanted: Vec<u16> = snap.listeners.keys().copied().collect();
        let stale: Vec<u16> = self
            .running
            .keys()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        for p in stale {
            if let Some((addr, tx)) = self.running.remove(&p) {
                let _ = tx.send(true);
                tracing::info!(port = p, %addr, "listener closed");
            }
        }
        for port in wanted {
            if self.running.contains_key(&port) {
                continue;
            }
            let addr = opts
                .listen
                .get(&port)
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    let real = l.local_addr().unwrap_or(addr);
                    let (tx, rx) = watch::channel(false);
                    tokio::spawn(proxy::serve_listener(l, port, shared.clone(), rx));
                    println!("listening on {real} for gateway port {port}");
                    tracing::info!(port, addr = %real, "listener up");
                    self.running.insert(port, (real, tx));
                }
                Err(e) => {
                    eprintln!(
                        "error: cannot listen on {addr} for gateway port {port}: {e} (map it elsewhere with --listen {port}=127.0.0.1:PORT)"
                    );
                    tracing::error!(port, %addr, error = %e, "cannot bind listener");
                }
            }
        }
    }
}

/// Runs the gateway until the process is stopped.
/// Where the served objects currently come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// Not synced yet.
    #[default]
    Starting,
    /// In sync with the store, following its watch.
    Live,
    /// The store was unreachable at start: serving the local cache.
    Cache,
    /// The store went away while running: serving what we had.
    Behind,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Starting => "starting",
            Source::Live => "live",
            Source::Cache => "serving from cache (store unreachable)",
            Source::Behind => "behind (store unreachable; serving the last good config)",
        }
    }
}

/// Lists the store and starts a watch from the listed revision.
async fn sync(
    store: &AnyStore,
    state: &mut Objects,
) -> Result<(u64, crate::store::WatchReceiver), crate::store::StoreError> {
    let (objects, revision) = store.list(None, None).await?;
    let events = store.watch(revision).await?;
    state.replace_all(objects);
    Ok((revision, events))
}

/// Runs the gateway until the process is stopped.
pub async fn run(
    store: AnyStore,
    opts: RunOptions,
    status: Arc<ArcSwap<Status>>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let snapshot_cell = shared.snapshot.clone();
    let mut state = Objects::default();
    let mut source = Source::Starting;
    let mut revision = 0u64;
    let mut events = match sync(&store, &mut state).await {
        Ok((rev, rx)) => {
            revision = rev;
            source = Source::Live;
            Some(rx)
        }
        Err(e) => {
            let from_cache = opts
                .cache
                .as_deref()
                .map(|p| cache::load(p, opts.cache_keyring.as_deref()));
            match from_cache {
                Some(Ok((rev, objects))) => {
                    tracing::warn!(error = %e, revision = rev, "the store is unreachable: serving from the local cache until it returns");
                    state.replace_all(objects);
                    revision = rev;
                    source = Source::Cache;
                }
                Some(Err(why)) => {
                    tracing::error!(error = %e, cache = %why, "the store is unreachable and there is no usable cache; retrying");
                }
                None if matches!(store, AnyStore::Dir(_)) => return Err(e.into()),
                None => tracing::error!(error = %e, "the store is unreachable; retrying"),
            }
            None
        }
    };
    let mut sds = Sds::default();
    let mut compiler = Compiler::default();
    // The admin view's rows, kept per credential so a rotation updates two
    // rows instead of rebuilding ten thousand.
    let mut row_map: BTreeMap<(ResourceKind, String), Arc<Row>> = BTreeMap::new();
    let mut rows: Arc<Vec<Arc<Row>>> = Arc::new(Vec::new());
    let mut listeners = Listeners {
        running: BTreeMap::new(),
    };
    let mut files = FileCredentials::default();
    let mut file_poll = tokio::time::interval(FILE_POLL);
    file_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Duration::from_millis(200);
    let mut retry_at = tokio::time::Instant::now() + backoff;
    let mut cached_revision = None;
    let mut version = 0u64;
    // Whether anything but secrets changed since the last compile: if not,
    // only the servers whose credentials changed are rebuilt.
    let mut structural = true;
    // Secrets (and file mounts) changed since the last refresh, by name.
    let mut changed_secrets: Vec<String> = Vec::new();
    let mut wanted = snapshot::wanted_credentials(&[]);
    let mut published: Option<Arc<Snapshot>> = None;
    loop {
        version += 1;
        let snap = match &published {
            Some(prev) if !structural => {
                let lookup = |name: &str| {
                    files.get(name).cloned().or_else(|| {
                        let key = ObjectKey::new("Secret", opts.namespace.as_str(), name);
                        state.secrets.get(&key).map(|(rv, s)| SecretVersion {
                            resource_version: *rv,
                            secret: s.clone(),
                        })
                    })
                };
                let t0 = std::time::Instant::now();
                let changed = sds.refresh_changed(&lookup, &wanted, &changed_secrets);
                changed_secrets.clear();
                tracing::debug!(refresh_us = t0.elapsed().as_micros() as u64, "refresh");
                if changed.is_empty() {
                    prev.clone()
                } else {
                    let snap = Arc::new(snapshot::with_credentials(
                        prev,
                        &changed,
                        &sds,
                        &mut compiler,
                        version,
                    ));
                    snapshot_cell.store(snap.clone());
                    tracing::debug!(published_us = t0.elapsed().as_micros() as u64, "published");
                    for name in &changed {
                        row_map.remove(&(ResourceKind::KeyCertPair, name.clone()));
                        row_map.remove(&(ResourceKind::RootCert, cacert_name(name)));
                        for row in sds.rows_of(name) {
                            row_map.insert((row.kind, row.resource.clone()), Arc::new(row));
                        }
                    }
                    rows = Arc::new(row_map.values().cloned().collect());
                    snap
                }
            }
            _ => {
                let model = build_model(&state, &opts);
                files.set_gateways(&model.gateway_sources);
                files.poll();
                changed_secrets.clear();
                wanted = snapshot::wanted_credentials(&model.gateways);
                let mut secrets = secrets_in(&state, &opts.namespace);
                secrets.extend(files.secrets().map(|(k, v)| (k.clone(), v.clone())));
                sds.refresh(&secrets, &wanted);
                let snap = Arc::new(snapshot::compile(&model, &sds, &mut compiler, version));
                snapshot_cell.store(snap.clone());
                row_map = sds
                    .rows()
                    .into_iter()
                    .map(|r| ((r.kind, r.resource.clone()), Arc::new(r)))
                    .collect();
                rows = Arc::new(row_map.values().cloned().collect());
                listeners.reconcile(&snap, &opts, &shared).await;
                structural = false;
                snap
            }
        };
        published = Some(snap);
        status.store(Arc::new(Status {
            ready: source != Source::Starting,
            snapshot_version: version,
            credentials: rows.clone(),
            listeners: listeners
                .running
                .iter()
                .map(|(p, (a, _))| (*p, *a))
                .collect(),
            source,
        }));
        if source == Source::Live
            && cached_revision != Some(revision)
            && let Some(path) = &opts.cache
        {
            match cache::save(
                path,
                opts.cache_keyring.as_deref(),
                revision,
                state.good_objects().iter(),
            ) {
                Ok(()) => cached_revision = Some(revision),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the local cache")
                }
            }
        }
        // Wait for a change, then take every change already queued so a
        // burst of events costs one compile.
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                e = async { events.as_mut()?.recv().await }, if events.is_some() => match e {
                    Some(e) => {
                        batch.push(e);
                        break;
                    }
                    None => {
                        batch.push(Err(crate::store::StoreError::Unavailable("the store's watch ended".into())));
                        break;
                    }
                },
                _ = file_poll.tick(), if !files.is_empty() => {
                    let changed = files.poll();
                    if !changed.is_empty() {
                        changed_secrets.extend(changed);
                        break;
                    }
                }
                _ = tokio::time::sleep_until(retry_at), if events.is_none() => {
                    match sync(&store, &mut state).await {
                        Ok((rev, rx)) => {
                            structural = true;
                            tracing::info!(revision = rev, was = source.as_str(), "in sync with the store again");
                            revision = rev;
                            events = Some(rx);
                            source = Source::Live;
                            backoff = Duration::from_millis(200);
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "the store is still unreachable");
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            retry_at = tokio::time::Instant::now() + backoff;
                        }
                    }
                }
            }
        }
        if let Some(rx) = events.as_mut() {
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
        }
        let batch_start = std::time::Instant::now();
        let batch_len = batch.len();
        for e in batch {
            match e {
                Ok(e) => {
                    revision = revision.max(e.revision);
                    if e.object.key.kind != "Secret" {
                        structural = true;
                    } else if e.object.key.namespace == opts.namespace {
                        changed_secrets.push(e.object.key.name.clone());
                    }
                    match e.event_type {
                        EventType::Added | EventType::Modified => state.upsert(e.object),
                        EventType::Deleted => state.remove(&e.object.key),
                    }
                }
                Err(e) => {
                    // Keep serving what we have; list and watch again later.
                    tracing::warn!(error = %e, "lost the store's watch: serving the last good config, reconnecting");
                    events = None;
                    if source == Source::Live {
                        source = Source::Behind;
                    }
                    retry_at = tokio::time::Instant::now() + backoff;
                    break;
                }
            }
        }
        tracing::debug!(
            events = batch_len,
            apply_us = batch_start.elapsed().as_micros() as u64,
            "applied a batch"
        );
    }
}

fn build_model<'a>(state: &'a Objects, opts: &RunOptions) -> Model<'a> {
    let mut model = Model::default();
    for (_, r, c) in state.parsed.values() {
        match (r, c) {
            (Resource::Gateway(raw), Checked::Gateway(g)) if snapshot::selects(g, &opts.labels) => {
                model.gateways.push(g);
                model.gateway_sources.push(raw);
            }
            (_, Checked::VirtualService(v)) => model.virtual_services.push(v),
            (_, Checked::ServiceEntry(s)) => model.service_entries.push(s),
            _ => {}
        }
    }
    model
        .gateways
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    model.gateway_sources.sort_by(|a, b| {
        (a.metadata.ns(), &a.metadata.name).cmp(&(b.metadata.ns(), &b.metadata.name))
    });
    model.virtual_services.sort_by(|a, b| {
        (&a.creation_timestamp, &a.namespace, &a.name).cmp(&(
            &b.creation_timestamp,
            &b.namespace,
            &b.name,
        ))
    });
    model
        .service_entries
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    model
}

fn secrets_in(state: &Objects, namespace: &str) -> BTreeMap<String, SecretVersion> {
    state
        .secrets
        .iter()
        .filter(|(k, _)| k.namespace == namespace)
        .map(|(k, (rv, s))| {
            (
                k.name.clone(),
                SecretVersion {
                    resource_version: *rv,
                    secret: s.clone(),
                },
            )
        })
        .collect()
}
