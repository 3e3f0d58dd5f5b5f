//! `demo`: the whole walkthrough on this machine, in one command.
//!
//! Makes the PKI for both hosts, creates the two secrets, applies the
//! walkthrough's Gateway and VirtualServices (examples/foocorp, verbatim)
//! plus ServiceEntries for two built-in backends, starts the gateway, makes
//! the walkthrough's two requests itself, prints the curl commands, and
//! serves until Ctrl-C. It uses its own store and never touches the user's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::load::{NamespacePolicy, Source, parse_source};
use crate::config::secret::SecretBytes;
use crate::config::{Resource, Secret};
use crate::control::{self, RunOptions, Status};
use crate::pki;
use crate::proxy::{Settings, Shared};
use crate::secret::credential;
use crate::snapshot::Snapshot;
use crate::store::{Put, Store};

const GATEWAY_YAML: &str = include_str!("../../examples/foocorp/gateway.yaml");
const VIRTUAL_SERVICES_YAML: &str = include_str!("../../examples/foocorp/virtualservices.yaml");

/// The walkthrough's two services and what their backends answer.
const SERVICES: [(&str, &str, &str); 2] = [
    (
        "frontend.foocorp.com",
        "frontend.ux.svc.cluster.local",
        "🏗 Welcome to FooCorp - Public Site\n",
    ),
    (
        "inventory.foocorp.com",
        "inventory.corp-services.svc.cluster.local",
        "🛠 FooCorp - Inventory [INTERNAL]\n",
    ),
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The HTTPS port the gateway listens on (127.0.0.1).
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
    /// Working folder for certificates and the demo's own store.
    #[arg(long, default_value = "gatehouse-demo")]
    pub dir: PathBuf,
    /// Make the requests, print the answers, and stop (for scripts and tests).
    #[arg(long)]
    pub once: bool,
    /// The admin endpoint (dashboard `/ui`, `/metrics`, `/config_dump`);
    /// when the default port is taken, a free one is used and printed.
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin: SocketAddr,
}

async fn backend(body: &'static str) -> anyhow::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(body.as_bytes()),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn service_entry(host: &str, addr: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {}\n  namespace: default\nspec:\n  hosts: [{host}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: {}, ports: {{http: {}}}}}]\n",
        host.split('.').next().unwrap_or("backend"),
        addr.ip(),
        addr.port()
    )
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The walkthrough's `create secret generic` for one host.
fn credential_secret(layout: &pki::HostLayout, name: &str) -> anyhow::Result<Resource> {
    let mut s = Secret::new(name, "istio-system", "Opaque");
    s.data
        .insert("key".into(), SecretBytes(read(&layout.server_key)?));
    s.data
        .insert("cert".into(), SecretBytes(read(&layout.server_cert)?));
    s.data
        .insert("cacert".into(), SecretBytes(read(&layout.ca_chain)?));
    credential::check_secret(&s)?;
    Ok(Resource::Secret(s))
}

fn curl_command(host: &str, port: u16) -> String {
    format!(
        "curl -HHost:{host} \\\n--resolve {host}:{port}:127.0.0.1 \\\n--cacert {host}/2_intermediate/certs/ca-chain.cert.pem \\\n--cert {host}/4_client/certs/{host}.cert.pem \\\n--key {host}/4_client/private/{host}.key.pem \\\nhttps://{host}:{port}/"
    )
}

/// One request the way the walkthrough's curl makes it: SNI and Host set to
/// the service, the host's CA trusted, its client certificate presented.
async fn request(layout: &pki::HostLayout, host: &str, addr: SocketAddr) -> anyhow::Result<String> {
    let config = crate::tls::client::mtls_config(
        &read(&layout.ca_chain)?,
        Some((&read(&layout.client_cert)?, &read(&layout.client_key)?)),
        &[b"http/1.1"],
    )?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        anyhow::bail!("{host} answered {status}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    // Say clearly, before any work, if the port is taken.
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    match std::net::TcpListener::bind(addr) {
        Ok(l) => drop(l),
        Err(e) => anyhow::bail!(
            "port {} on 127.0.0.1 is not free ({e}): pick another with `gatehouse demo --port 9443`",
            args.port
        ),
    }
    let port = args.port;
    let dir = &args.dir;
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let layouts = certificates(&dir)?;

    let store_dir = dir.join("store");
    if store_dir.exists() {
        std::fs::remove_dir_all(&store_dir)?;
    }
    let store = crate::store::open(&format!("dir:{}", store_dir.display()))?;
    let mut resources = secrets(&layouts)?;
    resources.extend(objects().await?);
    let mut puts = Vec::new();
    for r in &resources {
        puts.push(Put {
            key: super::apply::key_of(r),
            value: r.to_json()?,
            expected_version: None,
        });
    }
    store.apply(puts).await?;

    let admin = admin_listener(args.admin).await?;
    let admin_addr = admin.local_addr()?;
    let gateway = start_gateway(store, addr, admin).await?;

    println!("== 5. the walkthrough's requests (mutual TLS, host by SNI)");
    for ((host, _, _), layout) in SERVICES.iter().zip(&layouts) {
        let answer = request(layout, host, addr).await?;
        println!("$ curl ... https://{host}:{port}/");
        print!("{answer}");
    }
    print_try_it(&dir, port);
    if args.once {
        return Ok(());
    }
    println!(
        "Serving on https://127.0.0.1:{port} until Ctrl-C; the dashboard: http://{admin_addr}/ui"
    );
    tokio::select! {
        r = gateway => r?,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Step 1: `gatehouse pki init` for both hosts.
fn certificates(dir: &Path) -> anyhow::Result<Vec<pki::HostLayout>> {
    println!(
        "== 1. certificates (gatehouse pki init) in {}",
        dir.display()
    );
    let mut layouts = Vec::new();
    for (host, _, _) in SERVICES {
        let layout = pki::init(&pki::InitOptions {
            host: host.into(),
            out: dir.to_path_buf(),
            key_type: pki::KeyType::EcdsaP256,
            days: 30,
            force: true,
        })?;
        println!("   {host}: root CA, intermediate CA, server and client certificates");
        layouts.push(layout);
    }
    Ok(layouts)
}

/// Step 2: the two secrets, as `gatehouse create secret generic` makes them.
fn secrets(layouts: &[pki::HostLayout]) -> anyhow::Result<Vec<Resource>> {
    println!("== 2. secrets (gatehouse create -n istio-system secret generic ...)");
    let mut resources = Vec::new();
    for ((host, _, _), layout) in SERVICES.iter().zip(layouts) {
        let name = format!("{}-credential", host.split('.').next().unwrap_or(host));
        resources.push(credential_secret(layout, &name)?);
        println!("   secret/{name} created");
    }
    Ok(resources)
}

/// Step 3: the walkthrough's YAML, verbatim, and a ServiceEntry for each
/// built-in backend (started here).
async fn objects() -> anyhow::Result<Vec<Resource>> {
    println!(
        "== 3. Gateway and VirtualServices (examples/foocorp), ServiceEntries for the backends"
    );
    let mut yaml = vec![
        (
            "examples/foocorp/gateway.yaml".to_owned(),
            GATEWAY_YAML.to_owned(),
        ),
        (
            "examples/foocorp/virtualservices.yaml".to_owned(),
            VIRTUAL_SERVICES_YAML.to_owned(),
        ),
    ];
    for (_, svc, body) in SERVICES {
        let addr = backend(body).await?;
        yaml.push((format!("serviceentry {svc}"), service_entry(svc, addr)));
    }
    let ns = NamespacePolicy {
        namespace: "default".into(),
        explicit: false,
    };
    let mut resources = Vec::new();
    for (name, text) in yaml {
        let loaded = parse_source(&Source { name, text }, &ns).map_err(|errs| {
            anyhow::anyhow!(
                "{}",
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        for l in loaded {
            println!(
                "   {}/{} created",
                l.resource.kind().resource(),
                l.resource.meta().name
            );
            resources.push(l.resource);
        }
    }
    Ok(resources)
}

/// The admin endpoint's socket: `wanted`, or, when that is the default
/// and taken (a gateway already runs here), a free port on loopback.
async fn admin_listener(wanted: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    if !wanted.ip().is_loopback() {
        anyhow::bail!(
            "--admin {wanted}: the demo's admin endpoint has no token, so it stays on loopback"
        );
    }
    match tokio::net::TcpListener::bind(wanted).await {
        Ok(l) => Ok(l),
        Err(_) if wanted == SocketAddr::from(([127, 0, 0, 1], 15000)) => {
            Ok(tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?)
        }
        Err(e) => anyhow::bail!("cannot listen on {wanted} for the admin endpoint: {e}"),
    }
}

/// Step 4: the gateway on `addr`, serving once its listener is bound, and
/// its admin endpoint (the dashboard) on `admin`.
async fn start_gateway(
    store: crate::store::AnyStore,
    addr: SocketAddr,
    admin: tokio::net::TcpListener,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    println!("== 4. the gateway (gatehouse run), SDS pushes the credentials");
    super::run::init_logging_stdout("sds=info,warn");
    let status = Arc::new(ArcSwap::from_pointee(Status::default()));
    let shared = Arc::new(Shared::new(
        Arc::new(ArcSwap::from_pointee(Snapshot::default())),
        Settings::default(),
        false,
    ));
    let opts = RunOptions {
        cache: None,
        cache_keyring: None,
        labels: [("istio".to_owned(), "ingressgateway".to_owned())].into(),
        namespace: "istio-system".into(),
        listen: [(443, addr)].into(),
        json_log: false,
    };
    let admin_addr = admin.local_addr()?;
    tokio::spawn(crate::admin::serve(
        admin,
        status.clone(),
        shared.drain.clone(),
        shared.metrics.clone(),
        None,
    ));
    println!("dashboard: http://{admin_addr}/ui");
    println!("what it serves: gatehouse proxy-config all --admin {admin_addr}");
    let gateway = tokio::spawn(control::run(store, opts, status.clone(), shared));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status.load().listeners.is_empty() {
        if gateway.is_finished() || tokio::time::Instant::now() > deadline {
            anyhow::bail!("the gateway did not start listening on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(gateway)
}

/// The curl commands to paste into another terminal.
fn print_try_it(dir: &Path, port: u16) {
    println!();
    println!("Try it yourself from another terminal:");
    println!();
    println!("cd {}", dir.display());
    for (host, _, _) in SERVICES {
        println!("{}", curl_command(host, port));
        println!();
    }
}
