//! [`KubeSite`]: a real API server ([`ApiServer`]), the walkthrough's
//! certificate tree in a site folder, and the commands a user types there:
//! `kubectl` and `gatehouse --store kube`, both with the API server's
//! kubeconfig, run in the site folder so the walkthrough's relative paths
//! work as written.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::etcd::Replica;
use crate::support::kube::ApiServer;
use crate::support::{
    Backend, COMMAND_TIMEOUT, FRONTEND, GATEWAY_YAML, INVENTORY, Out, Site, VIRTUAL_SERVICES_YAML,
    command, run_bounded, run_bounded_input,
};

/// The walkthrough's secrets, exactly as published (with `kubectl`).
pub const CREATE_SECRETS: &str = "\
kubectl create -n istio-system secret generic frontend-credential  \\
--from-file=key=frontend.foocorp.com/3_application/private/frontend.foocorp.com.key.pem \\
--from-file=cert=frontend.foocorp.com/3_application/certs/frontend.foocorp.com.cert.pem \\
--from-file=cacert=frontend.foocorp.com/2_intermediate/certs/ca-chain.cert.pem

kubectl create -n istio-system secret generic inventory-credential  \\
--from-file=key=inventory.foocorp.com/3_application/private/inventory.foocorp.com.key.pem \\
--from-file=cert=inventory.foocorp.com/3_application/certs/inventory.foocorp.com.cert.pem \\
--from-file=cacert=inventory.foocorp.com/2_intermediate/certs/ca-chain.cert.pem
";

/// What the API server would hold for a backend on a real cluster: its
/// Service (port 80) and an EndpointSlice (v1beta1: the test server is
/// 1.20) with one ready endpoint on 127.0.0.1 at `port`.
pub fn service_yaml(name: &str, namespace: &str, port: u16) -> String {
    service_on(name, namespace, 80, port)
}

/// As [`service_yaml`], the Service on port `service_port`.
pub fn service_on(name: &str, namespace: &str, service_port: u16, port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  ports:
  - {{name: http, port: {service_port}, targetPort: 8080, protocol: TCP}}
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports:
- {{name: http, port: {port}, protocol: TCP}}
endpoints:
- addresses: [\"127.0.0.1\"]
  conditions: {{ready: true}}
"
    )
}

pub struct KubeSite {
    pub api: ApiServer,
    pub site: Site,
}

impl KubeSite {
    /// An API server with the CRDs, the walkthrough's namespaces and both
    /// hosts' certificate trees (`gatehouse pki init`); no objects yet.
    pub fn new() -> KubeSite {
        let api = ApiServer::start();
        let site = Site::new();
        for host in [FRONTEND, INVENTORY] {
            site.pki_init(host);
        }
        let s = KubeSite { api, site };
        for ns in ["istio-system", "ux", "corp-services"] {
            s.kubectl(&["create", "namespace", ns]).ok();
        }
        s
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.api.kubeconfig()
    }

    /// `sh -c SCRIPT` in the site folder with the admin kubeconfig: the
    /// walkthrough's commands as a user pastes them.
    pub fn shell(&self, script: &str) -> Out {
        let mut c = command("sh");
        c.args(["-ec", script])
            .current_dir(self.site.path("."))
            .env("KUBECONFIG", self.kubeconfig());
        run_bounded(c, COMMAND_TIMEOUT)
    }

    pub fn kubectl(&self, args: &[&str]) -> Out {
        let mut c = command("kubectl");
        c.args(args)
            .current_dir(self.site.path("."))
            .env("KUBECONFIG", self.kubeconfig());
        run_bounded(c, COMMAND_TIMEOUT)
    }

    /// `kubectl apply -f -` of `yaml`.
    #[track_caller]
    pub fn kubectl_apply(&self, yaml: &str) -> Out {
        let mut c = command("kubectl");
        c.args(["apply", "-f", "-"])
            .current_dir(self.site.path("."))
            .env("KUBECONFIG", self.kubeconfig());
        run_bounded_input(c, yaml.as_bytes(), COMMAND_TIMEOUT).ok()
    }

    /// `gatehouse --store kube` in the site folder with `kubeconfig`.
    pub fn gatehouse_as(&self, kubeconfig: &PathBuf) -> Command {
        let mut c = self.site.gatehouse();
        c.args(["--store", "kube"]).env("KUBECONFIG", kubeconfig);
        c
    }

    /// `gatehouse --store kube ARGS` as the admin user.
    pub fn cli(&self, args: &[&str]) -> Out {
        let mut c = self.gatehouse_as(&self.kubeconfig());
        c.args(args);
        run_bounded(c, COMMAND_TIMEOUT)
    }

    /// `gatehouse --store kube run` serving Gateway port 443, as `kubeconfig`'s user.
    pub fn replica_as(&self, name: &str, kubeconfig: &PathBuf) -> Replica {
        self.replica_as_with(name, kubeconfig, &[])
    }

    fn replica_as_with(&self, name: &str, kubeconfig: &PathBuf, args: &[&str]) -> Replica {
        let mut c = self.gatehouse_as(kubeconfig);
        let cache = self.site.path(format!("cache-{name}.json"));
        c.args([
            "run",
            "--listen",
            "443=127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--cache",
        ])
        .arg(&cache)
        .args(args);
        Replica::spawn(c, name, self.site.path(format!("{name}.log")), cache)
    }

    pub fn replica(&self, name: &str) -> Replica {
        self.replica_with(name, &[])
    }

    /// As [`KubeSite::replica`], with more `run` arguments.
    pub fn replica_with(&self, name: &str, args: &[&str]) -> Replica {
        self.replica_as_with(name, &self.kubeconfig(), args)
    }

    /// The walkthrough on the API server: its secrets, its Gateway and
    /// VirtualServices byte for byte, and a Service with an EndpointSlice
    /// for each backend.
    pub fn walkthrough(&self, frontend: &Backend, inventory: &Backend) {
        let out = self.shell(CREATE_SECRETS).ok();
        assert!(
            out.stdout.contains("secret/inventory-credential created"),
            "{out:?}"
        );
        self.site.write("gateway.yaml", GATEWAY_YAML);
        self.site
            .write("virtualservices.yaml", VIRTUAL_SERVICES_YAML);
        let out = self
            .kubectl(&["apply", "-f", "gateway.yaml", "-f", "virtualservices.yaml"])
            .ok();
        assert!(
            out.stdout
                .contains("virtualservice.networking.istio.io/inventory created"),
            "{out:?}"
        );
        self.kubectl_apply(&service_yaml("frontend", "ux", frontend.port()));
        self.kubectl_apply(&service_yaml(
            "inventory",
            "corp-services",
            inventory.port(),
        ));
    }
}

/// How long a replica may take to serve what the API server holds.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(15);
