//! `get`: kubectl-like tables, or the objects as YAML or JSON (with the
//! fields gatehouse does not apply under `status.gatehouse.ignoredFields`).

use clap::Args;
use serde_json::{Value, json};

use super::{Context, Reported};
use crate::config::{Kind, Resource, ignored};
use crate::store::{Object, ObjectKey, Store};

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
    let mut kinds = Vec::new();
    for k in args.kinds.split(',').filter(|k| !k.is_empty()) {
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
    let mut found: Vec<(Kind, Object)> = Vec::new();
    for kind in &kinds {
        if let Some(name) = &args.name {
            let key = ObjectKey {
                kind: kind.as_str().into(),
                namespace: ctx.namespace().into(),
                name: name.clone(),
            };
            match store.get(&key).await? {
                Some(o) => found.push((*kind, o)),
                None => {
                    eprintln!(
                        "error: {} {name:?} not found in namespace {}",
                        kind.resource(),
                        ctx.namespace()
                    );
                    return Err(Reported.into());
                }
            }
        } else {
            let (objects, _) = store.list(Some(kind.as_str()), ns).await?;
            found.extend(objects.into_iter().map(|o| (*kind, o)));
        }
    }
    match output {
        "yaml" | "json" => {
            let mut items = Vec::new();
            for (kind, o) in &found {
                items.push(document(*kind, o)?);
            }
            let value = if args.name.is_some() && items.len() == 1 {
                items.remove(0)
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
            };
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", serde_saphyr::to_string(&value)?);
            }
        }
        "name" => {
            for (kind, o) in &found {
                println!("{}/{}", kind.resource(), o.key.name);
            }
        }
        _ => {
            if found.is_empty() {
                match ns {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
                return Ok(());
            }
            let prefix_kind = kinds.len() > 1;
            let mut first = true;
            for kind in &kinds {
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
                print!(
                    "{}",
                    table(
                        *kind,
                        &objs,
                        args.all_namespaces,
                        prefix_kind,
                        output == "wide"
                    )
                );
            }
        }
    }
    Ok(())
}

/// One object as `-o yaml|json` prints it: what the store keeps, its
/// `resourceVersion`, and `status.gatehouse.ignoredFields` listing the
/// fields gatehouse does not apply (the `apply` warnings). The status is
/// output only: applying the output again drops it, as the API server does.
fn document(kind: Kind, o: &Object) -> anyhow::Result<Value> {
    let r = Resource::from_json(kind, &o.value)?;
    let mut v = r.to_value()?;
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(o.resource_version.to_string()),
        );
    }
    let ignored: Vec<Value> = ignored::fields(&r)
        .iter()
        .map(|i| json!({ "path": i.path, "message": i.message() }))
        .collect();
    if let (false, Some(obj)) = (ignored.is_empty(), v.as_object_mut()) {
        obj.insert(
            "status".into(),
            json!({ "gatehouse": { "ignoredFields": ignored } }),
        );
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
        Kind::Secret => &["TYPE", "DATA", "AGE"][..],
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
        let list = |v: &[String]| format!("[{}]", v.join(","));
        match &r {
            Ok(Resource::Gateway(g)) if wide => {
                row.push(g.spec.servers.len().to_string());
                let hosts: Vec<String> = g
                    .spec
                    .servers
                    .iter()
                    .flat_map(|s| s.hosts.clone())
                    .collect();
                row.push(list(&hosts));
            }
            Ok(Resource::Gateway(_)) => {}
            Ok(Resource::VirtualService(v)) => {
                row.push(format!(
                    "[{}]",
                    v.spec
                        .gateways
                        .iter()
                        .map(|g| format!("{g:?}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
                row.push(format!(
                    "[{}]",
                    v.spec
                        .hosts
                        .iter()
                        .map(|g| format!("{g:?}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            Ok(Resource::ServiceEntry(s)) => {
                row.push(list(&s.spec.hosts));
                row.push(
                    match s.spec.location {
                        Some(crate::config::service_entry::Location::MeshInternal) => {
                            "MESH_INTERNAL"
                        }
                        Some(crate::config::service_entry::Location::MeshExternal) => {
                            "MESH_EXTERNAL"
                        }
                        None => "",
                    }
                    .into(),
                );
                row.push(format!("{:?}", s.spec.resolution).to_ascii_uppercase());
            }
            Ok(Resource::Secret(s)) => {
                row.push(s.secret_type.clone().unwrap_or_else(|| "Opaque".into()));
                row.push(s.data.len().to_string());
            }
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
