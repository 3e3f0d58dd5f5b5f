//! The first step of the control loop: list the store and follow its watch,
//! or, when it is unreachable, start from the local cache and keep trying.
//!
//! A directory store that cannot be read is an error at start; it must
//! never leave the gateway waiting silently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::{Loop, Objects, RunOptions, Source, Status, cache};
use crate::proxy::Shared;
use crate::secret::expiry::ExpiryWatch;
use crate::secret::files::FileCredentials;
use crate::secret::sds::Sds;
use crate::snapshot::{self, Compiler};
use crate::store::{AnyStore, Store, StoreError, WatchReceiver};

/// The first pause before listing an unreachable store again.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between two tries.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Lists the store and starts a watch from the listed revision.
pub(super) async fn sync(
    store: &AnyStore,
    state: &mut Objects,
) -> Result<(u64, WatchReceiver), StoreError> {
    let (objects, revision) = store.list(None, None).await?;
    let events = store.watch(revision).await?;
    state.replace_all(objects);
    Ok((revision, events))
}

impl Loop {
    /// Loads what to serve first: the store, else the local cache.
    pub(super) async fn start(
        store: AnyStore,
        opts: RunOptions,
        status: Arc<ArcSwap<Status>>,
        shared: Arc<Shared>,
    ) -> anyhow::Result<Loop> {
        let mut state = Objects::default();
        let (source, revision, events) = first_sync(&store, &opts, &mut state).await?;
        let expiry = ExpiryWatch::new(shared.settings.expiry_warning);
        shared.metrics.set_namespace(&opts.namespace);
        let sds = Sds {
            expiry_warning_secs: expiry.warning_secs(),
            events: crate::secret::events::Events::counted(shared.metrics.clone()),
            ..Sds::default()
        };
        let compiler = Compiler::new(crate::proxy::transport::base(&shared));
        Ok(Loop {
            store,
            opts,
            status,
            shared,
            state,
            source,
            revision,
            events,
            retry_at: tokio::time::Instant::now() + FIRST_BACKOFF,
            backoff: FIRST_BACKOFF,
            cached_revision: None,
            sds,
            compiler,
            files: FileCredentials::default(),
            listeners: super::Listeners::default(),
            row_map: BTreeMap::new(),
            rows: Arc::new(Vec::new()),
            warnings: Arc::default(),
            version: 0,
            structural: true,
            changed_secrets: Vec::new(),
            wanted: snapshot::wanted_credentials(&[]),
            published: None,
            expiry,
            expiry_at: None,
        })
    }
}

/// Where the objects come from at start, the revision they reflect, and the
/// store's watch if the store answered.
async fn first_sync(
    store: &AnyStore,
    opts: &RunOptions,
    state: &mut Objects,
) -> anyhow::Result<(Source, u64, Option<WatchReceiver>)> {
    let e = match sync(store, state).await {
        Ok((rev, rx)) => return Ok((Source::Live, rev, Some(rx))),
        Err(e) => e,
    };
    let from_cache = opts
        .cache
        .as_deref()
        .map(|p| cache::load(p, opts.cache_keyring.as_deref()));
    match from_cache {
        Some(Ok((rev, objects))) => {
            tracing::warn!(error = %e, revision = rev, "the store is unreachable: serving from the local cache until it returns");
            state.replace_all(objects);
            return Ok((Source::Cache, rev, None));
        }
        Some(Err(why)) => {
            tracing::error!(error = %e, cache = %why, "the store is unreachable and there is no usable cache; retrying");
        }
        None if matches!(store, AnyStore::Dir(_)) => return Err(e.into()),
        None => tracing::error!(error = %e, "the store is unreachable; retrying"),
    }
    Ok((Source::Starting, 0, None))
}
