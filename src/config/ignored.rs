//! The fields gatehouse accepts but does not apply, so that nothing is
//! silently ignored.
//!
//! Istio's own YAML must apply unchanged, so these fields are accepted and
//! stored; [`fields`] names each one that an object sets, with its exact
//! path and, where gatehouse does something else in its place, what it does.
//! `apply` prints them as warnings, `get -o yaml` and the admin endpoint
//! list them. The list follows what the snapshot compiler, the upstream
//! resolver and the proxy read today: when one of them starts applying a
//! field, its entry here goes. This is a pure function over parsed objects;
//! it never refuses an object (refusing is `validate`'s job).

mod destination_rule;

use std::fmt;

use super::gateway::{Gateway, Server, TlsMode};
use super::service_entry::{Resolution, ServiceEntry, WorkloadEntry};
use super::virtual_service::{HttpMatchRequest, HttpRoute, VirtualService};
use super::{Kind, Resource};

/// One field an object sets that gatehouse does not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// The field's path as errors name it, e.g. `spec.http[0].retries`.
    pub path: String,
    /// What gatehouse does in its place, when it does something.
    pub instead: Option<String>,
}

impl Ignored {
    /// `spec.http[0].retries is not applied by gatehouse`, and what it does
    /// instead after a colon.
    pub fn message(&self) -> String {
        match &self.instead {
            Some(instead) => format!("{} is not applied by gatehouse: {instead}", self.path),
            None => format!("{} is not applied by gatehouse", self.path),
        }
    }
}

/// `VirtualService default/x: spec.http[0].retries is not applied by gatehouse`.
impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}: {}",
            self.kind,
            self.namespace,
            self.name,
            self.message()
        )
    }
}

/// Paths found in one object, with what gatehouse does instead.
#[derive(Default)]
struct Found(Vec<(String, Option<String>)>);

impl Found {
    fn set(&mut self, is_set: bool, path: impl Into<String>) {
        if is_set {
            self.0.push((path.into(), None));
        }
    }

    fn instead(&mut self, path: impl Into<String>, instead: impl Into<String>) {
        self.0.push((path.into(), Some(instead.into())));
    }
}

/// Every field `r` sets that gatehouse accepts but does not apply, in the
/// order they appear in the object.
pub fn fields(r: &Resource) -> Vec<Ignored> {
    let mut found = Found::default();
    match r {
        Resource::Gateway(g) => gateway(g, &mut found),
        Resource::VirtualService(v) => virtual_service(v, &mut found),
        Resource::ServiceEntry(s) => service_entry(s, &mut found),
        Resource::DestinationRule(d) => destination_rule::destination_rule(d, &mut found),
        // Every Secret field gatehouse accepts is used.
        Resource::Secret(_) => {}
        // Cluster state: what discovery does not read is tolerated, not
        // warned about; only FQDN slices go unused.
        Resource::Service(_) => {}
        Resource::EndpointSlice(s) => {
            if s.is_fqdn() {
                found.instead(
                    "addressType",
                    "FQDN endpoints are not used for discovery (only IPv4 and IPv6 slices)",
                );
            }
        }
        Resource::GatewayApi(o) => found.0.extend(super::gateway_api::ignored::fields(o)),
    }
    let meta = r.meta();
    found
        .0
        .into_iter()
        .map(|(path, instead)| Ignored {
            kind: r.kind(),
            namespace: meta.ns().to_owned(),
            name: meta.name.clone(),
            path,
            instead,
        })
        .collect()
}

fn gateway(g: &Gateway, f: &mut Found) {
    for (i, s) in g.spec.servers.iter().enumerate() {
        server(s, &format!("spec.servers[{i}]"), f);
    }
}

fn server(s: &Server, p: &str, f: &mut Found) {
    let passthrough = s.tls.as_ref().is_some_and(|t| {
        matches!(
            t.effective_mode(),
            TlsMode::Passthrough | TlsMode::AutoPassthrough
        )
    });
    if let Some(port) = &s.port {
        let shown = &port.protocol;
        let served_as = match port.protocol.to_ascii_uppercase().as_str() {
            "HTTP2" | "GRPC" => Some(format!(
                "{shown} is served as HTTP (HTTP/1.1 and cleartext HTTP/2 from clients; to backends as their ServiceEntry port's protocol says)"
            )),
            "TLS" if !passthrough => Some(format!(
                "{shown} is served as HTTPS (TLS is terminated and the connection must carry HTTP; tls and tcp routes are served only by PASSTHROUGH and TCP servers)"
            )),
            _ => None,
        };
        if let Some(served_as) = served_as {
            f.instead(format!("{p}.port.protocol"), served_as);
        }
    }
    if s.bind.is_some() {
        f.instead(
            format!("{p}.bind"),
            "listeners bind where `gatehouse run --listen PORT=ADDRESS` says",
        );
    }
    f.set(s.default_endpoint.is_some(), format!("{p}.defaultEndpoint"));
    if let Some(tls) = &s.tls
        && tls.credential_name.is_none()
        && tls.credential_names.len() > 1
    {
        f.instead(
            format!("{p}.tls.credentialNames[1]"),
            "only credentialNames[0] is served",
        );
    }
}

fn virtual_service(v: &VirtualService, f: &mut Found) {
    let s = &v.spec;
    f.set(!s.export_to.is_empty(), "spec.exportTo");
    for (i, r) in s.http.iter().enumerate() {
        http_route(r, &format!("spec.http[{i}]"), f);
    }
    for (i, r) in s.tls.iter().enumerate() {
        for (j, m) in r.matches.iter().enumerate() {
            f.set(
                !m.destination_subnets.is_empty(),
                format!("spec.tls[{i}].match[{j}].destinationSubnets"),
            );
        }
    }
    for (i, r) in s.tcp.iter().enumerate() {
        for (j, m) in r.matches.iter().enumerate() {
            f.set(
                !m.destination_subnets.is_empty(),
                format!("spec.tcp[{i}].match[{j}].destinationSubnets"),
            );
        }
    }
}

fn http_route(r: &HttpRoute, p: &str, f: &mut Found) {
    for (j, m) in r.matches.iter().enumerate() {
        http_match(m, &format!("{p}.match[{j}]"), f);
    }
    retries(r, p, f);
    if let Some(d) = r.fault.as_ref().and_then(|f| f.delay.as_ref())
        && d.percentage.is_some()
        && d.percent.is_some()
    {
        f.instead(
            format!("{p}.fault.delay.percent"),
            "percentage.value is used (percent is deprecated)",
        );
    }
    if r.mirror.is_none() && r.mirror_percentage.is_some() {
        f.instead(
            format!("{p}.mirrorPercentage"),
            "it applies to mirror only (mirrors have their own percentage)",
        );
    }
}

/// What of `retries` is applied is in `docs/retries-and-mirroring.md`;
/// these two parts never act.
fn retries(r: &HttpRoute, p: &str, f: &mut Found) {
    let Some(rt) = &r.retries else { return };
    f.set(
        rt.retry_remote_localities.is_some(),
        format!("{p}.retries.retryRemoteLocalities"),
    );
    if rt
        .retry_on
        .as_deref()
        .is_some_and(|on| on.split(',').any(|c| c.trim() == "retriable-headers"))
    {
        f.instead(
            format!("{p}.retries.retryOn"),
            "retriable-headers never fires: Istio has no field for the headers",
        );
    }
}

fn http_match(m: &HttpMatchRequest, p: &str, f: &mut Found) {
    f.set(m.stat_prefix.is_some(), format!("{p}.statPrefix"));
}

fn service_entry(s: &ServiceEntry, f: &mut Found) {
    let spec = &s.spec;
    f.set(!spec.addresses.is_empty(), "spec.addresses");
    for (i, port) in spec.ports.iter().enumerate() {
        let shown = &port.protocol;
        let instead = match port.protocol.to_ascii_uppercase().as_str() {
            // HTTP2 and GRPC: HTTP/2 with prior knowledge (h2c).
            "" | "HTTP" | "HTTP2" | "GRPC" => None,
            "HTTPS" | "TLS" => Some(format!(
                "gatehouse sends cleartext HTTP/1.1 to this port, not {shown}"
            )),
            _ => Some(format!(
                "gatehouse sends HTTP/1.1 to this port, not {shown}"
            )),
        };
        if let Some(instead) = instead {
            f.instead(format!("spec.ports[{i}].protocol"), instead);
        }
    }
    f.set(spec.location.is_some(), "spec.location");
    if spec.resolution == Resolution::None {
        f.instead(
            "spec.resolution",
            "NONE (also the default when unset) falls back to DNS: gatehouse resolves the destination host name",
        );
    }
    for (i, ep) in spec.endpoints.iter().enumerate() {
        endpoint(ep, &format!("spec.endpoints[{i}]"), f);
    }
    f.set(!spec.export_to.is_empty(), "spec.exportTo");
    f.set(!spec.subject_alt_names.is_empty(), "spec.subjectAltNames");
}

fn endpoint(ep: &WorkloadEntry, p: &str, f: &mut Found) {
    if ep.address.starts_with("unix://") {
        f.instead(
            format!("{p}.address"),
            "gatehouse connects over TCP only and skips this endpoint",
        );
    }
    f.set(ep.network.is_some(), format!("{p}.network"));
    f.set(ep.locality.is_some(), format!("{p}.locality"));
    f.set(ep.weight.is_some(), format!("{p}.weight"));
    f.set(ep.service_account.is_some(), format!("{p}.serviceAccount"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: Kind, json: &str) -> Resource {
        Resource::from_json(kind, json.as_bytes()).unwrap()
    }

    fn paths(r: &Resource) -> Vec<String> {
        fields(r).into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn virtual_service_paths_in_order() {
        let vs = parse(
            Kind::VirtualService,
            r#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
            "metadata":{"name":"x"},"spec":{"hosts":["a.com"],"exportTo":["."],
            "http":[{"match":[{"gateways":["g"]}],
              "route":[{"destination":{"host":"b","subset":"v1"}}],
              "retries":{"attempts":3,"retryRemoteLocalities":true}},
             {"route":[{"destination":{"host":"b"}}],"retries":{"attempts":0},
              "fault":{"delay":{"fixedDelay":"1s","percentage":{"value":5},"percent":5},
                       "abort":{"httpStatus":500,"percentage":{"value":1}}},
              "corsPolicy":{"allowOrigins":[{"exact":"https://a.com"}]}}],
            "tcp":[{"match":[{"sourceLabels":{"a":"b"}}],"route":[{"destination":{"host":"b"}}]}]}}"#,
        );
        assert_eq!(
            paths(&vs),
            [
                "spec.exportTo",
                "spec.http[0].retries.retryRemoteLocalities",
                "spec.http[1].fault.delay.percent",
            ]
        );
        assert_eq!(
            fields(&vs)[1].to_string(),
            "VirtualService default/x: spec.http[0].retries.retryRemoteLocalities is not applied by gatehouse"
        );
    }

    #[test]
    fn what_is_applied_is_not_listed() {
        let gw = parse(
            Kind::Gateway,
            r#"{"apiVersion":"networking.istio.io/v1","kind":"Gateway",
            "metadata":{"name":"g","namespace":"ns"},"spec":{"servers":[
             {"port":{"number":443,"name":"https","protocol":"HTTPS"},"hosts":["a.com"],
              "tls":{"mode":"SIMPLE","credentialName":"c"}},
             {"port":{"number":80,"name":"http","protocol":"http"},"hosts":["a.com"]}]}}"#,
        );
        assert!(fields(&gw).is_empty());
        let se = parse(
            Kind::ServiceEntry,
            r#"{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry",
            "metadata":{"name":"s"},"spec":{"hosts":["b"],"resolution":"STATIC",
            "ports":[{"number":80,"name":"http","protocol":"HTTP","targetPort":8080}],
            "endpoints":[{"address":"10.0.0.1","ports":{"http":9000}}]}}"#,
        );
        assert!(fields(&se).is_empty());
    }

    #[test]
    fn instead_is_said() {
        let gw = parse(
            Kind::Gateway,
            r#"{"apiVersion":"networking.istio.io/v1","kind":"Gateway",
            "metadata":{"name":"g"},"spec":{"servers":[
             {"port":{"number":9000,"name":"tcp","protocol":"TCP"},"hosts":["*"]},
             {"port":{"number":443,"name":"tls","protocol":"TLS"},"hosts":["a.com"],
              "tls":{"mode":"PASSTHROUGH"}},
             {"port":{"number":8443,"name":"tls2","protocol":"TLS"},"hosts":["b.com"],
              "tls":{"mode":"SIMPLE","credentialName":"c"}}]}}"#,
        );
        let found = fields(&gw);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message(),
            "spec.servers[2].port.protocol is not applied by gatehouse: TLS is served as HTTPS (TLS is terminated and the connection must carry HTTP; tls and tcp routes are served only by PASSTHROUGH and TCP servers)"
        );
    }
}
