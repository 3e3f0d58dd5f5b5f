//! A server certificate that runs out while serving: `proxy-config secret`
//! says EXPIRING from `--expiry-warning` before its notAfter and EXPIRED
//! after, the log warns naming the secret, the server and the notAfter,
//! and the gateway keeps serving it (as Envoy does).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::{FRONTEND, FRONTEND_BODY, Gateway, INVENTORY, Site, Walkthrough, try_poll};

/// `proxy-config secret`'s line for `resource`.
fn row(site: &Site, gw: &Gateway, resource: &str) -> String {
    let out = site
        .cli(&["proxy-config", "secret", "--admin", &gw.admin().to_string()])
        .ok();
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(resource))
        .unwrap_or_default()
        .to_owned()
}

/// The STATUS column of `resource`'s row.
fn state(site: &Site, gw: &Gateway, resource: &str) -> String {
    const STATES: [&str; 5] = ["ACTIVE", "WARMING", "REJECTED", "EXPIRING", "EXPIRED"];
    row(site, gw, resource)
        .split_whitespace()
        .find(|w| STATES.contains(w))
        .unwrap_or_default()
        .to_owned()
}

/// Polls until `resource` shows `want`, for at most `within`.
fn shows(site: &Site, gw: &Gateway, resource: &str, want: &str, within: Duration) -> bool {
    try_poll(within, || (state(site, gw, resource) == want).then_some(())).is_some()
}

#[test]
fn a_certificate_that_expires_while_serving_is_reported_and_still_served() {
    let w = Walkthrough::with_secrets(&[INVENTORY]);
    // frontend's server certificate: valid for a few seconds from now.
    let mut spec = gatehouse::pki::LeafSpec::server(FRONTEND);
    let valid_for = Duration::from_secs(4);
    spec.not_after = time::OffsetDateTime::now_utc() + valid_for;
    let issued_at = Instant::now();
    let layout = gatehouse::pki::HostLayout::new(w.site.dir.path(), FRONTEND);
    let issued = layout.load_intermediate().unwrap().issue(&spec).unwrap();
    w.site.write("brief/cert.pem", &issued.cert_pem);
    w.site.write("brief/key.pem", &issued.key_pem);
    let args = Site::create_secret_args(FRONTEND, "brief/key.pem", "brief/cert.pem", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.site.cli(&args).ok();
    // The default --expiry-warning (7d) is longer than its life: warned at start.
    let gw = w.start();
    assert!(issued_at.elapsed() < valid_for, "too slow to test");
    let resource = "frontend-credential";
    assert!(
        shows(&w.site, &gw, resource, "EXPIRING", Duration::from_secs(2)),
        "{}",
        row(&w.site, &gw, resource)
    );
    let log = gw.log();
    let warned = |log: &str, what: &str| {
        log.lines().any(|l| {
            l.contains("WARN")
                && l.contains(what)
                && l.contains(resource)
                && l.contains("default/foocorp-gateway/https-frontend")
                && l.contains("not_after")
        })
    };
    assert!(
        warned(&log, "EXPIRING"),
        "no EXPIRING warning at start:\n{log}"
    );

    // Past notAfter: EXPIRED, with its own warning, without any change to
    // the store (the gateway's own timer).
    assert!(
        shows(&w.site, &gw, resource, "EXPIRED", Duration::from_secs(10)),
        "{}",
        row(&w.site, &gw, resource)
    );
    assert!(issued_at.elapsed() >= valid_for);
    assert!(
        row(&w.site, &gw, resource).contains("still serving"),
        "{}",
        row(&w.site, &gw, resource)
    );
    let log = gw.log();
    assert!(warned(&log, "EXPIRED"), "no EXPIRED warning:\n{log}");

    // It keeps serving: curl -k (the certificate is expired) gets 200.
    let port = gw.port(443);
    let pki = w.site.pki(FRONTEND);
    let out = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&pki.client_cert, &pki.client_key)
        .arg("-k")
        .run();
    out.assert_body(FRONTEND_BODY);
    // Without -k, curl refuses the expired certificate: proof it is the one served.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&pki.client_cert, &pki.client_key)
        .run()
        .assert_refused();
    assert_eq!(w.frontend.hits(), 1);
}

#[test]
fn expiry_warning_longer_than_the_remaining_life_warns_at_start() {
    let w = Walkthrough::new();
    // The walkthrough's certificates have a little under a year left.
    let gw = w
        .site
        .start_gateway_with(&[443], &["--expiry-warning", "365d"]);
    for resource in ["frontend-credential", "inventory-credential"] {
        assert!(
            shows(&w.site, &gw, resource, "EXPIRING", Duration::from_secs(5)),
            "{}",
            row(&w.site, &gw, resource)
        );
        let log = gw.log();
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains("EXPIRING") && l.contains(resource)),
            "{log}"
        );
    }
    // With the default (7d), the same certificates are simply ACTIVE.
    let quiet = w.site.start_gateway(&[443]);
    assert!(shows(
        &w.site,
        &quiet,
        "frontend-credential",
        "ACTIVE",
        Duration::from_secs(5)
    ));
    assert!(!quiet.log().contains("EXPIRING"), "{}", quiet.log());
    // Out of range: a usage error naming the flag.
    w.site.assert_run_refuses("--expiry-warning", "400d");
}
