//! `create secret generic|tls`, as kubectl spells it.

use std::path::Path;

use clap::{Args, Subcommand};

use super::{Context, Reported};
use crate::config::secret::SecretBytes;
use crate::config::{ConfigError, Resource, Secret, validate};
use crate::secret::credential;

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub what: CreateWhat,
}

#[derive(Debug, Subcommand)]
pub enum CreateWhat {
    /// Create a Secret.
    Secret {
        #[command(subcommand)]
        kind: SecretKind,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretKind {
    /// A Secret from files and literals: `--from-file=[KEY=]PATH`, `--from-literal=KEY=VALUE`.
    Generic(GenericArgs),
    /// A `kubernetes.io/tls` Secret from `--cert` and `--key`.
    Tls(TlsArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// `client`: print the object instead of storing it (with `-o yaml|json`).
    #[arg(long = "dry-run", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: Option<String>,
    /// Output format for `--dry-run`: yaml or json.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Check certificate/key contents (default true).
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = ["true", "false"])]
    pub validate: String,
}

#[derive(Debug, Args)]
pub struct GenericArgs {
    pub name: String,
    #[arg(long = "from-file")]
    pub from_file: Vec<String>,
    #[arg(long = "from-literal")]
    pub from_literal: Vec<String>,
    /// Secret type (default Opaque).
    #[arg(long = "type")]
    pub secret_type: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct TlsArgs {
    pub name: String,
    // Own ids: the global `--etcd-cert`/`--etcd-key` flags are `cert`/`key`
    // to clap, and two arguments with one id make clap panic at parse time.
    /// PEM certificate chain, leaf first.
    #[arg(long = "cert", id = "tls-cert")]
    pub cert: String,
    /// PEM private key of the leaf.
    #[arg(long = "key", id = "tls-key")]
    pub key: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

const MAX_VALUE_BYTES: u64 = 1024 * 1024;

fn read_value(path: &str) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{path}: cannot read: {e}"))?;
    if meta.is_dir() {
        anyhow::bail!("{path}: is a directory; name a file");
    }
    if meta.len() > MAX_VALUE_BYTES {
        anyhow::bail!("{path}: larger than 1 MiB");
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{path}: cannot read: {e}"))
}

/// Secret key -> the file its value came from, so errors name the file.
type Sources = Vec<(String, String)>;

pub async fn create(ctx: &Context, args: CreateArgs) -> anyhow::Result<()> {
    let CreateWhat::Secret { kind } = args.what;
    let ns = ctx.namespace().to_owned();
    let mut sources = Sources::new();
    let (secret, common) = match kind {
        SecretKind::Generic(g) => (generic(&g, &ns, &mut sources)?, g.common),
        SecretKind::Tls(t) => (tls(&t, &ns, &mut sources)?, t.common),
    };
    let resource = check(secret, &common, &sources)?;
    emit(ctx, resource, &common).await
}

/// `create secret generic`: `--from-file=[KEY=]PATH` and `--from-literal=KEY=VALUE`.
fn generic(g: &GenericArgs, ns: &str, sources: &mut Sources) -> anyhow::Result<Secret> {
    let mut s = Secret::new(&g.name, ns, g.secret_type.as_deref().unwrap_or("Opaque"));
    for spec in &g.from_file {
        let (key, path) = match spec.split_once('=') {
            Some((k, p)) => (k.to_owned(), p.to_owned()),
            None => {
                let base = Path::new(spec)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow::anyhow!("--from-file={spec}: no file name"))?;
                (base.to_owned(), spec.clone())
            }
        };
        if s.data.contains_key(&key) {
            anyhow::bail!("--from-file={spec}: key {key:?} is given twice");
        }
        s.data.insert(key.clone(), SecretBytes(read_value(&path)?));
        sources.push((key, path));
    }
    for lit in &g.from_literal {
        let (k, v) = lit
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--from-literal={lit}: expected KEY=VALUE"))?;
        if s.data.contains_key(k) {
            anyhow::bail!("--from-literal={lit}: key {k:?} is given twice");
        }
        s.data.insert(k.into(), SecretBytes(v.as_bytes().to_vec()));
    }
    Ok(s)
}

/// `create secret tls --cert --key`.
fn tls(t: &TlsArgs, ns: &str, sources: &mut Sources) -> anyhow::Result<Secret> {
    let mut s = Secret::new(&t.name, ns, "kubernetes.io/tls");
    s.data
        .insert("tls.crt".into(), SecretBytes(read_value(&t.cert)?));
    s.data
        .insert("tls.key".into(), SecretBytes(read_value(&t.key)?));
    sources.push(("tls.crt".into(), t.cert.clone()));
    sources.push(("tls.key".into(), t.key.clone()));
    Ok(s)
}

/// Istio's and Kubernetes' rules, then (unless `--validate=false`) the
/// content: PEM, key matches certificate, dates. Errors name the file.
fn check(secret: Secret, common: &CommonArgs, sources: &Sources) -> anyhow::Result<Resource> {
    let object = format!("Secret {}/{}", secret.metadata.ns(), secret.metadata.name);
    let resource = Resource::Secret(secret);
    let field_errors = validate::validate(&resource);
    if !field_errors.is_empty() {
        let errors: Vec<ConfigError> = field_errors
            .0
            .into_iter()
            .map(|(path, message)| ConfigError {
                file: "create secret".into(),
                document: None,
                object: Some(object.clone()),
                path: Some(path),
                message,
            })
            .collect();
        return Err(super::apply::report(&errors));
    }
    let Resource::Secret(secret) = &resource else {
        anyhow::bail!("internal error: create secret built another kind");
    };
    if common.validate == "true"
        && let Err(e) = credential::check_secret(secret)
    {
        let file = sources
            .iter()
            .find(|(k, _)| *k == e.field)
            .map_or_else(|| "create secret".to_owned(), |(_, p)| p.clone());
        return Err(super::apply::report(&[ConfigError {
            file,
            document: None,
            object: Some(object),
            path: Some(format!("data.{}", e.field)),
            message: crate::config::error::one_line(&e.reason),
        }]));
    }
    Ok(resource)
}

/// Store it, or with `--dry-run` print it.
async fn emit(ctx: &Context, resource: Resource, common: &CommonArgs) -> anyhow::Result<()> {
    match common.dry_run.as_deref() {
        None | Some("none") => super::apply::write_all(ctx, vec![resource], false, true).await,
        Some("client" | "server") => {
            let mut v = resource.to_value()?;
            if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.insert("creationTimestamp".into(), serde_json::Value::Null);
            }
            match common.output.as_deref() {
                Some("json") => println!("{}", serde_json::to_string_pretty(&v)?),
                Some("yaml") => print!("{}", serde_saphyr::to_string(&v)?),
                None => println!("secret/{} created (dry run)", resource.meta().name),
                Some(o) => {
                    eprintln!("error: -o {o}: expected yaml or json");
                    return Err(Reported.into());
                }
            }
            Ok(())
        }
        Some(other) => anyhow::bail!("--dry-run={other}: expected none, client or server"),
    }
}
