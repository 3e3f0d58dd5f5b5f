//! The Kubernetes backend: the objects live in an API server (`--store
//! kube`, the kubeconfig of `KUBECONFIG` or `~/.kube/config`; `--store
//! kube:in-cluster`, the pod's service account).
//!
//! Reads for a running gateway come from a [`mirror::Mirror`] that
//! kube-runtime watchers keep (Secrets and ConfigMaps in the gateway's
//! namespace and those of `--secret-namespaces` only; the routing kinds in `--watch-namespaces`, all by
//! default); its revisions are local. The CLI's reads and writes go to the
//! API server directly: `apply` is a server-side apply with field manager
//! `gatehouse`, so gatehouse is a kubectl for these kinds. An object's
//! resource version is its Kubernetes `resourceVersion`.
//!
//! Kubernetes has no multi-object transactions: an apply of several
//! objects is one server-side apply each, in order, and stops at the first
//! refusal (what kubectl does). Every error is one line naming the object.

pub mod kinds;
mod mirror;
mod object;
pub mod status;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Config};
use tokio::sync::OnceCell;

use self::kinds::KindSpec;
use self::mirror::Mirror;
use super::{Object, ObjectKey, Outcome, Put, StoreError, WatchReceiver};

/// How long the first list may keep failing before the gateway starts
/// from its cache; and how long a list that makes progress may take.
const SYNC_PATIENCE: Duration = Duration::from_secs(5);
const SYNC_CAP: Duration = Duration::from_secs(120);
/// One API call's deadline (the CLI's commands).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// The field manager of every write.
pub const FIELD_MANAGER: &str = "gatehouse";

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KubeSource {
    /// `KUBECONFIG`, else `~/.kube/config`.
    #[default]
    Kubeconfig,
    /// The pod's service account.
    InCluster,
}

/// What the store reads, besides where the API server is.
#[derive(Debug, Clone, Default)]
pub struct KubeOptions {
    pub source: KubeSource,
    /// The gateway's namespace: the only one whose Secrets are read.
    pub gateway_namespace: String,
    /// The namespaces of the routing kinds; empty: all.
    pub watch_namespaces: Vec<String>,
    /// More namespaces whose Secrets and ConfigMaps are read (a Gateway
    /// API Gateway's `certificateRefs` live beside it); none by default.
    pub secret_namespaces: Vec<String>,
}

/// A store in a Kubernetes API server.
#[derive(Clone)]
pub struct KubeStore {
    opts: Arc<KubeOptions>,
    client: Arc<OnceCell<Client>>,
    mirror: Arc<OnceCell<Mirror>>,
    status: Arc<std::sync::OnceLock<status::StatusWriter>>,
}

impl fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeStore")
            .field("opts", &self.opts)
            .finish()
    }
}

fn unavailable(what: impl fmt::Display, e: impl fmt::Display) -> StoreError {
    let text = e.to_string();
    StoreError::Unavailable(format!(
        "{what}: {}",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

async fn timed<T>(
    what: &str,
    f: impl Future<Output = Result<T, kube::Error>>,
) -> Result<Result<T, kube::Error>, StoreError> {
    tokio::time::timeout(CALL_TIMEOUT, f).await.map_err(|_| {
        unavailable(
            what,
            format!(
                "no answer from the Kubernetes API server in {} s",
                CALL_TIMEOUT.as_secs()
            ),
        )
    })
}

impl KubeStore {
    pub fn new(opts: KubeOptions) -> KubeStore {
        KubeStore {
            opts: Arc::new(opts),
            client: Arc::default(),
            mirror: Arc::default(),
            status: Arc::default(),
        }
    }

    async fn client(&self) -> Result<Client, StoreError> {
        let c = self
            .client
            .get_or_try_init(|| async {
                let config = match self.opts.source {
                    KubeSource::InCluster => Config::incluster()
                        .map_err(|e| unavailable("the in-cluster Kubernetes configuration", e))?,
                    KubeSource::Kubeconfig => Config::from_kubeconfig(&Default::default())
                        .await
                        .map_err(|e| {
                            unavailable("the kubeconfig (KUBECONFIG or ~/.kube/config)", e)
                        })?,
                };
                Client::try_from(config).map_err(|e| unavailable("the Kubernetes client", e))
            })
            .await?;
        Ok(c.clone())
    }

    /// The mirror, started on first use; waits for its first full list.
    async fn mirror(&self) -> Result<&Mirror, StoreError> {
        let client = self.client().await?;
        let m = self
            .mirror
            .get_or_try_init(|| async {
                let served = timed("API discovery", kinds::served(&client))
                    .await?
                    .map_err(|e| unavailable("API discovery", e))?;
                let parts = mirror::parts(served, &self.opts);
                Ok::<_, StoreError>(Mirror::start(&client, parts))
            })
            .await?;
        m.synced(SYNC_PATIENCE, SYNC_CAP).await?;
        Ok(m)
    }

    async fn api(
        &self,
        key: &ObjectKey,
        api_version: Option<&str>,
    ) -> Result<(&'static KindSpec, Api<DynamicObject>), StoreError> {
        let spec = kinds::by_key(&key.kind).ok_or_else(|| StoreError::InvalidKey {
            key: key.to_string(),
            reason: "not a kind the Kubernetes store knows".into(),
        })?;
        let version = api_version
            .map(|v| v.rsplit('/').next().unwrap_or(v).to_owned())
            .unwrap_or_else(|| spec.versions[0].to_owned());
        let ar = spec.resource(&version);
        let client = self.client().await?;
        let api = if key.namespace.is_empty() || spec.scope == kinds::Scope::Cluster {
            Api::all_with(client, &ar)
        } else {
            Api::namespaced_with(client, &key.namespace, &ar)
        };
        Ok((spec, api))
    }

    /// Hands the statuses the objects should have to the writer (started on
    /// first use, on the caller's runtime; it writes only while this
    /// replica holds the Lease). Before the first list there is no client
    /// and nothing to write.
    pub fn publish_status(&self, desired: status::Desired) {
        let Some(client) = self.client.get() else {
            return;
        };
        let w = self.status.get_or_init(|| {
            status::StatusWriter::start(client.clone(), self.opts.gateway_namespace.clone())
        });
        w.publish(desired);
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        let (spec, api) = self.api(key, None).await?;
        let ar = spec.resource(spec.versions[0]);
        match timed("get", api.get_opt(&key.name)).await? {
            Ok(Some(o)) => Ok(object::normalize(spec, &ar, &o)),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable(key, e)),
        }
    }

    pub async fn list(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        let Some(kind) = kind else {
            return Ok(self.mirror().await?.list(None, namespace));
        };
        // A cluster-scoped kind has no namespace to filter by.
        let namespace = namespace
            .filter(|_| kinds::by_key(kind).is_none_or(|s| s.scope != kinds::Scope::Cluster));
        if let Some(m) = self.mirror.get() {
            return Ok(m.list(Some(kind), namespace));
        }
        let key = ObjectKey::new(kind, namespace.unwrap_or_default(), "");
        let (spec, api) = self.api(&key, None).await?;
        let ar = spec.resource(spec.versions[0]);
        let listed = timed("list", api.list(&ListParams::default()))
            .await?
            .map_err(|e| unavailable(format!("listing {kind}"), e))?;
        let mut objects: Vec<Object> = listed
            .items
            .iter()
            .filter_map(|o| object::normalize(spec, &ar, o))
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((objects, 0))
    }

    pub async fn watch(&self, from_revision: u64) -> Result<WatchReceiver, StoreError> {
        self.mirror().await?.watch(from_revision)
    }

    pub async fn apply(
        &self,
        puts: Vec<Put>,
    ) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        let mut out = Vec::with_capacity(puts.len());
        for put in puts {
            out.push(self.apply_one(put).await?);
        }
        Ok(out)
    }

    async fn apply_one(&self, put: Put) -> Result<(ObjectKey, Outcome, u64), StoreError> {
        let key = put.key.clone();
        let precondition = put.expected_version.filter(|v| *v > 0);
        let (api_version, body) = object::apply_body(&key, &put.value, precondition)?;
        let (spec, api) = self.api(&key, Some(&api_version)).await?;
        let ar = spec.resource(api_version.rsplit('/').next().unwrap_or(&api_version));
        let before = match timed("get", api.get_opt(&key.name)).await? {
            Ok(o) => o.and_then(|o| object::normalize(spec, &ar, &o)),
            Err(e) => return Err(unavailable(&key, e)),
        };
        let actual = before.as_ref().map_or(0, |o| o.resource_version);
        if let Some(expected) = put.expected_version
            && expected != actual
        {
            return Err(StoreError::Conflict {
                key,
                expected,
                actual,
            });
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let after =
            match timed("apply", api.patch(&key.name, &params, &Patch::Apply(&body))).await? {
                Ok(o) => o,
                Err(e) if api_code(&e) == Some(409) => {
                    return Err(StoreError::Conflict {
                        key,
                        expected: put.expected_version.unwrap_or(0),
                        actual,
                    });
                }
                Err(e) => return Err(unavailable(&key, e)),
            };
        let version = after
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let outcome = match before {
            None => Outcome::Created,
            Some(b) if b.resource_version == version => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        };
        Ok((key, outcome, version))
    }

    pub async fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let (_, api) = self.api(&key, None).await?;
            match timed("delete", api.delete(&key.name, &DeleteParams::default())).await? {
                Ok(_) => out.push(true),
                Err(e) if api_code(&e) == Some(404) => out.push(false),
                Err(e) => return Err(unavailable(&key, e)),
            }
        }
        Ok(out)
    }
}
