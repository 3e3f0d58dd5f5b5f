//! [`Site`]: a scratch directory with a store, the walkthrough's
//! certificate tree and the CLI; [`Pki`]: that tree's paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{Text, run_bounded_text};
use super::{COMMAND_TIMEOUT, FRONTEND, Out, command, run_bounded_input};

/// A scratch directory with a store, the walkthrough's certificate tree
/// (paths relative to it, as in the walkthrough) and the CLI. Removed when
/// dropped.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The store directory (created by the first write).
    pub fn store_dir(&self) -> PathBuf {
        self.path("store")
    }

    pub fn store_url(&self) -> String {
        format!("dir:{}", self.store_dir().display())
    }

    /// `program` run in the site directory with a scrubbed environment
    /// ([`command`]) whose `HOME` and `XDG_DATA_HOME` are inside the site,
    /// so nothing reaches the real user's files.
    pub fn program(&self, program: &str) -> Command {
        let mut c = command(program);
        c.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.path("xdg"));
        c
    }

    /// `gatehouse` in the site directory, with no store flag: a default
    /// store would land under the site's `XDG_DATA_HOME`.
    pub fn gatehouse(&self) -> Command {
        self.program(env!("CARGO_BIN_EXE_gatehouse"))
    }

    /// `gatehouse --store dir:…`, run in the site directory.
    pub fn command(&self) -> Command {
        let mut c = self.gatehouse();
        c.arg("--store").arg(self.store_url());
        c
    }

    /// `gatehouse --store dir:… ARGS`, run in the site directory.
    pub fn cli(&self, args: &[&str]) -> Out {
        self.cli_stdin(args, b"")
    }

    /// As [`Site::cli`] with `stdin` piped in.
    pub fn cli_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        let mut c = self.command();
        c.args(args);
        run_gatehouse(c, stdin)
    }

    /// Writes `text` to `rel` under the site, creating folders.
    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `gatehouse run FLAG VALUE` must be a usage error: exit 1 and a
    /// stderr that starts `error: ` and names the flag. (A value that got
    /// through would start the gateway, which never exits by itself: the
    /// bounded run fails the test.) Returns the output for more checks.
    #[track_caller]
    pub fn assert_run_refuses(&self, flag: &str, value: &str) -> Out {
        let out = self.cli(&["run", "--admin", "127.0.0.1:0", flag, value]);
        assert_eq!(out.code, Some(1), "{flag} {value}: {out:?}");
        assert!(
            out.stderr.starts_with("error: ") && out.stderr.contains(&format!("'{flag} <")),
            "{flag} {value}: want a usage error naming the flag, got {}",
            out.stderr
        );
        out
    }

    /// Writes `yaml` to `rel` and runs `gatehouse apply -f rel`; asserts success.
    #[track_caller]
    pub fn apply(&self, rel: &str, yaml: &str) -> Out {
        self.write(rel, yaml);
        self.cli(&["apply", "-f", rel]).ok()
    }

    /// Every file under the store with its bytes: compare two snapshots to
    /// prove a command changed nothing.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(&self.store_dir(), &self.store_dir(), &mut out);
        out
    }

    /// `gatehouse pki init HOST --out .`: the walkthrough's tree for HOST.
    pub fn pki_init(&self, host: &str) {
        self.cli(&["pki", "init", host, "--out", "."]).ok();
    }

    /// The paths of `host`'s tree, relative to the site (as curl sees them).
    pub fn pki(&self, host: &str) -> Pki {
        Pki::new(host)
    }

    /// The in-process mTLS client of `host` from its `pki init` tree (its
    /// CA chain and client certificate).
    pub fn client(&self, host: &str) -> super::Client {
        let pki = self.pki(host);
        let read = |p: &Path| std::fs::read(self.path(p)).unwrap();
        super::Client::new(
            host,
            &read(&pki.ca_chain),
            &read(&pki.client_cert),
            &read(&pki.client_key),
        )
    }

    /// Issues a client certificate from `host`'s intermediate CA with the
    /// library (for the unusual ones the CLI will not make); returns the
    /// `(cert, key)` paths relative to the site.
    pub fn issue_client(
        &self,
        host: &str,
        name: &str,
        spec: &gatehouse::pki::LeafSpec,
    ) -> (PathBuf, PathBuf) {
        let layout = gatehouse::pki::HostLayout::new(self.dir.path(), host);
        let issued = layout.load_intermediate().unwrap().issue(spec).unwrap();
        let (cert, key) = self.pki(host).named_client(name);
        issued
            .write_files(&self.path(&cert), &self.path(&key), false)
            .unwrap();
        (cert, key)
    }

    /// The walkthrough's `kubectl create -n istio-system secret generic
    /// SERVICE-credential …` with `gatehouse` in place of `kubectl`.
    /// Writes `cert` and `key` under `dir` and the `frontend-credential`
    /// manifest `create secret generic ... --dry-run=client -o yaml` prints
    /// for them (with the frontend CA and any `extra` flags) to
    /// `dir/secret.yaml`; returns that path, ready for `apply -f`.
    pub fn frontend_secret_manifest(
        &self,
        dir: &str,
        cert: &str,
        key: &str,
        extra: &[&str],
    ) -> String {
        self.write(&format!("{dir}/cert.pem"), cert);
        self.write(&format!("{dir}/key.pem"), key);
        let cacert = format!(
            "--from-file=cacert={}",
            self.pki(FRONTEND).ca_chain.display()
        );
        let key_arg = format!("--from-file=key={dir}/key.pem");
        let cert_arg = format!("--from-file=cert={dir}/cert.pem");
        let mut args = vec![
            "create",
            "-n",
            "istio-system",
            "secret",
            "generic",
            "frontend-credential",
            &key_arg,
            &cert_arg,
            &cacert,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--dry-run=client", "-o", "yaml"]);
        let out = self.cli(&args).ok();
        let path = format!("{dir}/secret.yaml");
        self.write(&path, &out.stdout);
        path
    }

    /// The walkthrough's `create -n istio-system secret generic
    /// SERVICE-credential --from-file=key=KEY --from-file=cert=CERT
    /// --from-file=cacert=…` for `host` (its CA chain from `pki init`), plus
    /// `extra` (e.g. `--dry-run=client -o yaml`).
    pub fn create_secret_args(host: &str, key: &str, cert: &str, extra: &[&str]) -> Vec<String> {
        let service = host.split('.').next().unwrap();
        let mut args: Vec<String> = [
            "create",
            "-n",
            "istio-system",
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

    /// [`Site::create_secret_args`] for `host`'s `pki init` server
    /// certificate and key.
    pub fn walkthrough_secret_args(host: &str) -> Vec<String> {
        Site::create_secret_args(
            host,
            &format!("{host}/3_application/private/{host}.key.pem"),
            &format!("{host}/3_application/certs/{host}.cert.pem"),
            &[],
        )
    }

    /// The walkthrough's secret for `host` from its `pki init` tree; asserts success.
    #[track_caller]
    pub fn create_walkthrough_secret(&self, host: &str) -> Out {
        let args = Site::walkthrough_secret_args(host);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&args).ok()
    }

    /// `host`'s walkthrough secret with a CRL (`ca.crl`) that revokes a
    /// client certificate `name` issued for the purpose (`pki client`,
    /// `pki revoke`); returns that certificate and its key.
    #[track_caller]
    pub fn walkthrough_secret_revoking(&self, host: &str, name: &str) -> (PathBuf, PathBuf) {
        let pki = self.pki(host);
        self.cli(&["pki", "client", host, name, "--out", "."]).ok();
        let (cert, key) = pki.named_client(name);
        self.cli(&["pki", "revoke", host, cert.to_str().unwrap(), "--out", "."])
            .ok();
        let mut args = Site::walkthrough_secret_args(host);
        args.push(format!("--from-file=ca.crl={}", pki.crl.display()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&args).ok();
        (cert, key)
    }

    /// The two backends' ServiceEntries (STATIC, 127.0.0.1).
    pub fn apply_service_entries(&self, frontend_port: u16, inventory_port: u16) {
        let yaml = format!(
            "{}---\n{}",
            service_entry("frontend", super::FRONTEND_SERVICE, frontend_port),
            service_entry("inventory", super::INVENTORY_SERVICE, inventory_port)
        );
        self.apply("serviceentries.yaml", &yaml);
    }

    /// `openssl s_client -connect 127.0.0.1:PORT ARGS` with empty stdin.
    pub fn s_client(&self, port: u16, args: &[&str]) -> Out {
        self.s_client_input(port, args, b"")
    }

    /// `openssl s_client -connect 127.0.0.1:PORT ARGS` reading `input`.
    pub fn s_client_input(&self, port: u16, args: &[&str], input: &[u8]) -> Out {
        let mut c = self.program("openssl");
        c.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(args);
        run_bounded_input(c, input, COMMAND_TIMEOUT)
    }
}

/// Runs a gatehouse command, bounded, with `stdin`: its output must be UTF-8.
pub(crate) fn run_gatehouse(c: Command, stdin: &[u8]) -> Out {
    run_bounded_text(c, stdin, COMMAND_TIMEOUT, Text::Strict)
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), bytes);
        }
    }
}

/// A STATIC ServiceEntry: `host` port 80 (`http`) goes to `127.0.0.1:port`.
pub fn service_entry(name: &str, host: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: {name}
  namespace: default
spec:
  hosts:
  - {host}
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {port}
"
    )
}

/// The walkthrough's paths for one host, relative to the site directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub host: String,
    pub ca_chain: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub intermediate_cert: PathBuf,
    pub intermediate_key: PathBuf,
    pub crl: PathBuf,
}

impl Pki {
    pub fn new(host: &str) -> Pki {
        let l = gatehouse::pki::HostLayout::new("", host);
        Pki {
            host: host.to_owned(),
            ca_chain: l.ca_chain,
            server_cert: l.server_cert,
            server_key: l.server_key,
            client_cert: l.client_cert,
            client_key: l.client_key,
            intermediate_cert: l.intermediate_cert,
            intermediate_key: l.intermediate_key,
            crl: l.crl,
        }
    }

    /// `4_client/certs/NAME.cert.pem` and `4_client/private/NAME.key.pem`.
    pub fn named_client(&self, name: &str) -> (PathBuf, PathBuf) {
        let l = gatehouse::pki::HostLayout::new("", &self.host);
        (l.client_cert_named(name), l.client_key_named(name))
    }
}
