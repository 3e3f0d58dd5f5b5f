//! SNI precedence with more servers than the walkthrough's two: an exact
//! name beats a `*.` wildcard, which beats a `*` server; and a connection
//! to a less specific server can never reach a host that a more specific
//! server owns (its mutual TLS would be bypassed): 421, never forwarded.
#![allow(clippy::unwrap_used)]

use crate::support::{
    Backend, FRONTEND, FRONTEND_BODY, GATEWAY_YAML, INVENTORY, INVENTORY_BODY, Walkthrough,
    service_entry,
};

const WILDCARD: &str = "*.foocorp.com";
const SHOP: &str = "shop.foocorp.com";
const SHOP_BODY: &str = "FooCorp - Shop";

/// A Gateway server block for port 443.
fn server(name: &str, mode: &str, credential: &str, host: &str) -> String {
    format!(
        "  - port:
      number: 443
      name: {name}
      protocol: HTTPS
    tls:
      mode: {mode}
      credentialName: \"{credential}\"
    hosts:
    - \"{host}\"
"
    )
}

/// The walkthrough plus a SIMPLE `*.foocorp.com` server (its own
/// `gatehouse pki init '*.foocorp.com'` tree) and `extra` servers, with a
/// VirtualService sending `shop.foocorp.com` to a third backend.
struct World {
    w: Walkthrough,
    shop: Backend,
}

fn world(extra: &str) -> World {
    let w = Walkthrough::new();
    w.site.pki_init(WILDCARD);
    let pki = w.site.pki(WILDCARD);
    w.site
        .cli(&[
            "create",
            "-n",
            "istio-system",
            "secret",
            "generic",
            "wildcard-credential",
            &format!("--from-file=key={}", pki.server_key.display()),
            &format!("--from-file=cert={}", pki.server_cert.display()),
        ])
        .ok();
    let gateway = format!(
        "{GATEWAY_YAML}{}{extra}",
        server("https-wildcard", "SIMPLE", "wildcard-credential", WILDCARD)
    );
    w.site.apply("foocorp/gateway.yaml", &gateway);
    let shop = Backend::start(SHOP_BODY);
    w.site.apply(
        "shop.yaml",
        &format!(
            "{}---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: shop
spec:
  hosts:
  - \"{SHOP}\"
  gateways:
  - foocorp-gateway
  http:
  - route:
    - destination:
        host: shop.ux.svc.cluster.local
        port:
          number: 80
",
            service_entry("shop", "shop.ux.svc.cluster.local", shop.port())
        ),
    );
    World { w, shop }
}

/// The subject of the certificate `openssl s_client` was served for `args`.
fn served_subject(w: &Walkthrough, port: u16, args: &[&str]) -> Option<String> {
    let out = w.site.s_client(port, args);
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(str::to_owned)
}

#[test]
fn exact_names_beat_the_wildcard() {
    let World { w, shop } = world("");
    let gw = w.start();
    let port = gw.port(443);
    let subject = |sni: &str| served_subject(&w, port, &["-servername", sni]);
    assert_eq!(subject(SHOP).as_deref(), Some("CN = *.foocorp.com"));
    assert_eq!(
        subject(FRONTEND).as_deref(),
        Some("CN = frontend.foocorp.com")
    );
    assert_eq!(
        subject(INVENTORY).as_deref(),
        Some("CN = inventory.foocorp.com")
    );

    let wildcard_ca = w.site.pki(WILDCARD).ca_chain;
    let out = w
        .site
        .curl(&format!("https://{SHOP}:{port}/"))
        .resolve(SHOP, port)
        .cacert(&wildcard_ca)
        .run();
    out.assert_body(SHOP_BODY);
    // Frontend is still MUTUAL: the wildcard does not make it SIMPLE.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .no_client_cert()
        .run()
        .assert_refused();
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    assert_eq!(shop.hits(), 1);
}

#[test]
fn wildcard_connection_cannot_reach_a_mutual_host() {
    let World { w, shop } = world("");
    let gw = w.start();
    let port = gw.port(443);
    let wildcard_ca = w.site.pki(WILDCARD).ca_chain;
    // No client certificate at all: a SIMPLE handshake as shop.foocorp.com,
    // then a request for a host whose own server demands mutual TLS.
    for host in [INVENTORY, FRONTEND, "Inventory.FooCorp.com:443"] {
        for http2 in [false, true] {
            let out = w
                .site
                .curl(&format!("https://{SHOP}:{port}/"))
                .resolve(SHOP, port)
                .cacert(&wildcard_ca)
                .host_header(host)
                .http2_if(http2)
                .run();
            out.assert_status(421);
        }
    }
    assert_eq!(
        w.backend_hits(),
        0,
        "a mutual host was reached without a client certificate"
    );
    assert_eq!(shop.hits(), 0);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
}

#[test]
fn catch_all_server_takes_no_sni_and_unknown_names_only() {
    let World { w, shop } = world(&server("https-any", "SIMPLE", "wildcard-credential", "*"));
    let gw = w.start();
    let port = gw.port(443);
    let subject = |args: &[&str]| served_subject(&w, port, args);
    assert_eq!(
        subject(&["-noservername"]).as_deref(),
        Some("CN = *.foocorp.com")
    );
    assert_eq!(
        subject(&["-servername", "www.example.com"]).as_deref(),
        Some("CN = *.foocorp.com")
    );
    assert_eq!(
        subject(&["-servername", FRONTEND]).as_deref(),
        Some("CN = frontend.foocorp.com")
    );

    // Over the catch-all connection, hosts that other servers own are 421.
    for host in [INVENTORY, FRONTEND, SHOP] {
        w.site
            .curl(&format!("https://127.0.0.1:{port}/"))
            .arg("--insecure")
            .host_header(host)
            .run()
            .assert_status(421);
    }
    assert_eq!(w.backend_hits() + shop.hits(), 0);
}
