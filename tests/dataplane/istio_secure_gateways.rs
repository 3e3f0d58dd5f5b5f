//! istio.io's "Secure Gateways" task, step by step, with `gatehouse` in
//! place of `kubectl`: its `openssl` commands verbatim (X.509 v1 leaves with
//! the name only in the CN, a client certificate without EKU, signed by an
//! `openssl req -x509` CA), its Gateway and VirtualService YAML (only the
//! backend is adapted: a ServiceEntry points `httpbin` and `helloworld` at
//! test backends), a running `gatehouse run`, and its `curl` commands:
//! SIMPLE answers, rotation serves the new certificate, two hosts each get
//! their own, MUTUAL refuses no client certificate and accepts the task's.
//! Also: a CRL from `openssl ca -gencrl` (v1, no extensions) is accepted and
//! revokes; a corrupt or wrongly signed CRL is refused at `create`.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::process::Command;
use std::time::Duration;

use support::{Backend, COMMAND_TIMEOUT, CurlOut, Gateway, Out, Site, poll, run_bounded};

const HTTPBIN: &str = "httpbin.example.com";
const HELLOWORLD: &str = "helloworld.example.com";
const HTTPBIN_BODY: &str = "httpbin says hello";
const HELLOWORLD_BODY: &str = "helloworld says hello";
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// Runs one of the task's shell lines in the site's directory.
#[track_caller]
fn sh(site: &Site, line: &str) -> Out {
    let mut c = Command::new("sh");
    c.current_dir(site.path("")).args(["-c", line]);
    run_bounded(c, COMMAND_TIMEOUT).ok()
}

/// The task's certificates, its openssl commands verbatim.
fn make_certificates(site: &Site) {
    for line in [
        "mkdir example_certs1",
        "openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' -keyout example_certs1/example.com.key -out example_certs1/example.com.crt",
        "openssl req -out example_certs1/httpbin.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs1/httpbin.example.com.key -subj \"/CN=httpbin.example.com/O=httpbin organization\"",
        "openssl x509 -req -sha256 -days 365 -CA example_certs1/example.com.crt -CAkey example_certs1/example.com.key -set_serial 0 -in example_certs1/httpbin.example.com.csr -out example_certs1/httpbin.example.com.crt",
        "mkdir example_certs2",
        "openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' -keyout example_certs2/example.com.key -out example_certs2/example.com.crt",
        "openssl req -out example_certs2/httpbin.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs2/httpbin.example.com.key -subj \"/CN=httpbin.example.com/O=httpbin organization\"",
        "openssl x509 -req -sha256 -days 365 -CA example_certs2/example.com.crt -CAkey example_certs2/example.com.key -set_serial 0 -in example_certs2/httpbin.example.com.csr -out example_certs2/httpbin.example.com.crt",
        "openssl req -out example_certs1/helloworld.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs1/helloworld.example.com.key -subj \"/CN=helloworld.example.com/O=helloworld organization\"",
        "openssl x509 -req -sha256 -days 365 -CA example_certs1/example.com.crt -CAkey example_certs1/example.com.key -set_serial 1 -in example_certs1/helloworld.example.com.csr -out example_certs1/helloworld.example.com.crt",
        "openssl req -out example_certs1/client.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs1/client.example.com.key -subj \"/CN=client.example.com/O=client organization\"",
        "openssl x509 -req -sha256 -days 365 -CA example_certs1/example.com.crt -CAkey example_certs1/example.com.key -set_serial 1 -in example_certs1/client.example.com.csr -out example_certs1/client.example.com.crt",
    ] {
        sh(site, line);
    }
    // What the task's commands make with this machine's openssl: v1 leaves
    // without extensions (so no SAN and no EKU), under a v3 CA.
    let leaf = sh(
        site,
        "openssl x509 -in example_certs1/client.example.com.crt -noout -text",
    );
    assert!(leaf.stdout.contains("Version: 1 (0x0)"), "{}", leaf.stdout);
    assert!(!leaf.stdout.contains("X509v3"), "{}", leaf.stdout);
    let ca = sh(
        site,
        "openssl x509 -in example_certs1/example.com.crt -noout -text",
    );
    assert!(ca.stdout.contains("CA:TRUE"), "{}", ca.stdout);
}

fn gateway_yaml(mode: &str, helloworld: bool) -> String {
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: {mode}
      credentialName: httpbin-credential # must be the same as secret
    hosts:
    - httpbin.example.com
"
    );
    if helloworld {
        yaml.push_str(
            "  - port:
      number: 443
      name: https-helloworld
      protocol: HTTPS
    tls:
      mode: SIMPLE
      credentialName: helloworld-credential
    hosts:
    - helloworld.example.com
",
        );
    }
    yaml
}

const VIRTUAL_SERVICES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - \"httpbin.example.com\"
  gateways:
  - mygateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        port:
          number: 8000
        host: httpbin
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts:
  - helloworld.example.com
  gateways:
  - mygateway
  http:
  - match:
    - uri:
        exact: /hello
    route:
    - destination:
        host: helloworld
        port:
          number: 5000
";

/// The one adaptation: `httpbin` and `helloworld` (in namespace `default`)
/// are test backends on this machine.
fn service_entry(name: &str, port: u16, backend: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: {name}
  namespace: default
spec:
  hosts:
  - {name}.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: {port}
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {backend}
"
    )
}

/// The task's curl: `curl -v -HHost:HOST --resolve HOST:PORT:127.0.0.1
/// --cacert CA https://HOST:PORT/PATH` (and `--cert/--key` for MUTUAL).
fn curl(site: &Site, host: &str, port: u16, path: &str, ca: &str, client: bool) -> CurlOut {
    curl_as(site, host, port, path, ca, client.then_some(CLIENT))
}

const CLIENT: &str = "example_certs1/client.example.com";

/// The task's curl with the client certificate and key `{client}.crt/.key`.
fn curl_as(
    site: &Site,
    host: &str,
    port: u16,
    path: &str,
    ca: &str,
    client: Option<&str>,
) -> CurlOut {
    let mut c = site
        .curl(&format!("https://{host}:{port}{path}"))
        .host_header(host)
        .resolve(host, port)
        .cacert(site.path(ca));
    if let Some(client) = client {
        c = c.client_cert(
            site.path(format!("{client}.crt")),
            site.path(format!("{client}.key")),
        );
    }
    c.run()
}

/// Polls the task's curl until it gets `body`, then returns that answer.
fn served(site: &Site, host: &str, port: u16, ca: &str, client: bool, body: &str) -> CurlOut {
    let path = if host == HTTPBIN {
        "/status/418"
    } else {
        "/hello"
    };
    let out = poll(&format!("{host} to answer"), SEEN_WITHIN, || {
        let out = curl(site, host, port, path, ca, client);
        (out.status == 200).then_some(out)
    });
    out.assert_body(body);
    out
}

fn create_tls_secret(site: &Site, name: &str, dir: &str, host: &str) -> Out {
    create_tls_pair(
        site,
        name,
        &format!("{dir}/{host}.key"),
        &format!("{dir}/{host}.crt"),
    )
}

/// `kubectl create -n istio-system secret tls NAME --key=KEY --cert=CERT`.
fn create_tls_pair(site: &Site, name: &str, key: &str, cert: &str) -> Out {
    site.cli(&[
        "create",
        "-n",
        "istio-system",
        "secret",
        "tls",
        name,
        &format!("--key={key}"),
        &format!("--cert={cert}"),
    ])
}

fn delete_secret(site: &Site, name: &str) {
    site.cli(&["-n", "istio-system", "delete", "secret", name])
        .ok();
}

const CA1: &str = "example_certs1/example.com.crt";
const CA2: &str = "example_certs2/example.com.crt";

struct Task {
    site: Site,
    httpbin: Backend,
    helloworld: Backend,
}

impl Task {
    fn new() -> Task {
        let site = Site::new();
        make_certificates(&site);
        let httpbin = Backend::start(HTTPBIN_BODY);
        let helloworld = Backend::start(HELLOWORLD_BODY);
        site.apply(
            "serviceentries.yaml",
            &format!(
                "{}---\n{}",
                service_entry("httpbin", 8000, httpbin.port()),
                service_entry("helloworld", 5000, helloworld.port())
            ),
        );
        Task {
            site,
            httpbin,
            helloworld,
        }
    }

    fn start(&self) -> (Gateway, u16) {
        let gw = self.site.start_gateway(&[443]);
        let port = gw.port(443);
        (gw, port)
    }
}

#[test]
fn simple_rotation_and_two_hosts_with_the_tasks_v1_certificates() {
    let t = Task::new();
    let site = &t.site;
    // A v1 certificate with another certificate's key is still refused.
    let out = create_tls_pair(
        site,
        "httpbin-credential",
        "example_certs1/helloworld.example.com.key",
        "example_certs1/httpbin.example.com.crt",
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("does not match the certificate"),
        "{}",
        out.stderr
    );
    create_tls_secret(site, "httpbin-credential", "example_certs1", HTTPBIN).ok();
    site.apply("gateway.yaml", &gateway_yaml("SIMPLE", false));
    site.apply("virtualservices.yaml", VIRTUAL_SERVICES);
    let (gw, port) = t.start();

    // SIMPLE: the v1 certificate named only by its CN is served and
    // verified by curl against the task's CA.
    served(site, HTTPBIN, port, CA1, false, HTTPBIN_BODY);
    assert_eq!(t.httpbin.last().path, "/status/418");

    // Rotation: delete the secret, create it from example_certs2; curl with
    // the new CA is answered, curl with the old CA no longer trusts it.
    delete_secret(site, "httpbin-credential");
    create_tls_secret(site, "httpbin-credential", "example_certs2", HTTPBIN).ok();
    served(site, HTTPBIN, port, CA2, false, HTTPBIN_BODY);
    curl(site, HTTPBIN, port, "/status/418", CA1, false).assert_refused();

    second_host(&t, &gw, port);
}

/// Two hosts: helloworld gets its own secret and server, each host is
/// served its own certificate (checked by curl against its own name).
fn second_host(t: &Task, gw: &Gateway, port: u16) {
    let site = &t.site;
    // First with httpbin's certificate: its CN does not name helloworld,
    // so the gateway refuses it for that host and says why.
    create_tls_pair(
        site,
        "helloworld-credential",
        "example_certs2/httpbin.example.com.key",
        "example_certs2/httpbin.example.com.crt",
    )
    .ok();
    site.apply("gateway.yaml", &gateway_yaml("SIMPLE", true));
    let why = "does not cover host helloworld.example.com (its names: httpbin.example.com)";
    poll("the wrong certificate to be rejected", SEEN_WITHIN, || {
        gw.log().contains(why).then_some(())
    });
    curl(site, HELLOWORLD, port, "/hello", CA1, false).assert_refused();
    delete_secret(site, "helloworld-credential");
    create_tls_secret(site, "helloworld-credential", "example_certs1", HELLOWORLD).ok();
    served(site, HELLOWORLD, port, CA1, false, HELLOWORLD_BODY);
    served(site, HTTPBIN, port, CA2, false, HTTPBIN_BODY);
    assert_eq!(t.helloworld.last().path, "/hello");
}

/// The MUTUAL step's secret: `kubectl create -n istio-system secret generic
/// httpbin-credential --from-file=tls.key=… --from-file=tls.crt=…
/// --from-file=ca.crt=…`, plus `ca.crl` when given.
fn create_mutual_secret(site: &Site, crl: Option<&str>) -> Out {
    create_mutual_secret_with(site, crl, &[])
}

/// Replaces the MUTUAL secret in place (`create --dry-run=client -o yaml`,
/// then `apply -f`), so the host never goes without a credential.
fn replace_mutual_secret(site: &Site, crl: &str) {
    let out = create_mutual_secret_with(site, Some(crl), &["--dry-run=client", "-o", "yaml"]).ok();
    site.apply("secret.yaml", &out.stdout);
}

fn create_mutual_secret_with(site: &Site, crl: Option<&str>, extra: &[&str]) -> Out {
    let mut args = vec![
        "create".to_owned(),
        "-n".into(),
        "istio-system".into(),
        "secret".into(),
        "generic".into(),
        "httpbin-credential".into(),
        "--from-file=tls.key=example_certs1/httpbin.example.com.key".into(),
        "--from-file=tls.crt=example_certs1/httpbin.example.com.crt".into(),
        "--from-file=ca.crt=example_certs1/example.com.crt".into(),
    ];
    if let Some(crl) = crl {
        args.push(format!("--from-file=ca.crl={crl}"));
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    site.cli(&args)
}

#[test]
fn mutual_refuses_no_client_cert_and_accepts_the_tasks_v1_client_cert() {
    let t = Task::new();
    let site = &t.site;
    create_mutual_secret(site, None).ok();
    site.apply("gateway.yaml", &gateway_yaml("MUTUAL", false));
    site.apply("virtualservices.yaml", VIRTUAL_SERVICES);
    let (gw, port) = t.start();
    served(site, HTTPBIN, port, CA1, true, HTTPBIN_BODY);
    // Over TLS 1.2 too (the v1 certificate's CertificateVerify).
    let out = site
        .curl(&format!("https://{HTTPBIN}:{port}/status/418"))
        .host_header(HTTPBIN)
        .resolve(HTTPBIN, port)
        .cacert(site.path(CA1))
        .client_cert(
            site.path(format!("{CLIENT}.crt")),
            site.path(format!("{CLIENT}.key")),
        )
        .arg("--tls-max")
        .arg("1.2")
        .run();
    out.assert_body(HTTPBIN_BODY);
    let hits = t.httpbin.hits();
    curl(site, HTTPBIN, port, "/status/418", CA1, false).assert_refused();
    // v1 client certificates that are expired, or signed by example_certs2's
    // CA (the same name as example_certs1's, another key), are refused.
    for (name, ca_dir, days) in [
        ("expired", "example_certs1", "-1"),
        ("other-ca", "example_certs2", "365"),
    ] {
        sh(
            site,
            &format!(
                "openssl x509 -req -sha256 -days {days} -CA {ca_dir}/example.com.crt -CAkey {ca_dir}/example.com.key -set_serial 7 -in example_certs1/client.example.com.csr -out example_certs1/{name}.crt && cp example_certs1/client.example.com.key example_certs1/{name}.key"
            ),
        );
        let client = format!("example_certs1/{name}");
        curl_as(site, HTTPBIN, port, "/status/418", CA1, Some(&client)).assert_refused();
    }
    assert_eq!(
        t.httpbin.hits(),
        hits,
        "a refused client reached the backend"
    );
    a_v1_certificate_is_no_ca(&t, &gw, port);
}

/// The chain is not loosened: a v1 certificate is no CA even when it is in
/// ca.crt. A client signed with the httpbin certificate's key is refused
/// (as `openssl verify` refuses it: invalid CA certificate).
fn a_v1_certificate_is_no_ca(t: &Task, gw: &Gateway, port: u16) {
    let site = &t.site;
    sh(
        site,
        "openssl x509 -req -sha256 -days 365 -CA example_certs1/httpbin.example.com.crt -CAkey example_certs1/httpbin.example.com.key -set_serial 5 -in example_certs1/client.example.com.csr -out example_certs1/by-leaf.crt && cp example_certs1/client.example.com.key example_certs1/by-leaf.key",
    );
    sh(
        site,
        "cat example_certs1/example.com.crt example_certs1/httpbin.example.com.crt > both.crt",
    );
    let out = site
        .cli(&[
            "create",
            "-n",
            "istio-system",
            "secret",
            "generic",
            "httpbin-credential",
            "--from-file=tls.key=example_certs1/httpbin.example.com.key",
            "--from-file=tls.crt=example_certs1/httpbin.example.com.crt",
            "--from-file=ca.crt=both.crt",
            "--dry-run=client",
            "-o",
            "yaml",
        ])
        .ok();
    let pushes = |gw: &Gateway| gw.log().matches("pushed root cert to proxy").count();
    let before = pushes(gw);
    site.apply("secret.yaml", &out.stdout);
    poll("the new ca.crt to be pushed", SEEN_WITHIN, || {
        (pushes(gw) > before).then_some(())
    });
    assert!(!gw.log().contains("rejected"), "{}", gw.log());
    let hits = t.httpbin.hits();
    curl_as(
        site,
        HTTPBIN,
        port,
        "/status/418",
        CA1,
        Some("example_certs1/by-leaf"),
    )
    .assert_refused();
    assert_eq!(
        t.httpbin.hits(),
        hits,
        "a leaf-signed client reached the backend"
    );
    curl(site, HTTPBIN, port, "/status/418", CA1, true).assert_body(HTTPBIN_BODY);
}

/// A minimal `openssl ca` configuration: no `crl_extensions` and no
/// `crlnumber`, so `-gencrl` writes a v1 CRL without extensions.
const CA_CONF: &str = "[ ca ]
default_ca = CA_default
[ CA_default ]
database = index.txt
default_md = sha256
default_crl_days = 30
";

#[test]
fn a_crl_without_extensions_is_accepted_and_revokes_a_bad_one_is_refused_at_create() {
    let t = Task::new();
    let site = &t.site;
    site.write("ca.cnf", CA_CONF);
    site.write("index.txt", "");
    let gencrl = |dir: &str, out: &str| {
        sh(
            site,
            &format!(
                "openssl ca -config ca.cnf -gencrl -keyfile {dir}/example.com.key -cert {dir}/example.com.crt -out {out}"
            ),
        )
    };
    gencrl("example_certs1", "empty.crl");
    let text = sh(site, "openssl crl -in empty.crl -noout -text");
    assert!(text.stdout.contains("Version 1 (0x0)"), "{}", text.stdout);
    assert!(!text.stdout.contains("CRL extensions"), "{}", text.stdout);

    // A CRL signed by example_certs2's CA, whose name is the same as
    // example_certs1's: right issuer name, wrong signature.
    gencrl("example_certs2", "forged.crl");
    let out = create_mutual_secret(site, Some("forged.crl"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("httpbin-credential")
            && out.stderr.contains("CN=example.com")
            && out.stderr.contains("signature does not verify"),
        "{}",
        out.stderr
    );
    // A corrupt CRL: the PEM holds bytes that are not a CRL.
    site.write(
        "corrupt.crl",
        "-----BEGIN X509 CRL-----\nMIIBAAAAAAAAAAAA\n-----END X509 CRL-----\n",
    );
    let out = create_mutual_secret(site, Some("corrupt.crl"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("httpbin-credential") && out.stderr.contains("not a valid CRL"),
        "{}",
        out.stderr
    );

    // The empty v1 CRL is accepted, and the task's client is served.
    create_mutual_secret(site, Some("empty.crl")).ok();
    site.apply("gateway.yaml", &gateway_yaml("MUTUAL", false));
    site.apply("virtualservices.yaml", VIRTUAL_SERVICES);
    let (_gw, port) = t.start();
    let ca = CA1;
    served(site, HTTPBIN, port, ca, true, HTTPBIN_BODY);

    // A second client of the same CA, not revoked.
    let client2 = "example_certs1/client2.example.com";
    sh(
        site,
        "openssl req -out example_certs1/client2.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs1/client2.example.com.key -subj \"/CN=client2.example.com/O=client organization\"",
    );
    sh(
        site,
        "openssl x509 -req -sha256 -days 365 -CA example_certs1/example.com.crt -CAkey example_certs1/example.com.key -set_serial 2 -in example_certs1/client2.example.com.csr -out example_certs1/client2.example.com.crt",
    );

    // Revoke the task's client and publish the new (still v1) CRL in place:
    // that client is refused, the other one is still served.
    sh(
        site,
        "openssl ca -config ca.cnf -revoke example_certs1/client.example.com.crt -keyfile example_certs1/example.com.key -cert example_certs1/example.com.crt",
    );
    gencrl("example_certs1", "revoked.crl");
    let text = sh(site, "openssl crl -in revoked.crl -noout -text");
    assert!(text.stdout.contains("Serial Number: 01"), "{}", text.stdout);
    replace_mutual_secret(site, "revoked.crl");
    poll("the revoked client to be refused", SEEN_WITHIN, || {
        let out = curl(site, HTTPBIN, port, "/status/418", ca, true);
        (out.status == 0).then_some(out)
    })
    .assert_refused();
    let hits = t.httpbin.hits();
    curl(site, HTTPBIN, port, "/status/418", ca, true).assert_refused();
    assert_eq!(
        t.httpbin.hits(),
        hits,
        "a revoked client reached the backend"
    );
    curl_as(site, HTTPBIN, port, "/status/418", ca, Some(client2)).assert_body(HTTPBIN_BODY);
}
