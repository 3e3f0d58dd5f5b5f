//! `get`: kubectl-like tables, or the objects as YAML or JSON (with what
//! gatehouse does not serve as written under `status.gatehouse`).

use clap::Args;
use serde_json::{Value, json};

use super::{Context, Reported};
use crate::config::conflicts::{self, Conflict, ServerRef};
use crate::config::service_entry::Location;
use crate::config::{Gateway, Kind, Resource, gateway_api, ignored};
use crate::store::{AnyStore, Object, ObjectKey, Store};

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kind(s), comma separated: gateway|gw, virtualservice|vs, serviceentry|se, secret.
    pub kinds: String,
    /// Name of one object.
    pub name: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Output: wide, yaml, json or name.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

pub async fn get(ctx: &Context, args: GetArgs) -> anyhow::Result<()> {
    let kinds = kinds_of(&args.kinds)?;
    let output = args.output.as_deref().unwrap_or("");
    if !matches!(output, "" | "wide" | "yaml" | "json" | "name") {
        anyhow::bail!("-o {output}: expected wide, yaml, json or name");
    }
    if kinds.contains(&Kind::Secret)
        && ctx
            .store_url
            .as_deref()
            .is_some_and(|u| u.starts_with("etcd"))
        && ctx.etcd.encryption_key_file.is_none()
    {
        anyhow::bail!(
            "Secrets in etcd are encrypted: pass --encryption-key-file FILE (or GATEHOUSE_ENCRYPTION_KEY_FILE) to read them"
        );
    }
    let store = ctx.open_store()?;
    let ns = (!args.all_namespaces).then(|| ctx.namespace());
    let found = fetch(ctx, &store, &kinds, args.name.as_deref(), ns).await?;
    match output {
        "yaml" | "json" => {
            let one = args.name.is_some();
            print_documents(&store, &found, one, output == "json").await
        }
        "name" => {
            for (kind, o) in &found {
                println!("{}/{}", kind.resource(), o.key.name);
            }
            Ok(())
        }
        _ => {
            print_tables(&kinds, &found, ns, args.all_namespaces, output == "wide");
            Ok(())
        }
    }
}

/// The kinds named on the command line (`gw,vs`), each once, in order.
fn kinds_of(list: &str) -> anyhow::Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    for k in list.split(',').filter(|k| !k.is_empty()) {
        let kind = Kind::from_cli(k).ok_or_else(|| {
            anyhow::anyhow!("unknown kind {k:?}; {}", super::apply::get_kinds_hint())
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        anyhow::bail!("name a kind: {}", super::apply::get_kinds_hint());
    }
    Ok(kinds)
}

/// The named object of each kind (an error if one is missing), or every
/// object of each kind in `ns` (all namespaces when `None`).
async fn fetch(
    ctx: &Context,
    store: &AnyStore,
    kinds: &[Kind],
    name: Option<&str>,
    ns: Option<&str>,
) -> anyhow::Result<Vec<(Kind, Object)>> {
    let mut found = Vec::new();
    for kind in kinds {
        let Some(name) = name else {
            let (objects, _) = store.list(Some(kind.as_str()), ns).await?;
            found.extend(objects.into_iter().map(|o| (*kind, o)));
            continue;
        };
        let key = ObjectKey {
            kind: kind.as_str().into(),
            namespace: ctx.namespace().into(),
            name: name.to_owned(),
        };
        let Some(o) = store.get(&key).await? else {
            eprintln!(
                "error: {} {name:?} not found in namespace {}",
                kind.resource(),
                ctx.namespace()
            );
            return Err(Reported.into());
        };
        found.push((*kind, o));
    }
    Ok(found)
}

/// `-o yaml|json`: the one named object, or a kubectl `List`.
async fn print_documents(
    store: &AnyStore,
    found: &[(Kind, Object)],
    one: bool,
    json: bool,
) -> anyhow::Result<()> {
    // Whether a Gateway wins or loses a host depends on every Gateway.
    let conflicts = if found.iter().any(|(k, _)| *k == Kind::Gateway) {
        gateway_conflicts(store).await?
    } else {
        Vec::new()
    };
    let report = if found.iter().any(|(k, _)| gateway_api::has_status(*k)) {
        Some(gateway_api_report(store).await?)
    } else {
        None
    };
    let mut items = Vec::new();
    for (kind, o) in found {
        let mut doc = document(*kind, o, &conflicts)?;
        if let Some(r) = &report {
            r.merge_into(*kind, &o.key.namespace, &o.key.name, &mut doc);
        }
        items.push(doc);
    }
    let value = if one && items.len() == 1 {
        items.remove(0)
    } else {
        json!({"apiVersion": "v1", "kind": "List", "items": items})
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", serde_saphyr::to_string(&value)?);
    }
    Ok(())
}

/// The Gateway API status of every object, computed from the whole store
/// as a running gateway computes it.
async fn gateway_api_report(store: &AnyStore) -> anyhow::Result<gateway_api::status::Report> {
    let (objects, _) = store.list(None, None).await?;
    let mut parsed = Vec::new();
    let mut secrets = std::collections::HashMap::new();
    for o in &objects {
        let Some(kind) = Kind::from_kind(&o.key.kind) else {
            continue;
        };
        match Resource::from_json(kind, &o.value) {
            Ok(Resource::GatewayApi(g)) => parsed.push((o.resource_version, *g)),
            Ok(Resource::Secret(s)) => {
                let key = (o.key.namespace.clone(), o.key.name.clone());
                secrets.insert(key, (o.resource_version, std::sync::Arc::new(s)));
            }
            _ => {}
        }
    }
    let refs: Vec<_> = parsed.iter().map(|(rv, o)| (*rv, o)).collect();
    let lookup = |ns: &str, name: &str| secrets.get(&(ns.to_owned(), name.to_owned())).cloned();
    Ok(gateway_api::translate::status(&refs, &lookup))
}

/// `ConflictingGateways` among every Gateway in the store, as `apply`
/// judges them (the serving process's labels are not known here).
async fn gateway_conflicts(store: &AnyStore) -> anyhow::Result<Vec<Conflict>> {
    let (objects, _) = store.list(Some(Kind::Gateway.as_str()), None).await?;
    let gateways: Vec<Gateway> = objects
        .iter()
        .filter_map(|o| match Resource::from_json(Kind::Gateway, &o.value) {
            Ok(Resource::Gateway(g)) => Some(g),
            _ => None,
        })
        .collect();
    let refs: Vec<&Gateway> = gateways.iter().collect();
    Ok(conflicts::across_workloads(&refs))
}

/// The default table output: one table per kind, in the order asked.
fn print_tables(
    kinds: &[Kind],
    found: &[(Kind, Object)],
    ns: Option<&str>,
    all_ns: bool,
    wide: bool,
) {
    if found.is_empty() {
        match ns {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
        return;
    }
    let prefix_kind = kinds.len() > 1;
    let mut first = true;
    for kind in kinds {
        let objs: Vec<&Object> = found
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, o)| o)
            .collect();
        if objs.is_empty() {
            continue;
        }
        if !first {
            println!();
        }
        first = false;
        print!("{}", table(*kind, &objs, all_ns, prefix_kind, wide));
    }
}

/// One object as `-o yaml|json` prints it: what the store keeps, its
/// `resourceVersion`, and under `status.gatehouse` what gatehouse will not
/// serve as written: `ignoredFields` (the `apply` warnings) and, for a
/// Gateway, the `conflicts` it wins or loses. The status is output only:
/// applying the output again drops it, as the API server does.
fn document(kind: Kind, o: &Object, conflicts: &[Conflict]) -> anyhow::Result<Value> {
    let r = Resource::from_json(kind, &o.value)?;
    let mut v = r.to_value()?;
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(o.resource_version.to_string()),
        );
    }
    let mut status = serde_json::Map::new();
    let ignored: Vec<Value> = ignored::fields(&r)
        .iter()
        .map(|i| json!({ "path": i.path, "message": i.message() }))
        .collect();
    if !ignored.is_empty() {
        status.insert("ignoredFields".into(), Value::Array(ignored));
    }
    let this = |s: &ServerRef| s.namespace == o.key.namespace && s.gateway == o.key.name;
    let mine: Vec<Value> = conflicts
        .iter()
        .filter(|c| kind == Kind::Gateway && (this(c.loser()) || this(c.serving())))
        .map(|c| Value::String(c.to_string()))
        .collect();
    if !mine.is_empty() {
        status.insert("conflicts".into(), Value::Array(mine));
    }
    if let (false, Some(obj)) = (status.is_empty(), v.as_object_mut()) {
        obj.insert("status".into(), json!({ "gatehouse": status }));
    }
    Ok(v)
}

fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| {
        time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return "<unknown>".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn table(kind: Kind, objs: &[&Object], all_ns: bool, prefix_kind: bool, wide: bool) -> String {
    let mut header: Vec<&str> = Vec::new();
    if all_ns {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    header.extend_from_slice(match kind {
        Kind::Gateway if wide => &["SERVERS", "HOSTS", "AGE"][..],
        Kind::Gateway => &["AGE"][..],
        Kind::VirtualService => &["GATEWAYS", "HOSTS", "AGE"][..],
        Kind::ServiceEntry => &["HOSTS", "LOCATION", "RESOLUTION", "AGE"][..],
        Kind::DestinationRule => &["HOST", "AGE"][..],
        Kind::Secret => &["TYPE", "DATA", "AGE"][..],
        Kind::Service => &["TYPE", "CLUSTER-IP", "PORT(S)", "AGE"][..],
        Kind::EndpointSlice => &["ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"][..],
        k => crate::config::gateway_api::column_titles(k),
    });
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for o in objs {
        let mut row = Vec::new();
        if all_ns {
            row.push(o.key.namespace.clone());
        }
        row.push(if prefix_kind {
            format!("{}/{}", kind.resource(), o.key.name)
        } else {
            o.key.name.clone()
        });
        let r = Resource::from_json(kind, &o.value);
        let created = r
            .as_ref()
            .ok()
            .and_then(|r| r.meta().creation_timestamp.clone());
        match &r {
            Ok(r) => row.extend(columns(r, wide)),
            Err(_) => {
                // Written by another writer in a form we cannot read: say so, show nothing of it.
                while row.len() + 1 < rows[0].len() {
                    row.push("<unreadable>".into());
                }
            }
        }
        row.push(age(created.as_deref()));
        rows.push(row);
    }
    render(&rows)
}

/// The kind's own columns of one object, between NAME and AGE.
fn columns(r: &Resource, wide: bool) -> Vec<String> {
    let list = |v: &[String]| format!("[{}]", v.join(","));
    let quoted = |v: &[String]| {
        let q: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", q.join(","))
    };
    match r {
        Resource::Gateway(g) if wide => {
            let hosts: Vec<String> = g
                .spec
                .servers
                .iter()
                .flat_map(|s| s.hosts.clone())
                .collect();
            vec![g.spec.servers.len().to_string(), list(&hosts)]
        }
        Resource::Gateway(_) => Vec::new(),
        Resource::VirtualService(v) => vec![quoted(&v.spec.gateways), quoted(&v.spec.hosts)],
        Resource::ServiceEntry(s) => {
            let location = match s.spec.location {
                Some(Location::MeshInternal) => "MESH_INTERNAL",
                Some(Location::MeshExternal) => "MESH_EXTERNAL",
                None => "",
            };
            vec![
                list(&s.spec.hosts),
                location.into(),
                format!("{:?}", s.spec.resolution).to_ascii_uppercase(),
            ]
        }
        Resource::DestinationRule(d) => vec![d.spec.host.clone()],
        Resource::Secret(s) => vec![
            s.secret_type.clone().unwrap_or_else(|| "Opaque".into()),
            s.data.len().to_string(),
        ],
        Resource::Service(s) => s.columns(),
        Resource::EndpointSlice(s) => s.columns(),
        Resource::GatewayApi(o) => o.columns(),
    }
}

pub(super) fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
