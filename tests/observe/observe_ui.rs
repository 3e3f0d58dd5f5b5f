//! The dashboard at `/ui` in a real browser (headless Chromium driven over
//! WebDriver) against the walkthrough's gateway: both hosts with their
//! credentials' states and serials, a rotation that shows its new serial
//! in the same page without a reload, markup in a route's config shown as
//! text, no horizontal scroll at a phone's width, and a screenshot at
//! 1280×800 for the README (`docs/dashboard.png`). Also the admin token:
//! a non-loopback admin address without one refuses to start, and with
//! one every data path needs it while the probes and the page do not.

use std::time::Duration;

use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::client::serial_of_pem;
use crate::support::{
    FRONTEND, FRONTEND_BODY, INVENTORY, Site, Walkthrough, closed_port, frontend_vs_with, http_get,
    http_get_with, poll, service_entry,
};
use gatehouse::pki::{HostLayout, LeafSpec};

/// How long the page may take to show a change (it polls every second).
const SHOWN_WITHIN: Duration = Duration::from_secs(15);

/// Every server card on the page: its id, hosts and credential rows
/// (resource, state, serial, days left and their colour), read from the
/// rendered DOM.
const SERVER_CARDS: &str = r"
return Array.from(document.querySelectorAll('article.server')).map(a => ({
  id: a.dataset.server,
  hosts: a.querySelector('.hosts').textContent,
  creds: Array.from(a.querySelectorAll('.cred')).map(c => ({
    resource: c.dataset.resource,
    state: c.querySelector('[data-state]').dataset.state,
    serial: c.querySelector('.serial').textContent,
    days: c.querySelector('.days').textContent,
    colour: c.querySelector('.days').className,
  })),
}));";

/// Routes in front of the frontend's own: one to a backend that is down
/// (its 503s make the route's error rate), and one whose name and match
/// hold markup (the page must show it as text).
const EXTRA_ROUTES: &str = "  - name: down
    match:
    - uri:
        prefix: /down
    route:
    - destination:
        host: down.default.svc.cluster.local
        port:
          number: 80
  - name: <img id=injected-name src=x>
    match:
    - uri:
        prefix: /<b id=injected-match>x</b>
    route:
    - destination:
        host: inventory.corp-services.svc.cluster.local
        port:
          number: 80
";

/// The cells' text of each row of the table(s) in the section `id`.
fn rows(b: &Browser, id: &str) -> Vec<Vec<String>> {
    let v = b.eval(&format!(
        "return Array.from(document.querySelectorAll('#{id} tbody tr')).map(tr => Array.from(tr.cells).map(td => td.textContent));"
    ));
    serde_json::from_value(v).unwrap()
}

/// Waits until a row of section `id` satisfies `want`; returns it.
#[track_caller]
fn wait_row(b: &Browser, id: &str, what: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut last = Vec::new();
    let found = crate::support::try_poll(SHOWN_WITHIN, || {
        last = rows(b, id);
        last.iter().find(|r| want(r)).cloned()
    });
    found.unwrap_or_else(|| {
        panic!("no row of #{id} showed {what} within {SHOWN_WITHIN:?}: {last:?}")
    })
}

/// The serial of `host`'s served certificate as the page must show it.
fn served_serial(w: &Walkthrough, host: &str) -> String {
    serial_of_pem(&std::fs::read(w.site.path(w.site.pki(host).server_cert)).unwrap())
}

/// The certificate credential (not the CA) shown on the card of the
/// server serving `host`, if the page shows one.
fn shown_credential(cards: &Value, host: &str) -> Option<Value> {
    let card = cards
        .as_array()?
        .iter()
        .find(|c| c["hosts"].as_str() == Some(host))?;
    card["creds"]
        .as_array()?
        .iter()
        .find(|c| !c["resource"].as_str().unwrap_or("").ends_with("-cacert"))
        .cloned()
}

/// Waits until the page shows `host`'s credential in `state` with
/// `serial`; returns that credential's row.
#[track_caller]
fn wait_state(b: &Browser, host: &str, state: &str, serial: &str) -> Value {
    let mut last = Value::Null;
    let found = crate::support::try_poll(SHOWN_WITHIN, || {
        last = b.eval(SERVER_CARDS);
        let cred = shown_credential(&last, host)?;
        (cred["state"] == state && cred["serial"] == serial).then_some(cred)
    });
    found.unwrap_or_else(|| {
        panic!(
            "the page did not show {host} {state} with serial {serial} within {SHOWN_WITHIN:?}; it shows {last:#}"
        )
    })
}

/// Waits until the page shows `host`'s credential ACTIVE with `serial`;
/// returns every server card.
#[track_caller]
fn wait_shown(b: &Browser, host: &str, serial: &str) -> Value {
    wait_state(b, host, "ACTIVE", serial);
    b.eval(SERVER_CARDS)
}

/// A new server certificate for the frontend from its intermediate, applied
/// as the rotation tests apply one; returns its serial as the page shows it.
fn rotate_frontend(w: &Walkthrough) -> String {
    let layout = HostLayout::new(w.site.dir.path(), FRONTEND);
    let leaf = layout
        .load_intermediate()
        .unwrap()
        .issue(&LeafSpec::server(FRONTEND))
        .unwrap();
    let manifest = w
        .site
        .frontend_secret_manifest("rotation", &leaf.cert_pem, &leaf.key_pem, &[]);
    w.site.cli(&["apply", "-f", &manifest]).ok();
    serial_of_pem(leaf.cert_pem.as_bytes())
}

/// The inventory's credential replaced by one that expires in 5 days
/// (`create secret … --dry-run=client -o yaml`, then `apply -f`); returns
/// its serial.
fn rotate_inventory_to_expire_soon(w: &Walkthrough) -> String {
    let layout = HostLayout::new(w.site.dir.path(), INVENTORY);
    let leaf = layout
        .load_intermediate()
        .unwrap()
        .issue(&LeafSpec::server(INVENTORY).valid_days(5))
        .unwrap();
    w.site.write("soon/cert.pem", &leaf.cert_pem);
    w.site.write("soon/key.pem", &leaf.key_pem);
    let args = Site::create_secret_args(
        INVENTORY,
        "soon/key.pem",
        "soon/cert.pem",
        &["--dry-run=client", "-o", "yaml"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifest = w.site.cli(&args).ok();
    w.site.write("soon/secret.yaml", &manifest.stdout);
    w.site.cli(&["apply", "-f", "soon/secret.yaml"]).ok();
    serial_of_pem(leaf.cert_pem.as_bytes())
}

/// Days left in colour: a year is green; 5 days is red, and EXPIRING
/// (within the default `--expiry-warning` of 7 days).
fn expiry_colours(w: &Walkthrough, b: &Browser) {
    let cards = b.eval(SERVER_CARDS);
    let frontend = shown_credential(&cards, FRONTEND).unwrap();
    assert_eq!(frontend["colour"], "days ok", "{frontend}");
    let soon = rotate_inventory_to_expire_soon(w);
    let inventory = wait_state(b, INVENTORY, "EXPIRING", &soon);
    assert_eq!(inventory["colour"], "days bad", "{inventory}");
    assert_eq!(inventory["days"], "4 days", "{inventory}");
    let first = rows(b, "expiry");
    assert_eq!(
        first[0][0], "inventory-credential",
        "expires first: {first:?}"
    );
}

/// Whether the page is wider than its viewport (a horizontal scroll).
fn overflows(b: &Browser) -> Value {
    b.eval(
        "const d = document.documentElement; return {scroll: d.scrollWidth, client: d.clientWidth, inner: window.innerWidth};",
    )
}

/// Traffic while the page watches: four answers from the frontend, two
/// 503s from the route whose backend is down, and a handshake refused for
/// want of a client certificate; the page shows each in its section.
fn traffic_shows(w: &Walkthrough, b: &Browser, port: u16) {
    let addr = ([127, 0, 0, 1], port).into();
    let client = w.site.client(FRONTEND);
    for _ in 0..4 {
        let got = client.body(addr, "/");
        assert_eq!(got.as_deref().map(str::trim_end), Some(FRONTEND_BODY));
    }
    for _ in 0..2 {
        assert_eq!(client.get(addr, "/down").unwrap().status, 503);
    }
    w.site
        .walkthrough_curl(FRONTEND, port)
        .no_client_cert()
        .run()
        .assert_refused();
    let down = wait_row(b, "routes", "the down route's 5xx", |r| {
        r[1].ends_with(" down") && r[6] == "100.0% (2 of 2)"
    });
    assert_eq!(
        down[4], "down.default.svc.cluster.local:80 (100%)",
        "{down:?}"
    );
    wait_row(b, "routes", "the frontend route's requests", |r| {
        r[2] == "exact /" && r[5] == "4" && r[6] == "0.0% (0 of 4)"
    });
    let refused = wait_row(b, "refusals", "the refused handshake", |r| {
        r[0].starts_with("no_client_cert") && r[2] == "1"
    });
    assert_eq!(refused[1], "default/foocorp-gateway/https-frontend");
}

/// Markup from the config is text on the page, never elements.
fn markup_is_text(b: &Browser) {
    let markup = b.eval(
        "return {elements: document.querySelectorAll('#injected-name, #injected-match').length, text: document.getElementById('routes').textContent};",
    );
    assert_eq!(markup["elements"], 0, "{markup:#}");
    let text = markup["text"].as_str().unwrap();
    assert!(
        text.contains("<img id=injected-name src=x>")
            && text.contains("/<b id=injected-match>x</b>"),
        "{text}"
    );
}

/// The page's reader of the text format, on label values with escapes
/// (a backslash, a quote, a newline) and on lines that are not samples.
fn parser_reads_escapes(b: &Browser) {
    let v = b.eval(
        r#"const p = window.gatehouseMetrics.parseSample;
        return [p(String.raw`gatehouse_requests_total{server="a\\b",route="q\"x\ny"} 7`), p('x{a="b"'), p('y{} NaN')];"#,
    );
    assert_eq!(v[0]["name"], "gatehouse_requests_total", "{v}");
    assert_eq!(v[0]["labels"]["server"], "a\\b", "{v}");
    assert_eq!(v[0]["labels"]["route"], "q\"x\ny", "{v}");
    assert_eq!(v[0]["value"], 7, "{v}");
    assert_eq!(v[1], Value::Null, "{v}");
    assert_eq!(v[2], Value::Null, "{v}");
}

/// A rotation shows in the same page (no navigation, no reload), in the
/// server's card and in the events.
fn rotation_shows(w: &Walkthrough, b: &Browser) {
    b.eval("window.gatehouseSamePage = true; return null;");
    let rotated = rotate_frontend(w);
    assert_ne!(rotated, served_serial(w, FRONTEND));
    wait_shown(b, FRONTEND, &rotated);
    assert_eq!(b.eval("return window.gatehouseSamePage === true;"), true);
    let pushed = wait_row(b, "events", "the rotation's push", |r| {
        r[1] == "frontend-credential" && r[2] == "pushed"
    });
    assert!(pushed.iter().all(|c| !c.contains("PRIVATE KEY")));
}

/// A screenshot of the viewport at 1280×800 into `docs/dashboard.png`.
fn save_screenshot(b: &Browser) {
    let wide = overflows(b);
    assert!(wide["scroll"].as_u64() <= wide["client"].as_u64(), "{wide}");
    let png = b.screenshot();
    assert_eq!(&png[1..4], b"PNG");
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
    std::fs::write(&docs, &png).unwrap();
}

#[test]
fn dashboard_shows_both_hosts_and_a_rotation_without_reload() {
    let w = Walkthrough::new();
    w.site.apply("routes.yaml", &frontend_vs_with(EXTRA_ROUTES));
    w.site.apply(
        "down.yaml",
        &service_entry("down", "down.default.svc.cluster.local", closed_port()),
    );
    let gw = w.start();
    let b = Browser::start();
    b.viewport(1280, 800, false);
    b.goto(&format!("http://{}/ui", gw.admin()));
    assert_eq!(b.eval("return document.title;"), "gatehouse dashboard");
    wait_shown(&b, FRONTEND, &served_serial(&w, FRONTEND));
    let cards = wait_shown(&b, INVENTORY, &served_serial(&w, INVENTORY));
    assert_eq!(cards.as_array().unwrap().len(), 2, "{cards:#}");
    markup_is_text(&b);
    parser_reads_escapes(&b);
    traffic_shows(&w, &b, gw.port(443));
    rotation_shows(&w, &b);
    expiry_colours(&w, &b);
    save_screenshot(&b);

    // A phone's width: everything wraps, nothing scrolls sideways.
    b.viewport(390, 844, true);
    let narrow = poll("the phone layout", SHOWN_WITHIN, || {
        let v = overflows(&b);
        (v["inner"] == 390).then_some(v)
    });
    assert!(
        narrow["scroll"].as_u64() <= narrow["client"].as_u64(),
        "horizontal scroll at 390px: {narrow}"
    );
}

/// `proxy-config` and `proxy-status` send the token of
/// `--admin-token-file` (in the site as `admin.token`), and say which flag
/// is missing when it is not given.
fn cli_sends_the_token(w: &Walkthrough, admin: std::net::SocketAddr) {
    let admin_arg = admin.to_string();
    let without = w
        .site
        .cli(&["proxy-config", "secret", "--admin", &admin_arg]);
    assert!(
        without.one_error().contains("--admin-token-file"),
        "{without:?}"
    );
    let with = w.site.cli(&[
        "--admin-token-file",
        "admin.token",
        "proxy-config",
        "secret",
        "--admin",
        &admin_arg,
    ]);
    assert!(with.ok().stdout.contains("frontend-credential"), "{with:?}");
    let token_flag = ["--admin-token-file", "admin.token"];
    let all = w.site.cli(
        &[
            &token_flag[..],
            &["proxy-config", "all", "-o", "json", "--admin", &admin_arg],
        ]
        .concat(),
    );
    let dump: serde_json::Value = serde_json::from_str(&all.ok().stdout).unwrap();
    assert_eq!(dump["listeners"][0]["servers"].as_array().unwrap().len(), 2);
    let status = w
        .site
        .cli(&[&token_flag[..], &["proxy-status", "--admin", &admin_arg]].concat());
    assert!(status.ok().stdout.contains("SYNCED"), "{status:?}");
}

#[test]
fn admin_token_guards_everything_but_probes_and_the_page() {
    let w = Walkthrough::new();
    // Not on loopback and no token: refused before anything listens.
    let out = w.site.cli(&["run", "--admin", "0.0.0.0:0"]);
    let line = out.one_error();
    assert!(
        line.contains("--admin 0.0.0.0:0 is not on loopback")
            && line.contains("--admin-token-file"),
        "{line}"
    );

    // A token file that is too short to be a secret: refused, and not quoted.
    w.site.write("short.token", "hunter2\n");
    let out = w.site.cli(&[
        "run",
        "--admin",
        "127.0.0.1:0",
        "--admin-token-file",
        "short.token",
    ]);
    let line = out.one_error();
    assert!(
        line.contains("at least 16") && !line.contains("hunter2"),
        "{line}"
    );

    let token = "7f3c0e9a51d24b6c8e1f2a3b4c5d6e7f";
    w.site.write("admin.token", format!("{token}\n"));
    let gw = w
        .site
        .start_gateway_with(&[443], &["--admin-token-file", "admin.token"]);
    let admin = gw.admin();
    let bearer = format!("Authorization: Bearer {token}");
    for path in ["/credentials", "/config_dump", "/status", "/listeners"] {
        let (status, head, body) = http_get_with(admin, path, &[]).unwrap();
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{path}: {head}"
        );
        assert!(!body.contains(token));
        let wrong = http_get_with(
            admin,
            path,
            &["Authorization: Bearer wrong-token-0123456789"],
        );
        assert_eq!(wrong.unwrap().0, 401, "{path} with a wrong token");
        let (status, _, body) = http_get_with(admin, path, &[&bearer]).unwrap();
        assert_eq!(status, 200, "{path} with the token: {body}");
    }
    let (_, _, creds) = http_get_with(admin, "/credentials", &[&bearer]).unwrap();
    assert!(creds.contains("frontend-credential"), "{creds}");
    // Probes and the page's static shell need no token.
    for path in [
        "/ready",
        "/healthz/ready",
        "/ui",
        "/ui/app.js",
        "/ui/scrape.js",
        "/ui/app.css",
    ] {
        let (status, body) = http_get(admin, path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, head, _) = http_get_with(admin, "/ui", &[]).unwrap();
    assert!(
        head.contains("content-security-policy: default-src 'self';"),
        "{head}"
    );

    cli_sends_the_token(&w, admin);
    assert!(!gw.log().contains(token), "the token reached the log");
}

#[test]
fn dashboard_asks_for_the_token_and_keeps_it_in_the_tab() {
    let w = Walkthrough::new();
    let token = "c0ffee0123456789abcdef0123456789";
    w.site.write("admin.token", token);
    let gw = w
        .site
        .start_gateway_with(&[443], &["--admin-token-file", "admin.token"]);
    let b = Browser::start();
    b.goto(&format!("http://{}/ui", gw.admin()));
    poll("the token form", SHOWN_WITHIN, || {
        (b.eval("return document.getElementById('login').hidden;") == false).then_some(())
    });
    let typed = format!(
        "document.getElementById('token').value = '{token}'; document.getElementById('login').requestSubmit(); return null;"
    );
    b.eval(&typed);
    wait_shown(&b, FRONTEND, &served_serial(&w, FRONTEND));
    let kept = b.eval("return window.sessionStorage.getItem('gatehouse-admin-token');");
    assert_eq!(kept, token);
}

/// What `curl` gets from the admin endpoint for `path` when it names
/// `host` in its Host header: the status code.
fn admin_status_for_host(admin: std::net::SocketAddr, path: &str, host: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["-H", &format!("Host: {host}")])
        .arg(format!("http://{admin}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn without_a_token_the_admin_endpoint_answers_only_for_an_address_or_localhost() {
    let w = Walkthrough::new();
    let gw = w.site.start_gateway(&[443]);
    let admin = gw.admin();
    let port = admin.port();
    // A page whose own name resolves to 127.0.0.1 (DNS rebinding) sends
    // its own name: refused, so the browser never reads the config.
    for path in ["/config_dump", "/metrics", "/credentials"] {
        let evil = admin_status_for_host(admin, path, &format!("rebind.example:{port}"));
        assert_eq!(evil, "403", "{path} for rebind.example");
        for host in [admin.to_string(), format!("localhost:{port}")] {
            assert_eq!(
                admin_status_for_host(admin, path, &host),
                "200",
                "{path} for {host}"
            );
        }
    }
    // The probes answer whatever the name: a kubelet names the pod's address.
    assert_eq!(
        admin_status_for_host(admin, "/ready", "rebind.example"),
        "200"
    );
}
