//! Starting commands: the one environment scrub, bounded runs, and what a
//! command printed.
//!
//! Every process a test starts (gatehouse, curl, openssl, etcd, etcdctl, a
//! shell, this test binary re-executed) is built by [`command`], so none of
//! them sees the developer's store, encryption key, etcd credentials, proxy
//! or home directory. The scrub is by name pattern rather than a fixed
//! list, so a setting gatehouse learns tomorrow (`GATEHOUSE_*`) is stripped
//! without touching this file.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Prefixes of variables that choose what gatehouse (every `GATEHOUSE_*`
/// flag), etcd and etcdctl (`ETCD_*` are etcd's flags, `ETCDCTL_*`
/// etcdctl's), curl and OpenSSL read, and where anything finds its data,
/// config and cache (`XDG_*`).
const SCRUB_PREFIXES: &[&str] = &[
    "GATEHOUSE_",
    "ETCD",
    "XDG_",
    "CURL_",
    "SSL_CERT_",
    "OPENSSL_",
];

/// Single variables with the same effect: the home directory (gatehouse's
/// default store lives under it; curl reads `~/.curlrc`), Kubernetes'
/// config, log filters (tests read gatehouse's default log lines), and
/// proxies (curl would send a loopback request through one).
const SCRUB_NAMES: &[&str] = &[
    "HOME",
    "KUBECONFIG",
    "RUST_LOG",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "ftp_proxy",
];

/// Whether the variable `name` is one the tests must not pass on.
fn scrubbed(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    SCRUB_PREFIXES.iter().any(|p| name.starts_with(p))
        || SCRUB_NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// The variables of this process that [`command`] removes.
fn to_scrub() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| scrubbed(name))
        .collect()
}

/// `program` with the environment scrubbed (see the module doc): no
/// `GATEHOUSE_*`, `ETCD*`, `XDG_*`, `CURL_*`, `SSL_CERT_*`, `OPENSSL_*`,
/// `HOME`, `KUBECONFIG`, `RUST_LOG` or proxy variable is inherited. A panic
/// in a Rust child prints a backtrace, which [`no_panic`] catches.
/// [`crate::support::Site`] sets `HOME` and `XDG_DATA_HOME` to its own
/// directory again.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    for name in to_scrub() {
        c.env_remove(name);
    }
    c.env("RUST_BACKTRACE", "1");
    c
}

/// This test binary, re-executed to run only the test `path` (scrubbed,
/// one thread). `path` is the test's `module_path!()` and name, such as
/// `concat!(module_path!(), "::child_process_entry")`: it starts with the
/// crate's name, which the test harness leaves out of test names.
pub fn this_test(path: &str) -> Command {
    let name = path.split_once("::").map_or(path, |(_, rest)| rest);
    let mut c = command(std::env::current_exe().unwrap());
    c.args(["--exact", name, "--test-threads=1"]);
    c
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panics with the whole output unless the command exited 0. Returns a
    /// copy, so both `out.ok();` and `let out = site.cli(..).ok();` read well.
    #[track_caller]
    pub fn ok(&self) -> Out {
        assert_eq!(
            self.code,
            Some(0),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.clone()
    }

    /// The stdout lines, without the trailing newline.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
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

/// How a command's output becomes text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text {
    /// Anything not UTF-8 fails the test: gatehouse's own output.
    Strict,
    /// Invalid bytes become U+FFFD: other programs' output.
    Lossy,
}

/// Runs `cmd` with empty stdin, killing it if it outlives `timeout`.
pub fn run_bounded(cmd: Command, timeout: Duration) -> Out {
    run_bounded_input(cmd, b"", timeout)
}

/// Runs `cmd` with `input` on its stdin, killing it if it outlives `timeout`.
pub fn run_bounded_input(cmd: Command, input: &[u8], timeout: Duration) -> Out {
    run_bounded_text(cmd, input, timeout, Text::Lossy)
}

/// [`run_bounded_input`], decoding the output as `text` says.
pub(crate) fn run_bounded_text(
    mut cmd: Command,
    input: &[u8],
    timeout: Duration,
    text: Text,
) -> Out {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    {
        let mut stdin = child.stdin.take().unwrap();
        // The command may exit before reading it all; that is its answer.
        let _ = stdin.write_all(input);
    }
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let decode = |what: &str, bytes: Vec<u8>| match text {
        Text::Strict => String::from_utf8(bytes)
            .unwrap_or_else(|e| panic!("{cmd:?} printed non-UTF-8 on {what}: {e}")),
        Text::Lossy => String::from_utf8_lossy(&bytes).into_owned(),
    };
    Out {
        code: status.code(),
        stdout: decode("stdout", stdout.join().unwrap()),
        stderr: decode("stderr", stderr.join().unwrap()),
    }
}
