//! `proxy-config listeners|routes|clusters|secret|all`: what a running
//! gateway serves, read from its admin endpoint (`/config_dump`,
//! `/credentials`) and printed as istioctl's tables, or as that part of
//! the dump with `-o json|yaml`.
//!
//! It only reads the admin endpoint; it must never print key material
//! (the endpoint never sends any).

use std::net::SocketAddr;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use super::get::render;

#[derive(Debug, Args)]
pub struct ProxyConfigArgs {
    #[command(subcommand)]
    pub what: What,
}

/// Which gateway, and how to print.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The gateway's admin address.
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin: SocketAddr,
    /// Output: tables (default), or that part of `/config_dump` as json or yaml.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// Each Gateway port and its servers, matched by SNI (like `istioctl proxy-config listeners`).
    Listeners(Target),
    /// Each server's routes: hosts, match and VirtualService (like `istioctl proxy-config routes`).
    Routes(Target),
    /// The destinations routes forward to and their endpoints (like `istioctl proxy-config clusters`).
    Clusters(Target),
    /// The credentials the gateway holds: serial, dates, SHA-256, state; never keys (like `istioctl proxy-config secret`).
    Secret(Target),
    /// All of the above; with `-o json|yaml` the whole `/config_dump` (objects, warnings, SDS events too).
    All(Target),
}

/// GETs `path` from the admin endpoint at `admin` as JSON.
pub(super) async fn fetch_json(admin: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let body = crate::admin::client::get(admin, path).await?;
    serde_json::from_str(&body).map_err(|e| {
        anyhow::anyhow!("the admin endpoint at {admin} answered something that is not JSON: {e}")
    })
}

fn print_value(v: &Value, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(v)?),
    }
    Ok(())
}

pub async fn proxy_config(args: ProxyConfigArgs) -> anyhow::Result<()> {
    if let What::Secret(t) = &args.what {
        // The `/credentials` shape, as `proxy-config secret -o json` always printed.
        let v = fetch_json(t.admin, "/credentials").await?;
        match t.output {
            Some(o) => print_value(&v, o)?,
            None => print!("{}", render(&secret_table(&v["credentials"]))),
        }
        return Ok(());
    }
    let (What::Listeners(t) | What::Routes(t) | What::Clusters(t) | What::All(t) | What::Secret(t)) =
        &args.what;
    let dump = fetch_json(t.admin, "/config_dump").await?;
    if let Some(o) = t.output {
        let part = match &args.what {
            What::Listeners(_) => dump["listeners"].clone(),
            What::Routes(_) => Value::Array(routes_part(&dump)),
            What::Clusters(_) => dump["clusters"].clone(),
            What::Secret(_) | What::All(_) => dump,
        };
        return print_value(&part, o);
    }
    let tables = match &args.what {
        What::Listeners(_) => vec![listeners_table(&dump)],
        What::Routes(_) => vec![routes_table(&dump)],
        What::Clusters(_) => vec![clusters_table(&dump)],
        What::Secret(_) | What::All(_) => vec![
            listeners_table(&dump),
            routes_table(&dump),
            clusters_table(&dump),
            secret_table(&dump["secrets"]),
        ],
    };
    let rendered: Vec<String> = tables.iter().map(|t| render(t)).collect();
    print!("{}", rendered.join("\n"));
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn strings(v: &Value, sep: &str) -> String {
    let parts: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(sep)
    }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Every server of every listener, with its listener.
fn servers(dump: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    array(&dump["listeners"])
        .iter()
        .flat_map(|l| array(&l["servers"]).iter().map(move |s| (l, s)))
}

/// ADDRESS PORT MATCH DESTINATION: one row per server (its SNI names on a
/// TLS port, its Host names on a plain one).
fn listeners_table(dump: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "ADDRESS".to_owned(),
        "PORT".into(),
        "MATCH".into(),
        "DESTINATION".into(),
    ]];
    for (l, srv) in servers(dump) {
        let address = match (&l["address"], &l["error"]) {
            (Value::String(a), _) => a.clone(),
            (_, Value::String(e)) => format!("not bound: {e}"),
            _ => "-".to_owned(),
        };
        let by = if l["tls"] == Value::Bool(true) {
            "SNI"
        } else {
            "Host"
        };
        let mut dest = format!("Route: {}", s(&srv["id"]));
        if srv["state"] != "READY" {
            dest.push_str(&format!(" ({}: {})", s(&srv["state"]), s(&srv["reason"])));
        }
        rows.push(vec![
            address,
            s(&l["port"]),
            format!("{by}: {}", strings(&srv["hosts"], ",")),
            dest,
        ]);
    }
    rows
}

/// The routes of every server, each with its server's id and port: what
/// `proxy-config routes -o json|yaml` prints.
fn routes_part(dump: &Value) -> Vec<Value> {
    servers(dump)
        .flat_map(|(l, srv)| {
            array(&srv["routes"]).iter().map(move |r| {
                let mut r = r.clone();
                if let Value::Object(m) = &mut r {
                    m.insert("server".into(), srv["id"].clone());
                    m.insert("port".into(), l["port"].clone());
                }
                r
            })
        })
        .collect()
}

/// What a route does, in a few words: its backends, or its status code.
fn destination(r: &Value) -> String {
    let backends = array(&r["backends"]);
    match r["action"].as_str() {
        Some("forward") if backends.len() == 1 => {
            format!("{}:{}", s(&backends[0]["host"]), s(&backends[0]["port"]))
        }
        Some("forward") => backends
            .iter()
            .map(|b| format!("{}:{} ({})", s(&b["host"]), s(&b["port"]), s(&b["weight"])))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => format!("{other} {}", s(&r["status"])),
        None => "-".to_owned(),
    }
}

/// NAME DOMAINS MATCH VIRTUAL SERVICE DESTINATION: one row per route.
fn routes_table(dump: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "DOMAINS".into(),
        "MATCH".into(),
        "VIRTUAL SERVICE".into(),
        "DESTINATION".into(),
    ]];
    for r in routes_part(dump) {
        let vs = match &r["name"] {
            Value::String(n) => format!("{}/{n}", s(&r["virtual_service"])),
            _ => format!("{}/{}", s(&r["virtual_service"]), s(&r["index"])),
        };
        rows.push(vec![
            s(&r["server"]),
            strings(&r["hosts"], ","),
            strings(&r["match"], "; "),
            vs,
            destination(&r),
        ]);
    }
    rows
}

/// SERVICE FQDN PORT SUBSET DIRECTION TYPE ENDPOINTS: one row per destination.
fn clusters_table(dump: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "SERVICE FQDN".to_owned(),
        "PORT".into(),
        "SUBSET".into(),
        "DIRECTION".into(),
        "TYPE".into(),
        "ENDPOINTS".into(),
        "DESTINATION RULE".into(),
        "TLS".into(),
        "SNI".into(),
        "CREDENTIAL".into(),
    ]];
    for c in array(&dump["clusters"]) {
        rows.push(vec![
            s(&c["host"]),
            s(&c["port"]),
            s(&c["subset"]),
            "outbound".into(),
            s(&c["resolution"]),
            strings(&c["endpoints"], ","),
            s(&c["destination_rule"]),
            s(&c["tls_mode"]),
            s(&c["sni"]),
            s(&c["credential"]),
        ]);
    }
    rows
}

/// RESOURCE NAME TYPE STATUS SERIAL NUMBER NOT BEFORE NOT AFTER SHA256
/// FINGERPRINT REASON: one row per credential resource (its first
/// certificate).
fn secret_table(credentials: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "RESOURCE NAME".to_owned(),
        "TYPE".into(),
        "STATUS".into(),
        "SERIAL NUMBER".into(),
        "NOT BEFORE".into(),
        "NOT AFTER".into(),
        "SHA256 FINGERPRINT".into(),
        "REASON".into(),
    ]];
    let date = |ts: Option<i64>| {
        ts.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| "-".into())
    };
    for c in array(credentials) {
        let first = array(&c["certs"]).first().cloned().unwrap_or_default();
        rows.push(vec![
            c["resource"].as_str().unwrap_or("").to_owned(),
            c["kind"].as_str().unwrap_or("").to_owned(),
            c["state"].as_str().unwrap_or("").to_owned(),
            first["serial"].as_str().unwrap_or("-").to_owned(),
            date(first["not_before"].as_i64()),
            date(first["not_after"].as_i64()),
            first["sha256"].as_str().unwrap_or("-").to_owned(),
            c["reason"].as_str().unwrap_or("").to_owned(),
        ]);
    }
    rows
}
