//! The etcd test harness: a real etcd cluster on loopback, gateway
//! replicas that share it, and the walkthrough written into it through the
//! real CLI.
//!
//! A [`Cluster`] is N `etcd` processes (Debian's etcd 3.4) with their data
//! directories in a tempdir, on free loopback ports; members can be stopped
//! and started again with the same data. An [`EtcdSite`] is the
//! walkthrough's certificate tree (from `tests/support`) plus an encryption
//! key and a CLI pointed at the cluster. A [`Replica`] is `gatehouse run`
//! with its own local cache file. [`Client`] is an in-process mTLS client
//! that returns the status, the body and the serial of the certificate the
//! replica presented.
//!
//! Every wait is bounded, everything listens on loopback only, and every
//! process started here is killed when its guard is dropped. Test files
//! include `mod support;` before `mod etcd_support;`.
#![allow(dead_code, clippy::unwrap_used)]

mod client;
mod cluster;
mod replica;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use client::Client;
pub use cluster::Cluster;
pub use replica::Replica;

use crate::support::{self, Backend, Out, Site};

/// How long an etcd member or cluster may take to become healthy.
pub const HEALTHY_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest one CLI or etcdctl command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a replica may take to print a line it owes us.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Environment the tests must not inherit: every command gets its settings
/// from its arguments.
const SCRUB: &[&str] = &[
    "GATEHOUSE_STORE",
    "GATEHOUSE_ENCRYPTION_KEY_FILE",
    "GATEHOUSE_ETCD_PREFIX",
    "GATEHOUSE_ETCD_CACERT",
    "GATEHOUSE_ETCD_CERT",
    "GATEHOUSE_ETCD_KEY",
    "GATEHOUSE_ETCD_USER",
    "GATEHOUSE_ETCD_PASSWORD",
    "GATEHOUSE_ETCD_PASSWORD_FILE",
    "ETCDCTL_ENDPOINTS",
    "RUST_LOG",
];

/// A loopback port that is free now, below Linux's ephemeral range, so an
/// outgoing connection cannot take it while a stopped member is down.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(SEQ.fetch_add(7919, Ordering::SeqCst))
        .wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    for i in 0..2000u32 {
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(104_729)) % 12_000);
        let port = u16::try_from(port).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// A plain HTTP/1.0 GET on loopback: the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// Calls `f` every 10 ms until it returns `Some`, for at most `timeout`;
/// `None` when time ran out.
pub fn try_poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The walkthrough's certificate tree and an encryption key, with the CLI
/// pointed at an etcd cluster.
pub struct EtcdSite {
    pub site: Site,
    /// `etcd://...` every command uses unless told otherwise.
    pub store: String,
    /// The key file `gatehouse keygen` wrote.
    pub key_file: PathBuf,
}

impl EtcdSite {
    /// A site writing to `store`, with a fresh key from `gatehouse keygen`.
    pub fn new(store: &str) -> EtcdSite {
        let site = Site::new();
        let s = EtcdSite {
            key_file: site.path("keys/gatehouse.key"),
            site,
            store: store.to_owned(),
        };
        std::fs::create_dir_all(s.site.path("keys")).unwrap();
        let mut c = s.command(None, false);
        c.arg("keygen").arg("--out").arg(&s.key_file);
        let out = support::run_bounded(c, COMMAND_TIMEOUT).ok();
        assert!(out.stdout.starts_with("wrote encryption key "), "{out:?}");
        s
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.site.path(rel)
    }

    /// The id of the key new values are sealed with (the key file's first key).
    pub fn key_id(&self) -> String {
        let text = std::fs::read_to_string(&self.key_file).unwrap();
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .unwrap();
        line.split_once(':').unwrap().0.to_owned()
    }

    /// `gatehouse [--store STORE] [--encryption-key-file KEY]` in the site
    /// directory, with a scrubbed environment.
    pub fn command(&self, store: Option<&str>, with_key: bool) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        for v in SCRUB {
            c.env_remove(v);
        }
        c.current_dir(self.site.dir.path())
            .env("HOME", self.site.dir.path())
            .env("XDG_DATA_HOME", self.site.path("xdg"));
        if let Some(store) = store {
            c.arg("--store").arg(store);
        }
        if with_key {
            c.arg("--encryption-key-file").arg(&self.key_file);
        }
        c
    }

    /// `gatehouse --store STORE --encryption-key-file KEY ARGS`.
    pub fn cli(&self, args: &[&str]) -> Out {
        self.cli_via(&self.store, args)
    }

    /// As [`cli`](Self::cli) with another store URL (e.g. fewer members).
    pub fn cli_via(&self, store: &str, args: &[&str]) -> Out {
        let mut c = self.command(Some(store), true);
        c.args(args);
        support::run_bounded(c, COMMAND_TIMEOUT)
    }

    /// As [`cli`](Self::cli) without an encryption key.
    pub fn cli_without_key(&self, args: &[&str]) -> Out {
        let mut c = self.command(Some(&self.store), false);
        c.args(args);
        support::run_bounded(c, COMMAND_TIMEOUT)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        self.site.write(rel, text)
    }

    /// Writes `yaml` to `rel` and applies it through `store`; asserts success.
    #[track_caller]
    pub fn apply_via(&self, store: &str, rel: &str, yaml: &str) -> Out {
        self.write(rel, yaml);
        self.cli_via(store, &["apply", "-f", rel]).ok()
    }

    #[track_caller]
    pub fn apply(&self, rel: &str, yaml: &str) -> Out {
        self.apply_via(&self.store.clone(), rel, yaml)
    }

    /// The walkthrough's `create -n istio-system secret generic
    /// SERVICE-credential --from-file=key=… --from-file=cert=…
    /// --from-file=cacert=…`, plus `extra` (e.g. `--dry-run=client -o yaml`).
    pub fn create_secret_args(host: &str, key: &str, cert: &str, extra: &[&str]) -> Vec<String> {
        let service = host.split('.').next().unwrap();
        let mut args: Vec<String> = [
            "-n",
            "istio-system",
            "create",
            "secret",
            "generic",
            &format!("{service}-credential"),
            &format!("--from-file=key={key}"),
            &format!("--from-file=cert={cert}"),
            &format!("--from-file=cacert={host}/2_intermediate/certs/ca-chain.cert.pem"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// The walkthrough's secret for `host` from its `pki init` tree.
    #[track_caller]
    pub fn create_walkthrough_secret(&self, host: &str) -> Out {
        let args = Self::create_secret_args(
            host,
            &format!("{host}/3_application/private/{host}.key.pem"),
            &format!("{host}/3_application/certs/{host}.cert.pem"),
            &[],
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&args).ok()
    }

    /// Certificates for both hosts and their secrets: what has to exist
    /// before the walkthrough's objects are applied.
    pub fn prepare_walkthrough(&self) {
        for host in [support::FRONTEND, support::INVENTORY] {
            self.site.pki_init(host);
            self.create_walkthrough_secret(host);
        }
    }

    /// Writes the walkthrough's Gateway, the frontend VirtualService at
    /// `version` (see [`frontend_vs`]), the inventory VirtualService and the
    /// backends' ServiceEntries into `foocorp/`, for one `apply -f foocorp/`.
    pub fn write_walkthrough_objects(&self, frontend: &Backend, inventory: &Backend, version: u32) {
        let (_, inventory_vs) = support::VIRTUAL_SERVICES_YAML.split_once("---").unwrap();
        self.write("foocorp/gateway.yaml", support::GATEWAY_YAML);
        self.write(
            "foocorp/virtualservices.yaml",
            &format!("{}---{inventory_vs}", frontend_vs(version)),
        );
        self.write(
            "foocorp/serviceentries.yaml",
            &format!(
                "{}---\n{}",
                support::service_entry("frontend", support::FRONTEND_SERVICE, frontend.port()),
                support::service_entry("inventory", support::INVENTORY_SERVICE, inventory.port())
            ),
        );
    }

    /// Applies frontend VirtualService `version` through `store`.
    #[track_caller]
    pub fn apply_version_via(&self, store: &str, version: u32) -> Out {
        self.apply_via(
            store,
            &format!("versions/{version}.yaml"),
            &frontend_vs(version),
        )
    }

    /// The mTLS client of `host` from the walkthrough (its CA chain and
    /// client certificate).
    pub fn client(&self, host: &str) -> Client {
        let pki = self.site.pki(host);
        let read = |p: &Path| std::fs::read(self.path(p)).unwrap();
        Client::new(
            host,
            &read(&pki.ca_chain),
            &read(&pki.client_cert),
            &read(&pki.client_key),
        )
    }

    /// Starts `gatehouse run` against `store` with its cache at
    /// `cache/NAME.json`; returns once its admin endpoint is up.
    pub fn start_replica(&self, name: &str, store: &str) -> Replica {
        let mut c = self.command(Some(store), true);
        let cache = self.path(format!("cache/{name}.json"));
        c.args([
            "run",
            "--listen",
            "443=127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .arg("--cache")
        .arg(&cache);
        Replica::spawn(c, name, self.path(format!("{name}.log")), cache)
    }
}

/// The walkthrough's frontend VirtualService with one more route:
/// `/version` answers `version N` directly, so a client can tell which
/// version a replica serves.
pub fn frontend_vs(version: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: frontend
spec:
  hosts:
  - \"frontend.foocorp.com\"
  gateways:
  - foocorp-gateway
  http:
  - match:
    - uri:
        exact: /version
    directResponse:
      status: 200
      body:
        string: \"version {version}\"
  - match:
    - uri:
        exact: /
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
"
    )
}
