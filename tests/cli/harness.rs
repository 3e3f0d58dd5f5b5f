//! The harness's promise that a developer's own settings never reach a
//! command a test starts: with `GATEHOUSE_*`, `XDG_*`, `HOME`, etcd, curl,
//! OpenSSL, proxy and log variables all set to a trap directory, gatehouse
//! still reads and writes only its site, and none of those variables is
//! passed on.
//!
//! The harness reads this process's environment, and tests share it, so the
//! poisoned environment is given to this binary re-executed as a child
//! (`child_with_poisoned_environment`), which does the checks.

use std::path::Path;
use std::process::Command;

use crate::support::{self, COMMAND_TIMEOUT, GATEWAY_YAML, Site, run_bounded};

/// Set in the child only.
const CHILD_MARK: &str = "GATEHOUSE_HARNESS_TEST_CHILD";
/// Set in the child only: the directory every poisoned variable points into.
const CHILD_TRAP: &str = "GATEHOUSE_HARNESS_TEST_TRAP";

/// Variables a developer may have set, each pointing into `trap`.
fn poison(trap: &Path) -> Vec<(&'static str, String)> {
    let t = |rel: &str| trap.join(rel).display().to_string();
    vec![
        ("GATEHOUSE_STORE", format!("dir:{}", t("store"))),
        ("GATEHOUSE_ENCRYPTION_KEY_FILE", t("gatehouse.key")),
        ("GATEHOUSE_ETCD_PASSWORD", "poison".into()),
        ("GATEHOUSE_SOMETHING_NEW", "poison".into()),
        ("XDG_DATA_HOME", t("xdg-data")),
        ("XDG_CONFIG_HOME", t("xdg-config")),
        ("HOME", t("home")),
        ("KUBECONFIG", t("kubeconfig")),
        ("RUST_LOG", "trace".into()),
        ("ETCDCTL_ENDPOINTS", "127.0.0.1:1".into()),
        ("ETCD_DATA_DIR", t("etcd")),
        ("CURL_CA_BUNDLE", t("ca.pem")),
        ("SSL_CERT_FILE", t("ca.pem")),
        ("OPENSSL_CONF", t("openssl.cnf")),
        ("https_proxy", "http://127.0.0.1:1".into()),
        ("HTTPS_PROXY", "http://127.0.0.1:1".into()),
    ]
}

/// The names `env` printed that are poisoned ones.
fn poisoned_names(env_out: &str, trap: &Path) -> Vec<String> {
    let names: Vec<&str> = poison(trap).iter().map(|(n, _)| *n).collect();
    env_out
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n))
        .filter(|n| names.contains(n))
        .map(str::to_owned)
        .collect()
}

#[test]
fn scrubbed_commands_see_none_of_the_developers_settings() {
    let trap = tempfile::tempdir().unwrap();
    let mut c = support::this_test(concat!(module_path!(), "::child_with_poisoned_environment"));
    c.envs(poison(trap.path()))
        .env(CHILD_MARK, "1")
        .env(CHILD_TRAP, trap.path());
    let out = run_bounded(c, COMMAND_TIMEOUT * 3);
    assert_eq!(out.code, Some(0), "the child failed: {out:?}");
    // The child's checks ran (a filter that matched nothing would pass too).
    assert!(out.stdout.contains("test result: ok. 1 passed"), "{out:?}");
    let left: Vec<_> = std::fs::read_dir(trap.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "written where a variable pointed: {left:?}"
    );
}

/// The child's half; a no-op in a normal run.
#[test]
fn child_with_poisoned_environment() {
    let Some(trap) = std::env::var_os(CHILD_TRAP) else {
        return;
    };
    assert_eq!(std::env::var(CHILD_MARK).as_deref(), Ok("1"));
    let trap = Path::new(&trap);
    // The poison reached this process: a plain command sees all of it.
    let plain = run_bounded(Command::new("env"), COMMAND_TIMEOUT).ok();
    assert_eq!(
        poisoned_names(&plain.stdout, trap).len(),
        poison(trap).len(),
        "{}",
        plain.stdout
    );
    // A scrubbed one sees none of it, nor does a site's.
    let scrubbed = run_bounded(support::command("env"), COMMAND_TIMEOUT).ok();
    assert_eq!(poisoned_names(&scrubbed.stdout, trap), Vec::<String>::new());
    let site = Site::new();
    let in_site = run_bounded(site.program("env"), COMMAND_TIMEOUT).ok();
    let home = format!("HOME={}", site.dir.path().display());
    assert!(in_site.lines().contains(&home.as_str()), "{in_site:?}");
    // gatehouse with no store flag uses the site's default store, and the
    // CLI with `--store` uses the site's store.
    site.write("gateway.yaml", GATEWAY_YAML);
    let mut apply = site.gatehouse();
    apply.args(["apply", "-f", "gateway.yaml"]);
    assert_eq!(
        run_bounded(apply, COMMAND_TIMEOUT).ok().stdout,
        "gateway.networking.istio.io/foocorp-gateway created\n"
    );
    assert!(site.path("xdg/gatehouse").is_dir());
    site.apply("again.yaml", GATEWAY_YAML);
    let got = site.cli(&["get", "gateways", "-o", "name"]).ok();
    assert_eq!(got.stdout, "gateway.networking.istio.io/foocorp-gateway\n");
}
