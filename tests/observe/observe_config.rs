//! Inspecting a running gateway (#12 item 2): the admin `/config_dump`,
//! `proxy-config listeners|routes|clusters|secret|all` as tables and as
//! `-o json|yaml`, and `proxy-status`, against the walkthrough's gateway.
//!
//! What a user sees: the walkthrough's two hosts with their servers,
//! routes, backends and credentials (serials as the handshake serves
//! them), the YAML read back by an independent parser (PyYAML), an object
//! another writer put into the store that the gateway skipped and why,
//! SYNCED / STALE with what differs and the exit code, and no key material
//! anywhere.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;

use crate::support::etcd::{Cluster, EtcdSite};
use crate::support::{
    self, Backend, COMMAND_TIMEOUT, FRONTEND, FRONTEND_BODY, FRONTEND_SERVICE, Gateway, INVENTORY,
    INVENTORY_BODY, INVENTORY_SERVICE, Out, Walkthrough, b64, client, poll,
};
use gatehouse::store::{DirStore, ObjectKey, Put, Store};

/// A change in a directory store reaches the gateway in milliseconds; this
/// bounds the wait, it is not the goal.
const WITHIN: Duration = Duration::from_secs(10);

/// `gatehouse proxy-config ARGS --admin ADDR`, which must succeed.
fn proxy_config(w: &Walkthrough, gw: &Gateway, args: &[&str]) -> Out {
    let admin = gw.admin().to_string();
    let mut all = vec!["proxy-config"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--admin", &admin]);
    w.site.cli(&all).ok()
}

/// `proxy-config WHAT -o json`, parsed.
fn proxy_config_json(w: &Walkthrough, gw: &Gateway, what: &str) -> Value {
    let out = proxy_config(w, gw, &[what, "-o", "json"]);
    serde_json::from_str(&out.stdout).unwrap()
}

/// `yaml` as PyYAML (an independent parser, `safe_load`) reads it, as JSON.
fn python_yaml(yaml: &str) -> Value {
    let mut c = support::command("python3");
    c.args([
        "-c",
        "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
    ]);
    let out = support::run_bounded_input(c, yaml.as_bytes(), COMMAND_TIMEOUT);
    assert_eq!(out.code, Some(0), "PyYAML could not read:\n{yaml}\n{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

/// The walkthrough's gateway, once its dump shows both servers READY.
fn start(w: &Walkthrough) -> Gateway {
    let gw = w.start();
    poll("both walkthrough servers READY", WITHIN, || {
        let dump = gw.config_dump();
        let ready = servers(&dump)
            .iter()
            .filter(|s| s["state"] == "READY")
            .count();
        (ready == 2).then_some(())
    });
    gw
}

fn servers(dump: &Value) -> Vec<Value> {
    dump["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["servers"].as_array().unwrap().clone())
        .collect()
}

/// The one row of `table` (a command's stdout) that contains every one of `cells`.
#[track_caller]
fn row<'a>(table: &'a str, cells: &[&str]) -> &'a str {
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| cells.iter().all(|c| l.contains(c)))
        .collect();
    assert_eq!(rows.len(), 1, "want one row with {cells:?} in:\n{table}");
    rows[0]
}

/// The leaf certificate the gateway serves for `host` (from a real mTLS
/// handshake), and its issuer as the dump writes names.
fn served(w: &Walkthrough, gw: &Gateway, host: &str) -> (String, String) {
    let addr = ([127, 0, 0, 1], gw.port(443)).into();
    let answer = w.site.client(host).get(addr, "/").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let pem = std::fs::read(w.site.path(w.site.pki(host).server_cert)).unwrap();
    assert_eq!(client::serial_of_pem(&pem), answer.serial);
    let der = gatehouse::secret::credential::parse_certs("cert", &pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der[0].as_ref()).unwrap();
    (answer.serial, cert.issuer().to_string())
}

/// The tables name both hosts, their servers, routes, backends and credentials.
fn tables_show_the_walkthrough(w: &Walkthrough, gw: &Gateway, serials: &[(&str, &str)]) {
    let address = format!("127.0.0.1:{}", gw.port(443));
    let listeners = proxy_config(w, gw, &["listeners"]).stdout;
    assert!(listeners.starts_with("ADDRESS"), "{listeners}");
    for (host, port_name) in [(FRONTEND, "https-frontend"), (INVENTORY, "https-inventory")] {
        let id = format!("Route: default/foocorp-gateway/{port_name}");
        row(
            &listeners,
            &[&address, " 443 ", &format!("SNI: {host}"), &id],
        );
    }
    let routes = proxy_config(w, gw, &["routes"]).stdout;
    assert!(routes.starts_with("NAME"), "{routes}");
    for (host, vs, service) in [
        (FRONTEND, "default/frontend/0", FRONTEND_SERVICE),
        (INVENTORY, "default/inventory/0", INVENTORY_SERVICE),
    ] {
        row(&routes, &[host, "exact /", vs, &format!("{service}:80")]);
    }
    let clusters = proxy_config(w, gw, &["clusters"]).stdout;
    assert!(clusters.starts_with("SERVICE FQDN"), "{clusters}");
    for (service, backend) in [
        (FRONTEND_SERVICE, &w.frontend),
        (INVENTORY_SERVICE, &w.inventory),
    ] {
        let endpoint = format!("127.0.0.1:{}", backend.port());
        row(
            &clusters,
            &[service, " 80 ", "outbound", "STATIC", &endpoint],
        );
    }
    let secret = proxy_config(w, gw, &["secret"]).stdout;
    for (resource, serial) in serials {
        row(&secret, &[&format!("{resource} "), "ACTIVE", serial]);
    }
    // `all` is the four tables, one after the other.
    let all = proxy_config(w, gw, &["all"]).stdout;
    for table in [&listeners, &routes, &clusters, &secret] {
        assert!(all.contains(table.as_str()), "{all}\nlacks\n{table}");
    }
}

/// The JSON and YAML of the whole dump and of each part agree with each
/// other and name both hosts with the served serials.
fn json_and_yaml_show_the_walkthrough(
    w: &Walkthrough,
    gw: &Gateway,
    issued: &[(&str, &str, &str)],
) {
    let all = proxy_config_json(w, gw, "all");
    assert_eq!(all, gw.config_dump());
    assert_eq!(all["source"], "live");
    let yaml = proxy_config(w, gw, &["all", "-o", "yaml"]).stdout;
    assert_eq!(python_yaml(&yaml), all, "the YAML and the JSON differ");
    let hosts: Vec<Value> = servers(&all)
        .iter()
        .map(|s| s["hosts"][0].clone())
        .collect();
    assert_eq!(hosts, [FRONTEND, INVENTORY]);
    for s in servers(&all) {
        assert_eq!(s["tls_mode"], "MUTUAL");
        assert_eq!(s["routes"][0]["match"][0], "exact /");
    }
    for (resource, serial, issuer) in issued {
        let row = all["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == *resource)
            .unwrap_or_else(|| panic!("no {resource} in {all}"));
        assert_eq!(row["state"], "ACTIVE");
        assert_eq!(row["certs"][0]["serial"], *serial);
        assert_eq!(row["certs"][0]["issuer"], *issuer);
    }
    // Each part, as YAML read back by PyYAML, is that part of the dump.
    let listeners = python_yaml(&proxy_config(w, gw, &["listeners", "-o", "yaml"]).stdout);
    assert_eq!(listeners, all["listeners"]);
    let clusters = python_yaml(&proxy_config(w, gw, &["clusters", "-o", "yaml"]).stdout);
    assert_eq!(clusters, all["clusters"]);
    let routes = proxy_config_json(w, gw, "routes");
    let names: Vec<(&str, &str)> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let backend = r["backends"][0]["host"].as_str().unwrap();
            (r["server"].as_str().unwrap(), backend)
        })
        .collect();
    assert_eq!(
        names,
        [
            ("default/foocorp-gateway/https-frontend", FRONTEND_SERVICE),
            ("default/foocorp-gateway/https-inventory", INVENTORY_SERVICE),
        ]
    );
    let events = all["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["resource"] == "frontend-credential"
            && e["event"] == "pushed"
            && time::OffsetDateTime::parse(
                e["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()),
        "{events:?}"
    );
}

/// Neither the admin endpoint nor any `proxy-config` output holds a private
/// key: no PEM key block, no line of the key's base64 body, and not the
/// base64 of the key file (how a Secret's `data` holds it).
fn no_key_material(w: &Walkthrough, gw: &Gateway) {
    let mut outputs = Vec::new();
    for path in ["/config_dump", "/credentials", "/warnings", "/listeners"] {
        outputs.push(support::http_get(gw.admin(), path).unwrap().1);
    }
    for what in ["listeners", "routes", "clusters", "secret", "all"] {
        for output in [None, Some("json"), Some("yaml")] {
            let mut args = vec![what];
            args.extend(output.iter().flat_map(|o| ["-o", *o]));
            outputs.push(proxy_config(w, gw, &args).stdout);
        }
    }
    for host in [FRONTEND, INVENTORY] {
        let key = std::fs::read_to_string(w.site.path(w.site.pki(host).server_key)).unwrap();
        let body: Vec<&str> = key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .collect();
        assert!(!body.is_empty(), "{host}: no key body");
        let in_secret = b64(&key);
        for out in &outputs {
            assert!(!out.contains("PRIVATE KEY"), "a key block in:\n{out}");
            assert!(
                !out.contains(&in_secret[..40]),
                "the Secret's key data in:\n{out}"
            );
            for line in &body {
                assert!(!out.contains(line), "a line of {host}'s key in:\n{out}");
            }
        }
    }
}

/// The walkthrough as `proxy-config` shows it: every table and every
/// `-o json|yaml` names both hosts, their routes, backends and
/// credentials with the serials the handshakes serve; `proxy-status` says
/// SYNCED; no key material anywhere.
#[test]
fn proxy_config_shows_the_walkthrough_and_no_key() {
    let w = Walkthrough::new();
    let gw = start(&w);
    let (front_serial, front_issuer) = served(&w, &gw, FRONTEND);
    let (inv_serial, inv_issuer) = served(&w, &gw, INVENTORY);
    tables_show_the_walkthrough(
        &w,
        &gw,
        &[
            ("frontend-credential", &front_serial),
            ("inventory-credential", &inv_serial),
        ],
    );
    json_and_yaml_show_the_walkthrough(
        &w,
        &gw,
        &[
            ("frontend-credential", &front_serial, &front_issuer),
            ("inventory-credential", &inv_serial, &inv_issuer),
        ],
    );
    no_key_material(&w, &gw);
    let admin = gw.admin().to_string();
    // A gateway that does not answer: UNREACHABLE, why on stderr, exit 1.
    let closed = format!("127.0.0.1:{}", support::closed_port());
    let out = w
        .site
        .cli(&["proxy-status", "--admin", &admin, "--admin", &closed]);
    assert!(out.one_error().contains(&closed), "{out:?}");
    row(&out.stdout, &[&admin, "SYNCED"]);
    row(&out.stdout, &[&closed, "UNREACHABLE"]);
    let status = w.site.cli(&["proxy-status", "--admin", &admin]).ok();
    let generation = gw.config_dump()["generation"].to_string();
    assert_eq!(
        status.lines(),
        [
            format!("{:<w$}   GENERATION   STATUS", "NAME", w = admin.len()),
            format!("{admin}   {generation:<10}   SYNCED"),
        ],
        "{status:?}"
    );
}

/// The frontend VirtualService with an invalid regex: what another writer
/// (not the CLI, which refuses it) may put into the store.
fn bad_frontend_vs() -> Vec<u8> {
    let (yaml, _) = support::VIRTUAL_SERVICES_YAML.split_once("---").unwrap();
    let yaml = yaml.replace("exact: /", "regex: \"(\"");
    let mut v: Value = serde_saphyr::from_str(&yaml).unwrap();
    v["metadata"]["namespace"] = "default".into();
    serde_json::to_vec(&v).unwrap()
}

/// `proxy-status` against the site's store and `gw`: (exit code, stdout).
fn proxy_status(w: &Walkthrough, gw: &Gateway) -> (Option<i32>, String) {
    let out = w
        .site
        .cli(&["proxy-status", "--admin", &gw.admin().to_string()]);
    support::no_panic(&out.stderr);
    (out.code, out.stdout)
}

/// An invalid VirtualService written straight into the directory store is
/// skipped with its reason while the last good one keeps serving;
/// `proxy-status` says STALE and names it (exit 1) until a good version
/// is applied, then SYNCED (exit 0).
#[test]
fn a_bad_object_in_the_store_is_skipped_with_its_reason() {
    let w = Walkthrough::new();
    let gw = start(&w);
    assert_eq!(proxy_status(&w, &gw).0, Some(0));
    let store = DirStore::open(w.site.store_dir()).unwrap();
    let key = ObjectKey::new("VirtualService", "default", "frontend");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let written = rt
        .block_on(store.apply(vec![Put::new(key, bad_frontend_vs())]))
        .unwrap()[0]
        .2;
    let written_rv = written.to_string();
    let held = poll("the bad VirtualService skipped", WITHIN, || {
        let dump = gw.config_dump();
        dump["objects"].as_array().unwrap().iter().find_map(|o| {
            (o["name"] == "frontend" && o["resource_version"] == written_rv.as_str())
                .then(|| o.clone())
        })
    });
    assert_eq!(held["kind"], "VirtualService");
    assert_eq!(held["state"], "skipped", "{held}");
    let reason = held["reason"].as_str().unwrap();
    assert!(reason.contains("regex"), "{held}");
    let serving = held["serving_version"].as_str().unwrap().to_owned();
    assert_ne!(serving, written.to_string());
    // The last good version keeps serving: its route and its answer.
    let routes = proxy_config(&w, &gw, &["routes"]).stdout;
    row(&routes, &[FRONTEND, "exact /", "default/frontend/0"]);
    let addr = ([127, 0, 0, 1], gw.port(443)).into();
    assert_eq!(
        w.site.client(FRONTEND).body(addr, "/"),
        Some(format!("{FRONTEND_BODY}\n"))
    );
    let (code, out) = proxy_status(&w, &gw);
    assert_eq!(code, Some(1), "{out}");
    let admin = gw.admin();
    let want = format!(
        "{admin}: VirtualService default/frontend: store {written}, gateway skipped it ({reason}); serving version {serving}"
    );
    assert!(out.lines().any(|l| l == want), "want {want:?} in:\n{out}");
    row(&out, &[&admin.to_string(), "STALE"]);
    // A good version through the CLI: SYNCED again.
    w.site.apply(
        "foocorp/virtualservices.yaml",
        support::VIRTUAL_SERVICES_YAML,
    );
    let synced = support::try_poll(WITHIN, || {
        let (code, out) = proxy_status(&w, &gw);
        (code == Some(0)).then_some(out)
    });
    let out = synced.unwrap_or_else(|| format!("{:?}", proxy_status(&w, &gw)));
    row(&out, &[&admin.to_string(), "SYNCED"]);
}

/// A replica whose only etcd member stops falls behind: `proxy-status`
/// (reading the store through the other members) says STALE and names the
/// VirtualService whose versions differ, exit 1; when the member returns,
/// the replica catches up and it says SYNCED, exit 0.
#[test]
fn proxy_status_is_stale_while_a_replica_is_behind() {
    let mut cluster = Cluster::start(3);
    let site = EtcdSite::new(&cluster.url());
    site.prepare_walkthrough();
    let frontend = Backend::start(FRONTEND_BODY);
    let inventory = Backend::start(INVENTORY_BODY);
    site.write_walkthrough_objects(&frontend, &inventory, 1);
    site.cli(&["apply", "-f", "foocorp/"]).ok();
    let replica = site.start_replica("a", &cluster.url_of(&[0]));
    replica.wait_ready("ready: live", WITHIN);
    let others = cluster.url_of(&[1, 2]);
    let admin = replica.admin().to_string();
    let status = |store: &str| {
        let out = site.cli_via(store, &["proxy-status", "--admin", &admin]);
        support::no_panic(&out.stderr);
        (out.code, out.stdout)
    };
    let (code, out) = status(&others);
    assert_eq!(code, Some(0), "{out}");
    cluster.stop(0);
    replica.wait_ready("ready: behind", Duration::from_secs(20));
    site.apply_version_via(&others, 2);
    let (code, out) = status(&others);
    assert_eq!(code, Some(1), "{out}");
    row(&out, &[&admin, "STALE"]);
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{admin}: VirtualService default/frontend: store ")))
        .unwrap_or_else(|| panic!("no line for the frontend VirtualService in:\n{out}"));
    let (store_rv, gateway_rv) = line
        .rsplit_once(": store ")
        .and_then(|(_, r)| r.split_once(", gateway "))
        .unwrap();
    assert!(
        store_rv.parse::<u64>().unwrap() > gateway_rv.parse::<u64>().unwrap(),
        "{line}"
    );
    cluster.restart(0);
    let synced = support::try_poll(Duration::from_secs(30), || {
        let (code, out) = status(&others);
        (code == Some(0)).then_some(out)
    });
    let out = synced.unwrap_or_else(|| panic!("never SYNCED: {:?}", status(&others)));
    row(&out, &[&admin, "SYNCED"]);
}

/// The dump's last SDS events, newest first: `(resource, event, reason)`.
fn sds_events(gw: &Gateway) -> Vec<(String, String, Option<String>)> {
    let dump = gw.config_dump();
    dump["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(
                time::OffsetDateTime::parse(
                    e["time"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok(),
                "{e}"
            );
            (
                e["resource"].as_str().unwrap().to_owned(),
                e["event"].as_str().unwrap().to_owned(),
                e["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// A push the gateway rejects (a certificate for another host, applied
/// with `--validate=false`) and a deleted secret show in the dump's
/// events, newest first, with their reasons, after the pushes at start.
#[test]
fn sds_events_show_pushes_rejections_and_removals() {
    let w = Walkthrough::new();
    let gw = start(&w);
    let at_start = sds_events(&gw);
    for resource in [
        "frontend-credential",
        "frontend-credential-cacert",
        "inventory-credential",
        "inventory-credential-cacert",
    ] {
        assert!(
            at_start.contains(&(resource.to_owned(), "pushed".to_owned(), None)),
            "{resource} not pushed: {at_start:?}"
        );
    }
    let other = support::issue("other.example.com", None);
    let manifest = w.site.frontend_secret_manifest(
        "push/other",
        &other.cert,
        &other.key,
        &["--validate=false"],
    );
    w.site.cli(&["apply", "-f", &manifest]).ok();
    let after_push = poll("the rejected push in the events", WITHIN, || {
        let e = sds_events(&gw);
        e.iter()
            .any(|(r, ev, _)| r == "frontend-credential" && ev == "rejected")
            .then_some(e)
    });
    // Newest first: what the push did, then what came before.
    let (pushed, before) = after_push.split_at(after_push.len() - at_start.len());
    assert_eq!(before, &at_start[..]);
    let reason = pushed
        .iter()
        .find_map(|(r, ev, why)| (r == "frontend-credential" && ev == "rejected").then_some(why))
        .unwrap()
        .as_deref()
        .unwrap();
    assert!(
        reason.contains("does not cover host frontend.foocorp.com"),
        "{reason}"
    );
    w.site
        .cli(&[
            "delete",
            "-n",
            "istio-system",
            "secret",
            "inventory-credential",
        ])
        .ok();
    let events = poll("the removals in the events", WITHIN, || {
        let e = sds_events(&gw);
        (e.len() >= after_push.len() + 2).then_some(e)
    });
    let mut removed: Vec<(&str, &str)> = events[..2]
        .iter()
        .map(|(r, ev, _)| (r.as_str(), ev.as_str()))
        .collect();
    removed.sort_unstable();
    assert_eq!(
        removed,
        [
            ("inventory-credential", "removed"),
            ("inventory-credential-cacert", "removed")
        ],
        "{events:?}"
    );
    assert!(events[..2].iter().all(|(_, _, why)| why.is_some()));
    assert_eq!(&events[2..], &after_push[..]);
}
