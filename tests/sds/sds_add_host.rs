//! A host added while the gateway runs: a third Gateway server
//! (`api.foocorp.com`) whose secret is created only afterwards, with the
//! walkthrough's `create secret generic` command. Before the secret its
//! handshakes fail and `proxy-config secret` shows it WARMING; within a
//! second of the secret's creation it serves, without a restart, and the log
//! shows the walkthrough's push line.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::load;
use crate::support::load::{Target, probe, probe_until};
use crate::support::{
    Backend, FRONTEND, FRONTEND_BODY, GATEWAY_YAML, Gateway, INVENTORY, INVENTORY_BODY,
    Walkthrough, poll, service_entry,
};

const API: &str = "api.foocorp.com";
const API_BODY: &str = "FooCorp - API";
const API_SERVICE: &str = "api.corp-services.svc.cluster.local";

/// The walkthrough's Gateway with a third server, as a user would edit it.
fn gateway_with_api() -> String {
    format!(
        "{GATEWAY_YAML}  - port:
      number: 443
      name: https-api
      protocol: HTTPS
    tls:
      mode: MUTUAL
      credentialName: \"api-credential\"
    hosts:
    - \"{API}\"
"
    )
}

fn api_virtual_service() -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: api
spec:
  hosts:
  - \"{API}\"
  gateways:
  - foocorp-gateway
  http:
  - match:
    - uri:
        exact: /
    route:
    - destination:
        host: {API_SERVICE}
        port:
          number: 80
"
    )
}

/// The `api-credential` line of `proxy-config secret`, if any.
fn api_row(w: &Walkthrough, gw: &Gateway) -> Option<String> {
    w.site
        .cli(&["proxy-config", "secret", "--admin", &gw.admin().to_string()])
        .ok()
        .stdout
        .lines()
        .find(|l| l.starts_with("api-credential "))
        .map(str::to_owned)
}

/// Before its secret exists, the new host refuses every handshake and its
/// backend sees nothing; the walkthrough's hosts never notice.
fn only_the_new_host_is_refused(w: &Walkthrough, port: u16, target: &Target, api: &Backend) {
    let before = probe(target);
    assert!(
        before.result.is_err() && before.serial.is_none(),
        "{before:?}"
    );
    w.site.walkthrough_curl(API, port).run().assert_refused();
    assert_eq!(api.hits(), 0);
    // The other hosts never noticed.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
}

#[test]
fn a_host_added_while_running_serves_once_its_secret_is_created() {
    let w = Walkthrough::new();
    let api = Backend::start(API_BODY);
    let gw = w.start();
    let port = gw.port(443);
    w.site.pki_init(API);

    w.site.apply(
        "api/serviceentry.yaml",
        &service_entry("api", API_SERVICE, api.port()),
    );
    w.site
        .apply("api/virtualservice.yaml", &api_virtual_service());
    let out = w.site.apply("foocorp/gateway.yaml", &gateway_with_api());
    assert_eq!(
        out.stdout,
        "gateway.networking.istio.io/foocorp-gateway configured\n"
    );

    // The server is there, waiting for its credential.
    let row = poll("api-credential to show up", Duration::from_secs(5), || {
        api_row(&w, &gw)
    });
    assert!(row.contains("WARMING"), "{row}");
    let pki = w.site.pki(API);
    let read = |p| std::fs::read(w.site.path(p)).unwrap();
    let target = Target::new(
        ([127, 0, 0, 1], port).into(),
        API,
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    )
    .without_resumption();
    only_the_new_host_is_refused(&w, port, &target, &api);

    // The walkthrough's command, for the third host.
    let created = w.site.cli(&[
        "create",
        "-n",
        "istio-system",
        "secret",
        "generic",
        "api-credential",
        &format!("--from-file=key={}", pki.server_key.display()),
        &format!("--from-file=cert={}", pki.server_cert.display()),
        &format!("--from-file=cacert={}", pki.ca_chain.display()),
    ]);
    let created_at = Instant::now();
    assert_eq!(created.ok().stdout, "secret/api-credential created\n");
    let (last, took, ok) = probe_until(&target, Duration::from_secs(1), load::Probe::ok);
    assert!(
        ok,
        "api.foocorp.com did not serve {took:?} after its secret was created: {last:?}\n{}",
        gw.log()
    );
    let served_after = created_at.elapsed();
    assert!(served_after <= Duration::from_secs(1), "{served_after:?}");
    eprintln!("api.foocorp.com served {served_after:?} after `create secret` returned");
    assert_eq!(
        last.serial.as_deref(),
        Some(load::serial_of_pem(&read(&pki.server_cert)).as_str())
    );

    w.site
        .walkthrough_curl(API, port)
        .run()
        .assert_body(API_BODY);
    let log = gw.log();
    assert!(
        log.contains("RESOURCE NAME:api-credential, EVENT: pushed key/cert pair to proxy"),
        "{log}"
    );
    assert!(
        log.contains("RESOURCE NAME:api-credential-cacert, EVENT: pushed root cert to proxy"),
        "{log}"
    );
    let row = api_row(&w, &gw).unwrap();
    assert!(row.contains("ACTIVE"), "{row}");

    // Same process, same listener: no restart.
    let mut gw = gw;
    assert!(gw.running());
    assert_eq!(gw.port(443), port);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}
