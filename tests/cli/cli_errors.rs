//! Malformed input, table-driven: every case must exit 1 with one line on
//! stderr naming the file, the document, the object and the field, and
//! leave the store byte for byte as it was.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use crate::support;
use crate::support::{Site, b64, issue, kubectl_secret_yaml};
use gatehouse::pki::LeafSpec;

const GATEWAY: &str = crate::support::GATEWAY_YAML;
const VIRTUAL_SERVICES: &str = crate::support::VIRTUAL_SERVICES_YAML;

/// What one bad input must produce.
struct Case {
    name: &'static str,
    /// Files to write (relative to the scratch directory).
    files: Vec<(String, Vec<u8>)>,
    /// Arguments after `gatehouse --store ...`.
    args: Vec<String>,
    /// Bytes for stdin.
    stdin: String,
    /// The exact start of the stderr line.
    prefix: String,
    /// Parts the rest of the message must contain.
    contains: Vec<&'static str>,
}

/// `apply -f cases/NAME.yaml` with `yaml`, expecting
/// `error: cases/NAME.yaml: document DOC (OBJECT): PATH: ...FRAGMENT...`.
fn case(
    name: &'static str,
    yaml: impl Into<String>,
    doc: usize,
    object: Option<&str>,
    path: Option<&str>,
    contains: &[&'static str],
) -> Case {
    let file = format!("cases/{name}.yaml");
    let mut prefix = format!("error: {file}: document {doc}");
    if let Some(o) = object {
        write!(prefix, " ({o})").unwrap();
    }
    if let Some(p) = path {
        write!(prefix, ": {p}").unwrap();
    }
    prefix.push_str(": ");
    Case {
        name,
        files: vec![(file.clone(), yaml.into().into_bytes())],
        args: vec!["apply".into(), "-f".into(), file],
        stdin: String::new(),
        prefix,
        contains: contains.to_vec(),
    }
}

/// A Gateway `gw` in `default` with one server whose lines are `server`
/// (indented under `- `).
fn gw_server(server: &str) -> String {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  selector:\n    istio: ingressgateway\n  servers:\n",
    );
    for (i, line) in server.lines().enumerate() {
        s.push_str(if i == 0 { "  - " } else { "    " });
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// A Gateway with one HTTPS server on frontend.foocorp.com and `tls` as its TLS block.
fn gw_tls(tls: &str) -> String {
    gw_server(&format!(
        "port: {{number: 443, name: https, protocol: HTTPS}}\nhosts: [frontend.foocorp.com]\ntls: {tls}"
    ))
}

/// A VirtualService `vs` in `default` whose spec is `spec` (indented by 2).
fn vs(spec: &str) -> String {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\nspec:\n",
    );
    for line in spec.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// A VirtualService for frontend.foocorp.com on foocorp-gateway with one http route `route`.
fn vs_http(route: &str) -> String {
    let mut spec =
        String::from("hosts: [frontend.foocorp.com]\ngateways: [foocorp-gateway]\nhttp:\n");
    for (i, line) in route.lines().enumerate() {
        spec.push_str(if i == 0 { "- " } else { "  " });
        spec.push_str(line);
        spec.push('\n');
    }
    vs(&spec)
}

const ROUTE: &str =
    "route:\n- destination: {host: frontend.ux.svc.cluster.local, port: {number: 80}}";

/// A ServiceEntry `se` in `default` whose spec is `spec` (indented by 2).
fn se(spec: &str) -> String {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\nspec:\n",
    );
    for line in spec.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// A Secret `bad-credential` in `istio-system` with `data` (base64 done here).
fn secret(data: &[(&str, &[u8])]) -> String {
    kubectl_secret_yaml("bad-credential", "istio-system", data)
}

const SECRET_OBJ: &str = "Secret istio-system/bad-credential";

fn openssl(args: &[&str]) {
    let out = support::command("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key encrypted by the real openssl: PKCS#8 (`openssl pkcs8 -topk8 -v2
/// aes-256-cbc`) and traditional (`openssl ec -aes256`, with Proc-Type).
fn encrypted_keys(env: &Site, key_pem: &str) -> (String, String) {
    let plain = env.write("enc/plain.key.pem", key_pem);
    let pkcs8 = env.path("enc/pkcs8.key.pem");
    let trad = env.path("enc/trad.key.pem");
    let p = |p: &std::path::Path| p.display().to_string();
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:x",
        "-in",
        &p(&plain),
        "-out",
        &p(&pkcs8),
    ]);
    openssl(&[
        "ec",
        "-in",
        &p(&plain),
        "-aes256",
        "-passout",
        "pass:x",
        "-out",
        &p(&trad),
    ]);
    let pkcs8 = std::fs::read_to_string(pkcs8).unwrap();
    let trad = std::fs::read_to_string(trad).unwrap();
    assert!(pkcs8.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(trad.contains("Proc-Type: 4,ENCRYPTED"));
    (pkcs8, trad)
}

/// A store holding the walkthrough's objects, a credential and a ServiceEntry.
fn baseline(env: &Site) {
    env.write("base/gateway.yaml", GATEWAY);
    env.write("base/virtualservices.yaml", VIRTUAL_SERVICES);
    let good = issue("frontend.foocorp.com", None);
    env.write(
        "base/secret.yaml",
        kubectl_secret_yaml(
            "frontend-credential",
            "istio-system",
            &[
                ("cert", good.cert.as_bytes()),
                ("key", good.key.as_bytes()),
                ("cacert", good.ca.as_bytes()),
            ],
        ),
    );
    env.write(
        "base/serviceentry.yaml",
        se("hosts: [api.example.com]\nports:\n- {number: 443, name: https, protocol: TLS}\nresolution: DNS\nlocation: MESH_EXTERNAL"),
    );
    env.cli(&["apply", "-f", "base"]).ok();
}

#[allow(clippy::too_many_lines)]
fn cases(env: &Site) -> Vec<Case> {
    let gw_obj = Some("Gateway default/gw");
    let vs_obj = Some("VirtualService default/vs");
    let se_obj = Some("ServiceEntry default/se");
    let good = issue("frontend.foocorp.com", None);
    let other = issue("frontend.foocorp.com", None);
    let expired = issue(
        "frontend.foocorp.com",
        Some(LeafSpec::server("frontend.foocorp.com").expired()),
    );
    let future = issue(
        "frontend.foocorp.com",
        Some(LeafSpec::server("frontend.foocorp.com").not_yet_valid()),
    );
    let (enc_pkcs8, enc_trad) = encrypted_keys(env, &good.key);
    let cert = good.cert.as_bytes();
    let key = good.key.as_bytes();
    let valid_gw = gw_tls("{mode: SIMPLE, credentialName: frontend-credential}")
        .replace("name: gw", "name: new-gw");

    let mut v = vec![
        // YAML syntax: the document is named, and the line in the file.
        case(
            "yaml-unclosed-flow",
            format!("{valid_gw}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: x\n"),
            2,
            None,
            None,
            &["invalid YAML: ", "line 15"],
        ),
        case(
            "yaml-bad-indent",
            gw_tls("{mode: SIMPLE, credentialName: frontend-credential}")
                .replace("  selector:", " selector:"),
            1,
            None,
            None,
            &["invalid YAML: ", "line "],
        ),
        case(
            "yaml-duplicate-key",
            "apiVersion: v1\nkind: Secret\nkind: Secret\nmetadata: {name: x}\n",
            1,
            None,
            None,
            &["invalid YAML: ", "duplicate", "kind", "line 3"],
        ),
        case(
            "yaml-unclosed-quote",
            "apiVersion: \"v1\nkind: Secret\n",
            1,
            None,
            None,
            &["invalid YAML: "],
        ),
        case(
            "yaml-empty-doc-counts",
            format!("{valid_gw}---\n---\nkind: Secret\n"),
            3,
            None,
            Some("apiVersion"),
            &["required field is missing; supported: Gateway ("],
        ),
        case(
            "not-an-object",
            "- apiVersion: v1\n- kind: Secret\n",
            1,
            None,
            None,
            &["expected an object with apiVersion, kind and metadata"],
        ),
        // Wrong types.
        case(
            "type-port-number",
            gw_server(
                "port: {number: https, name: https, protocol: HTTPS}\nhosts: [frontend.foocorp.com]\ntls: {credentialName: frontend-credential}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].port.number"),
            &["invalid type: string \"https\", expected a non-negative integer"],
        ),
        case(
            "type-hosts-string",
            gw_server(
                "port: {number: 80, name: http, protocol: HTTP}\nhosts: frontend.foocorp.com",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].hosts"),
            &["invalid type", "expected a sequence"],
        ),
        case(
            "type-weight-string",
            vs_http(
                "route:\n- destination: {host: frontend.ux.svc.cluster.local}\n  weight: heavy",
            ),
            1,
            vs_obj,
            Some("spec.http[0].route[0].weight"),
            &["invalid type: string \"heavy\", expected an integer"],
        ),
        case(
            "type-secret-data-map",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: bad-credential, namespace: istio-system}\ndata:\n  key: {a: b}\n",
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["invalid type"],
        ),
        case(
            "type-spec-string",
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: servers\n",
            1,
            gw_obj,
            Some("spec"),
            &["invalid type: string \"servers\", expected an object"],
        ),
        case(
            "type-spec-list",
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: [a]\n",
            1,
            gw_obj,
            Some("spec[0]"),
            &["invalid type: string \"a\""],
        ),
        // Unknown fields, named.
        case(
            "unknown-field-top",
            format!(
                "{}bogus: 1\n",
                gw_tls("{credentialName: frontend-credential}")
            ),
            1,
            gw_obj,
            Some("bogus"),
            &["unknown field `bogus`"],
        ),
        case(
            "unknown-field-spec",
            gw_tls("{credentialName: frontend-credential}").replace("  servers:", "  servrs:"),
            1,
            gw_obj,
            Some("spec.servrs"),
            &["unknown field `servrs`", "`servers`"],
        ),
        case(
            "unknown-field-tls",
            gw_tls("{mode: MUTUAL, credentialNme: frontend-credential}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls.credentialNme"),
            &["unknown field `credentialNme`", "`credentialName`"],
        ),
        case(
            "unknown-field-vs-match",
            vs_http(&format!("match:\n- uri: {{exact: /}}\n  urii: /x\n{ROUTE}")),
            1,
            vs_obj,
            Some("spec.http[0].match[0].urii"),
            &["unknown field `urii`", "`uri`"],
        ),
        case(
            "unknown-field-metadata",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: bad-credential, namespace: istio-system, lables: {a: b}}\n",
            1,
            Some(SECRET_OBJ),
            Some("metadata.lables"),
            &["unknown field `lables`", "`labels`"],
        ),
        case(
            "unknown-string-match",
            vs_http(&format!("match:\n- uri: {{exakt: /}}\n{ROUTE}")),
            1,
            vs_obj,
            Some("spec.http[0].match[0].uri"),
            &["unknown variant `exakt`", "`exact`", "`prefix`", "`regex`"],
        ),
        case(
            "unknown-tls-mode",
            gw_tls("{mode: STRICT, credentialName: frontend-credential}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls.mode"),
            &["unknown variant `STRICT`", "`MUTUAL`"],
        ),
        case(
            "unknown-resolution",
            se("hosts: [api.example.com]\nresolution: MAGIC"),
            1,
            se_obj,
            Some("spec.resolution"),
            &["unknown variant `MAGIC`", "`DNS`"],
        ),
        // Kinds and versions.
        case(
            "unknown-kind",
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\nspec: {}\n",
            1,
            None,
            Some("kind"),
            &[
                "unknown kind \"Sidecar\"",
                "Gateway (networking.istio.io/v1alpha3, networking.istio.io/v1beta1, networking.istio.io/v1)",
                "Secret (v1)",
            ],
        ),
        case(
            "unknown-api-version",
            GATEWAY.replace("networking.istio.io/v1alpha3", "networking.istio.io/v2"),
            1,
            Some("Gateway default/foocorp-gateway"),
            Some("apiVersion"),
            &[
                "\"networking.istio.io/v2\"",
                "Gateway",
                "supported: networking.istio.io/v1alpha3, networking.istio.io/v1beta1, networking.istio.io/v1",
            ],
        ),
        case(
            "secret-wrong-api-version",
            "apiVersion: networking.istio.io/v1\nkind: Secret\nmetadata: {name: s}\n",
            1,
            Some("Secret default/s"),
            Some("apiVersion"),
            &["kind Secret", "supported: v1"],
        ),
        case(
            "missing-kind",
            "apiVersion: v1\nmetadata: {name: s}\n",
            1,
            None,
            Some("kind"),
            &["required field is missing; supported: ", "Secret (v1)"],
        ),
        // Metadata.
        case(
            "missing-metadata",
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nspec:\n  servers: []\n",
            1,
            Some("Gateway default/"),
            Some("metadata"),
            &["required"],
        ),
        case(
            "missing-name",
            GATEWAY.replace("  name: foocorp-gateway\n", ""),
            1,
            Some("Gateway default/"),
            Some("metadata.name"),
            &["name is required"],
        ),
        case(
            "invalid-name",
            GATEWAY.replace("name: foocorp-gateway", "name: FooCorp_Gateway"),
            1,
            Some("Gateway default/FooCorp_Gateway"),
            Some("metadata.name"),
            &["\"FooCorp_Gateway\" is not a valid name"],
        ),
        case(
            "invalid-namespace",
            GATEWAY.replace("namespace: default", "namespace: Default"),
            1,
            Some("Gateway Default/foocorp-gateway"),
            Some("metadata.namespace"),
            &["\"Default\" is not a valid namespace"],
        ),
        case(
            "gateway-name-with-dots",
            GATEWAY.replace("name: foocorp-gateway", "name: foocorp.gateway"),
            1,
            Some("Gateway default/foocorp.gateway"),
            Some("metadata.name"),
            &["DNS label"],
        ),
        // Gateway rules.
        case(
            "gw-no-servers",
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  selector: {istio: ingressgateway}\n",
            1,
            gw_obj,
            Some("spec.servers"),
            &["a Gateway needs at least one server"],
        ),
        case(
            "gw-https-without-tls",
            gw_server(
                "port: {number: 443, name: https, protocol: HTTPS}\nhosts: [frontend.foocorp.com]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls"),
            &["an HTTPS server needs tls settings"],
        ),
        case(
            "gw-tls-protocol-without-tls",
            gw_server(
                "port: {number: 443, name: tls, protocol: TLS}\nhosts: [frontend.foocorp.com]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls"),
            &["a TLS server needs tls settings"],
        ),
        case(
            "gw-simple-without-credential",
            gw_tls("{mode: SIMPLE}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls"),
            &["mode SIMPLE needs credentialName, or serverCertificate and privateKey"],
        ),
        case(
            "gw-mutual-without-credential",
            GATEWAY.replace("      credentialName: \"inventory-credential\"\n", ""),
            1,
            Some("Gateway default/foocorp-gateway"),
            Some("spec.servers[1].tls"),
            &["mode MUTUAL needs credentialName or caCertificates"],
        ),
        case(
            "gw-optional-mutual-without-credential",
            gw_tls("{mode: OPTIONAL_MUTUAL}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls"),
            &["mode OPTIONAL_MUTUAL needs credentialName"],
        ),
        case(
            "gw-mutual-files-without-ca",
            gw_tls(
                "{mode: MUTUAL, serverCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.caCertificates"),
            &["mode MUTUAL with serverCertificate needs caCertificates"],
        ),
        case(
            "gw-cert-without-key",
            gw_tls("{mode: SIMPLE, serverCertificate: /etc/certs/cert.pem}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls.privateKey"),
            &["serverCertificate needs privateKey"],
        ),
        case(
            "gw-cacrl-with-credential",
            gw_tls(
                "{mode: MUTUAL, credentialName: frontend-credential, caCrl: /etc/certs/crl.pem}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.caCrl"),
            &["caCrl is not allowed with credentialName"],
        ),
        case(
            "gw-cacrl-with-simple",
            gw_tls(
                "{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.caCrl"),
            &["caCrl is not supported with mode SIMPLE"],
        ),
        case(
            "gw-cacertificates-with-credential",
            gw_tls("{mode: MUTUAL, credentialName: frontend-credential, caCertificates: /ca.pem}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls.caCertificates"),
            &["caCertificates is not allowed with credentialName"],
        ),
        case(
            "gw-two-certificate-sources",
            gw_tls(
                "{mode: SIMPLE, credentialName: frontend-credential, serverCertificate: /c.pem, privateKey: /k.pem}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls"),
            &["only one certificate source"],
        ),
        case(
            "gw-credential-name-and-names",
            gw_tls("{mode: SIMPLE, credentialName: a, credentialNames: [b]}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls"),
            &["only one certificate source"],
        ),
        case(
            "gw-three-credential-names",
            gw_tls("{mode: SIMPLE, credentialNames: [a, b, c]}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls.credentialNames"),
            &["at most two"],
        ),
        case(
            "gw-bad-credential-name",
            gw_tls("{mode: SIMPLE, credentialName: Frontend_Credential}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls.credentialName"),
            &["not a valid Secret name"],
        ),
        case(
            "gw-invalid-host",
            gw_server(
                "port: {number: 80, name: http, protocol: HTTP}\nhosts: [frontend..foocorp.com]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].hosts[0]"),
            &["frontend..foocorp.com", "empty label"],
        ),
        case(
            "gw-wildcard-not-leftmost",
            gw_server(
                "port: {number: 80, name: http, protocol: HTTP}\nhosts: [frontend.foocorp.com, \"foocorp.*.com\"]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].hosts[1]"),
            &["wildcard", "left-most label"],
        ),
        case(
            "gw-partial-wildcard",
            gw_server("port: {number: 80, name: http, protocol: HTTP}\nhosts: [\"*foocorp.com\"]"),
            1,
            gw_obj,
            Some("spec.servers[0].hosts[0]"),
            &["wildcard"],
        ),
        case(
            "gw-short-host",
            gw_server("port: {number: 80, name: http, protocol: HTTP}\nhosts: [frontend]"),
            1,
            gw_obj,
            Some("spec.servers[0].hosts[0]"),
            &["short names are not allowed"],
        ),
        case(
            "gw-host-bad-namespace",
            gw_server(
                "port: {number: 80, name: http, protocol: HTTP}\nhosts: [Corp_Services/inventory.foocorp.com]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].hosts[0]"),
            &["\"Corp_Services\" is not a namespace"],
        ),
        case(
            "gw-no-hosts",
            gw_server("port: {number: 80, name: http, protocol: HTTP}\nhosts: []"),
            1,
            gw_obj,
            Some("spec.servers[0].hosts"),
            &["at least one host"],
        ),
        case(
            "gw-duplicate-port-names",
            GATEWAY.replace("name: https-inventory", "name: https-frontend"),
            1,
            Some("Gateway default/foocorp-gateway"),
            Some("spec.servers[1].port.name"),
            &["port name \"https-frontend\" is used by another server"],
        ),
        case(
            "gw-istio-mutual",
            gw_tls("{mode: ISTIO_MUTUAL}"),
            1,
            gw_obj,
            Some("spec.servers[0].tls.mode"),
            &["mode ISTIO_MUTUAL is not supported yet"],
        ),
        case(
            "gw-max-tls-1-1",
            gw_tls(
                "{mode: SIMPLE, credentialName: frontend-credential, maxProtocolVersion: TLSV1_1}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.maxProtocolVersion"),
            &["never offers TLS below 1.2"],
        ),
        case(
            "gw-min-above-max",
            gw_tls(
                "{mode: SIMPLE, credentialName: frontend-credential, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.minProtocolVersion"),
            &["above maxProtocolVersion"],
        ),
        case(
            "gw-unknown-tls-version",
            gw_tls(
                "{mode: SIMPLE, credentialName: frontend-credential, minProtocolVersion: TLSV1_4}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.minProtocolVersion"),
            &["unknown variant `TLSV1_4`"],
        ),
        case(
            "gw-unknown-cipher",
            gw_tls(
                "{mode: SIMPLE, credentialName: frontend-credential, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, DES-CBC3-SHA]}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.cipherSuites[1]"),
            &[
                "unsupported cipher suite \"DES-CBC3-SHA\"",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
            ],
        ),
        case(
            "gw-bad-verify-hash",
            gw_tls(
                "{mode: MUTUAL, credentialName: frontend-credential, verifyCertificateHash: [abc]}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls.verifyCertificateHash[0]"),
            &["SHA-256"],
        ),
        case(
            "gw-port-out-of-range",
            gw_server(
                "port: {number: 70000, name: http, protocol: HTTP}\nhosts: [frontend.foocorp.com]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].port.number"),
            &["70000 is not a port number"],
        ),
        case(
            "gw-unknown-protocol",
            gw_server(
                "port: {number: 80, name: http, protocol: QUIC}\nhosts: [frontend.foocorp.com]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].port.protocol"),
            &["unknown protocol \"QUIC\""],
        ),
        case(
            "gw-missing-port-name",
            gw_server("port: {number: 80, protocol: HTTP}\nhosts: [frontend.foocorp.com]"),
            1,
            gw_obj,
            Some("spec.servers[0].port.name"),
            &["port name is required"],
        ),
        case(
            "gw-missing-port-number",
            gw_server("port: {name: http, protocol: HTTP}\nhosts: [frontend.foocorp.com]"),
            1,
            gw_obj,
            Some("spec.servers[0].port.number"),
            &["required"],
        ),
        case(
            "gw-target-port",
            gw_server(
                "port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\nhosts: [frontend.foocorp.com]",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].port.targetPort"),
            &["targetPort has no effect on a Gateway"],
        ),
        case(
            "gw-http-with-tls-mode",
            gw_server(
                "port: {number: 80, name: http, protocol: HTTP}\nhosts: [frontend.foocorp.com]\ntls: {mode: SIMPLE, credentialName: frontend-credential}",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].tls"),
            &["an HTTP server takes only tls.httpsRedirect"],
        ),
        case(
            "gw-bad-bind",
            gw_server(
                "port: {number: 80, name: http, protocol: HTTP}\nhosts: [frontend.foocorp.com]\nbind: localhost",
            ),
            1,
            gw_obj,
            Some("spec.servers[0].bind"),
            &["not an IP address"],
        ),
        // VirtualService rules.
        case(
            "vs-no-hosts",
            vs(&format!(
                "gateways: [foocorp-gateway]\nhttp:\n- {}",
                ROUTE.replace('\n', "\n  ")
            )),
            1,
            vs_obj,
            Some("spec.hosts"),
            &["a VirtualService needs at least one host"],
        ),
        case(
            "vs-no-routes",
            vs("hosts: [frontend.foocorp.com]\ngateways: [foocorp-gateway]"),
            1,
            vs_obj,
            Some("spec"),
            &["needs http, tls or tcp routes"],
        ),
        case(
            "vs-invalid-host",
            vs(&format!(
                "hosts: [\"frontend.*.com\"]\nhttp:\n- {}",
                ROUTE.replace('\n', "\n  ")
            )),
            1,
            vs_obj,
            Some("spec.hosts[0]"),
            &["wildcard"],
        ),
        case(
            "vs-overlapping-hosts",
            vs(&format!(
                "hosts: [\"*.foocorp.com\", frontend.foocorp.com]\nhttp:\n- {}",
                ROUTE.replace('\n', "\n  ")
            )),
            1,
            vs_obj,
            Some("spec.hosts[1]"),
            &["overlaps spec.hosts[0]"],
        ),
        case(
            "vs-negative-weight",
            vs_http(
                "route:\n- destination: {host: a.ux.svc.cluster.local}\n  weight: 110\n- destination: {host: b.ux.svc.cluster.local}\n  weight: -10",
            ),
            1,
            vs_obj,
            Some("spec.http[0].route[1].weight"),
            &["weight -10 is negative"],
        ),
        case(
            "vs-zero-weights",
            vs_http(
                "route:\n- destination: {host: a.ux.svc.cluster.local}\n  weight: 0\n- destination: {host: b.ux.svc.cluster.local}\n  weight: 0",
            ),
            1,
            vs_obj,
            Some("spec.http[0].route"),
            &["add up to 0"],
        ),
        case(
            "vs-redirect-with-route",
            vs_http(&format!("redirect: {{uri: /new}}\n{ROUTE}")),
            1,
            vs_obj,
            Some("spec.http[0]"),
            &["route, redirect and directResponse exclude each other"],
        ),
        case(
            "vs-no-action",
            vs_http("match:\n- uri: {prefix: /}"),
            1,
            vs_obj,
            Some("spec.http[0]"),
            &["needs route, redirect or directResponse"],
        ),
        case(
            "vs-empty-redirect",
            vs_http("redirect: {redirectCode: 301}"),
            1,
            vs_obj,
            Some("spec.http[0].redirect"),
            &["must set uri, authority, scheme, port or derivePort"],
        ),
        case(
            "vs-redirect-code",
            vs_http("redirect: {uri: /new, redirectCode: 200}"),
            1,
            vs_obj,
            Some("spec.http[0].redirect.redirectCode"),
            &["200 is not a redirect code"],
        ),
        case(
            "vs-redirect-scheme",
            vs_http("redirect: {scheme: ftp}"),
            1,
            vs_obj,
            Some("spec.http[0].redirect.scheme"),
            &["must be http or https"],
        ),
        case(
            "vs-redirect-with-rewrite",
            vs_http("redirect: {uri: /new}\nrewrite: {uri: /x}"),
            1,
            vs_obj,
            Some("spec.http[0].rewrite"),
            &["rewrite is not allowed with redirect"],
        ),
        case(
            "vs-empty-rewrite",
            vs_http(&format!("rewrite: {{}}\n{ROUTE}")),
            1,
            vs_obj,
            Some("spec.http[0].rewrite"),
            &["must set uri, authority or uriRegexRewrite"],
        ),
        case(
            "vs-bad-regex",
            vs_http(&format!("match:\n- uri: {{regex: \"/api/(v1\"}}\n{ROUTE}")),
            1,
            vs_obj,
            Some("spec.http[0].match[0].uri"),
            &["invalid regex"],
        ),
        case(
            "vs-bad-header-regex",
            vs_http(&format!(
                "match:\n- headers:\n    x-user: {{regex: \"[a-\"}}\n{ROUTE}"
            )),
            1,
            vs_obj,
            Some("spec.http[0].match[0].headers.x-user"),
            &["invalid regex"],
        ),
        case(
            "vs-empty-header-prefix",
            vs_http(&format!(
                "match:\n- headers:\n    x-user: {{prefix: \"\"}}\n{ROUTE}"
            )),
            1,
            vs_obj,
            Some("spec.http[0].match[0].headers.x-user"),
            &["a prefix match cannot be empty"],
        ),
        case(
            "vs-bad-timeout",
            vs_http(&format!("{ROUTE}\ntimeout: 5 seconds")),
            1,
            vs_obj,
            Some("spec.http[0].timeout"),
            &["\"5 seconds\" is not a duration"],
        ),
        case(
            "vs-zero-timeout",
            vs_http(&format!("{ROUTE}\ntimeout: 0s")),
            1,
            vs_obj,
            Some("spec.http[0].timeout"),
            &["at least 1ms"],
        ),
        case(
            "vs-bad-per-try-timeout",
            vs_http(&format!(
                "{ROUTE}\nretries: {{attempts: 3, perTryTimeout: soon}}"
            )),
            1,
            vs_obj,
            Some("spec.http[0].retries.perTryTimeout"),
            &["\"soon\" is not a duration"],
        ),
        case(
            "vs-bad-retry-on",
            vs_http(&format!(
                "{ROUTE}\nretries: {{attempts: 3, retryOn: \"5xx,sometimes\"}}"
            )),
            1,
            vs_obj,
            Some("spec.http[0].retries.retryOn"),
            &["\"sometimes\" is not a retry policy"],
        ),
        case(
            "vs-negative-attempts",
            vs_http(&format!("{ROUTE}\nretries: {{attempts: -1}}")),
            1,
            vs_obj,
            Some("spec.http[0].retries.attempts"),
            &["attempts is negative"],
        ),
        case(
            "vs-mirror-percentage",
            vs_http(&format!(
                "{ROUTE}\nmirror: {{host: shadow.ux.svc.cluster.local}}\nmirrorPercentage: {{value: 150}}"
            )),
            1,
            vs_obj,
            Some("spec.http[0].mirrorPercentage.value"),
            &["150 is not between 0 and 100"],
        ),
        case(
            "vs-fault-empty",
            vs_http(&format!("{ROUTE}\nfault: {{}}")),
            1,
            vs_obj,
            Some("spec.http[0].fault"),
            &["a fault needs abort, delay or both"],
        ),
        case(
            "vs-fault-status",
            vs_http(&format!(
                "{ROUTE}\nfault: {{abort: {{httpStatus: 99, percentage: {{value: 10}}}}}}"
            )),
            1,
            vs_obj,
            Some("spec.http[0].fault.abort.httpStatus"),
            &["99 is not an HTTP status"],
        ),
        case(
            "vs-destination-wildcard",
            vs_http("route:\n- destination: {host: \"*\"}"),
            1,
            vs_obj,
            Some("spec.http[0].route[0].destination.host"),
            &["not a destination host"],
        ),
        case(
            "vs-destination-no-host",
            vs_http("route:\n- destination: {port: {number: 80}}"),
            1,
            vs_obj,
            Some("spec.http[0].route[0].destination.host"),
            &["destination host is required"],
        ),
        case(
            "vs-bad-subset",
            vs_http("route:\n- destination: {host: frontend.ux.svc.cluster.local, subset: V1.0}"),
            1,
            vs_obj,
            Some("spec.http[0].route[0].destination.subset"),
            &["not a subset name"],
        ),
        case(
            "vs-remove-host-header",
            vs_http(&format!(
                "{ROUTE}\nheaders:\n  response:\n    remove: [Host]"
            )),
            1,
            vs_obj,
            Some("spec.http[0].headers.response.remove.Host"),
            &["Host header cannot be changed"],
        ),
        case(
            "vs-bad-gateway-ref",
            vs(&format!(
                "hosts: [frontend.foocorp.com]\ngateways: [Istio_System/foocorp-gateway]\nhttp:\n- {}",
                ROUTE.replace('\n', "\n  ")
            )),
            1,
            vs_obj,
            Some("spec.gateways[0]"),
            &["\"Istio_System\" is not a namespace"],
        ),
        case(
            "vs-cors-method",
            vs_http(&format!(
                "{ROUTE}\ncorsPolicy: {{allowMethods: [GET, FETCH]}}"
            )),
            1,
            vs_obj,
            Some("spec.http[0].corsPolicy.allowMethods[1]"),
            &["\"FETCH\" is not an HTTP method"],
        ),
        case(
            "vs-tls-sni-not-covered",
            vs(
                "hosts: [frontend.foocorp.com]\ngateways: [foocorp-gateway]\ntls:\n- match:\n  - sniHosts: [inventory.foocorp.com]\n  route:\n  - destination: {host: inventory.corp-services.svc.cluster.local}",
            ),
            1,
            vs_obj,
            Some("spec.tls[0].match[0].sniHosts[0]"),
            &["SNI host \"inventory.foocorp.com\" is not covered"],
        ),
        case(
            "vs-tls-without-sni",
            vs(
                "hosts: [frontend.foocorp.com]\ntls:\n- match:\n  - port: 443\n  route:\n  - destination: {host: frontend.ux.svc.cluster.local}",
            ),
            1,
            vs_obj,
            Some("spec.tls[0].match[0].sniHosts"),
            &["sniHosts is required"],
        ),
        case(
            "vs-tcp-without-route",
            vs("hosts: [frontend.foocorp.com]\ntcp:\n- match:\n  - port: 5432"),
            1,
            vs_obj,
            Some("spec.tcp[0].route"),
            &["at least one destination"],
        ),
        // ServiceEntry rules.
        case(
            "se-static-without-endpoints",
            se(
                "hosts: [db.example.com]\nports:\n- {number: 5432, name: tcp-db, protocol: TCP}\nresolution: STATIC",
            ),
            1,
            se_obj,
            Some("spec.endpoints"),
            &["resolution STATIC needs at least one endpoint"],
        ),
        case(
            "se-static-bad-address",
            se(
                "hosts: [db.example.com]\nports:\n- {number: 5432, name: tcp-db, protocol: TCP}\nresolution: STATIC\nendpoints:\n- address: 10.0.0.1\n- address: db-1.example.com",
            ),
            1,
            se_obj,
            Some("spec.endpoints[1].address"),
            &["\"db-1.example.com\" is not an IP address (resolution STATIC)"],
        ),
        case(
            "se-endpoint-port-undeclared",
            se(
                "hosts: [db.example.com]\nports:\n- {number: 5432, name: tcp-db, protocol: TCP}\nresolution: STATIC\nendpoints:\n- address: 10.0.0.1\n  ports: {tcp-dbx: 15432}",
            ),
            1,
            se_obj,
            Some("spec.endpoints[0].ports.tcp-dbx"),
            &["\"tcp-dbx\" is not one of the ServiceEntry's port names"],
        ),
        case(
            "se-none-with-endpoints",
            se(
                "hosts: [db.example.com]\nports:\n- {number: 5432, name: tcp-db, protocol: TCP}\nresolution: NONE\nendpoints:\n- address: 10.0.0.1",
            ),
            1,
            se_obj,
            Some("spec.endpoints"),
            &["not allowed with resolution NONE"],
        ),
        case(
            "se-no-hosts",
            se("ports:\n- {number: 443, name: https, protocol: TLS}\nresolution: DNS"),
            1,
            se_obj,
            Some("spec.hosts"),
            &["at least one host"],
        ),
        case(
            "se-star-host",
            se(
                "hosts: [\"*\"]\nports:\n- {number: 443, name: https, protocol: TLS}\nresolution: NONE",
            ),
            1,
            se_obj,
            Some("spec.hosts[0]"),
            &["\"*\" is not allowed"],
        ),
        case(
            "se-bad-address",
            se(
                "hosts: [db.example.com]\naddresses: [10.0.0.300]\nports:\n- {number: 5432, name: tcp-db, protocol: TCP}\nresolution: NONE",
            ),
            1,
            se_obj,
            Some("spec.addresses[0]"),
            &["\"10.0.0.300\" is not an IP address or CIDR block"],
        ),
        case(
            "se-duplicate-port-number",
            se(
                "hosts: [api.example.com]\nports:\n- {number: 443, name: https, protocol: TLS}\n- {number: 443, name: https-2, protocol: HTTPS}\nresolution: DNS",
            ),
            1,
            se_obj,
            Some("spec.ports[1].number"),
            &["port 443 is used twice"],
        ),
        case(
            "se-dns-round-robin-two-endpoints",
            se(
                "hosts: [api.example.com]\nports:\n- {number: 443, name: https, protocol: TLS}\nresolution: DNS_ROUND_ROBIN\nendpoints:\n- address: a.example.com\n- address: b.example.com",
            ),
            1,
            se_obj,
            Some("spec.endpoints"),
            &["at most one endpoint"],
        ),
        case(
            "se-dns-wildcard-without-endpoints",
            se(
                "hosts: [\"*.example.com\"]\nports:\n- {number: 443, name: https, protocol: TLS}\nresolution: DNS",
            ),
            1,
            se_obj,
            Some("spec.hosts[0]"),
            &["needs hosts without wildcards"],
        ),
        // Secrets: structure, then contents.
        case(
            "secret-bad-base64",
            format!(
                "apiVersion: v1\ndata:\n  cert: {}\n  key: not*base64!\nkind: Secret\nmetadata:\n  name: bad-credential\n  namespace: istio-system\n",
                b64(cert)
            ),
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["invalid base64: '*' at offset 3 is not a base64 character"],
        ),
        case(
            "secret-unsupported-type",
            format!(
                "{}type: kubernetes.io/dockerconfigjson\n",
                secret(&[("cert", cert), ("key", key)])
            ),
            1,
            Some(SECRET_OBJ),
            Some("type"),
            &[
                "unsupported Secret type \"kubernetes.io/dockerconfigjson\"",
                "Opaque",
            ],
        ),
        case(
            "secret-bad-key-name",
            secret(&[("a/b", b"x")]),
            1,
            Some(SECRET_OBJ),
            Some("data.a/b"),
            &["not a valid key name"],
        ),
        case(
            "secret-cert-not-pem",
            secret(&[("cert", b"this is not a certificate"), ("key", key)]),
            1,
            Some(SECRET_OBJ),
            Some("data.cert"),
            &["no PEM certificate found"],
        ),
        case(
            "secret-key-not-pem",
            secret(&[("cert", cert), ("key", b"hunter2")]),
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["no PEM private key found"],
        ),
        case(
            "secret-cert-garbage-pem",
            secret(&[
                (
                    "cert",
                    b"-----BEGIN CERTIFICATE-----\nTUlJQmdvb2Q=\n-----END CERTIFICATE-----\n",
                ),
                ("key", key),
            ]),
            1,
            Some(SECRET_OBJ),
            Some("data.cert"),
            &["not a valid X.509 certificate"],
        ),
        case(
            "secret-key-mismatch",
            secret(&[("cert", cert), ("key", other.key.as_bytes())]),
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["the private key does not match the certificate in cert"],
        ),
        case(
            "secret-tls-key-mismatch",
            format!(
                "{}type: kubernetes.io/tls\n",
                secret(&[("tls.crt", cert), ("tls.key", other.key.as_bytes())])
            ),
            1,
            Some(SECRET_OBJ),
            Some("data.tls.key"),
            &["does not match the certificate in tls.crt"],
        ),
        case(
            "secret-expired",
            secret(&[
                ("cert", expired.cert.as_bytes()),
                ("key", expired.key.as_bytes()),
            ]),
            1,
            Some(SECRET_OBJ),
            Some("data.cert"),
            &["certificate expired at "],
        ),
        case(
            "secret-not-yet-valid",
            secret(&[
                ("cert", future.cert.as_bytes()),
                ("key", future.key.as_bytes()),
            ]),
            1,
            Some(SECRET_OBJ),
            Some("data.cert"),
            &["not valid before"],
        ),
        case(
            "secret-encrypted-pkcs8-key",
            secret(&[("cert", cert), ("key", enc_pkcs8.as_bytes())]),
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["the private key is encrypted"],
        ),
        case(
            "secret-encrypted-traditional-key",
            secret(&[("cert", cert), ("key", enc_trad.as_bytes())]),
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["the private key is encrypted"],
        ),
        case(
            "secret-cert-without-key",
            secret(&[("cert", cert)]),
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["cert is present but key is missing"],
        ),
        case(
            "secret-bad-cacert",
            secret(&[("cert", cert), ("key", key), ("cacert", b"not a CA")]),
            1,
            Some(SECRET_OBJ),
            Some("data.cacert"),
            &["no PEM certificate found"],
        ),
        case(
            "secret-crl-without-ca",
            secret(&[("cert", cert), ("key", key), ("ca.crl", b"x")]),
            1,
            Some(SECRET_OBJ),
            Some("data.ca.crl"),
            &["a CRL needs a CA"],
        ),
        case(
            "secret-string-data-mismatch",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad-credential\n  namespace: istio-system\nstringData:\n  cert: |\n{}  key: |\n{}",
                indent(&good.cert),
                indent(&other.key)
            ),
            1,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["does not match"],
        ),
        // Several documents and files: all or nothing.
        case(
            "multi-doc-second-bad",
            format!(
                "{valid_gw}---\n{}",
                vs_http(&format!("{ROUTE}\ntimeout: forever"))
            ),
            2,
            vs_obj,
            Some("spec.http[0].timeout"),
            &["\"forever\" is not a duration"],
        ),
        case(
            "multi-doc-second-bad-secret",
            format!(
                "{valid_gw}---\n{}",
                secret(&[("cert", cert), ("key", other.key.as_bytes())])
            ),
            2,
            Some(SECRET_OBJ),
            Some("data.key"),
            &["does not match"],
        ),
        case(
            "same-object-twice",
            format!("{valid_gw}---\n{valid_gw}"),
            2,
            Some("Gateway default/new-gw"),
            Some("metadata.name"),
            &["also defined in cases/same-object-twice.yaml: document 1"],
        ),
    ];

    // `-n other` with an object that names another namespace.
    let mut c = case(
        "namespace-mismatch",
        GATEWAY,
        1,
        Some("Gateway default/foocorp-gateway"),
        Some("metadata.namespace"),
        &["\"default\" does not match the namespace \"other\" given with -n"],
    );
    c.args = [
        "-n",
        "other",
        "apply",
        "-f",
        "cases/namespace-mismatch.yaml",
    ]
    .map(String::from)
    .to_vec();
    v.push(c);

    // A directory with one bad file among good ones: nothing is applied.
    let mut c = case(
        "dir-one-bad",
        "",
        1,
        vs_obj,
        Some("spec.http[0].route[0].weight"),
        &["weight -1 is negative"],
    );
    c.files = vec![
        ("cases/dir/a-gateway.yaml".into(), valid_gw.clone().into_bytes()),
        (
            "cases/dir/b-secret.json".into(),
            br#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "literal", "namespace": "default"}, "stringData": {"a": "b"}}"#.to_vec(),
        ),
        (
            "cases/dir/c-vs.yml".into(),
            vs_http("route:\n- destination: {host: frontend.ux.svc.cluster.local}\n  weight: -1")
                .into_bytes(),
        ),
        ("cases/dir/ignored.txt".into(), b"not yaml at all: [".to_vec()),
    ];
    c.args = ["apply", "-f", "cases/dir"].map(String::from).to_vec();
    c.prefix = "error: cases/dir/c-vs.yml: document 1 (VirtualService default/vs): spec.http[0].route[0].weight: ".into();
    v.push(c);

    // Bad input on stdin is named `<stdin>`.
    let mut c = case(
        "stdin-bad",
        "",
        1,
        gw_obj,
        Some("spec.servers"),
        &["a Gateway needs at least one server"],
    );
    c.files.clear();
    c.args = ["apply", "-f", "-"].map(String::from).to_vec();
    c.stdin =
        "apiVersion: networking.istio.io/v1beta1\nkind: Gateway\nmetadata: {name: gw}\nspec: {}\n"
            .into();
    c.prefix = "error: <stdin>: document 1 (Gateway default/gw): spec.servers: ".into();
    v.push(c);

    // A JSON manifest with a syntax error.
    let mut c = case("json-syntax", "", 1, None, None, &["invalid YAML"]);
    c.files = vec![(
        "cases/json-syntax.json".into(),
        br#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}"#.to_vec(),
    )];
    c.args = ["apply", "-f", "cases/json-syntax.json"]
        .map(String::from)
        .to_vec();
    c.prefix = "error: cases/json-syntax.json: document 1: ".into();
    v.push(c);

    // A JSON manifest with a wrong type.
    let mut c = case(
        "json-type",
        "",
        1,
        None,
        None,
        &["invalid value: integer `-1`, expected a non-negative integer"],
    );
    c.files = vec![(
        "cases/json-type.json".into(),
        br#"{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "se"}, "spec": {"hosts": ["a.example.com"], "ports": [{"number": -1, "name": "x"}]}}"#.to_vec(),
    )];
    c.args = ["apply", "-f", "cases/json-type.json"]
        .map(String::from)
        .to_vec();
    c.prefix =
        "error: cases/json-type.json: document 1 (ServiceEntry default/se): spec.ports[0].number: "
            .into();
    v.push(c);

    // Files that hold no object, or are not there.
    let mut c = case("empty-file", "# nothing here\n", 1, None, None, &[]);
    c.prefix = "error: cases/empty-file.yaml: no objects in this file".into();
    v.push(c);
    let mut c = case("missing-file", "", 1, None, None, &["cannot read"]);
    c.files.clear();
    c.args = ["apply", "-f", "cases/does-not-exist.yaml"]
        .map(String::from)
        .to_vec();
    c.prefix = "error: cases/does-not-exist.yaml: ".into();
    v.push(c);
    let mut c = case("not-utf8", "", 1, None, None, &["not UTF-8"]);
    c.files = vec![(
        "cases/not-utf8.yaml".into(),
        b"apiVersion: v1\nkind: \xff\n".to_vec(),
    )];
    c.args = ["apply", "-f", "cases/not-utf8.yaml"]
        .map(String::from)
        .to_vec();
    c.prefix = "error: cases/not-utf8.yaml: ".into();
    v.push(c);
    v.extend(destination_rule_cases());
    v
}

/// A DestinationRule for `host: shop` with `policy` (YAML under `spec:`).
fn dr(policy: &str) -> String {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: dr\nspec:\n  host: shop\n",
    );
    for line in policy.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Unknown enum values and what gatehouse cannot honour, refused at
/// `apply` with the field named (issue #13: "fail closed").
fn destination_rule_cases() -> Vec<Case> {
    let obj = Some("DestinationRule default/dr");
    vec![
        case(
            "dr-istio-mutual",
            dr("trafficPolicy:\n  tls: {mode: ISTIO_MUTUAL}"),
            1,
            obj,
            Some("spec.trafficPolicy.tls.mode"),
            &["ISTIO_MUTUAL needs Istio's mesh certificates"],
        ),
        case(
            "dr-unknown-tls-mode",
            dr("trafficPolicy:\n  tls: {mode: STRICT}"),
            1,
            obj,
            Some("spec.trafficPolicy.tls.mode"),
            &["unknown TLS mode \"STRICT\""],
        ),
        case(
            "dr-mutual-without-certificate",
            dr("trafficPolicy:\n  tls: {mode: MUTUAL}"),
            1,
            obj,
            Some("spec.trafficPolicy.tls"),
            &["mode MUTUAL needs credentialName"],
        ),
        case(
            "dr-unknown-load-balancer",
            dr("trafficPolicy:\n  loadBalancer: {simple: FASTEST}"),
            1,
            obj,
            Some("spec.trafficPolicy.loadBalancer.simple"),
            &["unknown load balancer \"FASTEST\""],
        ),
        case(
            "dr-unknown-h2-upgrade",
            dr("trafficPolicy:\n  connectionPool: {http: {h2UpgradePolicy: ALWAYS}}"),
            1,
            obj,
            Some("spec.trafficPolicy.connectionPool.http.h2UpgradePolicy"),
            &["unknown h2UpgradePolicy \"ALWAYS\""],
        ),
        case(
            "dr-subset-twice",
            dr("subsets:\n- {name: v1, labels: {version: v1}}\n- {name: v1}"),
            1,
            obj,
            Some("spec.subsets[1].name"),
            &["subset \"v1\" is defined twice"],
        ),
        case(
            "dr-port-level-twice",
            dr(
                "trafficPolicy:\n  portLevelSettings:\n  - {port: {number: 80}}\n  - {port: {number: 80}}",
            ),
            1,
            obj,
            Some("spec.trafficPolicy.portLevelSettings[1].port.number"),
            &["port 80 has two entries"],
        ),
        case(
            "dr-unknown-field",
            dr("trafficPolicy:\n  loadBalancr: {simple: RANDOM}"),
            1,
            obj,
            Some("spec.trafficPolicy.loadBalancr"),
            &["unknown field `loadBalancr`"],
        ),
    ]
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

#[test]
fn malformed_inputs_are_refused_with_one_line_and_change_nothing() {
    let env = Site::new();
    baseline(&env);
    let before = env.snapshot();
    assert!(
        before.keys().any(|p| p.starts_with("objects")),
        "the baseline stored nothing"
    );
    let cases = cases(&env);
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for c in &cases {
        assert!(names.insert(c.name), "case name {} used twice", c.name);
        for (path, bytes) in &c.files {
            env.write(path, bytes);
        }
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = env.cli_stdin(&args, c.stdin.as_bytes());
        // Shown with `--nocapture`, to read every message at once.
        println!("[{}] {}", c.name, out.stderr.trim_end());
        let result = std::panic::catch_unwind(|| {
            let line = out.one_error().to_owned();
            assert!(
                line.starts_with(&c.prefix),
                "expected a line starting with\n  {}\ngot\n  {line}",
                c.prefix
            );
            let rest = &line[c.prefix.len()..];
            for part in &c.contains {
                assert!(rest.contains(part), "missing {part:?} in\n  {line}");
            }
            assert_eq!(out.stdout, "", "nothing may be printed as applied");
        });
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("[{}] {msg}", c.name));
        }
        if env.snapshot() != before {
            failures.push(format!("[{}] the store changed", c.name));
            // Later cases would all fail too: stop here.
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn validate_false_stores_a_secret_whose_key_does_not_match() {
    let env = Site::new();
    baseline(&env);
    let good = issue("frontend.foocorp.com", None);
    let other = issue("frontend.foocorp.com", None);
    env.write(
        "mismatch.yaml",
        kubectl_secret_yaml(
            "frontend-credential",
            "istio-system",
            &[
                ("cert", good.cert.as_bytes()),
                ("key", other.key.as_bytes()),
            ],
        ),
    );
    let before = env.snapshot();
    env.cli(&["apply", "-f", "mismatch.yaml"]).one_error();
    assert_eq!(before, env.snapshot());

    // kubectl's flag: the contents are not checked and the object is stored
    // as given, as another writer may store it.
    let out = env.cli(&["apply", "--validate=false", "-f", "mismatch.yaml"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/frontend-credential configured"]);
    let out = env.cli(&[
        "get",
        "secret",
        "frontend-credential",
        "-n",
        "istio-system",
        "-o",
        "json",
    ]);
    out.ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["data"]["key"], b64(&other.key));
    // `get` still works on it, and the table shows no key material.
    let out = env.cli(&["get", "secret", "-n", "istio-system"]);
    out.ok();
    assert!(out.stdout.contains("frontend-credential"));
    assert!(!out.stdout.contains(&b64(&other.key)[..40]));

    // --validate=false skips content checks only: structure is still checked.
    env.write(
        "bad-base64.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {key: \"!!\"}\n",
    );
    let before = env.snapshot();
    let line = env
        .cli(&["apply", "--validate=false", "-f", "bad-base64.yaml"])
        .one_error()
        .to_owned();
    assert!(
        line.starts_with(
            "error: bad-base64.yaml: document 1 (Secret default/s): data.key: invalid base64"
        ),
        "{line}"
    );
    let line = env
        .cli(&["apply", "--validate=false", "-f", "-"])
        .one_error()
        .to_owned();
    assert!(line.contains("<stdin>: no objects"), "{line}");
    assert_eq!(before, env.snapshot());
}

#[test]
fn create_secret_with_bad_files_names_the_file() {
    let env = Site::new();
    baseline(&env);
    let good = issue("frontend.foocorp.com", None);
    let other = issue("frontend.foocorp.com", None);
    env.write("certs/cert.pem", &good.cert);
    env.write("certs/other.key.pem", &other.key);
    env.write("certs/ca.pem", &good.ca);
    let (enc, _) = encrypted_keys(&env, &good.key);
    env.write("certs/encrypted.key.pem", &enc);
    let before = env.snapshot();

    let run = |args: &[&str]| {
        let out = env.cli(args);
        let line = out.one_error().to_owned();
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(before, env.snapshot(), "{args:?} changed the store");
        line
    };

    let line = run(&[
        "create",
        "-n",
        "istio-system",
        "secret",
        "generic",
        "frontend-credential-2",
        "--from-file=key=certs/other.key.pem",
        "--from-file=cert=certs/cert.pem",
        "--from-file=cacert=certs/ca.pem",
    ]);
    assert!(
        line.starts_with("error: certs/other.key.pem"),
        "the message should start with the key file: {line}"
    );
    assert!(
        line.contains("Secret istio-system/frontend-credential-2"),
        "{line}"
    );
    assert!(line.contains("data.key"), "{line}");
    assert!(line.contains("does not match the certificate"), "{line}");

    let line = run(&[
        "create",
        "secret",
        "tls",
        "t",
        "--cert=certs/cert.pem",
        "--key=certs/encrypted.key.pem",
    ]);
    assert!(line.starts_with("error: certs/encrypted.key.pem"), "{line}");
    assert!(line.contains("encrypted"), "{line}");

    let line = run(&[
        "create",
        "secret",
        "generic",
        "x",
        "--from-file=cert=certs/missing.pem",
    ]);
    assert!(line.contains("certs/missing.pem"), "{line}");
    assert!(line.contains("cannot read"), "{line}");

    let line = run(&[
        "create",
        "secret",
        "generic",
        "Bad_Name",
        "--from-literal=a=b",
    ]);
    assert!(line.contains("metadata.name"), "{line}");

    let line = run(&["create", "secret", "generic", "x", "--from-literal=novalue"]);
    assert!(line.contains("--from-literal=novalue"), "{line}");

    // The dry run checks too, and prints nothing to apply.
    let line = run(&[
        "create",
        "secret",
        "generic",
        "y",
        "--from-file=key=certs/other.key.pem",
        "--from-file=cert=certs/cert.pem",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    assert!(line.starts_with("error: certs/other.key.pem"), "{line}");
}

#[test]
fn secret_updates_kubernetes_refuses_are_refused() {
    let env = Site::new();
    baseline(&env);
    let literal = |extra: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pinned\n  namespace: istio-system\n{extra}data:\n  team: {}\n",
            b64(value)
        )
    };
    env.write("pinned.yaml", literal("immutable: true\n", "ux"));
    env.cli(&["apply", "-f", "pinned.yaml"]).ok();
    let out = env.cli(&["apply", "-f", "pinned.yaml"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/pinned unchanged"]);

    let before = env.snapshot();
    env.write("pinned.yaml", literal("immutable: true\n", "corp-services"));
    let line = env
        .cli(&["apply", "-f", "pinned.yaml"])
        .one_error()
        .to_owned();
    assert_eq!(
        line,
        "error: secret \"pinned\" in namespace istio-system: data: the Secret is immutable; delete it and create it again to change it"
    );
    env.write("pinned.yaml", literal("", "ux"));
    let line = env
        .cli(&["apply", "-f", "pinned.yaml"])
        .one_error()
        .to_owned();
    assert!(line.contains("the Secret is immutable"), "{line}");
    env.write(
        "pinned.yaml",
        literal("type: kubernetes.io/tls\nimmutable: true\n", "ux"),
    );
    let line = env
        .cli(&["apply", "-f", "pinned.yaml"])
        .one_error()
        .to_owned();
    assert!(
        line.starts_with("error: secret \"pinned\" in namespace istio-system: type: the type of a Secret cannot change"),
        "{line}"
    );
    assert_eq!(before, env.snapshot());

    // Deleting and creating again is the way, as in Kubernetes.
    env.cli(&["delete", "secret", "pinned", "-n", "istio-system"])
        .ok();
    env.write("pinned.yaml", literal("immutable: true\n", "corp-services"));
    let out = env.cli(&["apply", "-f", "pinned.yaml"]);
    out.ok();
    assert_eq!(out.lines(), ["secret/pinned created"]);
}
