//! Nothing is silently ignored: every field gatehouse accepts but does not
//! apply makes `apply` print kubectl's `Warning:` line and still store the
//! object (exit 0); `get -o yaml|json` and the admin `/warnings` list the
//! same; a Gateway server that another Gateway's server wins over is a
//! `ConflictingGateways` warning naming both, and the one it says serves
//! is the one whose certificate a client gets.
#![allow(clippy::unwrap_used)]

use crate::support;

use serde_json::Value;
use support::{FRONTEND, GATEWAY_YAML, Site, VIRTUAL_SERVICES_YAML, poll};

/// Applies `yaml` on a fresh site and checks what a user sees: exit 0,
/// exactly the `want` lines on stderr, the object stored (`get KIND NAME`),
/// and the same list under `status.gatehouse.ignoredFields` of `get -o json`.
#[track_caller]
fn applies_with_warnings(yaml: &str, kind: &str, name: &str, want: &[&str]) {
    let site = Site::new();
    site.write("m.yaml", yaml);
    let out = site.cli(&["apply", "-f", "m.yaml"]);
    assert_eq!(out.code, Some(0), "apply failed: {out:?}");
    let want_stderr: String = want.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(out.stderr, want_stderr);
    assert!(
        out.stdout.ends_with(&format!("/{name} created\n")),
        "{out:?}"
    );

    let got = site.cli(&["get", kind, name, "-o", "json"]).ok();
    let v: Value = serde_json::from_str(&got.stdout).unwrap();
    let listed: Vec<String> = v["status"]["gatehouse"]["ignoredFields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|i| {
            format!(
                "Warning: {} {}/{}: {}",
                v["kind"].as_str().unwrap(),
                v["metadata"]["namespace"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap(),
                i["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(listed, want, "get -o json: {}", got.stdout);
}

const VS_HEAD: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shop
spec:
  hosts: [shop.example.com]
  gateways: [shop-gateway]
";

/// A VirtualService whose one http route also sets `extra` (route-level
/// YAML lines, indented four spaces).
fn vs_route(extra: &str) -> String {
    format!(
        "{VS_HEAD}  http:\n  - route: [{{destination: {{host: shop.default.svc.cluster.local}}}}]\n{extra}"
    )
}

/// A ServiceEntry with one port of `protocol`, one endpoint `endpoint`
/// (flow YAML) and `extra` spec lines.
fn se(protocol: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: shop
spec:
  hosts: [shop.default.svc.cluster.local]
  ports:
  - {{number: 80, name: shop, protocol: {protocol}}}
  resolution: STATIC
  endpoints:
  - {endpoint}
{extra}"
    )
}

const EP: &str = "{address: 127.0.0.1}";

/// A Gateway with one server on `port`/`protocol` and `extra` server lines.
fn gateway(port: u16, protocol: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: shop-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {{number: {port}, name: shop, protocol: {protocol}}}
    hosts: [shop.example.com]
{extra}"
    )
}

fn vs_line(rest: &str) -> String {
    format!("Warning: VirtualService default/shop: {rest}")
}

fn se_line(rest: &str) -> String {
    format!("Warning: ServiceEntry default/shop: {rest}")
}

fn gw_line(rest: &str) -> String {
    format!("Warning: Gateway default/shop-gateway: {rest}")
}

#[track_caller]
fn vs_warns(extra: &str, path: &str) {
    let want = vs_line(&format!("{path} is not applied by gatehouse"));
    applies_with_warnings(&vs_route(extra), "vs", "shop", &[&want]);
}

#[track_caller]
fn se_warns(yaml: &str, rest: &str) {
    applies_with_warnings(yaml, "se", "shop", &[&se_line(rest)]);
}

#[track_caller]
fn gw_warns(yaml: &str, rest: &str) {
    applies_with_warnings(yaml, "gw", "shop-gateway", &[&gw_line(rest)]);
}

// ---------------------------------------------------------------- VirtualService

#[test]
fn retries_apply_but_remote_localities_do_not() {
    applies_with_warnings(
        &vs_route("    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}\n"),
        "vs",
        "shop",
        &[],
    );
    vs_warns(
        "    retries: {attempts: 3, perTryTimeout: 2s, retryRemoteLocalities: true}\n",
        "spec.http[0].retries.retryRemoteLocalities",
    );
}

#[test]
fn retries_with_zero_attempts_ask_for_what_gatehouse_does() {
    applies_with_warnings(&vs_route("    retries: {attempts: 0}\n"), "vs", "shop", &[]);
}

#[test]
fn fault_is_applied_without_a_warning() {
    let fault = "    fault: {delay: {fixedDelay: 7s, percentage: {value: 100}}, abort: {httpStatus: 500, percentage: {value: 50}}}\n";
    applies_with_warnings(&vs_route(fault), "vs", "shop", &[]);
}

#[test]
fn fault_delay_percent_beside_percentage() {
    let want = vs_line(
        "spec.http[0].fault.delay.percent is not applied by gatehouse: percentage.value is used (percent is deprecated)",
    );
    let fault = "    fault: {delay: {fixedDelay: 1s, percentage: {value: 5}, percent: 5}}\n";
    applies_with_warnings(&vs_route(fault), "vs", "shop", &[&want]);
}

#[test]
fn mirror_and_mirrors_apply() {
    for extra in [
        "    mirror: {host: shadow.default.svc.cluster.local}\n    mirrorPercentage: {value: 10}\n",
        "    mirrors: [{destination: {host: shadow}, percentage: {value: 10}}]\n",
    ] {
        applies_with_warnings(&vs_route(extra), "vs", "shop", &[]);
    }
}

#[test]
fn mirror_percentage_without_mirror() {
    applies_with_warnings(
        &vs_route("    mirrorPercentage: {value: 10}\n"),
        "vs",
        "shop",
        &[&vs_line(
            "spec.http[0].mirrorPercentage is not applied by gatehouse: it applies to mirror only (mirrors have their own percentage)",
        )],
    );
}

#[test]
fn cors_policy_is_applied_without_a_warning() {
    applies_with_warnings(
        &vs_route(
            "    corsPolicy: {allowOrigins: [{exact: \"https://shop.example.com\"}], allowMethods: [GET]}\n",
        ),
        "vs",
        "shop",
        &[],
    );
}

/// Applied since issue #13 (`tests/traffic/traffic_routes.rs` and
/// `traffic_balance.rs` show them at work): no warning.
#[test]
fn subsets_destination_headers_derive_port_regex_rewrite_and_match_sources_apply() {
    for yaml in [
        format!(
            "{VS_HEAD}  http:\n  - route: [{{destination: {{host: shop.default.svc.cluster.local, subset: v2}}}}]\n"
        ),
        format!(
            "{VS_HEAD}  http:\n  - route:\n    - destination: {{host: shop.default.svc.cluster.local}}\n      headers: {{request: {{set: {{x-shop: \"1\"}}}}}}\n"
        ),
        format!(
            "{VS_HEAD}  http:\n  - redirect: {{scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}}\n"
        ),
        vs_route(
            "    rewrite: {uriRegexRewrite: {match: \"^/old/(.*)$\", rewrite: \"/new/\\\\1\"}}\n",
        ),
        vs_route("    match: [{sourceLabels: {app: web}}]\n"),
        vs_route("    match: [{sourceNamespace: web}]\n"),
        vs_route("    match: [{gateways: [shop-gateway]}]\n"),
    ] {
        applies_with_warnings(&yaml, "vs", "shop", &[]);
    }
}

#[test]
fn match_stat_prefix() {
    vs_warns(
        "    match: [{uri: {prefix: /}, statPrefix: shop}]\n",
        "spec.http[0].match[0].statPrefix",
    );
}

#[test]
fn virtual_service_export_to() {
    let yaml = vs_route("").replace("spec:\n", "spec:\n  exportTo: [\".\"]\n");
    let want = vs_line("spec.exportTo is not applied by gatehouse");
    applies_with_warnings(&yaml, "vs", "shop", &[&want]);
}

#[test]
fn tls_routes_apply_and_their_unapplied_match_fields_warn() {
    let yaml = format!(
        "{VS_HEAD}  tls:\n  - match: [{{sniHosts: [shop.example.com], port: 443}}]\n    route: [{{destination: {{host: shop.default.svc.cluster.local}}}}]\n"
    );
    applies_with_warnings(&yaml, "vs", "shop", &[]);
    let yaml = yaml.replace("port: 443", "destinationSubnets: [10.0.0.0/8]");
    let want = vs_line("spec.tls[0].match[0].destinationSubnets is not applied by gatehouse");
    applies_with_warnings(&yaml, "vs", "shop", &[&want]);
}

#[test]
fn tcp_routes_apply_and_their_unapplied_match_fields_warn() {
    let yaml = format!(
        "{VS_HEAD}  tcp:\n  - route: [{{destination: {{host: shop.default.svc.cluster.local}}}}]\n"
    );
    applies_with_warnings(&yaml, "vs", "shop", &[]);
    let yaml = yaml.replace(
        "  - route:",
        "  - match: [{destinationSubnets: [10.0.0.0/8]}]\n    route:",
    );
    let want = vs_line("spec.tcp[0].match[0].destinationSubnets is not applied by gatehouse");
    applies_with_warnings(&yaml, "vs", "shop", &[&want]);
}

// ---------------------------------------------------------------- ServiceEntry

#[test]
fn service_entry_addresses() {
    se_warns(
        &se("HTTP", EP, "  addresses: [10.1.2.3]\n"),
        "spec.addresses is not applied by gatehouse",
    );
}

#[test]
fn service_entry_location() {
    se_warns(
        &se("HTTP", EP, "  location: MESH_EXTERNAL\n"),
        "spec.location is not applied by gatehouse",
    );
}

#[test]
fn service_entry_export_to() {
    se_warns(
        &se("HTTP", EP, "  exportTo: [\"*\"]\n"),
        "spec.exportTo is not applied by gatehouse",
    );
}

#[test]
fn service_entry_subject_alt_names() {
    se_warns(
        &se(
            "HTTP",
            EP,
            "  subjectAltNames: [\"spiffe://cluster.local/ns/default/sa/shop\"]\n",
        ),
        "spec.subjectAltNames is not applied by gatehouse",
    );
}

#[test]
fn endpoint_labels_apply_for_subsets() {
    applies_with_warnings(
        &se("HTTP", "{address: 127.0.0.1, labels: {version: v2}}", ""),
        "se",
        "shop",
        &[],
    );
}

#[test]
fn endpoint_weight() {
    se_warns(
        &se("HTTP", "{address: 127.0.0.1, weight: 20}", ""),
        "spec.endpoints[0].weight is not applied by gatehouse",
    );
}

#[test]
fn endpoint_network() {
    se_warns(
        &se("HTTP", "{address: 127.0.0.1, network: east}", ""),
        "spec.endpoints[0].network is not applied by gatehouse",
    );
}

#[test]
fn endpoint_locality() {
    se_warns(
        &se(
            "HTTP",
            "{address: 127.0.0.1, locality: eu-west1/zone-a}",
            "",
        ),
        "spec.endpoints[0].locality is not applied by gatehouse",
    );
}

#[test]
fn endpoint_service_account() {
    se_warns(
        &se("HTTP", "{address: 127.0.0.1, serviceAccount: shop}", ""),
        "spec.endpoints[0].serviceAccount is not applied by gatehouse",
    );
}

#[test]
fn endpoint_unix_socket() {
    se_warns(
        &se("HTTP", "{address: \"unix:///var/run/shop.sock\"}", ""),
        "spec.endpoints[0].address is not applied by gatehouse: gatehouse connects over TCP only and skips this endpoint",
    );
}

#[test]
fn resolution_none() {
    let yaml = se("HTTP", EP, "")
        .replace("resolution: STATIC", "resolution: NONE")
        .replace("  endpoints:\n  - {address: 127.0.0.1}\n", "");
    se_warns(
        &yaml,
        "spec.resolution is not applied by gatehouse: NONE (also the default when unset) falls back to DNS: gatehouse resolves the destination host name",
    );
}

#[track_caller]
fn se_protocol(protocol: &str, instead: &str) {
    se_warns(
        &se(protocol, EP, ""),
        &format!("spec.ports[0].protocol is not applied by gatehouse: {instead}"),
    );
}

#[test]
fn service_entry_protocol_tcp() {
    se_protocol("TCP", "gatehouse sends HTTP/1.1 to this port, not TCP");
}

#[test]
fn service_entry_protocol_tls() {
    se_protocol(
        "TLS",
        "gatehouse sends cleartext HTTP/1.1 to this port, not TLS",
    );
}

/// HTTP2 and GRPC ports are spoken to with HTTP/2 (h2c): no warning
/// (traffic_grpc shows the backend sees HTTP/2).
#[test]
fn service_entry_protocols_http2_and_grpc_are_applied() {
    for protocol in ["HTTP2", "GRPC", "grpc"] {
        applies_with_warnings(&se(protocol, EP, ""), "se", "shop", &[]);
    }
}

#[test]
fn service_entry_protocol_mongo() {
    se_protocol("MONGO", "gatehouse sends HTTP/1.1 to this port, not MONGO");
}

// ---------------------------------------------------------------- Gateway

#[track_caller]
fn gw_protocol(protocol: &str, extra: &str, instead: &str) {
    gw_warns(
        &gateway(9000, protocol, extra),
        &format!("spec.servers[0].port.protocol is not applied by gatehouse: {instead}"),
    );
}

#[test]
fn gateway_protocols_tcp_and_mongo_are_served_as_tcp() {
    for protocol in ["TCP", "MONGO"] {
        applies_with_warnings(&gateway(9000, protocol, ""), "gw", "shop-gateway", &[]);
    }
}

#[test]
fn gateway_passthrough_is_applied() {
    applies_with_warnings(
        &gateway(9000, "TLS", "    tls: {mode: PASSTHROUGH}\n"),
        "gw",
        "shop-gateway",
        &[],
    );
}

#[test]
fn gateway_protocol_http2() {
    gw_protocol(
        "HTTP2",
        "",
        "HTTP2 is served as HTTP (HTTP/1.1 and cleartext HTTP/2 from clients; to backends as their ServiceEntry port's protocol says)",
    );
}

#[test]
fn gateway_protocol_grpc() {
    gw_protocol(
        "GRPC",
        "",
        "GRPC is served as HTTP (HTTP/1.1 and cleartext HTTP/2 from clients; to backends as their ServiceEntry port's protocol says)",
    );
}

#[test]
fn gateway_protocol_tls() {
    gw_protocol(
        "TLS",
        "    tls: {mode: SIMPLE, credentialName: shop-credential}\n",
        "TLS is served as HTTPS (TLS is terminated and the connection must carry HTTP; tls and tcp routes are served only by PASSTHROUGH and TCP servers)",
    );
}

#[test]
fn gateway_bind() {
    gw_warns(
        &gateway(8080, "HTTP", "    bind: 127.0.0.1\n"),
        "spec.servers[0].bind is not applied by gatehouse: listeners bind where `gatehouse run --listen PORT=ADDRESS` says",
    );
}

#[test]
fn gateway_default_endpoint() {
    gw_warns(
        &gateway(8080, "HTTP", "    defaultEndpoint: 127.0.0.1:9080\n"),
        "spec.servers[0].defaultEndpoint is not applied by gatehouse",
    );
}

#[test]
fn gateway_second_credential_name() {
    gw_warns(
        &gateway(
            443,
            "HTTPS",
            "    tls: {mode: SIMPLE, credentialNames: [shop-rsa, shop-ecdsa]}\n",
        ),
        "spec.servers[0].tls.credentialNames[1] is not applied by gatehouse: only credentialNames[0] is served",
    );
}

// ---------------------------------------------------------------- get, the walkthrough

#[test]
fn the_walkthrough_applies_without_warnings() {
    let site = Site::new();
    site.write("foocorp/gateway.yaml", GATEWAY_YAML);
    site.write("foocorp/virtualservices.yaml", VIRTUAL_SERVICES_YAML);
    let out = site.cli(&["apply", "-f", "foocorp/"]).ok();
    assert_eq!(out.stderr, "");
    let got = site.cli(&["get", "gw,vs", "-o", "json"]).ok();
    let list: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    for item in list["items"].as_array().unwrap() {
        assert_eq!(item.get("status"), None, "{item}");
    }
}

#[test]
fn get_yaml_lists_ignored_fields_and_applies_again() {
    let site = Site::new();
    site.write(
        "m.yaml",
        vs_route(
            "    retries: {attempts: 2, retryRemoteLocalities: true}\n    fault: {delay: {fixedDelay: 1s, percentage: {value: 5}, percent: 5}}\n",
        ),
    );
    site.cli(&["apply", "-f", "m.yaml"]).ok();
    let out = site.cli(&["get", "vs", "shop", "-o", "yaml"]).ok();
    let v: Value = serde_saphyr::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["status"],
        serde_json::json!({"gatehouse": {"ignoredFields": [
            {"path": "spec.http[0].retries.retryRemoteLocalities",
             "message": "spec.http[0].retries.retryRemoteLocalities is not applied by gatehouse"},
            {"path": "spec.http[0].fault.delay.percent",
             "message": "spec.http[0].fault.delay.percent is not applied by gatehouse: percentage.value is used (percent is deprecated)"},
        ]}}),
        "{}",
        out.stdout
    );
    assert_eq!(v["spec"]["http"][0]["retries"]["attempts"], 2);
    // The output applies as it is (the status is output only), and warns again.
    site.write("again.yaml", &out.stdout);
    let again = site.cli(&["apply", "-f", "again.yaml"]).ok();
    assert_eq!(
        again.stdout,
        "virtualservice.networking.istio.io/shop unchanged\n"
    );
    assert_eq!(
        again.stderr,
        format!(
            "{}\n{}\n",
            vs_line("spec.http[0].retries.retryRemoteLocalities is not applied by gatehouse"),
            vs_line(
                "spec.http[0].fault.delay.percent is not applied by gatehouse: percentage.value is used (percent is deprecated)"
            )
        )
    );
}

// ---------------------------------------------------------------- ConflictingGateways

/// A SIMPLE HTTPS Gateway for the walkthrough's frontend host.
fn frontend_gateway(name: &str, credential: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    tls: {{mode: SIMPLE, credentialName: {credential}}}
    hosts: [{FRONTEND}]
"
    )
}

const CONFLICT_LINE: &str = "Warning: Gateway default/zulu: ConflictingGateways: spec.servers[0] claims host frontend.foocorp.com on port 443, as Gateway default/alpha spec.servers[0] does; Gateway default/alpha serves it (the first by namespace/name), Gateway default/zulu does not";

/// The first PEM certificate in `text`, without line breaks.
fn first_cert(text: &str) -> String {
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a PEM certificate");
    let end = text[start..]
        .find("-----END CERTIFICATE-----")
        .expect("the end of the PEM certificate");
    text[start..start + end].split_whitespace().collect()
}

/// Two Gateways claim the frontend host on 443 with different certificates:
/// `apply` names both and says `alpha` serves; a running gateway then hands
/// out `alpha`'s certificate, and `/warnings` says the same as `apply`.
#[test]
fn conflicting_gateways_warn_and_the_named_one_serves() {
    let site = Site::new();
    site.pki_init(FRONTEND);
    site.create_walkthrough_secret(FRONTEND);
    // A second, unrelated tree for the same host: another CA, another leaf.
    site.cli(&["pki", "init", FRONTEND, "--out", "other"]).ok();
    let other = format!("other/{FRONTEND}");
    site.cli(&[
        "create",
        "-n",
        "istio-system",
        "secret",
        "generic",
        "other-credential",
        &format!("--from-file=key={other}/3_application/private/{FRONTEND}.key.pem"),
        &format!("--from-file=cert={other}/3_application/certs/{FRONTEND}.cert.pem"),
    ])
    .ok();

    site.write("zulu.yaml", frontend_gateway("zulu", "frontend-credential"));
    let out = site.cli(&["apply", "-f", "zulu.yaml"]).ok();
    assert_eq!(out.stderr, "");
    site.write("alpha.yaml", frontend_gateway("alpha", "other-credential"));
    let out = site.cli(&["apply", "-f", "alpha.yaml"]).ok();
    assert_eq!(out.stdout, "gateway.networking.istio.io/alpha created\n");
    assert_eq!(out.stderr, format!("{CONFLICT_LINE}\n"));
    // Both are stored, and `get -o json` shows the conflict on both.
    let got = site.cli(&["get", "gw", "-o", "name"]).ok();
    assert_eq!(
        got.stdout,
        "gateway.networking.istio.io/alpha\ngateway.networking.istio.io/zulu\n"
    );
    for name in ["alpha", "zulu"] {
        let got = site.cli(&["get", "gw", name, "-o", "json"]).ok();
        let v: Value = serde_json::from_str(&got.stdout).unwrap();
        let conflict = CONFLICT_LINE.strip_prefix("Warning: ").unwrap();
        assert_eq!(
            v["status"],
            serde_json::json!({"gatehouse": {"conflicts": [conflict]}}),
            "{name}"
        );
    }

    let gw = site.start_gateway(&[443]);
    let port = gw.port(443);
    let served = poll(
        "a handshake for the frontend host",
        support::COMMAND_TIMEOUT,
        || {
            let out = site.s_client(port, &["-servername", FRONTEND]);
            out.stdout
                .contains("-----BEGIN CERTIFICATE-----")
                .then(|| first_cert(&out.stdout))
        },
    );
    let alpha_cert = std::fs::read_to_string(
        site.path(format!("{other}/3_application/certs/{FRONTEND}.cert.pem")),
    )
    .unwrap();
    let zulu_cert = std::fs::read_to_string(site.path(site.pki(FRONTEND).server_cert)).unwrap();
    assert_ne!(first_cert(&alpha_cert), first_cert(&zulu_cert));
    assert_eq!(served, first_cert(&alpha_cert), "not alpha's certificate");
    // A client trusting only alpha's CA completes the handshake (no route: 404).
    site.walkthrough_curl(FRONTEND, port)
        .cacert(format!("{other}/2_intermediate/certs/ca-chain.cert.pem"))
        .no_client_cert()
        .run()
        .assert_status(404);

    let warnings = admin_warnings(&site, &gw);
    let lines: Vec<String> = warnings
        .iter()
        .map(|w| format!("Warning: {}", w["warning"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [CONFLICT_LINE]);
    assert_eq!(warnings[0]["reason"], "ConflictingGateways");
    assert_eq!(warnings[0]["name"], "zulu");
    assert_eq!(warnings[0]["path"], "spec.servers[0]");
}

/// `GET /warnings` of a running gateway, once it has compiled its objects.
fn admin_warnings(site: &Site, gw: &support::Gateway) -> Vec<Value> {
    let url = format!("http://{}/warnings", gw.admin());
    poll(
        "the first compile in /warnings",
        support::COMMAND_TIMEOUT,
        || {
            let out = site.curl(&url).run();
            let v: Value = serde_json::from_str(&out.body).ok()?;
            (v["snapshot"].as_u64()? > 0).then(|| v["warnings"].as_array().cloned())?
        },
    )
}

/// The admin endpoint lists what the running gateway holds and does not
/// apply, in the words `apply` used.
#[test]
fn admin_lists_ignored_fields_of_what_the_gateway_holds() {
    let site = Site::new();
    let yaml = format!(
        "{}---\n{}",
        se("MONGO", EP, ""),
        vs_route("    fault: {delay: {fixedDelay: 1s, percentage: {value: 5}, percent: 5}}\n")
    );
    site.write("m.yaml", &yaml);
    let applied = site.cli(&["apply", "-f", "m.yaml"]).ok();
    let gw = site.start_gateway(&[]);
    let warnings = admin_warnings(&site, &gw);
    let lines: Vec<String> = warnings
        .iter()
        .map(|w| format!("Warning: {}\n", w["warning"].as_str().unwrap()))
        .collect();
    // The same lines `apply` printed (both list by kind, then name).
    assert_eq!(lines.concat(), applied.stderr);
    let fields: Vec<(&str, &str, &str)> = warnings
        .iter()
        .map(|w| {
            (
                w["kind"].as_str().unwrap(),
                w["path"].as_str().unwrap(),
                w["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("ServiceEntry", "spec.ports[0].protocol", "IgnoredField"),
            (
                "VirtualService",
                "spec.http[0].fault.delay.percent",
                "IgnoredField"
            ),
        ]
    );
}

/// A plain-text server on a port whose other servers serve TLS is not
/// served: `apply` says so, and a plain HTTP request to that port gets no
/// HTTP answer while the TLS server still completes handshakes.
#[test]
fn plain_server_beside_tls_on_one_port_warns_and_is_not_served() {
    let site = Site::new();
    site.pki_init(FRONTEND);
    site.create_walkthrough_secret(FRONTEND);
    site.write(
        "tls.yaml",
        frontend_gateway("secure", "frontend-credential"),
    );
    site.cli(&["apply", "-f", "tls.yaml"]).ok();
    let plain = gateway(443, "HTTP", "").replace("name: shop-gateway", "name: web");
    site.write("plain.yaml", &plain);
    let out = site.cli(&["apply", "-f", "plain.yaml"]).ok();
    assert_eq!(
        out.stderr,
        "Warning: Gateway default/web: ConflictingGateways: spec.servers[0] serves plain text on port 443, where Gateway default/secure spec.servers[0] serves TLS; a port serves one or the other: its TLS servers are served, this server is not\n"
    );
    let gw = site.start_gateway(&[443]);
    let port = gw.port(443);
    let http = site
        .curl(&format!("http://127.0.0.1:{port}/"))
        .host_header("shop.example.com")
        .run();
    assert_eq!(http.status, 0, "a plain HTTP answer came back: {http:?}");
    let served = site.s_client(port, &["-servername", FRONTEND]);
    assert!(
        served.stdout.contains("-----BEGIN CERTIFICATE-----"),
        "{served:?}"
    );
}

/// A refused apply says only why it was refused: no warnings beside the error.
#[test]
fn a_refused_apply_prints_no_warnings() {
    let site = Site::new();
    let yaml = vs_route("    retries: {attempts: 3, retryRemoteLocalities: true}\n");
    site.write("m.yaml", &yaml);
    site.cli(&["apply", "-f", "m.yaml"]).ok();
    let stale = yaml.replace(
        "  name: shop\n",
        "  name: shop\n  resourceVersion: \"99\"\n",
    );
    site.write("stale.yaml", &stale);
    let out = site.cli(&["apply", "-f", "stale.yaml"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.lines().count() == 1,
        "{out:?}"
    );
}
