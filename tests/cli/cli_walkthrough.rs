//! The secure-ingress walkthrough typed with `gatehouse` in place of
//! `kubectl`: the Gateway and VirtualServices as published, certificates from
//! `gatehouse pki init`, secrets from the walkthrough's own `create secret`
//! commands and from kubectl's `--dry-run=client -o yaml` form, then `get`
//! and `delete` as a user sees them.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::support::{Site, b64, kubectl_secret_yaml};

/// The walkthrough's YAML, byte for byte as published.
const GATEWAY: &str = crate::support::GATEWAY_YAML;
const VIRTUAL_SERVICES: &str = crate::support::VIRTUAL_SERVICES_YAML;

const HOSTS: [&str; 2] = ["frontend.foocorp.com", "inventory.foocorp.com"];

/// The table lines with the AGE cell (always last, never padded) replaced by
/// `<age>`, so tables compare exactly, spacing included.
fn table(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| match l.rsplit_once("   ") {
            Some((rest, age))
                if age.len() >= 2
                    && age[..age.len() - 1].bytes().all(|b| b.is_ascii_digit())
                    && age.ends_with(['s', 'm', 'h', 'd']) =>
            {
                format!("{rest}   <age>")
            }
            _ => l.to_owned(),
        })
        .collect()
}

fn write_examples(env: &Site) {
    env.write("foocorp/gateway.yaml", GATEWAY);
    env.write("foocorp/virtualservices.yaml", VIRTUAL_SERVICES);
}

/// `gatehouse pki init HOST` for both walkthrough hosts, in the scratch dir.
fn pki_init(env: &Site) {
    for host in HOSTS {
        env.cli(&["pki", "init", host, "--out", "."]).ok();
    }
}

/// The walkthrough's secret command with `kubectl` replaced by `gatehouse`
/// (`-n` before `secret`, paths relative to the current directory).
fn create_walkthrough_secret(env: &Site, service: &str) -> support::Out {
    let host = format!("{service}.foocorp.com");
    env.cli(&[
        "create",
        "-n",
        "istio-system",
        "secret",
        "generic",
        &format!("{service}-credential"),
        &format!("--from-file=key={host}/3_application/private/{host}.key.pem"),
        &format!("--from-file=cert={host}/3_application/certs/{host}.cert.pem"),
        &format!("--from-file=cacert={host}/2_intermediate/certs/ca-chain.cert.pem"),
    ])
}

#[test]
fn walkthrough_objects_apply_and_show_in_get() {
    let env = Site::new();
    write_examples(&env);

    let out = env.cli(&["apply", "-f", "foocorp/gateway.yaml"]);
    out.ok();
    assert_eq!(
        out.lines(),
        ["gateway.networking.istio.io/foocorp-gateway created"]
    );
    assert_eq!(out.stderr, "");

    let out = env.cli(&["apply", "-f", "foocorp/virtualservices.yaml"]);
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "virtualservice.networking.istio.io/frontend created",
            "virtualservice.networking.istio.io/inventory created",
        ]
    );

    apply_again_then_change_one(&env);
    get_shows_the_walkthrough_objects(&env);
}

/// Applying the walkthrough's files again changes nothing (and says so);
/// changing one object configures that one only.
fn apply_again_then_change_one(env: &Site) {
    // Applying the same files again changes nothing, and says so.
    let before = env.snapshot();
    let out = env.cli(&["apply", "-f", "foocorp"]);
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "gateway.networking.istio.io/foocorp-gateway unchanged",
            "virtualservice.networking.istio.io/frontend unchanged",
            "virtualservice.networking.istio.io/inventory unchanged",
        ]
    );
    let after = env.snapshot();
    let objects = |s: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        s.iter()
            .filter(|(p, _)| p.starts_with("objects"))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        objects(&before),
        objects(&after),
        "unchanged objects were rewritten"
    );

    // A change to one object configures that one only.
    env.write(
        "foocorp/virtualservices.yaml",
        VIRTUAL_SERVICES.replacen("number: 80", "number: 8080", 1),
    );
    let out = env.cli(&["apply", "-f", "foocorp/virtualservices.yaml"]);
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "virtualservice.networking.istio.io/frontend configured",
            "virtualservice.networking.istio.io/inventory unchanged",
        ]
    );
}

/// `get` of the applied walkthrough (frontend's port changed to 8080) in
/// kubectl's forms, and `-o yaml` that applies back unchanged.
fn get_shows_the_walkthrough_objects(env: &Site) {
    let out = env.cli(&["get", "gw,vs", "-A"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        [
            "NAMESPACE   NAME                                          AGE",
            "default     gateway.networking.istio.io/foocorp-gateway   <age>",
            "",
            "NAMESPACE   NAME                                           GATEWAYS              HOSTS                       AGE",
            "default     virtualservice.networking.istio.io/frontend    [\"foocorp-gateway\"]   [\"frontend.foocorp.com\"]    <age>",
            "default     virtualservice.networking.istio.io/inventory   [\"foocorp-gateway\"]   [\"inventory.foocorp.com\"]   <age>",
        ]
    );

    // Short names, one kind, the default namespace.
    let out = env.cli(&["get", "gw"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        ["NAME              AGE", "foocorp-gateway   <age>"]
    );
    let out = env.cli(&["get", "virtualservices", "inventory"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        [
            "NAME        GATEWAYS              HOSTS                       AGE",
            "inventory   [\"foocorp-gateway\"]   [\"inventory.foocorp.com\"]   <age>",
        ]
    );
    let out = env.cli(&["get", "gw", "-o", "wide"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        [
            "NAME              SERVERS   HOSTS                                          AGE",
            "foocorp-gateway   2         [frontend.foocorp.com,inventory.foocorp.com]   <age>",
        ]
    );
    let out = env.cli(&["get", "gw,vs", "-o", "name"]);
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "gateway.networking.istio.io/foocorp-gateway",
            "virtualservice.networking.istio.io/frontend",
            "virtualservice.networking.istio.io/inventory",
        ]
    );

    // Nothing in another namespace: kubectl's message, on stderr, exit 0.
    let out = env.cli(&["get", "vs", "-n", "ux"]);
    out.ok();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No resources found in ux namespace.\n");

    // `-o yaml` of the changed object shows the change and applies back unchanged.
    let out = env.cli(&["get", "vs", "frontend", "-o", "yaml"]);
    out.ok();
    let doc: serde_json::Value = serde_saphyr::from_str(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "VirtualService");
    assert_eq!(doc["metadata"]["name"], "frontend");
    assert_eq!(doc["metadata"]["namespace"], "default");
    assert_eq!(
        doc["spec"]["http"][0]["route"][0]["destination"]["port"]["number"],
        8080
    );
    let out = env.cli_stdin(&["apply", "-f", "-"], out.stdout.as_bytes());
    out.ok();
    assert_eq!(
        out.lines(),
        ["virtualservice.networking.istio.io/frontend unchanged"]
    );
}

#[test]
fn walkthrough_secrets_from_pki_init_and_create_secret() {
    let env = Site::new();
    pki_init(&env);

    for service in ["frontend", "inventory"] {
        let out = create_walkthrough_secret(&env, service);
        out.ok();
        assert_eq!(
            out.lines(),
            [format!("secret/{service}-credential created")]
        );
        assert_eq!(out.stderr, "");
    }

    let out = env.cli(&["get", "secret", "-n", "istio-system"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        [
            "NAME                   TYPE     DATA   AGE",
            "frontend-credential    Opaque   3      <age>",
            "inventory-credential   Opaque   3      <age>",
        ]
    );
    // Not in the default namespace.
    let out = env.cli(&["get", "secret"]);
    out.ok();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No resources found in default namespace.\n");

    // Creating it again is refused, as kubectl refuses it, and changes nothing.
    let before = env.snapshot();
    let out = create_walkthrough_secret(&env, "frontend");
    let err = out.one_error();
    assert!(err.contains("frontend-credential"), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(before, env.snapshot());

    // `-n` also works after the subcommand.
    let host = "frontend.foocorp.com";
    let out = env.cli(&[
        "create",
        "secret",
        "generic",
        "frontend-credential-copy",
        "-n",
        "istio-system",
        &format!("--from-file=key={host}/3_application/private/{host}.key.pem"),
        &format!("--from-file=cert={host}/3_application/certs/{host}.cert.pem"),
    ]);
    out.ok();
    assert_eq!(out.lines(), ["secret/frontend-credential-copy created"]);

    // `create secret tls` from the same files.
    let out = env.cli(&[
        "create",
        "secret",
        "tls",
        "frontend-tls",
        "-n",
        "istio-system",
        &format!("--cert={host}/3_application/certs/{host}.cert.pem"),
        &format!("--key={host}/3_application/private/{host}.key.pem"),
    ]);
    out.ok();
    assert_eq!(out.lines(), ["secret/frontend-tls created"]);
    let out = env.cli(&["get", "secret", "frontend-tls", "-n", "istio-system"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        [
            "NAME           TYPE                DATA   AGE",
            "frontend-tls   kubernetes.io/tls   2      <age>",
        ]
    );

    get_yaml_gives_back_the_files(&env, host);
}

/// `get -o yaml` of `host`'s walkthrough secret gives back what its files
/// hold, and that output applies back as is.
fn get_yaml_gives_back_the_files(env: &Site, host: &str) {
    // `get -o yaml` gives back what the files hold.
    let out = env.cli(&[
        "get",
        "secret",
        "frontend-credential",
        "-n",
        "istio-system",
        "-o",
        "yaml",
    ]);
    out.ok();
    let doc: serde_json::Value = serde_saphyr::from_str(&out.stdout).unwrap();
    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Secret");
    assert_eq!(doc["metadata"]["name"], "frontend-credential");
    assert_eq!(doc["metadata"]["namespace"], "istio-system");
    for (k, path) in [
        (
            "key",
            format!("{host}/3_application/private/{host}.key.pem"),
        ),
        (
            "cert",
            format!("{host}/3_application/certs/{host}.cert.pem"),
        ),
        (
            "cacert",
            format!("{host}/2_intermediate/certs/ca-chain.cert.pem"),
        ),
    ] {
        let file = std::fs::read(env.path(&path)).unwrap();
        assert_eq!(doc["data"][k], b64(&file), "data.{k}");
    }
    // ... and that output applies back as is.
    let out = env.cli_stdin(&["apply", "-f", "-"], out.stdout.as_bytes());
    out.ok();
    assert_eq!(out.lines(), ["secret/frontend-credential unchanged"]);
}

#[test]
fn get_tables_never_show_key_material() {
    let env = Site::new();
    pki_init(&env);
    create_walkthrough_secret(&env, "frontend").ok();
    let host = "frontend.foocorp.com";
    let key =
        std::fs::read_to_string(env.path(format!("{host}/3_application/private/{host}.key.pem")))
            .unwrap();
    let key_b64 = b64(&key);
    // The base64 body lines of the PEM (what a careless printer would show).
    let pem_body: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    assert!(!pem_body.is_empty());

    for args in [
        &["get", "secret", "-n", "istio-system"][..],
        &["get", "secret", "-A"],
        &[
            "get",
            "secrets",
            "frontend-credential",
            "-n",
            "istio-system",
        ],
        &["get", "secret", "-n", "istio-system", "-o", "wide"],
        &["get", "secret", "-n", "istio-system", "-o", "name"],
        &["get", "gw,vs,se,secret", "-A"],
    ] {
        let out = env.cli(args);
        out.ok();
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("frontend-credential"), "{args:?}: {all}");
        for needle in [key_b64.as_str(), &key_b64[..40], "PRIVATE KEY"]
            .into_iter()
            .chain(pem_body.iter().copied())
        {
            assert!(!all.contains(needle), "{args:?} shows key material:\n{all}");
        }
    }
}

#[test]
fn kubectl_dry_run_yaml_secret_applies() {
    let env = Site::new();
    pki_init(&env);
    let host = "inventory.foocorp.com";
    let read = |p: String| std::fs::read(env.path(&p)).unwrap();
    let key = read(format!("{host}/3_application/private/{host}.key.pem"));
    let cert = read(format!("{host}/3_application/certs/{host}.cert.pem"));
    let ca = read(format!("{host}/2_intermediate/certs/ca-chain.cert.pem"));

    // Exactly what `kubectl create -n istio-system secret generic
    // inventory-credential --from-file=... --dry-run=client -o yaml` prints.
    let manifest = kubectl_secret_yaml(
        "inventory-credential",
        "istio-system",
        &[("key", &key), ("cert", &cert), ("cacert", &ca)],
    );
    assert!(manifest.starts_with("apiVersion: v1\ndata:\n  cacert: "));
    assert!(manifest.ends_with(
        "kind: Secret\nmetadata:\n  creationTimestamp: null\n  name: inventory-credential\n  namespace: istio-system\n"
    ));
    env.write("inventory-credential.yaml", &manifest);
    let out = env.cli(&["apply", "-f", "inventory-credential.yaml"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/inventory-credential created"]);
    let out = env.cli(&["apply", "-f", "inventory-credential.yaml"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/inventory-credential unchanged"]);

    // With `-n` naming the same namespace the manifest names: accepted.
    let out = env.cli(&[
        "apply",
        "-n",
        "istio-system",
        "-f",
        "inventory-credential.yaml",
    ]);
    out.ok();
    assert_eq!(out.lines(), ["secret/inventory-credential unchanged"]);

    // The same manifest as a `kubernetes.io/tls` secret with tls.crt/tls.key.
    let tls = format!(
        "apiVersion: v1\ndata:\n  tls.crt: {}\n  tls.key: {}\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: inventory-tls\n  namespace: istio-system\ntype: kubernetes.io/tls\n",
        b64(&cert),
        b64(&key)
    );
    env.write("inventory-tls.yaml", &tls);
    let out = env.cli(&["apply", "-f", "inventory-tls.yaml"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/inventory-tls created"]);

    // stringData, as people write by hand, is accepted too.
    let string_data = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: inventory-string\n  namespace: istio-system\nstringData:\n  cert: |\n{}  key: |\n{}",
        indent(&cert),
        indent(&key)
    );
    env.write("inventory-string.yaml", &string_data);
    let out = env.cli(&["apply", "-f", "inventory-string.yaml"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/inventory-string created"]);

    let out = env.cli(&["get", "secret", "-n", "istio-system"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        [
            "NAME                   TYPE                DATA   AGE",
            "inventory-credential   Opaque              3      <age>",
            "inventory-string       Opaque              2      <age>",
            "inventory-tls          kubernetes.io/tls   2      <age>",
        ]
    );
}

fn indent(pem: &[u8]) -> String {
    String::from_utf8_lossy(pem)
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect()
}

#[test]
fn create_secret_dry_run_pipes_into_apply() {
    let env = Site::new();
    pki_init(&env);
    let host = "frontend.foocorp.com";
    let before = env.snapshot();
    let out = env.cli(&[
        "create",
        "-n",
        "istio-system",
        "secret",
        "generic",
        "frontend-credential",
        &format!("--from-file=key={host}/3_application/private/{host}.key.pem"),
        &format!("--from-file=cert={host}/3_application/certs/{host}.cert.pem"),
        &format!("--from-file=cacert={host}/2_intermediate/certs/ca-chain.cert.pem"),
        "--from-literal=owner=ux",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    out.ok();
    assert_eq!(before, env.snapshot(), "a dry run wrote to the store");
    let doc: serde_json::Value = serde_saphyr::from_str(&out.stdout).unwrap();
    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Secret");
    assert_eq!(doc["metadata"]["name"], "frontend-credential");
    assert_eq!(doc["metadata"]["namespace"], "istio-system");
    assert!(doc["metadata"]["creationTimestamp"].is_null());
    assert_eq!(doc["data"]["owner"], b64("ux"));
    let keys: Vec<&String> = doc["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["cacert", "cert", "key", "owner"]);

    let applied = env.cli_stdin(&["apply", "-f", "-"], out.stdout.as_bytes());
    applied.ok();
    assert_eq!(applied.lines(), ["secret/frontend-credential created"]);

    // -o json too.
    let out = env.cli(&[
        "create",
        "secret",
        "generic",
        "literal-only",
        "--from-literal=a=b",
        "--dry-run=client",
        "-o",
        "json",
    ]);
    out.ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["metadata"]["namespace"], "default");
    assert_eq!(doc["data"]["a"], b64("b"));
    let applied = env.cli_stdin(&["apply", "-f", "-"], out.stdout.as_bytes());
    applied.ok();
    assert_eq!(applied.lines(), ["secret/literal-only created"]);

    let out = env.cli(&["get", "secret", "-A", "-o", "name"]);
    out.ok();
    let mut names = out.lines();
    names.sort_unstable();
    assert_eq!(names, ["secret/frontend-credential", "secret/literal-only"]);
}

#[test]
fn delete_by_file_and_by_name() {
    let env = Site::new();
    write_examples(&env);
    pki_init(&env);
    env.cli(&["apply", "-f", "foocorp"]).ok();
    create_walkthrough_secret(&env, "frontend").ok();

    let out = env.cli(&["delete", "-f", "foocorp/virtualservices.yaml"]);
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "virtualservice.networking.istio.io \"frontend\" deleted",
            "virtualservice.networking.istio.io \"inventory\" deleted",
        ]
    );
    let out = env.cli(&["delete", "gateway", "foocorp-gateway"]);
    out.ok();
    assert_eq!(
        out.lines(),
        ["gateway.networking.istio.io \"foocorp-gateway\" deleted"]
    );
    let out = env.cli(&[
        "delete",
        "-n",
        "istio-system",
        "secret",
        "frontend-credential",
    ]);
    out.ok();
    assert_eq!(out.lines(), ["secret \"frontend-credential\" deleted"]);

    let out = env.cli(&["get", "gw,vs,secret", "-A"]);
    out.ok();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No resources found\n");

    // Deleting what is not there: exit 1, one line naming it; nothing changes.
    let before = env.snapshot();
    let out = env.cli(&["delete", "gw", "foocorp-gateway"]);
    let err = out.one_error();
    assert_eq!(
        err,
        "error: gateway.networking.istio.io \"foocorp-gateway\" not found in namespace default"
    );
    let out = env.cli(&["delete", "-f", "foocorp/gateway.yaml"]);
    let err = out.one_error();
    assert!(err.contains("\"foocorp-gateway\" not found"), "{err}");
    let out = env.cli(&["delete", "secret", "frontend-credential"]);
    let err = out.one_error();
    assert_eq!(
        err,
        "error: secret \"frontend-credential\" not found in namespace default"
    );
    let out = env.cli(&["delete", "gw", "foocorp-gateway", "--ignore-not-found"]);
    out.ok();
    assert_eq!(out.stdout, "");
    assert_eq!(before, env.snapshot());

    // An unknown kind is a user error, not a crash.
    let out = env.cli(&["delete", "sidecar", "x"]);
    let err = out.one_error();
    assert!(err.contains("unknown kind \"sidecar\""), "{err}");
    let out = env.cli(&["get", "pods"]);
    let err = out.one_error();
    assert!(err.contains("unknown kind \"pods\""), "{err}");
}
