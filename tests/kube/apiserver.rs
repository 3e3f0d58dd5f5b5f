//! The harness itself: the API server stops and starts again on the same
//! port with the same certificates, tokens and objects, and etcd's history
//! can be compacted away from under an old resourceVersion.

use crate::support::kube::ApiServer;

#[test]
fn restart_keeps_objects_port_and_tokens() {
    let mut api = ApiServer::start_bare();
    let url = api.url().to_owned();
    api.kubectl(&["create", "configmap", "kept", "--from-literal=colour=green"])
        .ok();

    api.stop();
    assert!(!api.ready(), "the API server still answers after stop");
    let down = api.kubectl(&["get", "configmap", "kept"]);
    assert_ne!(down.code, Some(0), "{down:?}");

    api.restart();
    assert_eq!(api.url(), url);
    let back = api
        .kubectl(&["get", "configmap", "kept", "-o", "jsonpath={.data.colour}"])
        .ok();
    assert_eq!(back.stdout, "green");
    // The unprivileged user's token still authenticates: Forbidden, not
    // Unauthorized.
    let user = api.kubectl_as_gatehouse(&["get", "configmap", "kept"]);
    assert!(user.stderr.contains("Forbidden"), "{user:?}");

    // A second restart works the same (the harness now owns the process).
    api.restart();
    assert!(api.ready());
}

#[test]
fn compaction_expires_old_resource_versions() {
    let mut api = ApiServer::start_bare();
    let rv = api
        .kubectl(&[
            "create",
            "configmap",
            "old",
            "--from-literal=v=1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .ok()
        .stdout;
    api.kubectl(&["create", "configmap", "new", "--from-literal=v=2"])
        .ok();
    let compacted = api.compact_etcd();
    assert!(compacted > rv.parse::<u64>().unwrap());

    // etcd itself no longer has that revision.
    let old = api.etcdctl(&["get", "/registry", "--prefix", "--keys-only", "--rev", &rv]);
    assert_ne!(old.code, Some(0), "{old:?}");
    assert!(
        old.stderr.contains("required revision has been compacted"),
        "{old:?}"
    );

    // A client resuming its watch from that resourceVersion, through an API
    // server that restarted meanwhile, is told 410 Expired (and relists).
    api.stop();
    api.restart();
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2"
    );
    let watch = api.kubectl(&["get", "--raw", &path]);
    let said = format!("{}{}", watch.stdout, watch.stderr);
    assert!(
        said.contains("\"code\":410") || said.contains("Expired") || said.contains("Gone"),
        "{watch:?}"
    );
}

#[test]
fn services_and_endpoint_slices_point_at_loopback() {
    let api = ApiServer::start_bare();
    let backend: std::net::SocketAddr = "127.0.0.1:18080".parse().unwrap();
    api.service("ux", "frontend", 80, &[backend]);
    let port = api
        .kubectl(&[
            "get",
            "service",
            "frontend",
            "-n",
            "ux",
            "-o",
            "jsonpath={.spec.ports[0].port}",
        ])
        .ok();
    assert_eq!(port.stdout, "80");
    let slice = api
        .kubectl(&[
            "get",
            "endpointslices",
            "-n",
            "ux",
            "-l",
            "kubernetes.io/service-name=frontend",
            "-o",
            "jsonpath={.items[0].endpoints[0].addresses[0]}:{.items[0].ports[0].port}",
        ])
        .ok();
    assert_eq!(slice.stdout, "127.0.0.1:18080");
    // Not ready: the same slice, replaced.
    api.endpoint_slice("ux", "frontend", &[(backend, false)]);
    let ready = api
        .kubectl(&[
            "get",
            "endpointslice",
            "frontend-gatehouse-test",
            "-n",
            "ux",
            "-o",
            "jsonpath={.endpoints[0].conditions.ready}",
        ])
        .ok();
    assert_eq!(ready.stdout, "false");
}
