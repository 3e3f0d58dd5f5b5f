//! The commands people type, with kubectl's flag syntax so that the
//! walkthrough works with `kubectl` replaced by `gatehouse`.
//!
//! Every user error ends as one line on stderr and exit code 1; nothing a
//! user types may panic. This is the only module that uses `anyhow`.

mod apply;
mod create;
mod demo;
mod get;
mod pki;
mod proxy_config;
mod proxy_status;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::store::{self, AnyStore};

/// A secure ingress gateway configured with the Istio API.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub struct Cli {
    /// Where objects live: `dir:PATH` (default: dir: under $XDG_DATA_HOME/gatehouse),
    /// `etcd://HOST:PORT,...`, `kube` (the API server of KUBECONFIG or
    /// ~/.kube/config) or `kube:in-cluster` (the pod's service account).
    #[arg(long, global = true, env = "GATEHOUSE_STORE")]
    pub store: Option<String>,

    /// Namespace of the objects (default: `default`).
    #[arg(short = 'n', long = "namespace", global = true)]
    pub namespace: Option<String>,

    /// File holding the admin endpoint's bearer token (one line, at least 16
    /// characters, e.g. from `openssl rand -hex 32`). `run` requires it on
    /// every admin path but `/ready`, `/healthz/ready` and the `/ui` page
    /// (and will not put `--admin` off loopback without it); `proxy-config`
    /// sends it.
    #[arg(
        long = "admin-token-file",
        global = true,
        env = "GATEHOUSE_ADMIN_TOKEN_FILE"
    )]
    pub admin_token_file: Option<PathBuf>,

    #[command(flatten)]
    pub etcd: EtcdArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// How to reach an etcd store (`--store etcd://HOST:PORT,...`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdArgs {
    /// Key prefix in etcd, so several installations can share one cluster.
    #[arg(
        id = "etcd_prefix",
        long = "etcd-prefix",
        global = true,
        env = "GATEHOUSE_ETCD_PREFIX",
        default_value = "/gatehouse/"
    )]
    pub prefix: String,
    /// CA bundle to verify etcd's server certificates (enables TLS).
    #[arg(
        id = "etcd_cacert",
        long = "etcd-cacert",
        global = true,
        env = "GATEHOUSE_ETCD_CACERT"
    )]
    pub cacert: Option<PathBuf>,
    /// Client certificate for etcd (with --etcd-key).
    #[arg(
        id = "etcd_cert",
        long = "etcd-cert",
        global = true,
        env = "GATEHOUSE_ETCD_CERT"
    )]
    pub cert: Option<PathBuf>,
    /// Client key for etcd (with --etcd-cert).
    #[arg(
        id = "etcd_key",
        long = "etcd-key",
        global = true,
        env = "GATEHOUSE_ETCD_KEY"
    )]
    pub key: Option<PathBuf>,
    /// etcd user; the password comes from GATEHOUSE_ETCD_PASSWORD or --etcd-password-file, never a flag.
    #[arg(
        id = "etcd_user",
        long = "etcd-user",
        global = true,
        env = "GATEHOUSE_ETCD_USER"
    )]
    pub user: Option<String>,
    /// File holding the etcd password.
    #[arg(
        id = "etcd_password_file",
        long = "etcd-password-file",
        global = true,
        env = "GATEHOUSE_ETCD_PASSWORD_FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// Key file for encrypting Secrets at rest in etcd (`gatehouse keygen`).
    #[arg(
        long = "encryption-key-file",
        global = true,
        env = "GATEHOUSE_ENCRYPTION_KEY_FILE"
    )]
    pub encryption_key_file: Option<PathBuf>,
}

impl EtcdArgs {
    fn options(&self) -> anyhow::Result<crate::store::EtcdOptions> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", p.display()))
        };
        let client_cert_pem = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (None, None) => None,
            _ => anyhow::bail!("--etcd-cert and --etcd-key go together"),
        };
        let user = match &self.user {
            None => None,
            Some(u) => {
                let password = match (
                    &self.password_file,
                    std::env::var("GATEHOUSE_ETCD_PASSWORD"),
                ) {
                    (Some(f), _) => String::from_utf8(read(f)?)
                        .map_err(|_| anyhow::anyhow!("{}: not UTF-8", f.display()))?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                    (None, Ok(p)) => p,
                    (None, Err(_)) => anyhow::bail!(
                        "--etcd-user {u}: give the password in GATEHOUSE_ETCD_PASSWORD or --etcd-password-file"
                    ),
                };
                Some((u.clone(), password))
            }
        };
        let keyring = match &self.encryption_key_file {
            Some(p) => Some(std::sync::Arc::new(crate::store::crypt::Keyring::load(p)?)),
            None => None,
        };
        Ok(crate::store::EtcdOptions {
            endpoints: Vec::new(),
            prefix: self.prefix.clone(),
            ca_pem: self.cacert.as_ref().map(read).transpose()?,
            client_cert_pem,
            user,
            keyring,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from files, directories or stdin (`-f -`), all or nothing.
    Apply(apply::ApplyArgs),
    /// Delete objects named in files, or by kind and name.
    Delete(apply::DeleteArgs),
    /// List objects or show one.
    Get(get::GetArgs),
    /// Create an object from flags (`create secret generic|tls`).
    Create(create::CreateArgs),
    /// Make certificates in the walkthrough's folder layout.
    Pki(pki::PkiArgs),
    /// Run the whole walkthrough on this machine, then serve until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Run the gateway: watch the store, serve every selected Gateway.
    Run(Box<run::RunArgs>),
    /// Show what a running gateway serves: listeners, routes, clusters, secret, all.
    ProxyConfig(proxy_config::ProxyConfigArgs),
    /// Compare the store's objects with what each running gateway holds: SYNCED or STALE.
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// Write a new encryption key file (mode 0600) for Secrets at rest in etcd.
    Keygen {
        /// Where to write it; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

/// A user-facing failure: already explained on stderr, exit 1.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // A usage error: one line, like every other user error.
            let rendered = e.render().to_string();
            let message = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect::<Vec<_>>()
                .join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("error: {message} (see --help)");
            return ExitCode::from(1);
        }
    };
    let ctx = Context {
        store_url: cli.store.clone(),
        namespace: cli.namespace.clone(),
        etcd: cli.etcd.clone(),
        admin_token_file: cli.admin_token_file.clone(),
    };
    // `run` builds its own runtimes (data plane and control plane).
    let result = match cli.command {
        Command::Run(a) => run::run(&ctx, *a),
        // The admin client sends the token on every request it makes.
        command => ctx.use_admin_token().and_then(|()| {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(dispatch(&ctx, command)),
                Err(e) => Err(anyhow::anyhow!("cannot start the runtime: {e}")),
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<Reported>().is_none() {
                eprintln!(
                    "error: {}",
                    crate::config::error::one_line(&format!("{e:#}"))
                );
            }
            ExitCode::from(1)
        }
    }
}

async fn dispatch(ctx: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Apply(a) => apply::apply(ctx, a).await,
        Command::Delete(a) => apply::delete(ctx, a).await,
        Command::Get(a) => get::get(ctx, a).await,
        Command::Create(a) => create::create(ctx, a).await,
        Command::Pki(a) => pki::pki(a),
        Command::Demo(a) => demo::demo(a).await,
        // Handled in `main`, before any runtime exists (it builds its own).
        Command::Run(_) => anyhow::bail!("run cannot start inside another runtime"),
        Command::ProxyConfig(a) => proxy_config::proxy_config(a).await,
        Command::ProxyStatus(a) => proxy_status::proxy_status(ctx, a).await,
        Command::Keygen { out } => {
            let id = crate::store::crypt::keygen(&out)?;
            println!("wrote encryption key {id} to {}", out.display());
            Ok(())
        }
    }
}

/// What every command gets from the global flags.
#[derive(Debug, Clone)]
pub struct Context {
    pub store_url: Option<String>,
    pub namespace: Option<String>,
    pub etcd: EtcdArgs,
    /// `--admin-token-file`.
    pub admin_token_file: Option<PathBuf>,
}

impl Context {
    /// The admin token of `--admin-token-file`, read and checked.
    pub fn admin_token(&self) -> anyhow::Result<Option<crate::admin::auth::AdminToken>> {
        let Some(path) = &self.admin_token_file else {
            return Ok(None);
        };
        Ok(Some(crate::admin::auth::AdminToken::load(path)?))
    }

    /// Hands the token of `--admin-token-file` (if any) to the admin client.
    fn use_admin_token(&self) -> anyhow::Result<()> {
        if let Some(t) = self.admin_token()? {
            crate::admin::client::use_token(t);
        }
        Ok(())
    }

    pub fn open_store(&self) -> anyhow::Result<AnyStore> {
        self.open_store_with(store::KubeOptions::default())
    }

    /// Opens the store; `kube` says which namespaces a Kubernetes store
    /// reads (only `run` watches, so only `run` needs to say).
    pub fn open_store_with(&self, kube: store::KubeOptions) -> anyhow::Result<AnyStore> {
        let url = self.store_url.as_deref().unwrap_or("dir:");
        if url.starts_with("etcd") {
            return Ok(store::open_with(url, self.etcd.options()?)?);
        }
        Ok(store::open_any(url, store::EtcdOptions::default(), kube)?)
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}
