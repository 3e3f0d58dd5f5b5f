//! The control loop of `gatehouse run`: list and watch the store, keep the
//! last good version of every object, refresh credentials (SDS), compile a
//! snapshot, publish it with one swap, and open or close listeners.
//!
//! A bad object never replaces a good one, and nothing here blocks the data
//! plane: it only ever swaps in a whole new snapshot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

mod apply;
mod cache;
mod expiry;
mod listeners;
mod objects;
mod publish;
mod start;
mod wait;

use crate::proxy::Shared;
use crate::secret::expiry::ExpiryWatch;
use crate::secret::files::FileCredentials;
use crate::secret::sds::{ResourceKind, Row, Sds, Wanted};
use crate::snapshot::{Compiler, Snapshot};
use crate::store::{AnyStore, WatchReceiver};
use listeners::Listeners;
pub use objects::HeldObject;
use objects::Objects;

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
    /// Gateway ports that could not be bound: not ready while there is one.
    pub listener_errors: Vec<ListenerError>,
    pub source: Source,
    /// Fields gatehouse does not apply and ConflictingGateways, for `/warnings`.
    pub warnings: Arc<Vec<crate::admin::warnings::Warning>>,
    /// The snapshot the data plane serves (what `/config_dump` shows).
    pub snapshot: Option<Arc<Snapshot>>,
    /// Every object of the store as this gateway holds it.
    pub objects: Arc<Vec<Arc<HeldObject>>>,
    /// The last SDS events, newest first.
    pub sds_events: Arc<Vec<crate::secret::events::SdsEvent>>,
}

/// A Gateway port that could not be bound, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerError {
    pub port: u16,
    pub addr: SocketAddr,
    pub error: String,
}

impl std::fmt::Display for ListenerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot listen on {} for gateway port {}: {}",
            self.addr, self.port, self.error
        )
    }
}

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
    /// One word for it: `starting`, `live`, `cache` or `behind`.
    pub fn key(self) -> &'static str {
        match self {
            Source::Starting => "starting",
            Source::Live => "live",
            Source::Cache => "cache",
            Source::Behind => "behind",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Starting => "starting",
            Source::Live => "live",
            Source::Cache => "serving from cache (store unreachable)",
            Source::Behind => "behind (store unreachable; serving the last good config)",
        }
    }
}

/// Everything the control loop keeps between two batches of changes.
struct Loop {
    store: AnyStore,
    opts: RunOptions,
    status: Arc<ArcSwap<Status>>,
    shared: Arc<Shared>,
    /// The last good objects.
    state: Objects,
    source: Source,
    /// The store revision `state` reflects.
    revision: u64,
    /// The store's watch; `None` while the store is unreachable.
    events: Option<WatchReceiver>,
    /// When to list and watch again, and the pause after that.
    retry_at: tokio::time::Instant,
    backoff: Duration,
    /// The revision last written to the local cache.
    cached_revision: Option<u64>,
    sds: Sds,
    compiler: Compiler,
    files: FileCredentials,
    listeners: Listeners,
    /// The admin view's rows, kept per credential so a rotation updates two
    /// rows instead of rebuilding ten thousand.
    row_map: BTreeMap<(ResourceKind, String), Arc<Row>>,
    rows: Arc<Vec<Arc<Row>>>,
    /// What `/warnings` shows; worked out again on every full compile.
    warnings: Arc<Vec<crate::admin::warnings::Warning>>,
    /// The snapshot version to publish next.
    version: u64,
    /// Whether anything but secrets changed since the last compile: if not,
    /// only the servers whose credentials changed are rebuilt.
    structural: bool,
    /// Secrets (and file mounts) changed since the last refresh, by name.
    changed_secrets: Vec<String>,
    /// The credentials the selected Gateways ask for.
    wanted: Wanted,
    published: Option<Arc<Snapshot>>,
    /// What was said about serving certificates' dates, and when to look
    /// at them again.
    expiry: ExpiryWatch,
    expiry_at: Option<tokio::time::Instant>,
}

/// Runs the gateway until the process is stopped: each turn publishes what
/// changed, reports it to the admin endpoint, saves the local cache, then
/// waits for the next batch of changes and takes it in.
pub async fn run(
    store: AnyStore,
    opts: RunOptions,
    status: Arc<ArcSwap<Status>>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut control = Loop::start(store, opts, status, shared).await?;
    loop {
        control.publish();
        control.report();
        control.save_cache();
        let batch = control.wait().await;
        control.apply(batch);
    }
}
