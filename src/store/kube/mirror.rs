//! The running gateway's copy of the API server's objects.
//!
//! One kube-runtime watcher per kind and namespace (list, then watch from
//! the list's resourceVersion with bookmarks; a 410 Expired or a broken
//! watch lists again) feeds one map. Every change that alters an object's
//! stored bytes gets the next local revision and goes to the store's
//! watchers; a relist is compared with what the map holds, so objects
//! deleted while the watch was down arrive as deletions. On any API error
//! the map keeps what it has (the gateway keeps serving it) and the watcher
//! retries after a short backoff ([`Retry`]: 250 ms doubling to 5 s, with
//! jitter), so a restarted API server is followed within seconds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio_stream::StreamExt;

use super::kinds::{KindSpec, Scope};
use super::object::normalize;
use crate::store::{Event, EventType, Object, ObjectKey, StoreError, WatchReceiver};

/// How many past events a late `watch(from)` can still be served from.
const HISTORY: usize = 16_384;
/// The buffer of one store watcher; one that falls this far behind is
/// dropped (its receiver ends, and the control loop lists again).
const SUBSCRIBER_BUFFER: usize = 8_192;

/// One watcher's part: a kind, in one namespace or all.
#[derive(Debug, Clone)]
pub struct Part {
    pub spec: &'static KindSpec,
    pub resource: ApiResource,
    /// `None`: every namespace (or a cluster-scoped kind).
    pub namespace: Option<String>,
}

impl Part {
    fn owns(&self, key: &ObjectKey) -> bool {
        key.kind == self.spec.key
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| key.namespace == *ns)
    }

    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} in {ns}", self.spec.key),
            None => self.spec.key.to_owned(),
        }
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<ObjectKey, Object>,
    revision: u64,
    history: VecDeque<Event>,
    subscribers: Vec<mpsc::Sender<Result<Event, StoreError>>>,
    /// Per part: the objects of a list under way.
    pending: BTreeMap<usize, BTreeMap<ObjectKey, Object>>,
}

/// Per part: listed at least once; and its last error, if failing now.
type Health = Vec<(bool, Option<String>)>;

/// The mirror; cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    state: Arc<Mutex<State>>,
    parts: Arc<Vec<Part>>,
    health: Arc<tokio_watch::Sender<Health>>,
}

impl Mirror {
    /// Starts one watcher task per part on the current runtime.
    pub fn start(client: &Client, parts: Vec<Part>) -> Mirror {
        let (health, _) = tokio_watch::channel(vec![(false, None); parts.len()]);
        let mirror = Mirror {
            state: Arc::default(),
            parts: Arc::new(parts),
            health: Arc::new(health),
        };
        for i in 0..mirror.parts.len() {
            let m = mirror.clone();
            let client = client.clone();
            tokio::spawn(async move { m.follow(client, i).await });
        }
        mirror
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until every part has listed once. A list that is under way
    /// (10,000 Secrets take seconds) is waited for, up to `cap`; a part
    /// whose list keeps failing for `patience` ends the wait, so a gateway
    /// whose API server is away starts from its cache instead.
    pub async fn synced(&self, patience: Duration, cap: Duration) -> Result<(), StoreError> {
        let mut rx = self.health.subscribe();
        let start = Instant::now();
        let mut failing_since: Option<Instant> = None;
        loop {
            let (all, failing) = {
                let h = rx.borrow_and_update();
                (
                    h.iter().all(|(ok, _)| *ok),
                    h.iter().any(|(ok, e)| !ok && e.is_some()),
                )
            };
            if all {
                return Ok(());
            }
            let now = Instant::now();
            failing_since = if failing {
                Some(failing_since.unwrap_or(now))
            } else {
                None
            };
            let deadline = failing_since.map_or(start + cap, |f| (f + patience).min(start + cap));
            if now >= deadline {
                return Err(self.unsynced(now - start));
            }
            match tokio::time::timeout(deadline - now, rx.changed()).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(_)) => return Err(self.unsynced(now - start)),
            }
        }
    }

    /// Why the mirror is not in sync: each part not listed yet, and why.
    fn unsynced(&self, waited: Duration) -> StoreError {
        let h = self.health.borrow().clone();
        let missing: Vec<String> = h
            .iter()
            .zip(self.parts.iter())
            .filter(|((ok, _), _)| !ok)
            .map(|((_, err), p)| match err {
                Some(e) => format!("{}: {e}", p.describe()),
                None => format!("{}: no answer yet", p.describe()),
            })
            .collect();
        StoreError::Unavailable(format!(
            "the Kubernetes API server has not listed {} after {:.1} s: {}",
            if missing.len() == 1 {
                "this kind"
            } else {
                "these kinds"
            },
            waited.as_secs_f64(),
            missing.join("; ")
        ))
    }

    /// The objects of `kind`/`namespace` (all if `None`) and the revision.
    pub fn list(&self, kind: Option<&str>, namespace: Option<&str>) -> (Vec<Object>, u64) {
        let st = self.lock();
        let objects = st
            .objects
            .values()
            .filter(|o| kind.is_none_or(|k| o.key.kind == k))
            .filter(|o| namespace.is_none_or(|ns| o.key.namespace == ns))
            .cloned()
            .collect();
        (objects, st.revision)
    }

    /// Every change after `from`, then every later one.
    pub fn watch(&self, from: u64) -> Result<WatchReceiver, StoreError> {
        let mut st = self.lock();
        let oldest = st.history.front().map_or(st.revision + 1, |e| e.revision);
        if from + 1 < oldest {
            return Err(StoreError::Compacted {
                revision: oldest - 1,
            });
        }
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER.max(st.history.len() + 1));
        for e in st.history.iter().filter(|e| e.revision > from) {
            let _ = tx.try_send(Ok(e.clone()));
        }
        st.subscribers.push(tx);
        Ok(rx)
    }

    async fn follow(self, client: Client, i: usize) {
        let part = self.parts[i].clone();
        let api: Api<DynamicObject> = match (&part.namespace, part.spec.scope) {
            (Some(ns), _) => Api::namespaced_with(client, ns, &part.resource),
            (None, _) => Api::all_with(client, &part.resource),
        };
        let stream = watcher(api, watcher::Config::default()).backoff(Retry::default());
        let mut stream = std::pin::pin!(stream);
        let mut failing = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    if failing {
                        tracing::info!(
                            kind = part.describe(),
                            "the Kubernetes API server answers again"
                        );
                        failing = false;
                    }
                    self.take(i, &part, ev);
                }
                Err(e) => {
                    let why = one_line(&e.to_string());
                    if !failing {
                        tracing::warn!(kind = part.describe(), error = %why, "watching the Kubernetes API server failed; serving what we have and retrying");
                        failing = true;
                    }
                    self.health.send_modify(|h| h[i].1 = Some(why));
                }
            }
        }
    }

    fn take(&self, i: usize, part: &Part, ev: watcher::Event<DynamicObject>) {
        let norm = |o: &DynamicObject| normalize(part.spec, &part.resource, o);
        match ev {
            watcher::Event::Init => {
                self.lock().pending.insert(i, BTreeMap::new());
            }
            watcher::Event::InitApply(o) => {
                if let Some(o) = norm(&o) {
                    self.lock()
                        .pending
                        .entry(i)
                        .or_default()
                        .insert(o.key.clone(), o);
                }
            }
            watcher::Event::InitDone => {
                let listed = self.lock().pending.remove(&i).unwrap_or_default();
                self.replace(part, listed);
                self.health.send_modify(|h| h[i] = (true, None));
            }
            watcher::Event::Apply(o) => {
                if let Some(o) = norm(&o) {
                    let mut st = self.lock();
                    upsert(&mut st, o);
                }
            }
            watcher::Event::Delete(o) => {
                if let Some(o) = norm(&o) {
                    let mut st = self.lock();
                    remove(&mut st, &o.key);
                }
            }
        }
    }

    /// A complete list of `part`: what is gone was deleted meanwhile.
    fn replace(&self, part: &Part, listed: BTreeMap<ObjectKey, Object>) {
        let mut st = self.lock();
        let gone: BTreeSet<ObjectKey> = st
            .objects
            .keys()
            .filter(|k| part.owns(k) && !listed.contains_key(*k))
            .cloned()
            .collect();
        for k in &gone {
            remove(&mut st, k);
        }
        for (_, o) in listed {
            upsert(&mut st, o);
        }
    }
}

fn upsert(st: &mut State, o: Object) {
    let event_type = match st.objects.get(&o.key) {
        Some(old) if old.value == o.value => {
            // Same bytes (a status write, a relist): keep the newer version
            // for `get`, tell no one.
            if let Some(old) = st.objects.get_mut(&o.key) {
                old.resource_version = o.resource_version;
            }
            return;
        }
        Some(_) => EventType::Modified,
        None => EventType::Added,
    };
    st.objects.insert(o.key.clone(), o.clone());
    publish(st, event_type, o);
}

fn remove(st: &mut State, key: &ObjectKey) {
    if let Some(o) = st.objects.remove(key) {
        publish(st, EventType::Deleted, o);
    }
}

fn publish(st: &mut State, event_type: EventType, object: Object) {
    st.revision += 1;
    let event = Event {
        revision: st.revision,
        event_type,
        object,
    };
    if st.history.len() == HISTORY {
        st.history.pop_front();
    }
    st.history.push_back(event.clone());
    st.subscribers
        .retain(|tx| tx.try_send(Ok(event.clone())).is_ok());
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The parts to watch: each served kind, in its scope.
pub fn parts(
    served: Vec<(&'static KindSpec, ApiResource)>,
    opts: &super::KubeOptions,
) -> Vec<Part> {
    let mut secret_namespaces = vec![opts.gateway_namespace.clone()];
    for ns in &opts.secret_namespaces {
        if !secret_namespaces.contains(ns) {
            secret_namespaces.push(ns.clone());
        }
    }
    let mut parts = Vec::new();
    for (spec, resource) in served {
        let namespaces: Vec<Option<String>> = match spec.scope {
            Scope::GatewayNamespace => secret_namespaces.iter().cloned().map(Some).collect(),
            Scope::Cluster => vec![None],
            Scope::Watched if opts.watch_namespaces.is_empty() => vec![None],
            Scope::Watched => opts.watch_namespaces.iter().cloned().map(Some).collect(),
        };
        for namespace in namespaces {
            parts.push(Part {
                spec,
                resource: resource.clone(),
                namespace,
            });
        }
    }
    parts
}

/// The watchers' retry delays: 250 ms doubling up to 5 s, each drawn
/// between half and all of its step so replicas do not retry in step.
/// kube-runtime's default grows to 30 s, which leaves an ingress behind a
/// restarted API server for half a minute; a list every 5 s from a
/// handful of watchers is no load for it. A success starts again at 250 ms
/// (kube-runtime resets the backoff on every event).
#[derive(Debug, Clone, Copy)]
struct Retry {
    step: Duration,
}

const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Default for Retry {
    fn default() -> Self {
        Self { step: RETRY_FIRST }
    }
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let step = self.step;
        self.step = (step * 2).min(RETRY_MAX);
        let share = 500_000 + crate::proxy::chance::per_million() / 2;
        Some(step.mul_f64(f64::from(share) / 1_000_000.0))
    }
}

impl kube::runtime::utils::Backoff for Retry {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn retries_double_to_five_seconds_with_jitter_and_reset() {
        let mut r = Retry::default();
        let steps: Vec<Duration> = r.by_ref().take(8).collect();
        for (i, d) in steps.iter().enumerate() {
            let full = (RETRY_FIRST * 2u32.pow(u32::try_from(i).unwrap_or(31))).min(RETRY_MAX);
            assert!(
                *d >= full / 2 && *d <= full,
                "step {i}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(steps[7] >= RETRY_MAX / 2);
        kube::runtime::utils::Backoff::reset(&mut r);
        assert!(r.next().is_some_and(|d| d <= RETRY_FIRST));
    }
}
