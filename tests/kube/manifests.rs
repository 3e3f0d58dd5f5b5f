//! `deploy/kubernetes/` applied server-side to a real API server and read
//! back, checked against `gatehouse run` and the Dockerfile; its RBAC in
//! `rbac`.

mod rbac;

use crate::support::kube::ApiServer;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

/// The manifests as `kubectl kustomize` renders them. The PodDisruptionBudget
/// is `policy/v1` (every supported cluster); a server that does not serve
/// it (the 1.20 test server) gets the same object as `policy/v1beta1`.
fn rendered(api: &ApiServer) -> String {
    let yaml = api.kubectl(&["kustomize", DEPLOY]).ok().stdout;
    let versions = api.kubectl(&["api-versions"]).ok().stdout;
    if versions.lines().any(|v| v == "policy/v1") {
        return yaml;
    }
    let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget";
    assert!(
        yaml.contains(pdb),
        "no policy/v1 PodDisruptionBudget in:\n{yaml}"
    );
    yaml.replace(pdb, "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget")
}

/// `kubectl get KIND NAME -n istio-system -o jsonpath=PATH`.
fn get(api: &ApiServer, what: &[&str], path: &str) -> String {
    let jsonpath = format!("jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-n", "istio-system", "-o", &jsonpath]);
    api.kubectl(&args).ok().stdout
}

#[test]
fn manifests_apply_server_side_and_read_back() {
    let api = ApiServer::start();
    let yaml = rendered(&api);
    let out = api.apply(&yaml);
    for object in [
        "namespace/istio-system",
        "serviceaccount/gatehouse",
        "role.rbac.authorization.k8s.io/gatehouse",
        "rolebinding.rbac.authorization.k8s.io/gatehouse",
        "clusterrole.rbac.authorization.k8s.io/gatehouse",
        "clusterrolebinding.rbac.authorization.k8s.io/gatehouse",
        "deployment.apps/gatehouse",
        "service/gatehouse",
        "poddisruptionbudget.policy/gatehouse",
        "gatewayclass.gateway.networking.k8s.io/gatehouse",
    ] {
        assert!(
            out.stdout.contains(&format!("{object} serverside-applied")),
            "{object} not applied:\n{}",
            out.stdout
        );
    }
    // Applying again changes nothing and conflicts with nothing.
    api.apply(&yaml);

    assert_deployment(&api);
    assert_wiring(&api);
    assert_grace_period_covers_prestop_and_drain(&api);
    let svc = ["service", "gatehouse"];
    assert_eq!(get(&api, &svc, "{.spec.type}"), "LoadBalancer");
    assert_eq!(get(&api, &svc, "{.spec.ports[0].port}"), "443");
    assert_eq!(
        get(&api, &["pdb", "gatehouse"], "{.spec.minAvailable}"),
        "1"
    );
    assert_eq!(
        get(
            &api,
            &["gatewayclass", "gatehouse"],
            "{.spec.controllerName}"
        ),
        "gatehouse.io/gateway-controller"
    );
}

/// The Deployment as the API server stored it: what the task asks of it.
fn assert_deployment(api: &ApiServer) {
    let deploy = ["deployment", "gatehouse"];
    assert_eq!(get(api, &deploy, "{.spec.replicas}"), "2");
    let pod = "{.spec.template.spec";
    assert_eq!(
        get(api, &deploy, &format!("{pod}.serviceAccountName}}")),
        "gatehouse"
    );
    assert_eq!(
        get(
            api,
            &deploy,
            &format!("{pod}.securityContext.runAsNonRoot}}")
        ),
        "true"
    );
    let c = format!("{pod}.containers[0]");
    assert_eq!(
        get(
            api,
            &deploy,
            &format!("{c}.securityContext.readOnlyRootFilesystem}}")
        ),
        "true"
    );
    assert_eq!(
        get(api, &deploy, &format!("{c}.readinessProbe.httpGet.path}}")),
        "/ready"
    );
    assert_eq!(
        get(
            api,
            &deploy,
            &format!("{c}.env[0].valueFrom.fieldRef.fieldPath}}")
        ),
        "metadata.namespace"
    );
    assert!(
        !get(
            api,
            &deploy,
            &format!("{c}.lifecycle.preStop.exec.command}}")
        )
        .is_empty()
    );
    let args = get(api, &deploy, &format!("{c}.args}}"));
    for arg in [
        "--store=kube:in-cluster",
        "--namespace=$(POD_NAMESPACE)",
        "--cache=",
    ] {
        assert!(args.contains(arg), "{arg} not in the args: {args}");
    }
}

/// The Service, the PodDisruptionBudget and the probes reach the pods the
/// Deployment makes, on the ports gatehouse is told to listen on.
fn assert_wiring(api: &ApiServer) {
    let deploy = ["deployment", "gatehouse"];
    let labels = get(api, &deploy, "{.spec.template.metadata.labels}");
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    for (what, path) in [
        (["service", "gatehouse"], "{.spec.selector}"),
        (["pdb", "gatehouse"], "{.spec.selector.matchLabels}"),
        (["deployment", "gatehouse"], "{.spec.selector.matchLabels}"),
    ] {
        let selector: serde_json::Value = serde_json::from_str(&get(api, &what, path)).unwrap();
        let selector = selector.as_object().unwrap();
        assert!(!selector.is_empty(), "{what:?} selects everything");
        for (k, v) in selector {
            assert_eq!(
                &labels[k], v,
                "{what:?} selects {k}={v}, the pods have {labels}"
            );
        }
    }
    let c = "{.spec.template.spec.containers[0]";
    let port = |name: &str| {
        get(
            api,
            &deploy,
            &format!("{c}.ports[?(@.name==\"{name}\")].containerPort}}"),
        )
    };
    let args = get(api, &deploy, &format!("{c}.args}}"));
    let (https, admin) = (port("https"), port("admin"));
    assert!(
        !https.is_empty() && !admin.is_empty(),
        "no https or admin container port"
    );
    assert!(
        args.contains(&format!("--listen=443=0.0.0.0:{https}")),
        "{args}"
    );
    assert!(args.contains(&format!("--admin=0.0.0.0:{admin}")), "{args}");
    assert_eq!(
        get(
            api,
            &["service", "gatehouse"],
            "{.spec.ports[0].targetPort}"
        ),
        "https"
    );
    assert_eq!(
        get(api, &deploy, &format!("{c}.readinessProbe.httpGet.port}}")),
        "admin"
    );
    // The admin token file is the Secret's key, mounted where the flag says.
    let mount = get(
        api,
        &deploy,
        &format!("{c}.volumeMounts[?(@.name==\"admin-token\")].mountPath}}"),
    );
    assert!(
        args.contains(&format!("--admin-token-file={mount}/token")),
        "{args}"
    );
}

/// The drain outlasts nothing: SIGTERM comes after preStop, and the kubelet
/// kills at terminationGracePeriodSeconds, counted from the start of preStop.
fn assert_grace_period_covers_prestop_and_drain(api: &ApiServer) {
    let deploy = ["deployment", "gatehouse"];
    let grace: u64 = get(
        api,
        &deploy,
        "{.spec.template.spec.terminationGracePeriodSeconds}",
    )
    .parse()
    .unwrap();
    let c = "{.spec.template.spec.containers[0]";
    let pre_stop = get(
        api,
        &deploy,
        &format!("{c}.lifecycle.preStop.exec.command[1]}}"),
    );
    let pre_stop: u64 = pre_stop.parse().unwrap();
    let args = get(api, &deploy, &format!("{c}.args}}"));
    let drain = args
        .split("--drain-timeout=")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no --drain-timeout=Ns in {args}"));
    assert!(
        grace > pre_stop + drain,
        "terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + drain {drain}"
    );
}

/// Every flag the Deployment passes is a flag of this build's `gatehouse run`.
#[test]
fn deployment_flags_exist_in_gatehouse_run() {
    let mut cmd = crate::support::command(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["run", "--help"]);
    let help = crate::support::run_bounded(cmd, crate::support::COMMAND_TIMEOUT)
        .ok()
        .stdout;
    let yaml = std::fs::read_to_string(format!("{DEPLOY}/deployment.yaml")).unwrap();
    let flags: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| f.split('=').next().unwrap())
        .collect();
    assert!(flags.len() >= 8, "too few flags found: {flags:?}");
    for flag in flags {
        assert!(
            help.contains(&format!("--{flag} ")),
            "deployment.yaml passes --{flag}, which `gatehouse run` does not know"
        );
    }
}

/// The image the Dockerfile builds runs as the user the Deployment
/// requires (runAsNonRoot needs a numeric USER), and exposes the ports the
/// Deployment names.
#[test]
fn dockerfile_user_and_ports_match_the_deployment() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    let deployment = std::fs::read_to_string(format!("{DEPLOY}/deployment.yaml")).unwrap();
    let last = |prefix: &str| -> String {
        dockerfile
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .next_back()
            .unwrap_or_else(|| panic!("no {prefix} in the Dockerfile"))
            .trim()
            .to_owned()
    };
    let user = last("USER ");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user} is not a numeric non-root uid"
    );
    assert!(
        deployment.contains(&format!("runAsUser: {uid}\n")),
        "runAsUser is not {uid}"
    );
    let exposed = last("EXPOSE ");
    for port in exposed.split_whitespace() {
        assert!(
            deployment.contains(&format!("containerPort: {port}\n")),
            "the Dockerfile exposes {port}, the Deployment has no such containerPort"
        );
    }
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/gatehouse\"]"),
        "the image's entrypoint is not gatehouse"
    );
    assert!(
        deployment.contains("        - run\n"),
        "the Deployment does not run `gatehouse run`"
    );
}
