//! The Gateway API fields gatehouse accepts but does not apply, each with
//! its path and, where it does something else, what (the `config::ignored`
//! mechanism: `apply` warns, `get -o yaml` and `/warnings` list them).

use super::Object;
use super::route_types::{Filter, HttpRoute};
use super::types::K8sGateway;

type Found = Vec<(String, Option<String>)>;

/// Every field `o` sets that gatehouse does not apply.
pub fn fields(o: &Object) -> Found {
    let mut found = Found::new();
    match o {
        Object::GatewayClass(c) => {
            if c.spec.parameters_ref.is_some() {
                found.push(("spec.parametersRef".into(), None));
            }
        }
        Object::Gateway(g) => gateway(g, &mut found),
        Object::HttpRoute(r) => route(r, &mut found),
        Object::ConfigMap(c) => {
            if !c.binary_data.is_empty() {
                found.push((
                    "binaryData".into(),
                    Some("client CA bundles are read from data[\"ca.crt\"] only".into()),
                ));
            }
        }
        Object::ReferenceGrant(_) | Object::Namespace(_) => {}
    }
    found
}

fn gateway(g: &K8sGateway, found: &mut Found) {
    let s = &g.spec;
    for (set, path) in [
        (s.addresses.is_some(), "spec.addresses"),
        (s.infrastructure.is_some(), "spec.infrastructure"),
        (s.allowed_listeners.is_some(), "spec.allowedListeners"),
        (s.default_scope.is_some(), "spec.defaultScope"),
        (
            s.tls.as_ref().is_some_and(|t| t.backend.is_some()),
            "spec.tls.backend",
        ),
    ] {
        if set {
            found.push((path.into(), None));
        }
    }
    if let Some(f) = s.tls.as_ref().and_then(|t| t.frontend.as_ref()) {
        let validations = f
            .default
            .iter()
            .map(|c| ("spec.tls.frontend.default".to_owned(), c))
            .chain(
                f.per_port
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("spec.tls.frontend.perPort[{i}].tls"), &p.tls)),
            );
        for (p, c) in validations {
            if let Some(m) = c.validation.as_ref().and_then(|v| v.mode.as_deref())
                && m != "AllowValidOnly"
            {
                found.push((
                    format!("{p}.validation.mode"),
                    Some("a client certificate is required (AllowValidOnly)".into()),
                ));
            }
        }
    }
    for (i, l) in s.listeners.iter().enumerate() {
        let p = format!("spec.listeners[{i}]");
        if !matches!(l.protocol.as_str(), "HTTP" | "HTTPS") {
            found.push((
                format!("{p}.protocol"),
                Some(format!(
                    "protocol {} is not served: the listener is refused (UnsupportedProtocol)",
                    l.protocol
                )),
            ));
        }
        if let Some(t) = &l.tls {
            if t.mode.as_deref() == Some("Passthrough") {
                found.push((
                    format!("{p}.tls.mode"),
                    Some("Passthrough is not served: the listener is refused".into()),
                ));
            }
            if t.certificate_refs.len() > 1 {
                found.push((
                    format!("{p}.tls.certificateRefs[1]"),
                    Some("only the first certificateRef is served".into()),
                ));
            }
            if t.options.as_ref().is_some_and(|o| !o.is_empty()) {
                found.push((format!("{p}.tls.options"), None));
            }
        }
    }
}

fn route(r: &HttpRoute, found: &mut Found) {
    for (i, rule) in r.spec.rules.iter().enumerate() {
        let p = format!("spec.rules[{i}]");
        if rule.retry.is_some() {
            found.push((format!("{p}.retry"), None));
        }
        if rule.session_persistence.is_some() {
            found.push((format!("{p}.sessionPersistence"), None));
        }
        if rule
            .timeouts
            .as_ref()
            .is_some_and(|t| t.backend_request.is_some())
        {
            found.push((
                format!("{p}.timeouts.backendRequest"),
                Some("timeouts.request bounds the whole request".into()),
            ));
        }
        for (j, f) in rule.filters.iter().enumerate() {
            filter(f, &format!("{p}.filters[{j}]"), found);
        }
        for (j, b) in rule.backend_refs.iter().enumerate() {
            if !b.filters.is_empty() {
                found.push((
                    format!("{p}.backendRefs[{j}].filters"),
                    Some("per-backend filters are not applied".into()),
                ));
            }
        }
    }
}

fn filter(f: &Filter, p: &str, found: &mut Found) {
    let why = match f.filter_type.as_str() {
        "ExtensionRef" | "ExternalAuth" => {
            found.push((p.to_owned(), None));
            return;
        }
        "RequestRedirect"
            if f.request_redirect
                .as_ref()
                .and_then(|r| r.path.as_ref())
                .is_some_and(|m| m.modifier_type == "ReplacePrefixMatch") =>
        {
            "a redirect's ReplacePrefixMatch is not supported: the route is refused (UnsupportedValue)"
        }
        "RequestMirror"
            if f.request_mirror
                .as_ref()
                .is_some_and(|m| m.fraction.is_some()) =>
        {
            "requestMirror.fraction is not applied: use percent"
        }
        _ => return,
    };
    found.push((p.to_owned(), Some(why.to_owned())));
}
