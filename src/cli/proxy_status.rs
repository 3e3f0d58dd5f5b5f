//! `proxy-status`: whether each running gateway holds what the store
//! holds, like `istioctl proxy-status`: one line per gateway, SYNCED or
//! STALE, then what differs (`Gateway default/x: store 14, gateway 12`).
//!
//! It reads the store (names and resource versions only, never a
//! Secret's data) and the gateway's `/config_dump`; it changes nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use clap::Args;
use serde_json::Value;

use super::get::render;
use super::{Context, Reported};
use crate::store::Store;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every gateway is SYNCED; 1 when one is STALE or \
cannot be reached (unlike istioctl, so that a script can wait for a rollout).\n\
A gateway is SYNCED when it holds every object of the store at the store's \
resource version, has taken that version in (not skipped it as invalid), and \
holds nothing the store lacks."
)]
pub struct ProxyStatusArgs {
    /// A gateway's admin address; repeat for every replica.
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin: Vec<SocketAddr>,
}

/// `kind namespace/name` → resource version.
type Versions = BTreeMap<(String, String, String), u64>;

/// How one gateway differs from the store, one line per object.
fn differences(store: &Versions, dump: &Value) -> Vec<String> {
    let mut held: BTreeMap<(String, String, String), &Value> = BTreeMap::new();
    for o in dump["objects"].as_array().into_iter().flatten() {
        let text = |f: &str| o[f].as_str().unwrap_or_default().to_owned();
        held.insert((text("kind"), text("namespace"), text("name")), o);
    }
    let mut out = Vec::new();
    for (key @ (kind, ns, name), rv) in store {
        let what = format!("{kind} {ns}/{name}");
        let Some(o) = held.get(key) else {
            out.push(format!("{what}: missing (store {rv})"));
            continue;
        };
        let theirs = o["resource_version"].as_str().unwrap_or("?");
        if theirs != rv.to_string() {
            out.push(format!("{what}: store {rv}, gateway {theirs}"));
        } else if let Some(why) = o["reason"].as_str() {
            let serving = o["serving_version"]
                .as_str()
                .map_or("nothing".to_owned(), |v| format!("version {v}"));
            out.push(format!(
                "{what}: store {rv}, gateway skipped it ({why}); serving {serving}"
            ));
        }
    }
    for ((kind, ns, name), o) in &held {
        if !store.contains_key(&(kind.clone(), ns.clone(), name.clone())) {
            let theirs = o["resource_version"].as_str().unwrap_or("?");
            out.push(format!("{kind} {ns}/{name}: extra (gateway {theirs})"));
        }
    }
    out
}

pub async fn proxy_status(ctx: &Context, args: ProxyStatusArgs) -> anyhow::Result<()> {
    let store = ctx.open_store()?;
    let (objects, _) = store.list(None, None).await?;
    let versions: Versions = objects
        .into_iter()
        .map(|o| {
            (
                (o.key.kind, o.key.namespace, o.key.name),
                o.resource_version,
            )
        })
        .collect();
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "GENERATION".into(),
        "STATUS".into(),
    ]];
    let mut details = Vec::new();
    let mut unreachable = Vec::new();
    let mut all_synced = true;
    for admin in &args.admin {
        let dump = match super::proxy_config::fetch_json(*admin, "/config_dump").await {
            Ok(d) => d,
            Err(e) => {
                rows.push(vec![admin.to_string(), "-".into(), "UNREACHABLE".into()]);
                unreachable.push(format!("{e:#}"));
                all_synced = false;
                continue;
            }
        };
        let diff = differences(&versions, &dump);
        let status = if diff.is_empty() { "SYNCED" } else { "STALE" };
        all_synced &= diff.is_empty();
        rows.push(vec![
            admin.to_string(),
            dump["generation"].to_string(),
            status.into(),
        ]);
        details.extend(diff.into_iter().map(|d| format!("{admin}: {d}")));
    }
    print!("{}", render(&rows));
    for d in &details {
        println!("{d}");
    }
    for e in &unreachable {
        eprintln!("error: {}", crate::config::error::one_line(e));
    }
    if all_synced {
        Ok(())
    } else {
        Err(Reported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_extra_behind_and_skipped() {
        let key = |k: &str, n: &str| (k.to_owned(), "default".to_owned(), n.to_owned());
        let store: Versions = [
            (key("Gateway", "gw"), 14),
            (key("VirtualService", "new"), 15),
            (key("VirtualService", "bad"), 16),
            (key("ServiceEntry", "same"), 3),
        ]
        .into_iter()
        .collect();
        let dump = json!({"objects": [
            {"kind": "Gateway", "namespace": "default", "name": "gw", "resource_version": "12"},
            {"kind": "VirtualService", "namespace": "default", "name": "bad", "resource_version": "16",
             "serving_version": "9", "reason": "spec.http: bad"},
            {"kind": "ServiceEntry", "namespace": "default", "name": "same", "resource_version": "3"},
            {"kind": "Secret", "namespace": "default", "name": "old", "resource_version": "2"},
        ]});
        assert_eq!(
            differences(&store, &dump),
            [
                "Gateway default/gw: store 14, gateway 12",
                "VirtualService default/bad: store 16, gateway skipped it (spec.http: bad); serving version 9",
                "VirtualService default/new: missing (store 15)",
                "Secret default/old: extra (gateway 2)",
            ]
        );
        let same: Versions = [(key("ServiceEntry", "same"), 3)].into_iter().collect();
        let dump = json!({"objects": [
            {"kind": "ServiceEntry", "namespace": "default", "name": "same", "resource_version": "3", "reason": null},
        ]});
        assert!(differences(&same, &dump).is_empty());
    }
}
