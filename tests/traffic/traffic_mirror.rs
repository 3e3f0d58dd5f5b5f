//! VirtualService `mirror`, `mirrorPercentage` and `mirrors`, through the
//! walkthrough: the shadow backend gets a copy of the request with `Host`
//! suffixed `-shadow` (and the primary's request id) while the client gets
//! the primary's answer; a shadow that answers after 2 s or is down does
//! not slow the primary (medians of paired runs with and without the
//! mirror, in one test); `mirrorPercentage: 50` copies a share of 400
//! requests within a sound bound; the Istio "Mirroring" task's route shape
//! applies with no warning.

use std::time::{Duration, Instant};

use crate::support::{
    self, Backend, FRONTEND, Walkthrough, client::Conn, frontend_vs_with, service_entry,
};

/// An `http:` entry for `prefix` to `v1.example.com` in the shape of
/// Istio's Mirroring task (route weight 100, mirror, mirrorPercentage),
/// mirrored to `mirror` at `percent`.
fn mirrored(prefix: &str, mirror: &str, percent: &str) -> String {
    format!(
        "  - match:
    - uri:
        prefix: {prefix}
    route:
    - destination:
        host: v1.example.com
        port:
          number: 80
      weight: 100
    mirror:
      host: {mirror}
      port:
        number: 80
    mirrorPercentage:
      value: {percent}
"
    )
}

/// The walkthrough with `/plain` to `v1.example.com`, `/mirrored` to it
/// mirrored to `v2.example.com`, `/half` mirrored at 50% to
/// `v3.example.com`, and `/down` mirrored to a port nobody listens on.
struct World {
    w: Walkthrough,
    v1: Backend,
    v2: Backend,
    v3: Backend,
}

fn world(v2: Backend) -> World {
    let w = Walkthrough::new();
    let v1 = Backend::start("v1");
    let v3 = Backend::start("v3");
    let routes = format!(
        "{}{}{}{}  - match:
    - uri:
        prefix: /plain
    route:
    - destination:
        host: v1.example.com
",
        mirrored("/mirrored", "v2.example.com", "100.0"),
        mirrored("/half", "v3.example.com", "50"),
        mirrored("/down", "down.example.com", "100"),
        // `mirrors`: two copies of each request.
        "  - match:
    - uri:
        prefix: /both
    route:
    - destination:
        host: v1.example.com
    mirrors:
    - destination:
        host: v2.example.com
    - destination:
        host: v3.example.com
      percentage:
        value: 100
",
    );
    let out = w.site.apply("traffic/vs.yaml", &frontend_vs_with(&routes));
    assert_eq!(out.stderr, "", "the mirror routes apply without a warning");
    let entries = [
        service_entry("v1", "v1.example.com", v1.port()),
        service_entry("v2", "v2.example.com", v2.port()),
        service_entry("v3", "v3.example.com", v3.port()),
        service_entry("down", "down.example.com", support::closed_port()),
    ]
    .join("---\n");
    w.site.apply("traffic/se.yaml", &entries);
    World { w, v1, v2, v3 }
}

/// Waits until `b` has seen `n` requests and no more come for 300 ms.
#[track_caller]
fn settled(b: &Backend, at_least: usize) -> usize {
    let mut last = usize::MAX;
    support::poll_every(Duration::from_millis(300), Duration::from_secs(10), || {
        let now = b.hits();
        let done = now >= at_least && now == last;
        last = now;
        done.then_some(now)
    })
    .unwrap_or_else(|| panic!("the mirror did not settle: {} hits", b.hits()))
}

#[test]
fn the_shadow_gets_a_copy_with_a_shadow_host() {
    let world = world(Backend::start("v2"));
    let gw = world.w.start();
    let out = world
        .w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/mirrored/x?q=1")
        .header("x-team: ux")
        .run();
    // The client gets the primary's answer.
    out.assert_body("v1");
    settled(&world.v2, 1);
    let (primary, copy) = (world.v1.last(), world.v2.last());
    assert_eq!(primary.one("host"), FRONTEND);
    assert_eq!(copy.one("host"), format!("{FRONTEND}-shadow"));
    assert_eq!(
        (copy.method.as_str(), copy.path.as_str()),
        ("GET", "/mirrored/x?q=1")
    );
    assert_eq!(copy.one("x-team"), "ux");
    assert_eq!(copy.one("x-request-id"), primary.one("x-request-id"));
    assert_eq!(world.v3.hits(), 0);
    // The admin view shows the mirrors and their clusters.
    let dump = gw.config_dump();
    let half = with_key(&dump, "mirrors")
        .into_iter()
        .find(|r| r["match"][0].as_str().is_some_and(|m| m.contains("/half")))
        .unwrap_or_else(|| panic!("no /half route in {dump}"));
    assert_eq!(
        half["mirrors"],
        serde_json::json!([{"host": "v3.example.com", "port": 80, "percent": 50.0}])
    );
    assert!(dump.to_string().contains("outbound|80||v3.example.com"));
    // A POST body is copied too (it is small, so it was held).
    world.w.site.write("body.txt", "a=1&b=2");
    world
        .w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/both")
        .arg("--data-binary")
        .arg("@body.txt")
        .run()
        .assert_body("v1");
    settled(&world.v2, 2);
    settled(&world.v3, 1);
    for copy in [world.v2.last(), world.v3.last()] {
        assert_eq!(copy.method, "POST");
        assert_eq!(copy.one("content-length"), "7");
    }
}

/// Every object under `v` that has `key`.
pub(super) fn with_key<'a>(v: &'a serde_json::Value, key: &str) -> Vec<&'a serde_json::Value> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(m) => {
            if m.contains_key(key) {
                out.push(v);
            }
            for x in m.values() {
                out.extend(with_key(x, key));
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                out.extend(with_key(x, key));
            }
        }
        _ => {}
    }
    out
}

/// The median of `v`, in place.
fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn a_slow_or_down_shadow_does_not_delay_the_primary() {
    let world = world(Backend::slow("v2", Duration::from_secs(2)));
    let gw = world.w.start();
    let addr = ([127, 0, 0, 1], gw.port(443)).into();
    let target = world.w.site.client(FRONTEND).target(addr);
    let mut conn = Conn::open(&target).unwrap();
    let mut timed = |path: &str| {
        let started = Instant::now();
        let (status, body) = conn.get_path(path).unwrap();
        assert_eq!((status, body.as_str()), (200, "v1\n"), "{path}");
        started.elapsed()
    };
    // Warm up the upstream connections, then pair the runs.
    timed("/plain");
    timed("/mirrored");
    let (mut plain, mut with_mirror, mut with_down) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        plain.push(timed("/plain"));
        with_mirror.push(timed("/mirrored"));
        with_down.push(timed("/down"));
    }
    let (plain, with_mirror, with_down) = (
        median(&mut plain),
        median(&mut with_mirror),
        median(&mut with_down),
    );
    eprintln!(
        "medians: no mirror {plain:?}, slow mirror {with_mirror:?}, down mirror {with_down:?}"
    );
    // The shadow takes 2 s per copy; the primary must not wait for any.
    for (what, m) in [("slow mirror", with_mirror), ("down mirror", with_down)] {
        assert!(
            m < plain + Duration::from_millis(50) && m < Duration::from_millis(500),
            "{what}: median {m:?} against {plain:?} without a mirror"
        );
    }
    // The copies did reach the slow shadow.
    support::poll("copies at the slow shadow", Duration::from_secs(10), || {
        (world.v2.hits() >= 16).then_some(())
    });
}

#[test]
fn mirror_percentage_copies_its_share() {
    let world = world(Backend::start("v2"));
    let gw = world.w.start();
    let addr = ([127, 0, 0, 1], gw.port(443)).into();
    let target = world.w.site.client(FRONTEND).target(addr);
    let mut conn = Conn::open(&target).unwrap();
    let n = 400;
    for _ in 0..n {
        let (status, _) = conn.get_path("/half").unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(world.v1.hits(), n);
    let copies = settled(&world.v3, 1);
    // Binomial(400, 0.5): mean 200, sd 10; 5 sd either side fails once
    // in about 1.7 million runs.
    assert!((150..=250).contains(&copies), "{copies} copies of {n}");
}

/// Istio's "Mirroring" task as published (the `httpbin` DestinationRule
/// with subsets `v1` and `v2`; all traffic to `v1`, mirrored 100 % to
/// `v2`), bound to the walkthrough's gateway and host: `v1`'s answer
/// reaches the client, `v2` gets the copy. The two versions are one
/// ServiceEntry host whose endpoints carry their pods' `version` labels.
#[test]
fn the_istio_mirroring_task_with_its_subsets() {
    let w = Walkthrough::new();
    let (v1, v2) = (Backend::start("httpbin v1"), Backend::start("httpbin v2"));
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
spec:
  hosts: [httpbin.default.svc.cluster.local]
  ports:
  - {{number: 8000, name: http, protocol: HTTP}}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {{http: {}}}
    labels: {{app: httpbin, version: v1}}
  - address: 127.0.0.1
    ports: {{http: {}}}
    labels: {{app: httpbin, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
spec:
  hosts:
  - frontend.foocorp.com
  gateways:
  - foocorp-gateway
  http:
  - route:
    - destination:
        host: httpbin
        subset: v1
      weight: 100
    mirror:
      host: httpbin
      subset: v2
    mirrorPercentage:
      value: 100.0
",
        v1.port(),
        v2.port()
    );
    let applied = w.site.apply("task/mirroring.yaml", &yaml);
    assert_eq!(applied.stderr, "", "the task warned");
    let gw = w.start();
    for _ in 0..4 {
        w.site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .path("/headers")
            .run()
            .assert_body("httpbin v1");
    }
    assert_eq!(settled(&v2, 4), 4);
    assert_eq!(v1.hits(), 4);
    assert_eq!(v2.last().one("host"), format!("{FRONTEND}-shadow"));
    let dump = gw.config_dump().to_string();
    assert!(
        dump.contains("outbound|8000|v2|httpbin.default.svc.cluster.local"),
        "{dump}"
    );
}
