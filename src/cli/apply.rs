//! `apply` and `delete`: validate everything first, then write all or nothing.
//!
//! `apply` also warns, as kubectl prints an API server's warnings, about
//! what it stores but gatehouse will not apply; a warning never stops it.

use std::collections::BTreeSet;

use clap::Args;

use super::{Context, Reported};
use crate::config::conflicts::{self, ServerRef};
use crate::config::ignored;
use crate::config::load::{self, Loaded, NamespacePolicy};
use crate::config::{ConfigError, Gateway, Kind, Resource};
use crate::secret::credential;
use crate::store::{AnyStore, ObjectKey, Outcome, Put, Store};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// File, directory or `-` (stdin) with the objects; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Check Secret contents (PEM, key matches certificate, dates). `--validate=false` stores them as given.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = parse_validate)]
    pub validate: bool,
    /// `client`: check and print what would change, write nothing.
    #[arg(long = "dry-run", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Files naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// KIND NAME [NAME...]
    pub args: Vec<String>,
    /// Succeed when an object does not exist.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
}

fn parse_validate(s: &str) -> Result<bool, String> {
    match s {
        "true" | "strict" | "warn" => Ok(true),
        "false" | "ignore" => Ok(false),
        other => Err(format!(
            "{other:?}: expected true, false, strict, warn or ignore"
        )),
    }
}

pub(super) fn ns_policy(ctx: &Context) -> NamespacePolicy {
    NamespacePolicy {
        namespace: ctx.namespace().to_owned(),
        explicit: ctx.namespace.is_some(),
    }
}

pub(super) fn report(errors: &[ConfigError]) -> anyhow::Error {
    for e in errors {
        eprintln!("error: {e}");
    }
    Reported.into()
}

pub fn key_of(r: &Resource) -> ObjectKey {
    ObjectKey {
        kind: r.kind().as_str().to_owned(),
        namespace: r.meta().ns().to_owned(),
        name: r.meta().name.clone(),
    }
}

/// The content checks `--validate` runs on Secrets.
pub(super) fn check_contents(loaded: &[Loaded]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for l in loaded {
        if let Resource::Secret(s) = &l.resource
            && let Err(e) = credential::check_secret(s)
        {
            errors.push(ConfigError {
                file: l.file.clone(),
                document: Some(l.document),
                object: Some(l.resource.describe()),
                path: Some(format!("data.{}", e.field)),
                message: crate::config::error::one_line(&e.reason),
            });
        }
    }
    errors
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `metadata.resourceVersion` of a manifest, if it states one.
fn stated_version(r: &Resource) -> Option<u64> {
    match r.meta().resource_version.as_ref()? {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Writes objects in one all-or-nothing store call and prints kubectl's lines.
pub(super) async fn write_all(
    ctx: &Context,
    resources: Vec<Resource>,
    dry_run: bool,
    create_only: bool,
) -> anyhow::Result<()> {
    let store = ctx.open_store()?;
    write_to(&store, resources, dry_run, create_only, &[]).await
}

/// [`write_all`] on an open store; prints `warnings` (kubectl's `Warning:`
/// lines) once every object is ready to be written, so a refused apply
/// says only why it was refused.
async fn write_to(
    store: &AnyStore,
    resources: Vec<Resource>,
    dry_run: bool,
    create_only: bool,
    warnings: &[String],
) -> anyhow::Result<()> {
    let mut puts = Vec::with_capacity(resources.len());
    for r in resources {
        puts.push(prepare(store, r, create_only).await?);
    }
    for w in warnings {
        eprintln!("Warning: {w}");
    }
    let suffix = if dry_run { " (dry run)" } else { "" };
    if dry_run {
        for p in &puts {
            let verb = if p.expected_version == Some(0) {
                "created"
            } else {
                "configured"
            };
            println!("{}{suffix}", line(&p.key, verb));
        }
        return Ok(());
    }
    let results = store.apply(puts).await.map_err(|e| match e {
        crate::store::StoreError::Conflict { .. } => anyhow::anyhow!(
            "{e}; another writer changed it while this apply ran, nothing was applied: try again"
        ),
        other => other.into(),
    })?;
    for (key, outcome, _) in results {
        let verb = match outcome {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        };
        println!("{}", line(&key, verb));
    }
    Ok(())
}

/// One object's write: refused if it exists and `create_only`, if it is a
/// Secret update Kubernetes refuses, or if its manifest names a version the
/// object is no longer at; keeps the stored creation time.
async fn prepare(store: &AnyStore, mut r: Resource, create_only: bool) -> anyhow::Result<Put> {
    let key = key_of(&r);
    let existing = store.get(&key).await?;
    if create_only && existing.is_some() {
        eprintln!(
            "error: {} {:?} already exists in namespace {}",
            r.kind().resource(),
            key.name,
            key.namespace
        );
        return Err(Reported.into());
    }
    if let (Resource::Secret(new), Some(old)) = (&r, &existing) {
        secret_update_allowed(&key, old, new)?;
    }
    let created = existing
        .as_ref()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.value).ok())
        .and_then(|v| {
            v.pointer("/metadata/creationTimestamp")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        });
    r.meta_mut().creation_timestamp = Some(created.unwrap_or_else(now_rfc3339));
    // A manifest that names the version it was read at (as `get -o yaml`
    // prints it) is an optimistic lock, as with kubectl: if the object
    // changed since, the apply is refused rather than losing that change.
    let current = existing.map_or(0, |o| o.resource_version);
    let expected = match stated_version(&r) {
        Some(v) if v != current => {
            eprintln!(
                "error: {}/{}: conflict: the manifest is for resourceVersion {v}, but the object is now at {}; get it again, re-apply your change",
                r.kind().resource(),
                key.name,
                if current == 0 {
                    "none (deleted)".to_owned()
                } else {
                    current.to_string()
                }
            );
            return Err(Reported.into());
        }
        _ => current,
    };
    Ok(Put {
        key,
        value: r.to_json()?,
        expected_version: Some(expected),
    })
}

/// The warnings for an apply: every field the objects set that gatehouse
/// does not apply, and every Gateway server that is not served because of
/// these Gateways (`ConflictingGateways`), judged on the store's Gateways
/// with these in place. Warnings never stop an apply: Istio's own YAML must
/// apply unchanged.
async fn warnings(store: &AnyStore, resources: &[Resource]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = resources
        .iter()
        .flat_map(ignored::fields)
        .map(|i| i.to_string())
        .collect();
    let applied: Vec<&Gateway> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Gateway(g) => Some(g),
            _ => None,
        })
        .collect();
    if applied.is_empty() {
        return Ok(out);
    }
    let name = |g: &Gateway| (g.metadata.ns().to_owned(), g.metadata.name.clone());
    let applied_names: BTreeSet<(String, String)> = applied.iter().map(|g| name(g)).collect();
    let (objects, _) = store.list(Some(Kind::Gateway.as_str()), None).await?;
    // Another writer may have stored something unreadable: it serves nothing.
    let stored: Vec<Gateway> = objects
        .iter()
        .filter_map(|o| match Resource::from_json(Kind::Gateway, &o.value) {
            Ok(Resource::Gateway(g)) => Some(g),
            _ => None,
        })
        .filter(|g| !applied_names.contains(&name(g)))
        .collect();
    let all: Vec<&Gateway> = stored.iter().chain(applied).collect();
    let involved =
        |s: &ServerRef| applied_names.contains(&(s.namespace.clone(), s.gateway.clone()));
    out.extend(
        conflicts::across_workloads(&all)
            .into_iter()
            .filter(|c| involved(c.loser()) || involved(c.serving()))
            .map(|c| c.to_string()),
    );
    Ok(out)
}

/// What Kubernetes refuses when a Secret is updated: a new type, or any
/// change to a Secret marked `immutable`.
fn secret_update_allowed(
    key: &ObjectKey,
    old: &crate::store::Object,
    new: &crate::config::Secret,
) -> anyhow::Result<()> {
    // Another writer may have stored something unreadable: then anything goes.
    let Ok(Resource::Secret(old)) = Resource::from_json(Kind::Secret, &old.value) else {
        return Ok(());
    };
    let what = format!("secret {:?} in namespace {}", key.name, key.namespace);
    let type_of =
        |s: &crate::config::Secret| s.secret_type.clone().unwrap_or_else(|| "Opaque".into());
    if type_of(&old) != type_of(new) {
        anyhow::bail!(
            "{what}: type: the type of a Secret cannot change (it is {:?}, the new one is {:?}); delete it and create it again",
            type_of(&old),
            type_of(new)
        );
    }
    if old.immutable == Some(true) && (old.data != new.data || new.immutable != Some(true)) {
        anyhow::bail!(
            "{what}: data: the Secret is immutable; delete it and create it again to change it"
        );
    }
    Ok(())
}

fn line(key: &ObjectKey, verb: &str) -> String {
    let resource = Kind::from_kind(&key.kind).map_or(key.kind.as_str(), |k| k.resource());
    format!("{resource}/{} {verb}", key.name)
}

pub async fn apply(ctx: &Context, args: ApplyArgs) -> anyhow::Result<()> {
    let loaded = load::load_all(&args.files, &ns_policy(ctx)).map_err(|e| report(&e))?;
    if args.validate {
        let errors = check_contents(&loaded);
        if !errors.is_empty() {
            return Err(report(&errors));
        }
    }
    let dry_run = match args.dry_run.as_deref() {
        None | Some("none") => false,
        Some("client" | "server") => true,
        Some(other) => anyhow::bail!("--dry-run={other}: expected none, client or server"),
    };
    let resources: Vec<Resource> = loaded.into_iter().map(|l| l.resource).collect();
    let store = ctx.open_store()?;
    let warnings = warnings(&store, &resources).await?;
    write_to(&store, resources, dry_run, false, &warnings).await
}

pub async fn delete(ctx: &Context, args: DeleteArgs) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    if !args.files.is_empty() {
        if !args.args.is_empty() {
            anyhow::bail!("give either -f FILE or KIND NAME, not both");
        }
        let named = load::identify_all(&args.files, &ns_policy(ctx)).map_err(|e| report(&e))?;
        keys.extend(named.into_iter().map(|(kind, namespace, name)| ObjectKey {
            kind: kind.as_str().to_owned(),
            namespace,
            name,
        }));
    } else {
        let [kind, names @ ..] = args.args.as_slice() else {
            anyhow::bail!("delete needs -f FILE, or KIND NAME");
        };
        if names.is_empty() {
            anyhow::bail!("delete {kind}: name the object(s) to delete");
        }
        let kind = Kind::from_cli(kind)
            .ok_or_else(|| anyhow::anyhow!("unknown kind {kind:?}; {}", get_kinds_hint()))?;
        for n in names {
            keys.push(ObjectKey {
                kind: kind.as_str().into(),
                namespace: ctx.namespace().into(),
                name: n.clone(),
            });
        }
    }
    let store = ctx.open_store()?;
    let results = store.delete(keys.clone()).await?;
    let mut missing = false;
    for (key, deleted) in keys.iter().zip(results) {
        let resource = Kind::from_kind(&key.kind).map_or(key.kind.as_str(), |k| k.resource());
        if deleted {
            println!("{resource} {:?} deleted", key.name);
        } else if !args.ignore_not_found {
            eprintln!(
                "error: {resource} {:?} not found in namespace {}",
                key.name, key.namespace
            );
            missing = true;
        }
    }
    if missing {
        return Err(Reported.into());
    }
    Ok(())
}

pub(super) fn get_kinds_hint() -> String {
    "known kinds: gateway (gw), virtualservice (vs), serviceentry (se), destinationrule (dr), secret, service (svc), endpointslice".into()
}
