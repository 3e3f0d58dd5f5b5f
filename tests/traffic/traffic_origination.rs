//! DestinationRule `trafficPolicy.tls`: TLS and mutual TLS from the
//! gateway to an HTTPS backend ([`TlsBackend`], rustls, which answers with
//! the HTTP version, SNI and client certificate it saw). Through the
//! walkthrough with curl: `/tls` on frontend goes to the backend's host.
//! Each failure (an unusable CA file, an absent Secret, a certificate
//! that is untrusted or does not carry `subjectAltNames`) is a 503 with
//! `UF` and a WARN line naming the rule, and the backend sees no request.

use serde_json::Value;

use crate::support::tls_backend::{TlsBackend, TlsBackendSpec};
use crate::support::{
    self, CurlOut, FRONTEND, Gateway, Walkthrough, frontend_vs_with, issue, kubectl_secret_yaml,
};

const HOST: &str = "backend.example.com";
const RULE: &str = "default/backend-tls";

/// The backend's certificate (for `HOST` and `alias.example.com`) and a
/// CA for client certificates with two of them.
struct Certs {
    server: support::Cred,
    client_ca: gatehouse::pki::Ca,
}

impl Certs {
    fn new() -> Certs {
        use gatehouse::pki::{Ca, KeyType, LeafSpec};
        Certs {
            server: issue(HOST, Some(LeafSpec::server(HOST).dns("alias.example.com"))),
            client_ca: Ca::new_root("client root", KeyType::EcdsaP256).unwrap(),
        }
    }

    /// A client certificate `cn`: `(cert PEM, key PEM)`.
    fn client(&self, cn: &str) -> (String, String) {
        let leaf = self
            .client_ca
            .issue(&gatehouse::pki::LeafSpec::client(cn))
            .unwrap();
        (leaf.fullchain_pem(), leaf.key_pem.clone())
    }

    fn backend(&self, mutual: bool, h2: bool) -> TlsBackend {
        let ca = self.client_ca.cert_pem().to_owned();
        TlsBackend::start(&TlsBackendSpec {
            cert: &self.server.cert,
            key: &self.server.key,
            client_ca: mutual.then_some(ca.as_str()),
            h2,
        })
    }
}

/// The walkthrough with `/tls` routed to `host:443` (a ServiceEntry to
/// the backend).
fn world(backend: &TlsBackend, host: &str) -> Walkthrough {
    let w = Walkthrough::new();
    let route = format!(
        "  - match:\n    - uri:\n        prefix: /tls\n    route:\n    - destination:\n        host: {host}\n        port:\n          number: 443\n"
    );
    w.site.apply("tls/vs.yaml", &frontend_vs_with(&route));
    let se = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tls-backend
  namespace: default
spec:
  hosts:
  - {host}
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      https: {}
",
        backend.port()
    );
    w.site.apply("tls/se.yaml", &se);
    w
}

/// Applies `yaml` (a DestinationRule); `apply` must not warn: every
/// field of `tls` is applied.
fn apply_rule(w: &Walkthrough, yaml: &str) {
    let out = w.site.apply("tls/dr.yaml", yaml);
    assert!(!out.stderr.contains("Warning"), "{out:?}");
}

/// A DestinationRule `backend-tls` for `HOST` whose `tls` is `tls` (YAML
/// lines at the indentation of `tls:`'s fields).
fn rule(tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: backend-tls
  namespace: default
spec:
  host: {HOST}
  trafficPolicy:
    tls:
{tls}"
    )
}

fn start(w: &Walkthrough) -> Gateway {
    w.site.start_gateway_with(&[443], &["--log-format", "json"])
}

fn get(w: &Walkthrough, gw: &Gateway) -> CurlOut {
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/tls")
        .run()
}

/// The access line of the `n`th request (from 1) to `/tls`.
fn access(gw: &Gateway, n: usize) -> Value {
    support::poll("access lines", support::START_TIMEOUT, || {
        let lines: Vec<Value> = gw
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "access" && v["fields"]["path"] == "/tls")
            .map(|v| v["fields"].clone())
            .collect();
        lines.get(n - 1).cloned()
    })
}

/// A refused request: 503 with `UF`, a WARN line naming the rule (and
/// saying `reason`), and nothing reached the backend.
#[track_caller]
fn assert_fails_closed(w: &Walkthrough, gw: &Gateway, backend: &TlsBackend, reason: &str) {
    let out = get(w, gw);
    out.assert_status(503);
    assert_eq!(access(gw, 1)["response_flags"], "UF");
    assert_eq!(backend.hits(), 0, "nothing may reach the backend");
    assert_warned(gw, reason);
}

/// A WARN line names the rule and says `reason`.
#[track_caller]
fn assert_warned(gw: &Gateway, reason: &str) {
    let warned = support::try_poll(support::START_TIMEOUT, || {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["level"] == "WARN"
                    && v["fields"]["destination_rule"] == RULE
                    && v["fields"]["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains(reason))
            })
    });
    assert!(
        warned.is_some(),
        "no WARN line naming {RULE} with {reason:?}:\n{}",
        gw.log()
    );
}

fn write_ca(w: &Walkthrough, certs: &Certs) -> String {
    let p = w.site.write("tls/backend-ca.pem", &certs.server.ca);
    p.display().to_string()
}

#[test]
fn simple_with_ca_certificates_verifies_and_sends_the_host_as_sni() {
    let certs = Certs::new();
    let backend = certs.backend(false, false);
    let w = world(&backend, HOST);
    let ca = write_ca(&w, &certs);
    apply_rule(
        &w,
        &rule(&format!("      mode: SIMPLE\n      caCertificates: {ca}\n")),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={HOST} client=-"));
}

#[test]
fn simple_with_credential_name_trusts_the_secrets_ca() {
    let certs = Certs::new();
    let backend = certs.backend(false, false);
    let w = world(&backend, HOST);
    let secret = kubectl_secret_yaml(
        "backend-ca",
        "istio-system",
        &[("ca.crt", certs.server.ca.as_bytes())],
    );
    w.site.apply("tls/secret.yaml", &secret);
    apply_rule(
        &w,
        &rule("      mode: SIMPLE\n      credentialName: backend-ca\n"),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={HOST} client=-"));
    // A CA-only Secret is what SIMPLE needs: nothing about it is refused.
    let log = gw.log();
    assert!(!log.contains("rejected secret backend-ca"), "{log}");
}

/// With retries, a cluster that cannot connect runs them out: 503 with
/// `UF` and `URX`, and still nothing reaches the backend.
#[test]
fn retries_of_a_failing_origination_end_in_urx() {
    let certs = Certs::new();
    let backend = certs.backend(false, false);
    let w = Walkthrough::new();
    let route = format!(
        "  - match:\n    - uri:\n        prefix: /tls\n    retries: {{attempts: 2, retryOn: connect-failure}}\n    route:\n    - destination:\n        host: {HOST}\n        port:\n          number: 443\n"
    );
    w.site.apply("tls/vs.yaml", &frontend_vs_with(&route));
    w.site.apply(
        "tls/se.yaml",
        &support::service_entry("tls-backend", HOST, backend.port())
            .replace("number: 80", "number: 443"),
    );
    apply_rule(
        &w,
        &rule("      mode: SIMPLE\n      caCertificates: /nonexistent/ca.pem\n"),
    );
    let gw = start(&w);
    get(&w, &gw).assert_status(503);
    assert_eq!(access(&gw, 1)["response_flags"], "UF,URX");
    assert_eq!(backend.hits(), 0);
    assert_warned(&gw, "caCertificates");
}

#[test]
fn sni_is_sent_as_set() {
    let certs = Certs::new();
    let backend = certs.backend(false, false);
    let w = world(&backend, HOST);
    let ca = write_ca(&w, &certs);
    apply_rule(
        &w,
        &rule(&format!(
            "      mode: SIMPLE\n      caCertificates: {ca}\n      sni: alias.example.com\n"
        )),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body("version=HTTP/1.1 sni=alias.example.com client=-");
}

#[test]
fn mutual_with_files_presents_the_client_certificate() {
    let certs = Certs::new();
    let backend = certs.backend(true, false);
    let w = world(&backend, HOST);
    let ca = write_ca(&w, &certs);
    let (cert, key) = certs.client("gateway-client");
    let cert = w.site.write("tls/client.pem", cert);
    let key = w.site.write("tls/client.key", key);
    apply_rule(
        &w,
        &rule(&format!(
            "      mode: MUTUAL\n      caCertificates: {ca}\n      clientCertificate: {}\n      privateKey: {}\n",
            cert.display(),
            key.display()
        )),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!(
        "version=HTTP/1.1 sni={HOST} client=gateway-client"
    ));
}

#[test]
fn h2_is_spoken_when_the_backend_picks_it_by_alpn() {
    let certs = Certs::new();
    let backend = certs.backend(true, true);
    let w = world(&backend, HOST);
    let (cert, key) = certs.client("h2-client");
    let secret = kubectl_secret_yaml(
        "backend-client",
        "istio-system",
        &[
            ("tls.crt", cert.as_bytes()),
            ("tls.key", key.as_bytes()),
            ("ca.crt", certs.server.ca.as_bytes()),
        ],
    );
    w.site.apply("tls/secret.yaml", &secret);
    apply_rule(
        &w,
        &rule("      mode: MUTUAL\n      credentialName: backend-client\n"),
    );
    let gw = start(&w);
    for _ in 0..3 {
        get(&w, &gw).assert_body(&format!("version=HTTP/2.0 sni={HOST} client=h2-client"));
    }
}

#[test]
fn subject_alt_names_must_be_carried() {
    let certs = Certs::new();
    let backend = certs.backend(false, false);
    let w = world(&backend, HOST);
    let ca = write_ca(&w, &certs);
    // A SAN the certificate carries: verified by it, not by the SNI name.
    apply_rule(
        &w,
        &rule(&format!(
            "      mode: SIMPLE\n      caCertificates: {ca}\n      sni: not-in-the-cert.example.com\n      subjectAltNames:\n      - alias.example.com\n"
        )),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body("version=HTTP/1.1 sni=not-in-the-cert.example.com client=-");
    let hits = backend.hits();
    drop(gw);
    apply_rule(
        &w,
        &rule(&format!(
            "      mode: SIMPLE\n      caCertificates: {ca}\n      subjectAltNames:\n      - spiffe://cluster.local/ns/default/sa/backend\n"
        )),
    );
    let gw = start(&w);
    let out = get(&w, &gw);
    out.assert_status(503);
    assert_eq!(access(&gw, 1)["response_flags"], "UF");
    assert_eq!(backend.hits(), hits, "nothing may reach the backend");
    assert_warned(&gw, "subjectAltNames");
}

#[test]
fn a_missing_ca_file_fails_closed() {
    let certs = Certs::new();
    let backend = certs.backend(false, false);
    let w = world(&backend, HOST);
    let missing = w.site.path("tls/no-such-ca.pem");
    apply_rule(
        &w,
        &rule(&format!(
            "      mode: SIMPLE\n      caCertificates: {}\n",
            missing.display()
        )),
    );
    let gw = start(&w);
    assert_fails_closed(&w, &gw, &backend, "caCertificates");
}

#[test]
fn an_absent_credential_secret_fails_closed() {
    let certs = Certs::new();
    let backend = certs.backend(true, false);
    let w = world(&backend, HOST);
    apply_rule(
        &w,
        &rule("      mode: MUTUAL\n      credentialName: nobody-made-this\n"),
    );
    let gw = start(&w);
    assert_fails_closed(&w, &gw, &backend, "nobody-made-this not found");
}

#[test]
fn an_invalid_credential_secret_fails_closed() {
    let certs = Certs::new();
    let backend = certs.backend(true, false);
    let w = world(&backend, HOST);
    let bad = kubectl_secret_yaml(
        "backend-client",
        "istio-system",
        &[("tls.crt", b"not a certificate"), ("tls.key", b"nope")],
    );
    w.site.write("tls/bad.yaml", bad);
    w.site
        .cli(&["apply", "--validate=false", "-f", "tls/bad.yaml"])
        .ok();
    apply_rule(
        &w,
        &rule("      mode: MUTUAL\n      credentialName: backend-client\n"),
    );
    let gw = start(&w);
    assert_fails_closed(&w, &gw, &backend, "backend-client was rejected");
}

#[test]
fn an_untrusted_backend_fails_closed_unless_verification_is_skipped() {
    let certs = Certs::new();
    let backend = certs.backend(false, false);
    // No CA given: the system's trust store, which never signed it.
    let w = world(&backend, HOST);
    apply_rule(&w, &rule("      mode: SIMPLE\n"));
    let gw = start(&w);
    assert_fails_closed(&w, &gw, &backend, "certificate");
    drop(gw);
    apply_rule(
        &w,
        &rule("      mode: SIMPLE\n      insecureSkipVerify: true\n"),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={HOST} client=-"));
    let log = gw.log();
    assert!(
        log.lines()
            .any(|l| l.contains("insecureSkipVerify") && l.contains(RULE)),
        "{log}"
    );
}

/// The `credentialName` Secret `backend-client` in the gateway's namespace
/// with client certificate `cn` and the backend's CA.
fn client_secret(certs: &Certs, name: &str, cn: &str) -> String {
    let (cert, key) = certs.client(cn);
    kubectl_secret_yaml(
        name,
        "istio-system",
        &[
            ("tls.crt", cert.as_bytes()),
            ("tls.key", key.as_bytes()),
            ("ca.crt", certs.server.ca.as_bytes()),
        ],
    )
}

#[test]
fn mutual_with_credential_name_rotates_without_a_failed_request() {
    let certs = Certs::new();
    let backend = certs.backend(true, false);
    let w = world(&backend, HOST);
    w.site.apply(
        "tls/secret.yaml",
        &client_secret(&certs, "backend-client", "client-v1"),
    );
    apply_rule(
        &w,
        &rule("      mode: MUTUAL\n      credentialName: backend-client\n"),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={HOST} client=client-v1"));
    // The admin view says what the cluster does.
    let dump = gw.config_dump();
    let cluster = dump["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["host"] == HOST)
        .cloned()
        .unwrap();
    assert_eq!(cluster["tls_mode"], "MUTUAL", "{cluster}");
    assert_eq!(cluster["sni"], HOST, "{cluster}");
    assert_eq!(cluster["credential"], "backend-client", "{cluster}");
    assert_eq!(cluster["tls_error"], Value::Null, "{cluster}");
    // Rotate; every request answers 200 until the new certificate is seen.
    w.site.apply(
        "tls/secret.yaml",
        &client_secret(&certs, "backend-client", "client-v2"),
    );
    let mut tries = 0;
    support::poll(
        "the rotated client certificate",
        support::START_TIMEOUT,
        || {
            tries += 1;
            let out = get(&w, &gw);
            out.assert_status(200);
            out.body.contains("client=client-v2").then_some(())
        },
    );
    // Once seen, the old certificate is never presented again.
    for _ in 0..3 {
        get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={HOST} client=client-v2"));
    }
    assert!(tries >= 1);
    // A bad update is refused and the last good certificate keeps serving.
    let bad = kubectl_secret_yaml(
        "backend-client",
        "istio-system",
        &[
            ("tls.crt", b"not a certificate"),
            ("tls.key", b"nope"),
            ("ca.crt", certs.server.ca.as_bytes()),
        ],
    );
    w.site.write("tls/bad.yaml", bad);
    let _ = w
        .site
        .cli(&["apply", "--validate=false", "-f", "tls/bad.yaml"]);
    support::poll("the bad update rejected", support::START_TIMEOUT, || {
        gw.log()
            .contains("EVENT: rejected secret backend-client")
            .then_some(())
    });
    get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={HOST} client=client-v2"));
}

/// Istio's "egress mutual TLS origination" rule (istio.io, Egress
/// Gateways with TLS Origination: `originate-mtls-for-nginx`), as
/// published, applied in istio-system as the task does; its Secret made
/// as the task's `kubectl create secret generic client-credential`.
#[test]
fn istio_io_mtls_origination_rule_applies_and_works() {
    const NGINX: &str = "my-nginx.mesh-external.svc.cluster.local";
    let certs = Certs::new();
    let server = issue(NGINX, None);
    let backend = TlsBackend::start(&TlsBackendSpec {
        cert: &server.cert,
        key: &server.key,
        client_ca: Some(certs.client_ca.cert_pem()),
        h2: false,
    });
    let w = world(&backend, NGINX);
    let (cert, key) = certs.client("client.example.com");
    w.site.write("tls/client.example.com.crt", cert);
    w.site.write("tls/client.example.com.key", key);
    w.site.write("tls/example.com.crt", &server.ca);
    w.site
        .cli(&[
            "create",
            "secret",
            "-n",
            "istio-system",
            "generic",
            "client-credential",
            "--from-file=tls.key=tls/client.example.com.key",
            "--from-file=tls.crt=tls/client.example.com.crt",
            "--from-file=ca.crt=tls/example.com.crt",
        ])
        .ok();
    let published = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: MUTUAL
        credentialName: client-credential # this must match the secret created earlier to hold client certs
        sni: my-nginx.mesh-external.svc.cluster.local
        # subjectAltNames: # can be enabled if the certificate was generated with SAN as specified in previous section
        # - my-nginx.mesh-external.svc.cluster.local
";
    w.site.write("tls/istio-dr.yaml", published);
    let out = w
        .site
        .cli(&["apply", "-n", "istio-system", "-f", "tls/istio-dr.yaml"])
        .ok();
    // The rule as published applies whole: nothing warns.
    assert!(!out.stderr.contains("Warning"), "{out:?}");
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!(
        "version=HTTP/1.1 sni={NGINX} client=client.example.com"
    ));
    // `proxy-config clusters` shows the cluster's TLS.
    assert_cluster_row(
        &w,
        &gw,
        NGINX,
        &[
            "istio-system/originate-mtls-for-nginx",
            "MUTUAL",
            NGINX,
            "client-credential",
        ],
    );
}

/// `proxy-config clusters`: the TLS columns are there, and `host`'s row
/// ends with `last` (DESTINATION RULE, TLS, SNI, CREDENTIAL).
#[track_caller]
fn assert_cluster_row(w: &Walkthrough, gw: &Gateway, host: &str, last: &[&str]) {
    let admin = gw.admin().to_string();
    let table = w
        .site
        .cli(&["proxy-config", "clusters", "--admin", &admin])
        .ok()
        .stdout;
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("TLS") && header.contains("SNI") && header.contains("CREDENTIAL"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(host))
        .unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(cells.ends_with(last), "{table}");
}

/// `caCrl`: a backend certificate its CRL revokes fails closed; one it
/// does not revoke is served.
#[test]
fn a_backend_certificate_revoked_by_ca_crl_fails_closed() {
    use gatehouse::pki::{Ca, KeyType, LeafSpec};
    let root = Ca::new_root("backend root", KeyType::EcdsaP256).unwrap();
    let inter = root.intermediate("backend intermediate").unwrap();
    let leaf = inter.issue(&LeafSpec::server(HOST)).unwrap();
    let backend = TlsBackend::start(&TlsBackendSpec {
        cert: &leaf.fullchain_pem(),
        key: &leaf.key_pem,
        client_ca: None,
        h2: false,
    });
    let w = world(&backend, HOST);
    let ca = w.site.write("tls/ca.pem", inter.chain_pem());
    let crl = w.site.write("tls/ca.crl", inter.crl(&[]).unwrap());
    apply_rule(
        &w,
        &rule(&format!(
            "      mode: SIMPLE\n      caCertificates: {}\n      caCrl: {}\n",
            ca.display(),
            crl.display()
        )),
    );
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={HOST} client=-"));
    drop(gw);
    let hits = backend.hits();
    w.site.write(
        "tls/ca.crl",
        inter.crl(&[leaf.serial_hex.as_str()]).unwrap(),
    );
    let gw = start(&w);
    get(&w, &gw).assert_status(503);
    assert_eq!(access(&gw, 1)["response_flags"], "UF");
    assert_eq!(backend.hits(), hits, "nothing may reach the backend");
    assert_warned(&gw, "Revoked");
}

/// Runs `openssl args` in `dir`; it must succeed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// istio.io's "Egress Gateways with TLS Origination" certificates, made
/// with its own commands in `dir`: a v3 CA `{ca}.crt` and, when `server`,
/// the X.509 v1 `my-nginx...crt` it signs (no extensions, no SAN).
fn istio_io_certs(dir: &std::path::Path, ca: &str, server: bool) {
    let (crt, key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-sha256",
            "-nodes",
            "-days",
            "365",
            "-newkey",
            "rsa:2048",
            "-subj",
            "/O=example Inc./CN=example.com",
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    );
    if !server {
        return;
    }
    let n = "my-nginx.mesh-external.svc.cluster.local";
    let subj = format!("/CN={n}/O=some organization");
    let (csr, nkey, ncrt) = (format!("{n}.csr"), format!("{n}.key"), format!("{n}.crt"));
    openssl(
        dir,
        &[
            "req", "-out", &csr, "-newkey", "rsa:2048", "-nodes", "-keyout", &nkey, "-subj", &subj,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "365",
            "-CA",
            &crt,
            "-CAkey",
            &key,
            "-set_serial",
            "0",
            "-in",
            &csr,
            "-out",
            &ncrt,
        ],
    );
}

#[test]
fn istio_io_v1_backend_certificate_is_verified_by_its_ca() {
    use rustls::pki_types::pem::PemObject;
    const NGINX: &str = "my-nginx.mesh-external.svc.cluster.local";
    let tmp = tempfile::tempdir().unwrap();
    istio_io_certs(tmp.path(), "example.com", true);
    istio_io_certs(tmp.path(), "other", false);
    let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap();
    let cert = read(&format!("{NGINX}.crt"));
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(x.version(), x509_parser::x509::X509Version::V1, "a v1 leaf");
    let backend = TlsBackend::start(&TlsBackendSpec {
        cert: &cert,
        key: &read(&format!("{NGINX}.key")),
        client_ca: None,
        h2: false,
    });
    let w = world(&backend, NGINX);
    let dr = |ca: &str, more: &str| {
        let ca = tmp.path().join(ca);
        rule(&format!(
            "      mode: SIMPLE\n      caCertificates: {}\n{more}",
            ca.display()
        ))
        .replace(&format!("host: {HOST}"), &format!("host: {NGINX}"))
    };
    // The SNI name (the host) matches the CN: a v1 leaf has no SANs.
    apply_rule(&w, &dr("example.com.crt", ""));
    let gw = start(&w);
    get(&w, &gw).assert_body(&format!("version=HTTP/1.1 sni={NGINX} client=-"));
    drop(gw);
    let refused = |yaml: &str, reason: &str| {
        apply_rule(&w, yaml);
        let hits = backend.hits();
        let gw = start(&w);
        get(&w, &gw).assert_status(503);
        assert_eq!(access(&gw, 1)["response_flags"], "UF");
        assert_eq!(backend.hits(), hits, "nothing may reach the backend");
        assert_warned(&gw, reason);
    };
    // A CA that did not sign it (same subject, other key): fails closed.
    refused(&dr("other.crt", ""), "certificate");
    // An SNI name that is not the CN: the name check fails.
    refused(
        &dr("example.com.crt", "      sni: other.example.com\n"),
        "NotValidForName",
    );
    // subjectAltNames are matched against SANs only (as Envoy does): a
    // v1 leaf carries none, so even its own CN fails.
    let sans = format!("      subjectAltNames:\n      - {NGINX}\n");
    refused(&dr("example.com.crt", &sans), "subjectAltNames");
}
