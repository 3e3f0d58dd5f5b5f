//! One HTTPRoute's rules as checked `http[]` entries, each with its
//! precedence key, and whether its backends resolve.
//!
//! Every match becomes its own entry (so entries of all routes on a
//! listener can be sorted by the spec's precedence); a `PathPrefix` `/p`
//! becomes two, `exact: /p` and `prefix: /p/`, since the spec's prefix
//! matches whole path elements. An entry is written as an Istio
//! `http[]` entry and checked by `validate` like any other, so the
//! compiler and data plane serve it with the code Istio's routes use.

use std::cmp::Reverse;

use serde_json::{Map, Value, json};

use super::World;
use super::refs::{From, To, permitted};
use crate::config::checked::{Checked, HttpRoute as CheckedHttpRoute};
use crate::config::gateway_api::GROUP;
use crate::config::gateway_api::route_types::{BackendRef, Cors, Filter, HttpRoute, Match, Rule};
use crate::config::{Resource, validate};

/// The spec's order of matches: exact path, then (here) regex, then the
/// longest prefix; a method; most headers; most query parameters; the
/// oldest route; then by namespace/name; then rule and match order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    path_class: u8,
    path_len: Reverse<usize>,
    no_method: bool,
    headers: Reverse<usize>,
    query: Reverse<usize>,
    created: (bool, String),
    route: (String, String),
    position: (usize, usize, usize),
}

/// One entry of a route, ready to sort.
pub(crate) struct Entry {
    pub key: Key,
    pub route: CheckedHttpRoute,
}

/// Why a route's references fail (the first found), for `ResolvedRefs`.
pub(crate) struct RefProblem {
    pub reason: &'static str,
    pub message: String,
}

/// A route's entries and its reference problem, or why it is refused
/// (`UnsupportedValue`).
pub(crate) struct Built {
    pub entries: Vec<Entry>,
    pub refs: Option<RefProblem>,
}

pub(crate) fn build(world: &World<'_>, r: &HttpRoute) -> Result<Built, String> {
    let mut built = Built {
        entries: Vec::new(),
        refs: None,
    };
    for (ri, rule) in r.spec.rules.iter().enumerate() {
        let action = action(world, r, rule, &mut built.refs);
        let matches = if rule.matches.is_empty() {
            vec![Match::default()]
        } else {
            rule.matches.clone()
        };
        for (mi, m) in matches.iter().enumerate() {
            for (si, sub) in split_path(m).into_iter().enumerate() {
                let entry = entry_json(r, ri, rule, m, &sub, &action)?;
                let route = check(r, entry).map_err(|e| format!("spec.rules[{ri}]: {e}"))?;
                built.entries.push(Entry {
                    key: key(r, m, &sub, (ri, mi, si)),
                    route,
                });
            }
        }
    }
    Ok(built)
}

/// How a match's path is written for Istio.
#[derive(Debug, Clone)]
enum SubPath {
    Exact(String),
    /// A prefix that ends in `/`.
    Prefix(String),
    Regex(String),
}

fn split_path(m: &Match) -> Vec<SubPath> {
    let (t, v) = m.path.as_ref().map_or(("PathPrefix", "/"), |p| {
        (
            p.match_type.as_deref().unwrap_or("PathPrefix"),
            p.value.as_deref().unwrap_or("/"),
        )
    });
    match t {
        "Exact" => vec![SubPath::Exact(v.to_owned())],
        "RegularExpression" => vec![SubPath::Regex(v.to_owned())],
        _ => {
            let p = v.trim_end_matches('/');
            if p.is_empty() {
                vec![SubPath::Prefix("/".into())]
            } else {
                vec![
                    SubPath::Exact(p.to_owned()),
                    SubPath::Prefix(format!("{p}/")),
                ]
            }
        }
    }
}

fn key(r: &HttpRoute, m: &Match, sub: &SubPath, position: (usize, usize, usize)) -> Key {
    let (class, len) = match sub {
        SubPath::Exact(p)
            if m.path.as_ref().and_then(|p| p.match_type.as_deref()) == Some("Exact") =>
        {
            (0, p.len())
        }
        SubPath::Regex(p) => (1, p.len()),
        // A prefix counts as written (`/p` for both of its entries).
        SubPath::Exact(p) | SubPath::Prefix(p) => (2, p.trim_end_matches('/').len().max(1)),
    };
    let created = r.metadata.creation_timestamp.clone();
    Key {
        path_class: class,
        path_len: Reverse(len),
        no_method: m.method.is_none(),
        headers: Reverse(m.headers.len()),
        query: Reverse(m.query_params.len()),
        created: (created.is_none(), created.unwrap_or_default()),
        route: (r.metadata.ns().to_owned(), r.metadata.name.clone()),
        position,
    }
}

/// What a rule does: redirect, forward, or 500 (fields of an Istio entry).
fn action(
    world: &World<'_>,
    r: &HttpRoute,
    rule: &Rule,
    problem: &mut Option<RefProblem>,
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(rd) = rule
        .filters
        .iter()
        .find_map(|f| f.request_redirect.as_ref())
    {
        let mut v = Map::new();
        if let Some(s) = &rd.scheme {
            v.insert("scheme".into(), json!(s));
        }
        if let Some(h) = &rd.hostname {
            v.insert("authority".into(), json!(h));
        }
        match (rd.port, &rd.scheme) {
            (Some(p), _) => v.insert("port".into(), json!(p)),
            (None, Some(_)) => v.insert("derivePort".into(), json!("FROM_PROTOCOL_DEFAULT")),
            (None, None) => v.insert("derivePort".into(), json!("FROM_REQUEST_PORT")),
        };
        v.insert("redirectCode".into(), json!(rd.status_code.unwrap_or(302)));
        out.insert("redirect".into(), Value::Object(v));
        return out;
    }
    let mut dests = Vec::new();
    for b in &rule.backend_refs {
        match backend(world, r, b) {
            Ok(host_port) if b.weight.unwrap_or(1) > 0 => dests.push(json!({
                "destination": host_port,
                "weight": b.weight.unwrap_or(1),
            })),
            Ok(_) => {}
            Err(p) => {
                problem.get_or_insert(p);
            }
        }
    }
    if dests.is_empty() {
        out.insert("directResponse".into(), json!({"status": 500}));
    } else {
        out.insert("route".into(), Value::Array(dests));
    }
    for f in &rule.filters {
        if let Some(m) = &f.request_mirror {
            let b = BackendRef {
                group: m.backend_ref.group.clone(),
                kind: m.backend_ref.kind.clone(),
                name: m.backend_ref.name.clone(),
                namespace: m.backend_ref.namespace.clone(),
                port: m.backend_ref.port,
                weight: None,
                filters: Vec::new(),
            };
            match backend(world, r, &b) {
                Ok(dest) => {
                    out.insert("mirror".into(), dest);
                    if let Some(p) = m.percent {
                        out.insert("mirrorPercentage".into(), json!({"value": p}));
                    }
                }
                Err(p) => {
                    problem.get_or_insert(p);
                }
            }
        }
    }
    out
}

/// A Service backend as an Istio destination (`NAME.NS.svc.cluster.local`
/// and its port), if it resolves and is permitted.
fn backend(world: &World<'_>, r: &HttpRoute, b: &BackendRef) -> Result<Value, RefProblem> {
    let route_ns = r.metadata.ns();
    if !b.group.as_deref().unwrap_or("").is_empty()
        || b.kind.as_deref().unwrap_or("Service") != "Service"
    {
        return Err(RefProblem {
            reason: "InvalidKind",
            message: format!("backendRef {}: only core Services are supported", b.name),
        });
    }
    let ns = b.namespace.as_deref().unwrap_or(route_ns);
    let from = From {
        group: GROUP,
        kind: "HTTPRoute",
        namespace: route_ns,
    };
    let to = To {
        group: "",
        kind: "Service",
        namespace: ns,
        name: &b.name,
    };
    if !permitted(&world.grants, &from, &to) {
        return Err(RefProblem {
            reason: "RefNotPermitted",
            message: format!(
                "no ReferenceGrant in namespace {ns} allows this route to use Service {}",
                b.name
            ),
        });
    }
    let Some(port) = b.port else {
        return Err(RefProblem {
            reason: "BackendNotFound",
            message: format!("backendRef {}: a Service needs a port", b.name),
        });
    };
    Ok(json!({"host": format!("{}.{ns}.svc.cluster.local", b.name), "port": {"number": port}}))
}

/// One Istio `http[]` entry for one (sub-)match of a rule.
fn entry_json(
    r: &HttpRoute,
    ri: usize,
    rule: &Rule,
    m: &Match,
    sub: &SubPath,
    action: &Map<String, Value>,
) -> Result<Value, String> {
    let mut e = action.clone();
    // The route's name in logs and the config dump: `ns.route.rule`, the
    // rule by its `name` if it has one, else by its index.
    let rule_name = rule.name.clone().unwrap_or_else(|| ri.to_string());
    e.insert(
        "name".into(),
        json!(format!(
            "{}.{}.{rule_name}",
            r.metadata.ns(),
            r.metadata.name
        )),
    );
    let mut mv = Map::new();
    let uri = match sub {
        SubPath::Exact(p) => json!({"exact": p}),
        SubPath::Prefix(p) => json!({"prefix": p}),
        SubPath::Regex(p) => json!({"regex": p}),
    };
    mv.insert("uri".into(), uri);
    let matcher = |t: Option<&str>, v: &str| match t {
        Some("RegularExpression") => json!({"regex": v}),
        _ => json!({"exact": v}),
    };
    let mut headers = Map::new();
    for h in &m.headers {
        headers
            .entry(h.name.to_ascii_lowercase())
            .or_insert_with(|| matcher(h.match_type.as_deref(), &h.value));
    }
    if !headers.is_empty() {
        mv.insert("headers".into(), Value::Object(headers));
    }
    let mut query = Map::new();
    for q in &m.query_params {
        query
            .entry(q.name.clone())
            .or_insert_with(|| matcher(q.match_type.as_deref(), &q.value));
    }
    if !query.is_empty() {
        mv.insert("queryParams".into(), Value::Object(query));
    }
    if let Some(method) = &m.method {
        mv.insert("method".into(), json!({"exact": method}));
    }
    e.insert("match".into(), json!([mv]));
    filters(&rule.filters, sub, &mut e)?;
    if let Some(t) = rule.timeouts.as_ref().and_then(|t| t.request.as_ref()) {
        e.insert("timeout".into(), json!(t));
    }
    Ok(Value::Object(e))
}

/// Header modifiers, the rewrite, and a redirect's path.
fn filters(filters: &[Filter], sub: &SubPath, e: &mut Map<String, Value>) -> Result<(), String> {
    let mut headers = Map::new();
    for f in filters {
        for (which, m) in [
            ("request", &f.request_header_modifier),
            ("response", &f.response_header_modifier),
        ] {
            if let Some(m) = m {
                let pairs = |v: &[super::super::route_types::Header]| {
                    v.iter()
                        .map(|h| (h.name.to_ascii_lowercase(), json!(h.value)))
                        .collect::<Map<_, _>>()
                };
                let remove: Vec<String> = m.remove.iter().map(|h| h.to_ascii_lowercase()).collect();
                headers.insert(
                    which.into(),
                    json!({"set": pairs(&m.set), "add": pairs(&m.add), "remove": remove}),
                );
            }
        }
        if let Some(rw) = &f.url_rewrite {
            let mut v = Map::new();
            if let Some(h) = &rw.hostname {
                v.insert("authority".into(), json!(h));
            }
            if let Some(p) = &rw.path {
                match (
                    p.replace_full_path.as_deref(),
                    p.replace_prefix_match.as_deref(),
                ) {
                    (Some(full), _) => {
                        v.insert(
                            "uriRegexRewrite".into(),
                            json!({"match": "^.*", "rewrite": full}),
                        );
                    }
                    (None, Some(prefix)) => {
                        v.insert("uri".into(), json!(prefix_rewrite(sub, prefix)?));
                    }
                    (None, None) => {}
                }
            }
            e.insert("rewrite".into(), Value::Object(v));
        }
        if let Some(c) = &f.cors {
            e.insert("corsPolicy".into(), cors(c));
        }
        if let Some(p) = f.request_redirect.as_ref().and_then(|r| r.path.as_ref()) {
            let uri = match (
                p.replace_full_path.as_deref(),
                p.replace_prefix_match.as_deref(),
            ) {
                (Some(full), _) => full.to_owned(),
                _ => return Err("a RequestRedirect's ReplacePrefixMatch is not supported".into()),
            };
            if let Some(Value::Object(rd)) = e.get_mut("redirect") {
                rd.insert("uri".into(), json!(uri));
            }
        }
    }
    if !headers.is_empty() {
        e.insert("headers".into(), Value::Object(headers));
    }
    Ok(())
}

/// The `CORS` filter as an Istio `corsPolicy`: an origin with `*` in it
/// is a regex where `*` is any run of characters, `*` alone is any origin.
fn cors(c: &Cors) -> Value {
    let origins: Vec<Value> = c
        .allow_origins
        .iter()
        .map(|o| match o.as_str() {
            "*" => json!({"exact": "*"}),
            o if o.contains('*') => {
                let parts: Vec<String> = o.split('*').map(regex::escape).collect();
                json!({"regex": parts.join(".*")})
            }
            o => json!({"exact": o}),
        })
        .collect();
    json!({
        "allowOrigins": origins,
        "allowMethods": c.allow_methods,
        "allowHeaders": c.allow_headers,
        "exposeHeaders": c.expose_headers,
        "maxAge": format!("{}s", c.max_age.unwrap_or(5)),
        "allowCredentials": c.allow_credentials.unwrap_or(false),
    })
}

/// `ReplacePrefixMatch` for one sub-match: the matched prefix `/p` (or
/// `/p/`) becomes `/r` (or `/r/`), path elements kept whole.
fn prefix_rewrite(sub: &SubPath, with: &str) -> Result<String, String> {
    let r = with.trim_end_matches('/');
    match sub {
        SubPath::Exact(_) if r.is_empty() => Ok("/".into()),
        SubPath::Exact(_) => Ok(r.to_owned()),
        SubPath::Prefix(_) => Ok(format!("{r}/")),
        SubPath::Regex(_) => Err("ReplacePrefixMatch needs a PathPrefix match".into()),
    }
}

/// Checks one entry as Istio's rules do and returns its checked form.
fn check(r: &HttpRoute, entry: Value) -> Result<CheckedHttpRoute, String> {
    let vs = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": r.metadata.name, "namespace": r.metadata.ns()},
        "spec": {"hosts": ["gateway-api.invalid"], "http": [entry]},
    });
    let vs = serde_json::from_value(vs).map_err(|e| e.to_string())?;
    match validate::check(&Resource::VirtualService(vs)) {
        Ok(Checked::VirtualService(mut v)) if v.http.len() == 1 => {
            v.http.pop().ok_or_else(|| "no route".to_owned())
        }
        Ok(_) => Err("no route".into()),
        Err(errs) => Err(errs
            .0
            .first()
            .map(|(p, m)| format!("{p}: {m}"))
            .unwrap_or_default()),
    }
}
