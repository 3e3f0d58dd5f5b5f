//! The process of `gatehouse run`: its two runtimes, its signals and its
//! drain.
//!
//! The data plane (listeners, connections, the admin endpoint) runs on a
//! multi-thread runtime with one worker per core by default. The control
//! plane (store reads and watches, compiles, file reads and inotify, SDS)
//! runs on a current-thread runtime on a thread of its own, so a compile of
//! ten thousand hosts never holds up a request. On SIGTERM or SIGINT the
//! process drains: `/ready` turns 503, listeners close, every connection
//! ends gracefully once its in-flight requests are answered, and the
//! process exits 0 when the last one closes or when the drain timeout
//! passes (connections still open then are cut; the log says how many).
//! A second signal ends the drain at once. Nothing here may block a
//! data-plane worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;

pub mod nofile;

use crate::control::{self, RunOptions, Status};
use crate::proxy::{Settings, Shared};
use crate::snapshot::Snapshot;
use crate::store::AnyStore;

/// How the process runs, besides what the control loop needs.
#[derive(Debug, Clone)]
pub struct Process {
    /// Data-plane worker threads.
    pub workers: usize,
    /// The longest a drain waits for connections to finish.
    pub drain_timeout: Duration,
    pub admin: SocketAddr,
    /// The admin endpoint's bearer token (`--admin-token-file`).
    pub admin_token: Option<Arc<crate::admin::auth::AdminToken>>,
    pub settings: Settings,
}

/// The data-plane worker count when none is given: the cores this process
/// may use (cgroup and affinity limits included).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Runs the gateway until a signal drains it or the control loop fails.
pub fn run(process: Process, opts: RunOptions, store: AnyStore) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(process.workers)
        .thread_name("gatehouse-proxy")
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the data-plane runtime: {e}"))?;
    let result = runtime.block_on(serve(process, opts, store));
    // Whatever is left after a drain is cut now; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn serve(process: Process, opts: RunOptions, store: AnyStore) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let status = Arc::new(ArcSwap::from_pointee(Status::default()));
    let admin = tokio::net::TcpListener::bind(process.admin)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} for the admin endpoint: {e} (use --admin 127.0.0.1:PORT)",
                process.admin
            )
        })?;
    let admin_addr = admin.local_addr()?;
    if process.admin_token.is_some() {
        tracing::info!(addr = %admin_addr, "the admin endpoint needs a bearer token (--admin-token-file)");
    }
    if !crate::admin::is_loopback(&admin_addr) {
        tracing::warn!(addr = %admin_addr, "the admin endpoint is not on loopback (it needs the bearer token of --admin-token-file)");
    }
    println!("admin on {admin_addr}");
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let shared = Arc::new(Shared::new(
        snapshot,
        process.settings.clone(),
        opts.json_log,
    ));
    tokio::spawn(crate::admin::serve(
        admin,
        status.clone(),
        shared.drain.clone(),
        shared.metrics.clone(),
        process.admin_token.clone(),
    ));
    let control = Control::start(store, opts, status, shared.clone())?;
    tracing::info!(workers = process.workers, "gatehouse run started");
    let signal = tokio::select! {
        r = control.done => {
            return r.unwrap_or_else(|_| Err(anyhow::anyhow!("the control loop stopped")));
        }
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    // The control loop must not open listeners while the data plane drains.
    drop(control.stop);
    drain(&shared, process.drain_timeout, signal, &mut term, &mut int).await;
    Ok(())
}

/// The control loop on its own thread, with a current-thread runtime.
struct Control {
    /// The loop's end (an error, as it never returns otherwise).
    done: oneshot::Receiver<anyhow::Result<()>>,
    /// Dropping it stops the loop.
    stop: oneshot::Sender<()>,
}

impl Control {
    fn start(
        store: AnyStore,
        opts: RunOptions,
        status: Arc<ArcSwap<Status>>,
        shared: Arc<Shared>,
    ) -> anyhow::Result<Control> {
        let (done_tx, done) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .thread_name("gatehouse-ctl")
                .enable_all()
                .build();
            let result = match runtime {
                Ok(rt) => rt.block_on(async {
                    tokio::select! {
                        r = control::run(store, opts, status, shared) => r,
                        _ = stop_rx => Ok(()),
                    }
                }),
                Err(e) => Err(anyhow::anyhow!("cannot start the control runtime: {e}")),
            };
            let _ = done_tx.send(result);
        };
        std::thread::Builder::new()
            .name("gatehouse-ctl".into())
            .spawn(thread)
            .map_err(|e| anyhow::anyhow!("cannot start the control thread: {e}"))?;
        Ok(Control { done, stop })
    }
}

/// How a drain ended.
enum End {
    AllClosed,
    TimedOut,
    Interrupted(&'static str),
}

/// Stops accepting, ends every connection gracefully, and waits for them
/// up to `timeout` (or a second signal). Logs one line at the start and
/// one at the end, with counts.
async fn drain(
    shared: &Shared,
    timeout: Duration,
    signal: &str,
    term: &mut Signal,
    int: &mut Signal,
) {
    let started = Instant::now();
    let open = shared.drain.start();
    tracing::info!(
        signal,
        connections = open,
        timeout_ms = millis(timeout),
        "drain started: not ready, listeners closed, connections finish their requests"
    );
    let end = tokio::select! {
        () = shared.drain.all_closed() => End::AllClosed,
        () = tokio::time::sleep(timeout) => End::TimedOut,
        _ = term.recv() => End::Interrupted("SIGTERM"),
        _ = int.recv() => End::Interrupted("SIGINT"),
    };
    let left = shared.drain.open();
    let elapsed_ms = millis(started.elapsed());
    match end {
        End::AllClosed => tracing::info!(
            connections = open,
            elapsed_ms,
            "drain finished: every connection closed"
        ),
        End::TimedOut => tracing::warn!(
            connections = open,
            cut = left,
            elapsed_ms,
            "drain timed out: cutting the connections still open"
        ),
        End::Interrupted(again) => tracing::warn!(
            connections = open,
            cut = left,
            elapsed_ms,
            signal = again,
            "drain interrupted by a second signal: cutting the connections still open"
        ),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
