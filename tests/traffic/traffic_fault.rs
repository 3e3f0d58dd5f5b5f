//! Fault injection (`http[].fault`) as a client sees it through the
//! walkthrough, with curl: a 100 % delay holds every request at least its
//! `fixedDelay` and a 0 % one none; a 25 % abort answers about a quarter
//! of 2,000 requests with its status (within five percentage points, more
//! than five standard deviations) while the backend sees exactly the
//! rest; the access log says `DI` and `FI`; a gRPC abort is a 200 with
//! `grpc-status`; the Istio "Fault Injection" task's shapes apply without
//! a warning and do what the task says; bad faults are refused at `apply`
//! with the field named and the store unchanged.

use std::time::Duration;

use serde_json::Value;

use crate::support::{FRONTEND, Gateway, Site, Walkthrough, frontend_vs_with, poll};

/// How long a batch of requests may take, all told.
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// An `http:` entry: `prefix` to the frontend backend, with `fault` (the
/// YAML under `fault:`, indented six spaces).
fn faulty(prefix: &str, fault: &str) -> String {
    format!(
        "  - match:
    - uri:
        prefix: {prefix}
    fault:
{fault}    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
"
    )
}

fn delay(fixed: &str, percent: &str) -> String {
    format!(
        "      delay:\n        fixedDelay: {fixed}\n        percentage:\n          value: {percent}\n"
    )
}

fn abort(status: &str, percent: &str) -> String {
    format!("      abort:\n        {status}\n        percentage:\n          value: {percent}\n")
}

/// The walkthrough with `routes` in front of frontend's own, running with
/// the JSON access log.
fn world(routes: &str) -> (Walkthrough, Gateway) {
    let w = Walkthrough::new();
    let applied = w.site.apply("traffic/vs.yaml", &frontend_vs_with(routes));
    assert_eq!(applied.stderr, "", "apply warned");
    let gw = w.site.start_gateway_with(&[443], &["--log-format", "json"]);
    (w, gw)
}

/// The JSON access lines so far (`fields` of each).
fn access_lines(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .map(|v| v["fields"].clone())
        .collect()
}

/// The access lines once there are `n` of them.
fn wait_lines(gw: &Gateway, n: usize) -> Vec<Value> {
    poll("the access lines", Duration::from_secs(20), || {
        let lines = access_lines(gw);
        (lines.len() >= n).then_some(lines)
    })
}

#[test]
fn a_full_delay_holds_every_request_and_none_holds_none() {
    let routes = format!(
        "{}{}",
        faulty("/slow", &delay("200ms", "100")),
        faulty("/never", &delay("200ms", "0"))
    );
    let (w, gw) = world(&routes);
    let port = gw.port(443);
    let curl = || w.site.walkthrough_curl(FRONTEND, port);
    let slow = curl().path("/slow").run_repeated(20, BATCH_TIMEOUT);
    for t in &slow {
        assert_eq!(t.status, 200, "{slow:?}");
        assert!(
            t.time >= Duration::from_millis(200),
            "not delayed: {slow:?}"
        );
    }
    let never = curl().path("/never").run_repeated(50, BATCH_TIMEOUT);
    for t in &never {
        assert_eq!(t.status, 200, "{never:?}");
        assert!(t.time < Duration::from_millis(200), "delayed: {never:?}");
    }
    assert_eq!(w.frontend.hits(), 70);
    let lines = wait_lines(&gw, 70);
    let flags = |prefix: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["path"].as_str().unwrap().starts_with(prefix))
            .map(|l| l["response_flags"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(flags("/slow"), vec!["DI"; 20]);
    assert_eq!(flags("/never"), vec!["-"; 50]);
}

#[test]
fn a_quarter_abort_answers_a_quarter_and_the_backend_sees_the_rest() {
    const N: usize = 2000;
    let (w, gw) = world(&faulty("/flaky", &abort("httpStatus: 503", "25")));
    let port = gw.port(443);
    let transfers = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .path("/flaky")
        .run_repeated(N, BATCH_TIMEOUT);
    let aborted = transfers.iter().filter(|t| t.status == 503).count();
    let passed = transfers.iter().filter(|t| t.status == 200).count();
    assert_eq!(aborted + passed, N, "only 200 and 503 expected");
    // 25 % of 2,000: 500, standard deviation 19.4; five points is 100.
    assert!((400..=600).contains(&aborted), "{aborted} of {N} aborted");
    assert_eq!(w.frontend.hits(), passed, "the backend saw the others");
    let lines = wait_lines(&gw, N);
    let fi: Vec<_> = lines
        .iter()
        .filter(|l| l["response_flags"] == "FI")
        .collect();
    assert_eq!(fi.len(), aborted);
    for l in &fi {
        assert_eq!(l["status"], 503, "{l}");
        assert_eq!(l["upstream"], "-", "an abort has no upstream: {l}");
        assert_eq!(l["upstream_cluster"], "-", "{l}");
    }
    // The abort's answer, as Envoy words it.
    let one = poll("an aborted request", Duration::from_secs(20), || {
        let out = w.site.walkthrough_curl(FRONTEND, port).path("/flaky").run();
        (out.status == 503).then_some(out)
    });
    assert_eq!(one.body, "fault filter abort\n");
}

#[test]
fn a_grpc_abort_is_a_200_with_grpc_status() {
    let (w, gw) = world(&faulty("/grpc", &abort("grpcStatus: UNAVAILABLE", "100")));
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/grpc")
        .http2()
        .header("content-type: application/grpc")
        .run();
    out.assert_status(200);
    assert_eq!(out.http_version, "2");
    assert_eq!(out.header("grpc-status"), Some("14"));
    assert_eq!(out.header("content-type"), Some("application/grpc"));
    assert_eq!(w.frontend.hits(), 0);
}

/// The Fault Injection task's subsets: a DestinationRule as bookinfo's
/// `destination-rule-all.yaml` writes one, and the frontend's endpoint
/// labelled as its v1 Deployment's pods are.
fn task_subsets(w: &crate::support::Walkthrough) {
    let labelled = crate::support::service_entry(
        "frontend",
        "frontend.ux.svc.cluster.local",
        w.frontend.port(),
    )
    .replace(
        "  - address: 127.0.0.1\n",
        "  - address: 127.0.0.1\n    labels:\n      version: v1\n",
    );
    w.site.apply("task/labels.yaml", &labelled);
    let rule = w.site.apply(
        "task/destination-rule.yaml",
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: frontend
spec:
  host: frontend.ux.svc.cluster.local
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
",
    );
    assert_eq!(rule.stderr, "", "the task's DestinationRule warned");
}

/// The Istio "Fault Injection" task's two VirtualServices, as published
/// but for the host, the gateway and a shorter delay, with the subset
/// `v1` its DestinationRule (bookinfo's `destination-rule-all.yaml`
/// shape) defines: the user `jason` is delayed, then aborted with 500;
/// everyone else is served at once.
#[test]
fn the_istio_fault_injection_task_applies_and_behaves() {
    let task = |fault: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
spec:
  hosts:
  - frontend.foocorp.com
  gateways:
  - foocorp-gateway
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    fault:
{fault}    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        subset: v1
  - route:
    - destination:
        host: frontend.ux.svc.cluster.local
        subset: v1
"
        )
    };
    let delay = task(
        "      delay:\n        percentage:\n          value: 100.0\n        fixedDelay: 700ms\n",
    );
    let (w, gw) = world("");
    task_subsets(&w);
    let applied = w.site.apply("task/delay.yaml", &delay);
    assert_eq!(applied.stderr, "", "the task's delay warned");
    let port = gw.port(443);
    let jason = |path: &str| {
        w.site
            .walkthrough_curl(FRONTEND, port)
            .path(path)
            .header("end-user: jason")
    };
    // Wait for the gateway to serve the task's VirtualService.
    poll("the delay served", Duration::from_secs(20), || {
        let t = jason("/").run_repeated(1, BATCH_TIMEOUT)[0];
        (t.time >= Duration::from_millis(700)).then_some(())
    });
    let others = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .run_repeated(5, BATCH_TIMEOUT);
    assert!(
        others
            .iter()
            .all(|t| t.status == 200 && t.time < Duration::from_millis(700)),
        "{others:?}"
    );
    let abort = task(
        "      abort:\n        percentage:\n          value: 100.0\n        httpStatus: 500\n",
    );
    let applied = w.site.apply("task/abort.yaml", &abort);
    assert_eq!(applied.stderr, "", "the task's abort warned");
    let hits = poll("the abort served", Duration::from_secs(20), || {
        let hits = w.frontend.hits();
        let out = jason("/").run();
        (out.status == 500).then_some(hits)
    });
    assert_eq!(
        w.frontend.hits(),
        hits,
        "an aborted request reached the backend"
    );
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(crate::support::FRONTEND_BODY);
}

#[test]
fn bad_faults_are_refused_at_apply_with_the_field_named() {
    let site = Site::new();
    let cases = [
        (
            delay("1s", "100.5"),
            "spec.http[0].fault.delay.percentage.value",
            "percentage 100.5 is not between 0 and 100",
        ),
        (
            abort("httpStatus: 503", "-1"),
            "spec.http[0].fault.abort.percentage.value",
            "percentage -1 is not between 0 and 100",
        ),
        (
            "      delay:\n        percentage:\n          value: 50\n".to_owned(),
            "spec.http[0].fault.delay.fixedDelay",
            "a delay needs fixedDelay",
        ),
        (
            "      abort:\n        percentage:\n          value: 50\n".to_owned(),
            "spec.http[0].fault.abort",
            "an abort needs httpStatus or grpcStatus",
        ),
        (
            abort("httpStatus: 600", "50"),
            "spec.http[0].fault.abort.httpStatus",
            "600 is not an HTTP status (200-599)",
        ),
        (
            abort("grpcStatus: NOT_A_CODE", "50"),
            "spec.http[0].fault.abort.grpcStatus",
            "\"NOT_A_CODE\" is not a gRPC status",
        ),
        (
            delay("soon", "50"),
            "spec.http[0].fault.delay.fixedDelay",
            "\"soon\" is not a duration",
        ),
    ];
    let mut manifests: Vec<(String, &str, &str)> = cases
        .iter()
        .map(|(fault, field, why)| (frontend_vs_with(&faulty("/x", fault)), *field, *why))
        .collect();
    // Only a route that forwards may have a fault, as Istio says.
    let direct = "  - directResponse:\n      status: 200\n    fault:\n      abort:\n        httpStatus: 500\n";
    manifests.push((
        frontend_vs_with(direct),
        "spec.http[0].fault",
        "fault is not allowed with directResponse",
    ));
    for (i, (manifest, field, why)) in manifests.iter().enumerate() {
        let before = site.snapshot();
        let file = format!("bad-{i}.yaml");
        site.write(&file, manifest);
        let out = site.cli(&["apply", "-f", &file]);
        assert_eq!(out.code, Some(1), "{file}: {out:?}");
        let line = out.one_error();
        assert!(
            line.contains(&file) && line.contains(field) && line.contains(why),
            "{file}: {line}"
        );
        assert_eq!(site.snapshot(), before, "{file} changed the store");
    }
}
