//! `run`: the gateway process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use clap::builder::RangedU64ValueParser;

use super::Context;
use crate::admin::auth::AdminToken;
use crate::control::RunOptions;
use crate::proxy::Settings;
use crate::proxy::path::EscapedSlashes;
use crate::proxy::settings::UnderscoreAction;
use crate::runtime::{self, Process};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// This process's labels, matched by Gateway selectors.
    #[arg(long, default_value = "istio=ingressgateway")]
    pub labels: String,
    /// Map a Gateway port to a listen address: `443=127.0.0.1:8443` (repeatable).
    #[arg(long = "listen")]
    pub listen: Vec<String>,
    /// Admin endpoint (readiness, credentials, metrics, config dump, the
    /// `/ui` dashboard). Loopback unless you say otherwise; anywhere else
    /// only with `--admin-token-file`.
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin: SocketAddr,
    /// Local cache of the served config, used when the store (etcd) is
    /// unreachable at start (default for etcd and Kubernetes stores:
    /// DATA_DIR/gatehouse/replica-cache.json).
    #[arg(long)]
    pub cache: Option<std::path::PathBuf>,
    /// With `--store kube`: the namespaces whose Istio, Gateway API,
    /// Service and EndpointSlice objects are read (comma-separated; default:
    /// all). Secrets are read in the gateway's namespace (`-n`) only.
    #[arg(long = "watch-namespaces", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// With `--store kube`: more namespaces whose Secrets and ConfigMaps are
    /// read, for Gateway API Gateways whose `certificateRefs` live there
    /// (comma-separated; the gateway's own namespace always is). Each needs
    /// a Role granting get/list/watch on Secrets and ConfigMaps there.
    #[arg(long = "secret-namespaces", value_delimiter = ',')]
    pub secret_namespaces: Vec<String>,
    #[command(flatten)]
    pub edge: EdgeArgs,
    /// Data-plane worker threads (default: the available cores). The
    /// control plane has a thread of its own.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_WORKERS))]
    pub workers: Option<usize>,
    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish
    /// before the remaining connections are cut (1ms to 1h).
    #[arg(long = "drain-timeout", default_value = "20s", value_parser = duration_up_to_1h)]
    pub drain_timeout: Duration,
    /// Log format: plain or json.
    #[arg(long = "log-format", default_value = "plain", value_parser = ["plain", "json"])]
    pub log_format: String,
}

/// The most data-plane worker threads `--workers` takes.
const MAX_WORKERS: u64 = 1024;
/// The most connections per listener `--max-connections` takes (far above
/// what one process's file descriptors allow; the bound keeps the count
/// inside what tokio's semaphore can hold).
const MAX_CONNECTIONS: u64 = 10_000_000;

/// The edge limits of docs/edge-defaults.md that operators tune most.
/// Every duration takes 1ms to 24h: more than a day overflows nothing but
/// is never meant, and an unbounded one overflowed `Instant + Duration`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// TLS handshake deadline from accept.
    #[arg(long = "handshake-timeout", default_value = "10s", value_parser = duration_up_to_24h)]
    pub handshake_timeout: Duration,
    /// Deadline for a request's headers (HTTP/1.1, slowloris).
    #[arg(long = "request-headers-timeout", default_value = "10s", value_parser = duration_up_to_24h)]
    pub request_headers_timeout: Duration,
    /// Close a connection with no request for this long (HTTP/2: GOAWAY first).
    #[arg(long = "idle-timeout", default_value = "3600s", value_parser = duration_up_to_24h)]
    pub idle_timeout: Duration,
    /// Whole-request deadline (408).
    #[arg(long = "request-timeout", default_value = "300s", value_parser = duration_up_to_24h)]
    pub request_timeout: Duration,
    /// Upstream connect timeout (503).
    #[arg(long = "upstream-connect-timeout", default_value = "5s", value_parser = duration_up_to_24h)]
    pub upstream_connect_timeout: Duration,
    /// Upstream response timeout when the route sets none (504).
    #[arg(long = "upstream-timeout", default_value = "15s", value_parser = duration_up_to_24h)]
    pub upstream_timeout: Duration,
    /// Connections per listener; more are closed at once.
    #[arg(
        long = "max-connections",
        default_value_t = 10_000,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CONNECTIONS)
    )]
    pub max_connections: usize,
    /// Connections in all, every listener together (default: derived from
    /// the open-files limit, which `run` raises to its hard limit at start:
    /// (limit - 256) / 2, at most 50,000). At a limit, idle connections are
    /// closed to make room for new ones.
    #[arg(
        long = "max-connections-total",
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CONNECTIONS)
    )]
    pub max_connections_total: Option<usize>,
    /// Proxies in front of gatehouse whose `x-forwarded-for` entries are
    /// trusted (Envoy's `xff_num_trusted_hops`): the client is the Nth
    /// address from the right of the client's `x-forwarded-for`, sent on
    /// as `x-envoy-external-address`. 0: the socket's peer.
    #[arg(long = "trusted-hops", default_value_t = 0, value_parser = RangedU64ValueParser::<u32>::new().range(0..=16))]
    pub trusted_hops: u32,
    /// What a path holding `%2F` or `%5C` (or a raw `\`) gets (Envoy's
    /// `path_with_escaped_slashes_action`): `reject` answers 400; `keep`
    /// forwards it with the escape kept, never as a separator (a backend
    /// that decodes it may then see another path).
    #[arg(long = "path-with-escaped-slashes", value_enum, default_value_t = EscapedSlashes::Reject)]
    pub path_with_escaped_slashes: EscapedSlashes,
    /// The most body bytes a request may send (413 over it): a number of
    /// bytes, or with a K, M, G or T suffix (powers of 1024), up to 1T.
    /// 0: no limit, as Envoy and Istio.
    #[arg(long = "max-request-body", default_value = "0", value_parser = body_bytes)]
    pub max_request_body: u64,
    /// Request headers whose name holds `_` (Envoy's
    /// `headers_with_underscores_action`): reject (400), drop (removed
    /// before routing) or allow.
    #[arg(long = "headers-with-underscores", value_enum, default_value_t = Underscores::Reject)]
    pub headers_with_underscores: Underscores,
    /// How long a request body may stall (408) or a response write to the
    /// client stay pending (connection closed): slow POST and slow read.
    #[arg(long = "stream-idle-timeout", default_value = "300s", value_parser = duration_up_to_24h)]
    pub stream_idle_timeout: Duration,
    /// Report a serving certificate as EXPIRING (and log a warning) this
    /// long before its notAfter; 0s: only when it has EXPIRED (0s to 365d).
    #[arg(long = "expiry-warning", default_value = "7d", value_parser = expiry_warning)]
    pub expiry_warning: Duration,
    /// HTTP/2 frames that ask for nothing (PING, SETTINGS, RST_STREAM,
    /// PRIORITY, empty or unknown frames) one connection may send per
    /// second; over it: GOAWAY ENHANCE_YOUR_CALM and the connection closes.
    #[arg(long = "h2-max-control-frames", default_value_t = 100, value_parser = RangedU64ValueParser::<u32>::new().range(10..=1_000_000))]
    pub h2_max_control_frames: u32,
    /// Every connection to a data-plane listener starts with a PROXY
    /// protocol header (v1 or v2) from the TCP load balancer in front; its
    /// source address is the client's. A connection without one is closed.
    #[arg(long = "proxy-protocol")]
    pub proxy_protocol: bool,
}

/// `--headers-with-underscores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Underscores {
    Reject,
    Drop,
    Allow,
}

impl From<Underscores> for UnderscoreAction {
    fn from(u: Underscores) -> UnderscoreAction {
        match u {
            Underscores::Reject => UnderscoreAction::Reject,
            Underscores::Drop => UnderscoreAction::Drop,
            Underscores::Allow => UnderscoreAction::Allow,
        }
    }
}

/// The most `--max-request-body` takes: 1 TiB.
const MAX_BODY: u64 = 1 << 40;

/// `--max-request-body`: bytes, or a number with a K, M, G or T suffix
/// (powers of 1024), `0..=1T`.
fn body_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return Err(format!("{s:?}: the suffix must be K, M, G or T")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 1048576, 512K or 10M"))?;
    match n.checked_mul(1u64 << shift) {
        Some(v) if v <= MAX_BODY => Ok(v),
        _ => Err(format!("{s} is out of range: give 0 (no limit) to 1T")),
    }
}

/// A duration flag's value within `1ms..=max` (`max_name` says it).
fn duration_in(s: &str, max: Duration, max_name: &str) -> Result<Duration, String> {
    let d = crate::config::duration::parse(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 10s or 250ms"))?;
    if d < Duration::from_millis(1) || d > max {
        return Err(format!("{s} is out of range: give 1ms to {max_name}"));
    }
    Ok(d)
}

fn duration_up_to_24h(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_secs(24 * 3600), "24h")
}

fn duration_up_to_1h(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_secs(3600), "1h")
}

/// `--expiry-warning`: a duration (days as `7d`), 0s to 365d.
fn expiry_warning(s: &str) -> Result<Duration, String> {
    const MAX_DAYS: u64 = 365;
    let d = match s.trim().strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(24 * 3600))
            .map(Duration::from_secs),
        None => crate::config::duration::parse(s),
    }
    .ok_or_else(|| format!("{s:?} is not a duration like 7d, 12h or 30m"))?;
    if d > Duration::from_secs(MAX_DAYS * 24 * 3600) {
        return Err(format!("{s} is out of range: give 0s to {MAX_DAYS}d"));
    }
    Ok(d)
}

impl EdgeArgs {
    fn settings(&self) -> Settings {
        Settings {
            handshake_timeout: self.handshake_timeout,
            request_headers_timeout: self.request_headers_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            upstream_connect_timeout: self.upstream_connect_timeout,
            upstream_response_timeout: self.upstream_timeout,
            max_connections_per_listener: self.max_connections,
            trusted_hops: self.trusted_hops,
            path_with_escaped_slashes: self.path_with_escaped_slashes,
            max_request_body_bytes: self.max_request_body,
            headers_with_underscores: self.headers_with_underscores.into(),
            stream_idle_timeout: self.stream_idle_timeout,
            expiry_warning: self.expiry_warning,
            proxy_protocol: self.proxy_protocol,
            h2_max_control_frames: self.h2_max_control_frames,
            ..Settings::default()
        }
    }
}

fn parse_labels(s: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--labels {pair:?}: expected key=value"))?;
        labels.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(labels)
}

fn parse_listen(items: &[String]) -> anyhow::Result<BTreeMap<u16, SocketAddr>> {
    let mut map = BTreeMap::new();
    for item in items {
        let (port, addr) = item.split_once('=').ok_or_else(|| {
            anyhow::anyhow!(
                "--listen {item:?}: expected PORT=ADDRESS:PORT, e.g. 443=127.0.0.1:8443"
            )
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow::anyhow!("--listen {item:?}: {port:?} is not a port"))?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| anyhow::anyhow!("--listen {item:?}: {addr:?} is not ADDRESS:PORT"))?;
        map.insert(port, addr);
    }
    Ok(map)
}

pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Plain logs on stdout with a default filter (RUST_LOG overrides it), for
/// the demo, whose log lines are part of what it shows.
pub fn init_logging_stdout(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(std::io::stdout)
        .try_init();
}

/// The admin endpoint's token, and the refusal to put it off loopback
/// without one: the admin view shows every host, route and certificate the
/// gateway serves.
fn admin_token(ctx: &Context, admin: SocketAddr) -> anyhow::Result<Option<Arc<AdminToken>>> {
    let token = ctx.admin_token()?.map(Arc::new);
    if token.is_none() && !crate::admin::is_loopback(&admin) {
        anyhow::bail!(
            "--admin {admin} is not on loopback: give --admin-token-file FILE so that the admin endpoint needs a bearer token there"
        );
    }
    Ok(token)
}

/// `gatehouse run`: builds its own runtimes (see `crate::runtime`).
pub fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<()> {
    let admin_token = admin_token(ctx, args.admin)?;
    let json = args.log_format == "json";
    init_logging(json);
    let store_url = ctx.store_url.as_deref().unwrap_or("dir:");
    let cache = match args.cache {
        Some(c) => Some(c),
        None if store_url.starts_with("etcd") || store_url.starts_with("kube") => {
            Some(crate::store::default_location()?.join("replica-cache.json"))
        }
        None => None,
    };
    let cache_keyring = match &ctx.etcd.encryption_key_file {
        Some(p) => Some(Arc::new(crate::store::crypt::Keyring::load(p)?)),
        None => None,
    };
    let opts = RunOptions {
        cache,
        cache_keyring,
        labels: parse_labels(&args.labels)?,
        namespace: ctx
            .namespace
            .clone()
            .unwrap_or_else(|| "istio-system".into()),
        listen: parse_listen(&args.listen)?,
        json_log: json,
    };
    let store = ctx.open_store_with(crate::store::KubeOptions {
        gateway_namespace: opts.namespace.clone(),
        watch_namespaces: args.watch_namespaces.clone(),
        secret_namespaces: args.secret_namespaces.clone(),
        ..Default::default()
    })?;
    let nofile = runtime::nofile::raise();
    let mut settings = args.edge.settings();
    settings.max_connections_total = args
        .edge
        .max_connections_total
        .unwrap_or_else(|| nofile.connection_limit());
    tracing::info!(
        soft_before = nofile.soft_before,
        soft = nofile.soft,
        hard = nofile.hard,
        max_connections_total = settings.max_connections_total,
        max_connections_per_listener = settings.max_connections_per_listener,
        "open-files limit raised; connection limits set"
    );
    let process = Process {
        workers: args.workers.unwrap_or_else(runtime::default_workers),
        drain_timeout: args.drain_timeout,
        admin: args.admin,
        admin_token,
        settings,
    };
    runtime::run(process, opts, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_sizes() {
        let ok = [
            ("0", 0),
            ("1024", 1024),
            ("1K", 1024),
            ("1k", 1024),
            ("10M", 10 << 20),
            ("1T", 1 << 40),
        ];
        for (s, v) in ok {
            assert_eq!(body_bytes(s), Ok(v), "{s}");
        }
        for s in [
            "",
            "K",
            "-1",
            "1.5M",
            "1KB",
            "2T",
            "1099511627777",
            "99999999999999999999",
            "1X",
        ] {
            assert!(body_bytes(s).is_err(), "{s}");
        }
    }
}
