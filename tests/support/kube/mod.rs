//! A real Kubernetes API server on loopback: [`ApiServer`] runs
//! `apiserver.sh` (kube-apiserver v1.20.2 and etcd, see
//! `../shared/k8s/README.md`) in a tempdir of its own, with the Istio and
//! Gateway API CRDs, and drives it with the real `kubectl`.
//!
//! Each server has its own tempdir, ports, certificates and tokens, so the
//! tests of a binary run in parallel. The API server alone can be stopped
//! and started again on the same port with the same certificates and tokens
//! (etcd keeps running, so every object survives), and etcd can be
//! compacted, so a watch's resourceVersion falls out of its history.
//! Everything started here is killed, by its process id, when the
//! [`ApiServer`] is dropped (`pids.rs`). `objects.rs` makes what nothing on
//! this server makes by itself: namespaces, and Services whose
//! EndpointSlices point at local backends. A ServiceAccount's real token
//! ([`ApiServer::kubeconfig_service_account`]) runs a process with exactly
//! the RBAC bound to that account.
//!
//! Never skips: a machine without `apiserver.sh` fails the test with the
//! places it looked, because these tests must run in CI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod objects;
mod pids;

use super::{COMMAND_TIMEOUT, Out, command, poll_every, run_bounded, run_bounded_input};
use pids::{kill_and_wait, read_cmdline};

/// How long `apiserver.sh start` may take (it waits up to 60 s for `/readyz`).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `apiserver.sh crds` may take (it waits up to 60 s for Established).
const CRDS_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a restarted API server may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The user the gatehouse provider runs as in production, for
/// `kubectl auth can-i --as` (bound by `deploy/kubernetes/rbac.yaml`).
pub const GATEHOUSE_SA: &str = "system:serviceaccount:istio-system:gatehouse";

/// The folder holding `apiserver.sh`, `crds/` and `examples/`: env
/// `GATEHOUSE_K8S_DIR`, else `$CARGO_MANIFEST_DIR/../shared/k8s`, else
/// `/work/shared/k8s`. Panics, naming every place, when none has it.
pub fn k8s_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GATEHOUSE_K8S_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("apiserver.sh").is_file(),
            "GATEHOUSE_K8S_DIR={} holds no apiserver.sh",
            dir.display()
        );
        return dir;
    }
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/k8s"),
        PathBuf::from("/work/shared/k8s"),
    ];
    for dir in &candidates {
        if dir.join("apiserver.sh").is_file() {
            return dir.clone();
        }
    }
    panic!(
        "no apiserver.sh for the Kubernetes tests: set GATEHOUSE_K8S_DIR to the folder holding \
         apiserver.sh, crds/ and examples/ (looked in {} and {})",
        candidates[0].display(),
        candidates[1].display()
    );
}

/// The kube-apiserver process while it runs: the one `apiserver.sh`
/// started (a process id), or the one [`ApiServer::restart`] started (our
/// child).
enum Running {
    Started(u32),
    Restarted(Child),
    Stopped,
}

/// kube-apiserver and etcd on loopback, state in a tempdir; both are
/// killed when dropped.
pub struct ApiServer {
    dir: tempfile::TempDir,
    script: PathBuf,
    url: String,
    etcd_url: String,
    etcd_pid: u32,
    /// kube-apiserver's command line as `apiserver.sh` ran it (binary
    /// first), read from /proc at start, for [`ApiServer::restart`].
    argv: Vec<String>,
    api: Running,
}

impl ApiServer {
    /// An API server with the Istio and Gateway API CRDs installed.
    pub fn start() -> ApiServer {
        let s = ApiServer::start_bare();
        s.install_crds();
        s
    }

    /// An API server without CRDs (seconds faster, for tests of core kinds).
    /// Its ports are picked free but not held until the processes bind
    /// them, and a loaded machine may miss the script's 60 s deadline:
    /// then it starts again, in a new folder (at most three times).
    pub fn start_bare() -> ApiServer {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match ApiServer::try_start() {
                Ok(s) => return s,
                Err(why) => {
                    eprintln!("kube-apiserver did not start; starting it again:\n{why}");
                    failures.push(why);
                }
            }
        }
        panic!(
            "kube-apiserver did not start, three times:\n{}",
            failures.join("\n---\n")
        );
    }

    /// One `apiserver.sh start`; on failure, what it said (and whatever it
    /// started is killed).
    fn try_start() -> Result<ApiServer, String> {
        let script = k8s_dir().join("apiserver.sh");
        let dir = tempfile::tempdir().unwrap();
        let out = run_bounded(script_cmd(&script, dir.path(), "start"), START_TIMEOUT);
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap_or_default();
        let var = |name: &str| -> Option<String> {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches('"').to_owned())
        };
        let pids: Vec<u32> = var("PIDS")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        // apiserver.sh writes PIDS="API ETCD".
        let (api_pid, etcd_pid) = match pids[..] {
            [api, etcd] => (api, etcd),
            _ => (0, 0),
        };
        let mut s = ApiServer {
            url: var("APISERVER").unwrap_or_default(),
            etcd_url: var("ETCD").unwrap_or_default(),
            etcd_pid,
            argv: Vec::new(),
            api: if api_pid == 0 {
                Running::Stopped
            } else {
                Running::Started(api_pid)
            },
            script,
            dir,
        };
        // From here on, Drop cleans up whatever did start.
        if out.code != Some(0) || api_pid == 0 {
            let etcd_log = std::fs::read_to_string(s.dir().join("etcd.log")).unwrap_or_default();
            let etcd_tail: Vec<&str> = etcd_log.lines().rev().take(5).collect();
            return Err(format!(
                "apiserver.sh start: {:?}\nstdout:\n{}\nstderr:\n{}\napiserver.log (tail):\n{}\n\
                 etcd.log (tail, newest first):\n{}",
                out.code,
                out.stdout,
                out.stderr,
                s.log_tail(),
                etcd_tail.join("\n")
            ));
        }
        s.argv = read_cmdline(api_pid);
        Ok(s)
    }

    /// Installs the Istio 1.30.3 and Gateway API v1.6.1 CRDs beside
    /// `apiserver.sh` and waits until they are Established. The install is
    /// a server-side apply, so a second try (a loaded machine may miss the
    /// script's 60 s wait) starts where the first stopped.
    pub fn install_crds(&self) {
        let mut out = None;
        for _ in 0..2 {
            let o = run_bounded(
                script_cmd(&self.script, self.dir.path(), "crds"),
                CRDS_TIMEOUT,
            );
            if o.code == Some(0) {
                return;
            }
            eprintln!("apiserver.sh crds failed; once more:\n{}", o.stderr);
            out = Some(o);
        }
        let out = out.unwrap();
        panic!(
            "apiserver.sh crds failed twice\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
    }

    /// The state folder (certificates, logs, kubeconfigs, etcd data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster-admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The kubeconfig of the user `gatehouse`, who has no rights until a
    /// test binds RBAC to it.
    pub fn kubeconfig_gatehouse(&self) -> PathBuf {
        self.dir.path().join("kubeconfig-gatehouse")
    }

    /// A kubeconfig that authenticates as the ServiceAccount `ns/name`
    /// with a real token (TokenRequest, `kubectl create token`, valid for an
    /// hour): a process using it has exactly the RBAC bound to that account.
    /// The account must exist.
    pub fn kubeconfig_service_account(&self, ns: &str, name: &str) -> PathBuf {
        let token = self
            .kubectl(&["create", "token", name, "-n", ns])
            .ok()
            .stdout;
        let path = self.dir.path().join(format!("kubeconfig-sa-{ns}-{name}"));
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    \
             server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    \
             token: {}\ncontexts:\n- name: local\n  context: {{cluster: local, user: {name}}}\n\
             current-context: local\n",
            self.url,
            self.ca_cert().display(),
            token.trim()
        );
        std::fs::write(&path, config).unwrap();
        path
    }

    /// `kubectl ARGS` with `kubeconfig` (from [`ApiServer::kubeconfig_service_account`]).
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Out {
        run_bounded(self.kubectl_cmd(kubeconfig, args), COMMAND_TIMEOUT)
    }

    /// The API server's CA certificate (self-signed at first start).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("certs/apiserver.crt")
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:PORT` of etcd.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// `kubectl ARGS` as cluster-admin.
    pub fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_input(args, b"")
    }

    /// `kubectl ARGS` as cluster-admin with `input` on stdin (`apply -f -`).
    pub fn kubectl_input(&self, args: &[&str], input: &[u8]) -> Out {
        run_bounded_input(
            self.kubectl_cmd(&self.kubeconfig(), args),
            input,
            COMMAND_TIMEOUT,
        )
    }

    /// `kubectl ARGS` as the user `gatehouse`.
    pub fn kubectl_as_gatehouse(&self, args: &[&str]) -> Out {
        run_bounded(
            self.kubectl_cmd(&self.kubeconfig_gatehouse(), args),
            COMMAND_TIMEOUT,
        )
    }

    /// `kubectl apply --server-side -f -` of `yaml` as cluster-admin;
    /// panics with kubectl's answer unless it succeeds.
    #[track_caller]
    pub fn apply(&self, yaml: &str) -> Out {
        self.kubectl_input(&["apply", "--server-side", "-f", "-"], yaml.as_bytes())
            .ok()
    }

    /// The command for `kubectl` with `kubeconfig`, a scrubbed environment
    /// and `HOME` in the state folder (kubectl caches discovery there).
    fn kubectl_cmd(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut c = command("kubectl");
        c.env("KUBECONFIG", kubeconfig)
            .env("HOME", self.dir.path())
            .args(["--request-timeout", "15s"])
            .args(args);
        c
    }

    /// Whether the API server answers `/readyz` with `ok`.
    pub fn ready(&self) -> bool {
        let out = run_bounded(
            self.kubectl_cmd(&self.kubeconfig(), &["get", "--raw", "/readyz"]),
            COMMAND_TIMEOUT,
        );
        out.code == Some(0) && out.stdout.trim() == "ok"
    }

    /// Stops the API server only (SIGTERM, as a rolling restart would; etcd
    /// keeps running) and waits until it has exited.
    pub fn stop(&mut self) {
        match std::mem::replace(&mut self.api, Running::Stopped) {
            Running::Started(pid) => kill_and_wait(pid, self.dir.path()),
            Running::Restarted(mut child) => {
                kill_and_wait(child.id(), self.dir.path());
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::Stopped => {}
        }
    }

    /// Starts the API server again with the same command line (the same
    /// port, certificates, tokens and etcd), then waits for `/readyz`.
    /// Stops it first if it runs. The log goes on in `apiserver.log`.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.path().join("apiserver.log"))
            .unwrap();
        let mut cmd = command(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.argv[0]));
        let pid = child.id();
        self.api = Running::Restarted(child);
        self.write_pids(pid);
        let up = poll_every(Duration::from_millis(250), READY_TIMEOUT, || {
            self.ready().then_some(())
        });
        assert!(
            up.is_some(),
            "kube-apiserver not ready {READY_TIMEOUT:?} after a restart (its port {} taken?)\n{}",
            self.url,
            self.log_tail()
        );
    }

    /// Keeps `DIR/env` true after a restart, so `apiserver.sh stop DIR`
    /// still stops what runs.
    fn write_pids(&self, api_pid: u32) {
        let path = self.dir.path().join("env");
        let env = std::fs::read_to_string(&path).unwrap_or_default();
        let env: String = env
            .lines()
            .map(|l| {
                if l.starts_with("PIDS=") {
                    format!("PIDS=\"{api_pid} {}\"\n", self.etcd_pid)
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(path, env).unwrap();
    }

    /// etcd's current revision.
    pub fn etcd_revision(&self) -> u64 {
        let out = self.etcdctl(&["endpoint", "status", "-w", "json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("etcdctl endpoint status: {e}: {}", out.stdout));
        v[0]["Status"]["header"]["revision"]
            .as_u64()
            .unwrap_or_else(|| panic!("no revision in {}", out.stdout))
    }

    /// Compacts etcd's history up to its current revision: a watch (of the
    /// API server, or of a client through a restarted API server) from any
    /// older resourceVersion can no longer be resumed. Returns that revision.
    pub fn compact_etcd(&self) -> u64 {
        let rev = self.etcd_revision();
        self.etcdctl(&["compact", &rev.to_string(), "--physical"])
            .ok();
        rev
    }

    /// `etcdctl --endpoints ETCD ARGS` (API v3).
    pub fn etcdctl(&self, args: &[&str]) -> Out {
        let mut c = command("etcdctl");
        c.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.etcd_url])
            .args(args);
        run_bounded(c, COMMAND_TIMEOUT)
    }

    /// The last lines of `apiserver.log`.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
        if self.etcd_pid != 0 {
            kill_and_wait(self.etcd_pid, self.dir.path());
        }
    }
}

/// `apiserver.sh VERB DIR`, scrubbed but for the build cache it may be told.
fn script_cmd(script: &Path, dir: &Path, verb: &str) -> Command {
    let mut c = command("bash");
    c.arg(script).arg(verb).arg(dir).env("HOME", dir);
    if let Some(cache) = std::env::var_os("GATEHOUSE_K8S_CACHE") {
        c.env("GATEHOUSE_K8S_CACHE", cache);
    }
    c
}
