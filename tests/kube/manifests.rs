//! `deploy/kubernetes/` applied server-side to a real API server, read
//! back, and its RBAC checked with `kubectl auth can-i` as the
//! ServiceAccount the Deployment runs as.

use crate::support::kube::{ApiServer, GATEHOUSE_SA};

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

/// Only the RBAC of deploy/kubernetes (with its Namespace and
/// ServiceAccount): nothing else is bound on this server. With the CRDs:
/// `kubectl auth can-i` resolves a resource through discovery.
fn rbac_only() -> ApiServer {
    let api = ApiServer::start();
    for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        api.kubectl(&["apply", "--server-side", "-f", &format!("{DEPLOY}/{file}")])
            .ok();
    }
    api
}

/// `kubectl auth can-i VERB RESOURCE [SCOPE]` as the ServiceAccount.
fn can_i(api: &ApiServer, verb: &str, resource: &str, scope: &[&str]) -> bool {
    let mut args = vec!["auth", "can-i", "--as", GATEHOUSE_SA, verb, resource];
    args.extend_from_slice(scope);
    let out = api.kubectl(&args);
    match (out.code, out.stdout.trim()) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!("kubectl auth can-i {verb} {resource} {scope:?}: {out:?}"),
    }
}

const ALL: &[&str] = &["-A"];
const OWN: &[&str] = &["-n", "istio-system"];
const OTHER: &[&str] = &["-n", "default"];

/// What the provider reads, with the scope it reads it in.
const READS: &[(&str, &[&str])] = &[
    ("secrets", OWN),
    ("configmaps", OWN),
    ("gateways.networking.istio.io", ALL),
    ("virtualservices.networking.istio.io", ALL),
    ("destinationrules.networking.istio.io", ALL),
    ("serviceentries.networking.istio.io", ALL),
    ("services", ALL),
    ("endpointslices.discovery.k8s.io", ALL),
    ("gatewayclasses.gateway.networking.k8s.io", ALL),
    ("gateways.gateway.networking.k8s.io", ALL),
    ("httproutes.gateway.networking.k8s.io", ALL),
    ("grpcroutes.gateway.networking.k8s.io", ALL),
    ("tlsroutes.gateway.networking.k8s.io", ALL),
    ("referencegrants.gateway.networking.k8s.io", ALL),
    ("backendtlspolicies.gateway.networking.k8s.io", ALL),
];

#[test]
fn rbac_reads_what_the_provider_needs_and_writes_nothing() {
    let api = rbac_only();
    // One thread per resource: some 130 kubectl runs, mostly waiting.
    std::thread::scope(|threads| {
        for (resource, scope) in READS {
            let api = &api;
            threads.spawn(move || {
                for verb in ["get", "list", "watch"] {
                    assert!(
                        can_i(api, verb, resource, scope),
                        "cannot {verb} {resource} {scope:?}"
                    );
                }
                for verb in ["create", "update", "patch", "delete", "deletecollection"] {
                    assert!(
                        !can_i(api, verb, resource, scope),
                        "can {verb} {resource} {scope:?}"
                    );
                }
            });
        }
    });
    // The Istio kinds in every namespace, one by one too.
    assert!(can_i(
        &api,
        "watch",
        "virtualservices.networking.istio.io",
        &["-n", "ux"]
    ));
    assert!(!can_i(&api, "get", "pods", ALL));
    assert!(!can_i(&api, "list", "namespaces", &[]));
    assert!(!can_i(&api, "*", "*", ALL));
    assert_writes_only_status_and_leases(&api);
}

/// Every rule of the Role and ClusterRole that allows more than reading is
/// on a `/status` subresource or on Leases, and none uses a wildcard.
fn assert_writes_only_status_and_leases(api: &ApiServer) {
    for what in [
        ["clusterrole", "gatehouse", "--all-namespaces"],
        ["role", "gatehouse", "--namespace=istio-system"],
    ] {
        let out = api
            .kubectl(&["get", what[0], what[1], what[2], "-o", "json"])
            .ok();
        let role: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let rules = role["rules"].as_array().unwrap();
        assert!(!rules.is_empty(), "{} has no rules", what[0]);
        for rule in rules {
            let strings = |field: &str| -> Vec<String> {
                rule[field]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (verbs, resources) = (strings("verbs"), strings("resources"));
            assert!(
                !verbs.contains(&"*".to_owned()) && !resources.contains(&"*".to_owned()),
                "wildcard in {rule}"
            );
            let writes = verbs
                .iter()
                .any(|v| !["get", "list", "watch"].contains(&v.as_str()));
            let allowed = resources
                .iter()
                .all(|r| r.ends_with("/status") || r == "leases");
            assert!(
                !writes || allowed,
                "{} writes more than status: {rule}",
                what[0]
            );
        }
    }
}

#[test]
fn rbac_reads_secrets_only_in_its_own_namespace() {
    let api = rbac_only();
    assert!(can_i(&api, "list", "secrets", OWN));
    assert!(!can_i(&api, "get", "secrets", OTHER));
    assert!(!can_i(&api, "list", "secrets", OTHER));
    assert!(!can_i(&api, "get", "secrets", ALL));
    assert!(!can_i(&api, "list", "secrets", ALL));
    assert!(!can_i(&api, "create", "secrets", OWN));
    assert!(!can_i(&api, "patch", "secrets", OWN));

    // What the provider sees: its own namespace's Secrets, and Forbidden
    // for another's.
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "default",
        "--from-literal=k=v",
    ])
    .ok();
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "mine",
        "-n",
        "istio-system",
        "--from-literal=k=v",
    ])
    .ok();
    let own = api
        .kubectl(&[
            "get",
            "secrets",
            "-n",
            "istio-system",
            "--as",
            GATEHOUSE_SA,
            "-o",
            "name",
        ])
        .ok();
    assert!(own.stdout.contains("secret/mine"), "{own:?}");
    let other = api.kubectl(&["get", "secret", "s", "-n", "default", "--as", GATEHOUSE_SA]);
    assert_eq!(other.code, Some(1), "{other:?}");
    assert!(
        other.stderr.contains("Forbidden")
            && other.stderr.contains("cannot get resource \"secrets\""),
        "{other:?}"
    );
}

#[test]
fn rbac_writes_only_gateway_api_status_and_its_lease() {
    let api = rbac_only();
    for kind in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "grpcroutes",
        "tlsroutes",
        "backendtlspolicies",
    ] {
        let resource = format!("{kind}.gateway.networking.k8s.io");
        for verb in ["update", "patch"] {
            let status = [ALL, &["--subresource", "status"]].concat();
            assert!(
                can_i(&api, verb, &resource, &status),
                "cannot {verb} {resource}/status"
            );
        }
    }
    let status = [ALL, &["--subresource", "status"]].concat();
    assert!(!can_i(
        &api,
        "patch",
        "referencegrants.gateway.networking.k8s.io",
        &status
    ));
    assert!(!can_i(&api, "patch", "gateways.networking.istio.io", ALL));
    assert!(!can_i(
        &api,
        "patch",
        "gateways.networking.istio.io",
        &status
    ));
    assert!(!can_i(
        &api,
        "patch",
        "gateways.gateway.networking.k8s.io",
        ALL
    ));

    for verb in ["get", "create", "update"] {
        assert!(
            can_i(&api, verb, "leases.coordination.k8s.io", OWN),
            "cannot {verb} leases"
        );
    }
    assert!(!can_i(&api, "delete", "leases.coordination.k8s.io", OWN));
    assert!(!can_i(&api, "create", "leases.coordination.k8s.io", OTHER));
}

/// The ServiceAccount's own token (not impersonation): what the provider
/// in the Deployment sees.
#[test]
fn service_account_token_reads_own_secrets_and_is_forbidden_elsewhere() {
    let api = rbac_only();
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "default",
        "--from-literal=k=v",
    ])
    .ok();
    let sa = api.kubeconfig_service_account("istio-system", "gatehouse");
    let whoami = api.kubectl_with(&sa, &["get", "secrets", "-n", "default"]);
    assert_eq!(whoami.code, Some(1), "{whoami:?}");
    assert!(
        whoami.stderr.contains(
            "User \"system:serviceaccount:istio-system:gatehouse\" cannot list resource \"secrets\""
        ),
        "{whoami:?}"
    );
    let own = api.kubectl_with(&sa, &["get", "secrets", "-n", "istio-system"]);
    assert_eq!(own.code, Some(0), "{own:?}");
    let vs = api.kubectl_with(&sa, &["get", "virtualservices.networking.istio.io", "-A"]);
    assert_eq!(vs.code, Some(0), "{vs:?}");
    let write = api.kubectl_with(&sa, &["create", "configmap", "x", "-n", "istio-system"]);
    assert!(
        write
            .stderr
            .contains("cannot create resource \"configmaps\""),
        "{write:?}"
    );
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
