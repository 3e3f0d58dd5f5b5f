//! Where manifests come from: stdin (`-f -`), directories of `.yaml`,
//! `.yml` and `.json` files, multi-document files, several `-f`; and what
//! `get -o json|yaml` gives back.
#![allow(clippy::unwrap_used)]

use crate::support::{Site, b64};
use serde_json::Value;

const GATEWAY: &str = crate::support::GATEWAY_YAML;
const VIRTUAL_SERVICES: &str = crate::support::VIRTUAL_SERVICES_YAML;

const SERVICE_ENTRY_JSON: &str = r#"{
  "apiVersion": "networking.istio.io/v1beta1",
  "kind": "ServiceEntry",
  "metadata": {"name": "inventory-db", "namespace": "corp-services"},
  "spec": {
    "hosts": ["db.inventory.internal"],
    "ports": [{"number": 5432, "name": "tcp-postgres", "protocol": "TCP"}],
    "resolution": "STATIC",
    "location": "MESH_INTERNAL",
    "endpoints": [{"address": "10.0.0.7", "ports": {"tcp-postgres": 15432}}]
  }
}
"#;

const SECRET_JSON: &str = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"owner","namespace":"corp-services"},"stringData":{"team":"corp-services"}}"#;

#[test]
fn stdin_applies() {
    let env = Site::new();
    let out = env.cli_stdin(&["apply", "-f", "-"], GATEWAY.as_bytes());
    out.ok();
    assert_eq!(
        out.lines(),
        ["gateway.networking.istio.io/foocorp-gateway created"]
    );
    let out = env.cli_stdin(&["apply", "-f", "-"], VIRTUAL_SERVICES.as_bytes());
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "virtualservice.networking.istio.io/frontend created",
            "virtualservice.networking.istio.io/inventory created",
        ]
    );
    // JSON on stdin too, and `-n` filling in the namespace.
    let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"from-stdin"},"data":{"a":"YQ=="}}"#;
    let out = env.cli_stdin(&["-n", "ux", "apply", "-f", "-"], json.as_bytes());
    out.ok();
    assert_eq!(out.lines(), ["secret/from-stdin created"]);
    let out = env.cli(&["get", "secret", "from-stdin", "-n", "ux", "-o", "name"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/from-stdin"]);
}

#[test]
fn a_directory_applies_every_manifest_in_it() {
    let env = Site::new();
    env.write("manifests/1-gateway.yaml", GATEWAY);
    env.write("manifests/2-virtualservices.yml", VIRTUAL_SERVICES);
    env.write("manifests/3-serviceentry.json", SERVICE_ENTRY_JSON);
    env.write("manifests/4-secret.json", SECRET_JSON);
    env.write("manifests/README.md", "# not a manifest: [");
    env.write("manifests/notes.txt", "kind: nonsense");
    let out = env.cli(&["apply", "-f", "manifests"]);
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "gateway.networking.istio.io/foocorp-gateway created",
            "virtualservice.networking.istio.io/frontend created",
            "virtualservice.networking.istio.io/inventory created",
            "serviceentry.networking.istio.io/inventory-db created",
            "secret/owner created",
        ]
    );

    let out = env.cli(&["get", "se", "-n", "corp-services"]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..4],
        [
            "inventory-db",
            "[db.inventory.internal]",
            "MESH_INTERNAL",
            "STATIC"
        ]
    );

    // The same directory twice in a row changes nothing.
    let out = env.cli(&["apply", "-f", "manifests"]);
    out.ok();
    assert!(
        out.lines().iter().all(|l| l.ends_with(" unchanged")),
        "{}",
        out.stdout
    );

    // A directory without manifests is an error.
    env.write("empty/notes.txt", "nothing");
    let before = env.snapshot();
    let line = env.cli(&["apply", "-f", "empty"]).one_error().to_owned();
    assert_eq!(
        line,
        "error: empty: no .yaml, .yml or .json files in this directory"
    );
    assert_eq!(before, env.snapshot());
}

#[test]
fn several_files_and_documents_in_one_apply() {
    let env = Site::new();
    env.write("gw.yaml", GATEWAY);
    // Comments, a leading `---`, an empty document and a trailing `---`.
    env.write(
        "all.yaml",
        format!("# the walkthrough's routes\n---\n{VIRTUAL_SERVICES}\n---\n---\n{SERVICE_ENTRY_JSON}---\n"),
    );
    let out = env.cli(&["apply", "-f", "gw.yaml", "-f", "all.yaml"]);
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "gateway.networking.istio.io/foocorp-gateway created",
            "virtualservice.networking.istio.io/frontend created",
            "virtualservice.networking.istio.io/inventory created",
            "serviceentry.networking.istio.io/inventory-db created",
        ]
    );
    // The dry run prints what would happen and writes nothing.
    let before = env.snapshot();
    let changed = VIRTUAL_SERVICES.replace("number: 80", "number: 8080");
    let out = env.cli_stdin(
        &["apply", "--dry-run=client", "-f", "-"],
        changed.as_bytes(),
    );
    out.ok();
    assert_eq!(
        out.lines(),
        [
            "virtualservice.networking.istio.io/frontend configured (dry run)",
            "virtualservice.networking.istio.io/inventory configured (dry run)",
        ]
    );
    assert_eq!(before, env.snapshot());
}

#[test]
fn get_json_and_yaml_parse() {
    let env = Site::new();
    env.write("m/gateway.yaml", GATEWAY);
    env.write("m/virtualservices.yaml", VIRTUAL_SERVICES);
    env.write("m/se.json", SERVICE_ENTRY_JSON);
    env.write("m/secret.json", SECRET_JSON);
    env.cli(&["apply", "-f", "m"]).ok();

    // One object: the object itself.
    let out = env.cli(&["get", "gw", "foocorp-gateway", "-o", "json"]);
    out.ok();
    let gw: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(gw["apiVersion"], "networking.istio.io/v1alpha3");
    assert_eq!(gw["kind"], "Gateway");
    assert_eq!(gw["metadata"]["name"], "foocorp-gateway");
    assert_eq!(gw["metadata"]["namespace"], "default");
    assert!(gw["metadata"]["resourceVersion"].is_string());
    assert!(gw["metadata"]["creationTimestamp"].is_string());
    assert_eq!(gw["spec"]["selector"]["istio"], "ingressgateway");
    let servers = gw["spec"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["port"]["number"], 443);
    assert_eq!(servers[0]["tls"]["mode"], "MUTUAL");
    assert_eq!(servers[1]["tls"]["credentialName"], "inventory-credential");
    assert_eq!(servers[1]["hosts"][0], "inventory.foocorp.com");

    // Several: a kubectl List, in JSON and YAML alike.
    let out = env.cli(&["get", "gw,vs,se,secret", "-A", "-o", "json"]);
    out.ok();
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["kind"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "Gateway/foocorp-gateway",
            "VirtualService/frontend",
            "VirtualService/inventory",
            "ServiceEntry/inventory-db",
            "Secret/owner",
        ]
    );
    let secret = &list["items"][4];
    assert_eq!(secret["data"]["team"], b64("corp-services"));
    let out_yaml = env.cli(&["get", "gw,vs,se,secret", "-A", "-o", "yaml"]);
    out_yaml.ok();
    let from_yaml: Value = serde_saphyr::from_str(&out_yaml.stdout).unwrap();
    assert_eq!(from_yaml, list);

    // An empty list is still a list.
    let out = env.cli(&["get", "vs", "-n", "nowhere", "-o", "json"]);
    out.ok();
    let empty: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(empty["items"], Value::Array(vec![]));

    // `get` of a missing object: exit 1 and one line.
    let line = env
        .cli(&["get", "vs", "nothing", "-o", "json"])
        .one_error()
        .to_owned();
    assert_eq!(
        line,
        "error: virtualservice.networking.istio.io \"nothing\" not found in namespace default"
    );
}
