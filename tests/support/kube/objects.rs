//! Objects a test needs that nothing on the test server makes by itself:
//! namespaces, and Services with EndpointSlices pointing at local
//! backends (no controller-manager runs, and core Endpoints refuse
//! loopback addresses).

use std::net::SocketAddr;

use super::ApiServer;

impl ApiServer {
    /// Creates namespace `ns` unless it exists.
    pub fn namespace(&self, ns: &str) {
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        ));
    }

    /// The EndpointSlice API version the server serves: `discovery.k8s.io/v1`,
    /// or `discovery.k8s.io/v1beta1` before 1.21 (the test server).
    pub fn endpoint_slice_version(&self) -> &'static str {
        let versions = self.kubectl(&["api-versions"]).ok().stdout;
        if versions.lines().any(|v| v == "discovery.k8s.io/v1") {
            "discovery.k8s.io/v1"
        } else {
            "discovery.k8s.io/v1beta1"
        }
    }

    /// A Service `name.ns` (no selector) with port `port` named `http`, and
    /// one EndpointSlice `name-gatehouse-test` with the `backends`, all
    /// ready, on their own ports (one port for all: the first backend's).
    /// Creates the namespace. Applying again replaces the endpoints.
    pub fn service(&self, ns: &str, name: &str, port: u16, backends: &[SocketAddr]) {
        self.namespace(ns);
        let target = backends.first().map_or(port, SocketAddr::port);
        self.apply(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  ports:\n  - name: http\n    port: {port}\n    targetPort: {target}\n    \
             protocol: TCP\n"
        ));
        let ready: Vec<(SocketAddr, bool)> = backends.iter().map(|a| (*a, true)).collect();
        self.endpoint_slice(ns, name, &ready);
    }

    /// The Service's EndpointSlice with `endpoints` (address, ready), on the
    /// first endpoint's port.
    pub fn endpoint_slice(&self, ns: &str, service: &str, endpoints: &[(SocketAddr, bool)]) {
        let port = endpoints.first().map_or(80, |(a, _)| a.port());
        let list: String = endpoints
            .iter()
            .map(|(a, ready)| {
                format!(
                    "- addresses: [\"{}\"]\n  conditions:\n    ready: {ready}\n",
                    a.ip()
                )
            })
            .collect();
        let endpoints = if list.is_empty() {
            "endpoints: []\n".to_owned()
        } else {
            format!("endpoints:\n{list}")
        };
        self.apply(&format!(
            "apiVersion: {}\nkind: EndpointSlice\nmetadata:\n  name: {service}-gatehouse-test\n  \
             namespace: {ns}\n  labels:\n    kubernetes.io/service-name: {service}\n\
             addressType: IPv4\nports:\n- name: http\n  port: {port}\n  protocol: TCP\n{endpoints}",
            self.endpoint_slice_version()
        ));
    }
}
