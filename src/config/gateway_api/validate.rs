//! The Gateway API's own rules for one object alone (what its CRD's schema
//! and CEL rules refuse), each error naming its field. What depends on
//! other objects (classes, grants, Secrets) is decided by `translate` and
//! reported as status, as the spec wants.

use std::collections::HashSet;

use super::Object;
use super::route_types::{Filter, HttpRoute, Match, PathModifier};
use super::types::{K8sGateway, ReferenceGrant};
use crate::config::duration;
use crate::config::error::FieldErrors;
use crate::config::host::check_host;

/// Listener protocols the spec defines (others are refused, as the CRD does
/// not: an implementation-specific one must be domain-prefixed).
const PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "TLS", "TCP", "UDP"];
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
const FILTERS: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
    "RequestMirror",
    "CORS",
    "ExtensionRef",
    "ExternalAuth",
];

pub(super) fn object(o: &Object, e: &mut FieldErrors) {
    match o {
        Object::GatewayClass(c) => {
            if c.spec.controller_name.is_empty() {
                e.push("spec.controllerName", "must not be empty");
            }
        }
        Object::Gateway(g) => gateway(g, e),
        Object::HttpRoute(r) => route(r, e),
        Object::ReferenceGrant(g) => grant(g, e),
        Object::ConfigMap(_) | Object::Namespace(_) => {}
    }
}

fn gateway(g: &K8sGateway, e: &mut FieldErrors) {
    if g.spec.gateway_class_name.is_empty() {
        e.push("spec.gatewayClassName", "must not be empty");
    }
    if g.spec.listeners.is_empty() {
        e.push("spec.listeners", "at least one listener is required");
    }
    let mut names = HashSet::new();
    for (i, l) in g.spec.listeners.iter().enumerate() {
        let p = format!("spec.listeners[{i}]");
        if !names.insert(l.name.as_str()) {
            e.push(format!("{p}.name"), format!("{:?} is used twice", l.name));
        }
        if !(1..=65535).contains(&l.port) {
            e.push(
                format!("{p}.port"),
                format!("{} is not a port (1-65535)", l.port),
            );
        }
        if !PROTOCOLS.contains(&l.protocol.as_str()) && !l.protocol.contains('/') {
            e.push(
                format!("{p}.protocol"),
                format!("{:?} is not one of {}", l.protocol, PROTOCOLS.join(", ")),
            );
        }
        if let Some(h) = &l.hostname
            && (h == "*" || check_host(h).is_err() || h.parse::<std::net::IpAddr>().is_ok())
        {
            e.push(format!("{p}.hostname"), format!("{h:?} is not a hostname"));
        }
        let terminate = l
            .tls
            .as_ref()
            .and_then(|t| t.mode.as_deref())
            .is_none_or(|m| m == "Terminate");
        match (&l.tls, l.protocol.as_str()) {
            (None, "HTTPS") => e.push(format!("{p}.tls"), "an HTTPS listener needs tls"),
            (Some(t), "HTTPS") if terminate && t.certificate_refs.is_empty() => e.push(
                format!("{p}.tls.certificateRefs"),
                "tls mode Terminate needs at least one certificateRef",
            ),
            (Some(_), "HTTP" | "TCP" | "UDP") => e.push(
                format!("{p}.tls"),
                format!("not allowed with protocol {}", l.protocol),
            ),
            _ => {}
        }
        if let Some(m) = l.tls.as_ref().and_then(|t| t.mode.as_deref())
            && m != "Terminate"
            && m != "Passthrough"
        {
            e.push(
                format!("{p}.tls.mode"),
                format!("{m:?} is not Terminate or Passthrough"),
            );
        }
        if let Some(from) = l
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref())
        {
            match (from.from.as_deref().unwrap_or("Same"), &from.selector) {
                ("Same" | "All", _) | ("Selector", Some(_)) => {}
                ("Selector", None) => e.push(
                    format!("{p}.allowedRoutes.namespaces.selector"),
                    "from: Selector needs a selector",
                ),
                (f, _) => e.push(
                    format!("{p}.allowedRoutes.namespaces.from"),
                    format!("{f:?} is not Same, All or Selector"),
                ),
            }
        }
    }
}

fn route(r: &HttpRoute, e: &mut FieldErrors) {
    for (i, h) in r.spec.hostnames.iter().enumerate() {
        if h == "*" || check_host(h).is_err() {
            e.push(
                format!("spec.hostnames[{i}]"),
                format!("{h:?} is not a hostname"),
            );
        }
    }
    for (i, rule) in r.spec.rules.iter().enumerate() {
        let p = format!("spec.rules[{i}]");
        for (j, m) in rule.matches.iter().enumerate() {
            route_match(m, &format!("{p}.matches[{j}]"), e);
        }
        for (j, f) in rule.filters.iter().enumerate() {
            filter(f, &format!("{p}.filters[{j}]"), e);
        }
        for (j, b) in rule.backend_refs.iter().enumerate() {
            for (k, f) in b.filters.iter().enumerate() {
                filter(f, &format!("{p}.backendRefs[{j}].filters[{k}]"), e);
            }
            if b.weight.is_some_and(|w| w > 1_000_000) {
                e.push(format!("{p}.backendRefs[{j}].weight"), "at most 1000000");
            }
        }
        let redirect = rule
            .filters
            .iter()
            .any(|f| f.filter_type == "RequestRedirect");
        let rewrite = rule.filters.iter().any(|f| f.filter_type == "URLRewrite");
        if redirect && rewrite {
            e.push(
                format!("{p}.filters"),
                "RequestRedirect and URLRewrite cannot both be set",
            );
        }
        if redirect && !rule.backend_refs.is_empty() {
            e.push(
                format!("{p}.backendRefs"),
                "not allowed with a RequestRedirect filter",
            );
        }
        if let Some(t) = &rule.timeouts {
            for (field, v) in [
                ("request", &t.request),
                ("backendRequest", &t.backend_request),
            ] {
                if let Some(v) = v
                    && duration::parse(v).is_none()
                {
                    e.push(
                        format!("{p}.timeouts.{field}"),
                        format!("{v:?} is not a duration"),
                    );
                }
            }
        }
    }
}

fn route_match(m: &Match, p: &str, e: &mut FieldErrors) {
    if let Some(path) = &m.path {
        let value = path.value.as_deref().unwrap_or("/");
        match path.match_type.as_deref().unwrap_or("PathPrefix") {
            "Exact" | "PathPrefix" if !value.starts_with('/') => {
                e.push(format!("{p}.path.value"), "must start with /");
            }
            "Exact" | "PathPrefix" => {}
            "RegularExpression" => {
                if regex::Regex::new(value).is_err() {
                    e.push(
                        format!("{p}.path.value"),
                        format!("{value:?} is not a regex"),
                    );
                }
            }
            t => e.push(
                format!("{p}.path.type"),
                format!("{t:?} is not a path match type"),
            ),
        }
    }
    for (field, list) in [("headers", &m.headers), ("queryParams", &m.query_params)] {
        for (i, v) in list.iter().enumerate() {
            let q = format!("{p}.{field}[{i}]");
            if field == "headers" && http::HeaderName::from_bytes(v.name.as_bytes()).is_err() {
                e.push(
                    format!("{q}.name"),
                    format!("{:?} is not a header name", v.name),
                );
            }
            match v.match_type.as_deref().unwrap_or("Exact") {
                "Exact" => {}
                "RegularExpression" if regex::Regex::new(&v.value).is_ok() => {}
                "RegularExpression" => e.push(
                    format!("{q}.value"),
                    format!("{:?} is not a regex", v.value),
                ),
                t => e.push(
                    format!("{q}.type"),
                    format!("{t:?} is not Exact or RegularExpression"),
                ),
            }
        }
    }
    if let Some(method) = &m.method
        && !METHODS.contains(&method.as_str())
    {
        e.push(
            format!("{p}.method"),
            format!("{method:?} is not an HTTP method"),
        );
    }
}

fn filter(f: &Filter, p: &str, e: &mut FieldErrors) {
    if !FILTERS.contains(&f.filter_type.as_str()) {
        e.push(
            format!("{p}.type"),
            format!("{:?} is not a filter type", f.filter_type),
        );
        return;
    }
    let set = [
        ("RequestHeaderModifier", f.request_header_modifier.is_some()),
        (
            "ResponseHeaderModifier",
            f.response_header_modifier.is_some(),
        ),
        ("RequestRedirect", f.request_redirect.is_some()),
        ("URLRewrite", f.url_rewrite.is_some()),
        ("RequestMirror", f.request_mirror.is_some()),
        ("CORS", f.cors.is_some()),
        ("ExtensionRef", f.extension_ref.is_some()),
        ("ExternalAuth", f.external_auth.is_some()),
    ];
    for (t, is_set) in set {
        if (t == f.filter_type) != is_set {
            let field = field_of(t);
            let why = if is_set {
                "set for another filter type"
            } else {
                "required by the type"
            };
            e.push(format!("{p}.{field}"), why);
        }
    }
    for m in [
        f.request_header_modifier.as_ref(),
        f.response_header_modifier.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        for h in m.set.iter().chain(&m.add) {
            if http::HeaderName::from_bytes(h.name.as_bytes()).is_err()
                || http::HeaderValue::from_str(&h.value).is_err()
            {
                e.push(
                    p,
                    format!("header {:?}: {:?} is not a valid header", h.name, h.value),
                );
            }
        }
    }
    if let Some(r) = &f.request_redirect {
        if let Some(c) = r.status_code
            && ![301, 302, 303, 307, 308].contains(&c)
        {
            e.push(
                format!("{p}.requestRedirect.statusCode"),
                format!("{c} is not 301, 302, 303, 307 or 308"),
            );
        }
        if let Some(s) = &r.scheme
            && s != "http"
            && s != "https"
        {
            e.push(
                format!("{p}.requestRedirect.scheme"),
                format!("{s:?} is not http or https"),
            );
        }
        if let Some(m) = &r.path {
            path_modifier(m, &format!("{p}.requestRedirect.path"), e);
        }
    }
    if let Some(m) = f.url_rewrite.as_ref().and_then(|r| r.path.as_ref()) {
        path_modifier(m, &format!("{p}.urlRewrite.path"), e);
    }
}

fn path_modifier(m: &PathModifier, p: &str, e: &mut FieldErrors) {
    let ok = match m.modifier_type.as_str() {
        "ReplaceFullPath" => m.replace_full_path.is_some() && m.replace_prefix_match.is_none(),
        "ReplacePrefixMatch" => m.replace_prefix_match.is_some() && m.replace_full_path.is_none(),
        t => {
            e.push(
                format!("{p}.type"),
                format!("{t:?} is not ReplaceFullPath or ReplacePrefixMatch"),
            );
            return;
        }
    };
    if !ok {
        e.push(
            p,
            format!("type {} needs exactly its own field", m.modifier_type),
        );
    }
}

fn field_of(filter_type: &str) -> String {
    match filter_type {
        "URLRewrite" => "urlRewrite".into(),
        "CORS" => "cors".into(),
        t => {
            let mut c = t.chars();
            c.next()
                .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
    }
}

fn grant(g: &ReferenceGrant, e: &mut FieldErrors) {
    if g.spec.from.is_empty() {
        e.push("spec.from", "at least one entry is required");
    }
    if g.spec.to.is_empty() {
        e.push("spec.to", "at least one entry is required");
    }
}
