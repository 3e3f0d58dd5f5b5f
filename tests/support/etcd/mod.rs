//! The etcd part of the harness: a real etcd cluster on loopback, gateway
//! replicas that share it, and the walkthrough written into it through the
//! real CLI.
//!
//! A [`Cluster`] is N `etcd` processes (Debian's etcd 3.4) with their data
//! directories in a tempdir, on free loopback ports; members can be stopped
//! and started again with the same data. An [`EtcdSite`] is the
//! walkthrough's certificate tree (a [`Site`]) plus an encryption key and a
//! CLI pointed at the cluster. A [`Replica`] is `gatehouse run` with its own
//! local cache file. Requests go through the harness's one mTLS client,
//! [`Client`].
//!
//! Every wait is bounded, everything listens on loopback only, every command
//! has the harness's scrubbed environment, and every process started here is
//! killed when its guard is dropped.

mod cluster;
mod replica;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

// Only the etcd tests use these.
#[allow(unused_imports)]
pub use cluster::Cluster;
#[allow(unused_imports)]
pub use replica::Replica;

#[allow(unused_imports)]
pub use super::Client;
use super::site::run_gatehouse;
use super::{
    Backend, FRONTEND, FRONTEND_SERVICE, GATEWAY_YAML, INVENTORY, INVENTORY_SERVICE, Out, Site,
    VIRTUAL_SERVICES_YAML, service_entry,
};

/// How long an etcd member or cluster may take to become healthy.
pub const HEALTHY_TIMEOUT: Duration = Duration::from_secs(20);

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
        let out = run_gatehouse(c, b"").ok();
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
        let mut c = self.site.gatehouse();
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
        run_gatehouse(c, b"")
    }

    /// As [`cli`](Self::cli) without an encryption key.
    pub fn cli_without_key(&self, args: &[&str]) -> Out {
        let mut c = self.command(Some(&self.store), false);
        c.args(args);
        run_gatehouse(c, b"")
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

    /// The walkthrough's secret for `host` from its `pki init` tree.
    #[track_caller]
    pub fn create_walkthrough_secret(&self, host: &str) -> Out {
        let args = Site::walkthrough_secret_args(host);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&args).ok()
    }

    /// Certificates for both hosts and their secrets: what has to exist
    /// before the walkthrough's objects are applied.
    pub fn prepare_walkthrough(&self) {
        for host in [FRONTEND, INVENTORY] {
            self.site.pki_init(host);
            self.create_walkthrough_secret(host);
        }
    }

    /// Writes the walkthrough's Gateway, the frontend VirtualService at
    /// `version` (see [`frontend_vs`]), the inventory VirtualService and the
    /// backends' ServiceEntries into `foocorp/`, for one `apply -f foocorp/`.
    pub fn write_walkthrough_objects(&self, frontend: &Backend, inventory: &Backend, version: u32) {
        let (_, inventory_vs) = VIRTUAL_SERVICES_YAML.split_once("---").unwrap();
        self.write("foocorp/gateway.yaml", GATEWAY_YAML);
        self.write(
            "foocorp/virtualservices.yaml",
            &format!("{}---{inventory_vs}", frontend_vs(version)),
        );
        self.write(
            "foocorp/serviceentries.yaml",
            &format!(
                "{}---\n{}",
                service_entry("frontend", FRONTEND_SERVICE, frontend.port()),
                service_entry("inventory", INVENTORY_SERVICE, inventory.port())
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
        self.site.client(host)
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
