//! The command line of `gatehouse-loadgen`: one subcommand per mode, and the
//! TLS target options they share.
//!
//! Parsing only: nothing here opens a socket or reads a file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse-loadgen",
    about = "Load generator for the side-by-side benchmark (bench/README.md): mutual TLS, HTTP/1.1 and HTTP/2, keep-alive, handshakes, idle connections"
)]
pub struct Cli {
    /// Tokio worker threads of the load generator itself.
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// N connections, many requests each (optionally at a fixed total rate).
    Keepalive(KeepaliveArgs),
    /// A new connection (a full handshake unless --resume) for every request.
    Handshakes(HandshakesArgs),
    /// Open N connections (handshake and one request each) and hold them.
    Idle(IdleArgs),
    /// A tiny HTTP/1.1 backend that every proxy under test forwards to.
    Backend(BackendArgs),
    /// Credential push latency: rotate a host's server certificate with
    /// `gatehouse apply`, then time until a handshake serves the new one.
    PushLatency(PushArgs),
    /// Write the objects for N hosts, each with its own credential.
    Hosts(HostsArgs),
}

/// The key exchange group offered in the ClientHello (only that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Group {
    X25519,
    Secp256r1,
}

/// Where to connect and with which credentials.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Address to connect to (loopback only unless --allow-remote).
    #[arg(long)]
    pub connect: SocketAddr,
    /// CA bundle (PEM) that signed the server certificate.
    #[arg(long)]
    pub ca: PathBuf,
    /// Client certificate (PEM) to present.
    #[arg(long)]
    pub cert: PathBuf,
    /// Key (PEM) of the client certificate.
    #[arg(long)]
    pub key: PathBuf,
    /// Server name sent as SNI and checked against the certificate.
    #[arg(long)]
    pub sni: String,
    /// Host header (:authority); the SNI when not given.
    #[arg(long)]
    pub host: Option<String>,
    /// Request path.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Speak HTTP/2 (ALPN h2) instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// Key exchange group.
    #[arg(long, value_enum, default_value_t = Group::X25519)]
    pub group: Group,
    /// Allow a non-loopback --connect address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Deadline for one connect, handshake or request, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// How the results are printed.
#[derive(Debug, Clone, Args)]
pub struct Output {
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeepaliveArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
    /// Connections, each with one request in flight.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Fixed total rate in requests per second, spread over the connections;
    /// latency is then counted from each request's scheduled time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of load before counting starts (not reported).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Requests in flight on each connection: HTTP/2 streams (with
    /// `--http2` only; HTTP/1.1 has one at a time).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Mixed load: every Nth request of a connection asks `Connection:
    /// close`, and the next one opens a new connection (a full handshake,
    /// counted in that request's latency). 0: never. HTTP/1.1 only.
    #[arg(long, default_value_t = 0)]
    pub new_connection_every: u64,
}

#[derive(Debug, Args)]
pub struct HandshakesArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
    /// Concurrent connections being made.
    #[arg(short = 'c', long, default_value_t = 20)]
    pub concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Offer session resumption (tickets / session IDs) from earlier handshakes.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
    /// Connections to open and hold.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: usize,
    /// Connections being opened at once.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub concurrency: usize,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Most seconds to spend opening them.
    #[arg(long, default_value_t = 120.0)]
    pub open_timeout: f64,
    /// Written (with the number open) once every connection is open or has
    /// failed, so a script can measure the proxy while they are held.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Address to listen on (loopback only unless --allow-remote).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The response body.
    #[arg(long, default_value = "ok\n")]
    pub body: String,
    /// Allow a non-loopback --listen address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Exit after this many seconds (0: serve until killed).
    #[arg(long, default_value_t = 0.0)]
    pub max_seconds: f64,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
    /// The gatehouse binary whose `apply` changes the store.
    #[arg(long)]
    pub gatehouse: PathBuf,
    /// The store, as for `gatehouse --store`.
    #[arg(long)]
    pub store: String,
    /// The host's `gatehouse pki init` folder (its intermediate CA signs the
    /// new server certificates).
    #[arg(long)]
    pub pki_dir: PathBuf,
    /// The Secret to rotate (namespace istio-system).
    #[arg(long)]
    pub secret: String,
    /// Number of rotations.
    #[arg(long, default_value_t = 50)]
    pub rotations: usize,
    /// Most seconds to wait for one rotation to be served.
    #[arg(long, default_value_t = 10.0)]
    pub wait: f64,
    /// Milliseconds between polling handshakes (each is a full handshake,
    /// so polling without a pause would load the gateway it measures).
    #[arg(long, default_value_t = 1.0)]
    pub poll_interval: f64,
    /// Scratch folder for the generated manifests.
    #[arg(long)]
    pub work_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Number of hosts (h0.bench.test, h1.bench.test, ...).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Folder for the manifest and the client credentials.
    #[arg(long)]
    pub out: PathBuf,
    /// The backend every host routes to (a STATIC ServiceEntry).
    #[arg(long)]
    pub backend: SocketAddr,
}
