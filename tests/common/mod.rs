//! Helpers for the CLI tests: run the real `gatehouse` binary against a
//! store in a fresh temporary directory, write manifests, snapshot the store
//! byte for byte, and make certificates with `gatehouse::pki`.
//!
//! Each test crate uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

/// What a user sees after one command.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The stdout lines, without the trailing newline.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Panics with the whole output unless the command exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command exited 1 with exactly one line on stderr
    /// that starts with `error: ` and shows no sign of a panic. Returns that line.
    #[track_caller]
    pub fn one_error(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "expected exit code 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        no_panic(&self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got {}:\n{}",
            lines.len(),
            self.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "stderr should start with `error: `: {}",
            lines[0]
        );
        lines[0]
    }
}

/// Panics if `stderr` shows a Rust panic or backtrace.
#[track_caller]
pub fn no_panic(stderr: &str) {
    for sign in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "thread 'main'",
    ] {
        assert!(
            !stderr.contains(sign),
            "stderr shows a panic ({sign}):\n{stderr}"
        );
    }
}

/// A scratch directory with its own store; removed when dropped.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The store directory (created by the first write).
    pub fn store_dir(&self) -> PathBuf {
        self.path("store")
    }

    pub fn store_url(&self) -> String {
        format!("dir:{}", self.store_dir().display())
    }

    /// A `gatehouse` command with `--store` set, run in the scratch
    /// directory, with an environment that cannot reach the real user's store.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        c.current_dir(self.dir.path())
            .arg("--store")
            .arg(self.store_url())
            .env_remove("GATEHOUSE_STORE")
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.path("xdg"))
            // A panic would then print a backtrace, which `no_panic` catches.
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `gatehouse --store dir:... ARGS` with empty stdin.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_stdin(args, b"")
    }

    /// Runs `gatehouse --store dir:... ARGS` with `stdin` piped in.
    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut input = child.stdin.take().unwrap();
            // The command may exit before reading everything; that is its answer.
            let _ = input.write_all(stdin);
        }
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Writes `text` to `rel` under the scratch directory, creating folders.
    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Every file under the store with its bytes: compare two snapshots to
    /// prove a command changed nothing.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(&self.store_dir(), &self.store_dir(), &mut out);
        out
    }
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

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Secret manifest in exactly the form `kubectl create secret generic
/// NAME --from-file=... --dry-run=client -o yaml` prints: keys sorted,
/// values base64 on one line, `creationTimestamp: null`.
pub fn kubectl_secret_yaml(name: &str, namespace: &str, data: &[(&str, &[u8])]) -> String {
    let mut sorted: Vec<_> = data.to_vec();
    sorted.sort_by_key(|(k, _)| *k);
    let mut s = String::from("apiVersion: v1\ndata:\n");
    for (k, v) in sorted {
        s.push_str(&format!("  {k}: {}\n", b64(v)));
    }
    s.push_str(&format!(
        "kind: Secret\nmetadata:\n  creationTimestamp: null\n  name: {name}\n  namespace: {namespace}\n"
    ));
    s
}

/// A server certificate and key for `host` from a fresh root and
/// intermediate: `(chain PEM (leaf, intermediate, root), key PEM, CA chain PEM)`.
pub struct Cred {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

pub fn issue(host: &str, spec: Option<gatehouse::pki::LeafSpec>) -> Cred {
    use gatehouse::pki::{Ca, KeyType, LeafSpec};
    let root = Ca::new_root(&format!("{host} root"), KeyType::EcdsaP256).unwrap();
    let inter = root.intermediate(&format!("{host} intermediate")).unwrap();
    let leaf = inter
        .issue(&spec.unwrap_or_else(|| LeafSpec::server(host)))
        .unwrap();
    Cred {
        cert: leaf.fullchain_pem(),
        key: leaf.key_pem.clone(),
        ca: inter.chain_pem(),
    }
}
