//! The credential side of the benchmark, for gatehouse alone: how long a
//! rotated certificate takes from the store to a handshake (`push-latency`),
//! and the objects for N hosts that each have their own credential
//! (`hosts`).
//!
//! Keys are written only to files of mode 0600 and never printed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use gatehouse::pki::{Ca, HostLayout, KeyType, LeafSpec};

use crate::cli::{HostsArgs, PushArgs};
use crate::conn::{Client, check_address};

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A Secret in the walkthrough's shape (`cert`, `key`, `cacert`), as JSON,
/// which is also YAML.
fn secret_json(name: &str, cert: &str, key: &str, cacert: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "istio-system"},
        "type": "Opaque",
        "stringData": {"cert": cert, "key": key, "cacert": cacert},
    })
}

/// Runs `gatehouse --store STORE apply -f FILE`, at most `limit` long.
fn apply(gatehouse: &Path, store: &str, file: &Path, limit: Duration) -> anyhow::Result<()> {
    let mut child = Command::new(gatehouse)
        .arg("--store")
        .arg(store)
        .arg("apply")
        .arg("-f")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", gatehouse.display()))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            anyhow::bail!("gatehouse apply failed ({status}): {}", err.trim());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("gatehouse apply took more than {limit:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

#[derive(Debug, Serialize)]
pub struct Quantiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Quantiles {
    fn of(mut v: Vec<Duration>) -> Quantiles {
        v.sort_unstable();
        Quantiles {
            p50_ms: quantile_ms(&v, 50.0),
            p99_ms: quantile_ms(&v, 99.0),
            max_ms: quantile_ms(&v, 100.0),
        }
    }
}

/// The result of `push-latency`.
#[derive(Debug, Serialize)]
pub struct PushReport {
    pub mode: &'static str,
    pub sni: String,
    pub secret: String,
    pub rotations: usize,
    pub served: usize,
    /// From `gatehouse apply` having written the store to the first
    /// handshake that served the new certificate.
    pub store_to_handshake: Quantiles,
    /// From starting `gatehouse apply` to that handshake.
    pub apply_start_to_handshake: Quantiles,
    /// How long `gatehouse apply` itself ran.
    pub apply_duration: Quantiles,
    /// Handshakes made while waiting (all rotations).
    pub polls: u64,
}

impl PushReport {
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "push-latency sni={} secret={}: {}/{} rotations served, {} polling handshakes",
            self.sni, self.secret, self.served, self.rotations, self.polls
        );
        for (name, q) in [
            ("store -> handshake", &self.store_to_handshake),
            ("apply start -> handshake", &self.apply_start_to_handshake),
            ("apply itself", &self.apply_duration),
        ] {
            let _ = writeln!(
                s,
                "  {name:<26} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
                q.p50_ms, q.p99_ms, q.max_ms
            );
        }
        print!("{s}");
        Ok(())
    }
}

/// Rotates `--secret` `--rotations` times with new server certificates from
/// the host's intermediate CA, timing each until a handshake serves it.
pub async fn push_latency(args: PushArgs) -> anyhow::Result<PushReport> {
    let client = Client::new(&args.target, false)?;
    let wait = Duration::from_secs_f64(args.wait.clamp(0.1, 600.0));
    let pause = Duration::from_secs_f64(args.poll_interval.clamp(0.0, 10_000.0) / 1000.0);
    let dir = args
        .pki_dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("--pki-dir {} has no parent", args.pki_dir.display()))?;
    let host = args
        .pki_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("--pki-dir {} has no name", args.pki_dir.display()))?;
    let layout = HostLayout::new(dir, host);
    let issuer = layout.load_intermediate()?;
    let cacert = std::fs::read_to_string(&layout.ca_chain)
        .map_err(|e| anyhow::anyhow!("{}: {e}", layout.ca_chain.display()))?;
    std::fs::create_dir_all(&args.work_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.work_dir.display()))?;
    // The target must answer before anything is timed.
    client
        .connect()
        .await
        .map_err(|f| anyhow::anyhow!("first handshake with {}: {}", args.target.sni, f.message))?;

    let (mut store_to, mut start_to, mut apply_took) = (Vec::new(), Vec::new(), Vec::new());
    let mut polls = 0u64;
    for i in 0..args.rotations {
        let leaf = issuer.issue(&LeafSpec::server(args.target.sni.clone()))?;
        let file = args.work_dir.join(format!("rotation-{i}.yaml"));
        let doc = secret_json(&args.secret, &leaf.cert_pem, &leaf.key_pem, &cacert);
        write_private(&file, &serde_json::to_string_pretty(&doc)?)?;
        let (gh, store, f) = (args.gatehouse.clone(), args.store.clone(), file.clone());
        let started = Instant::now();
        tokio::task::spawn_blocking(move || apply(&gh, &store, &f, Duration::from_secs(60)))
            .await??;
        let applied = Instant::now();
        apply_took.push(applied - started);
        loop {
            polls += 1;
            if let Ok(conn) = client.connect().await
                && conn.serial.eq_ignore_ascii_case(&leaf.serial_hex)
            {
                let now = Instant::now();
                store_to.push(now - applied);
                start_to.push(now - started);
                break;
            }
            if applied.elapsed() > wait {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        let _ = std::fs::remove_file(&file);
    }
    Ok(PushReport {
        mode: "push-latency",
        sni: args.target.sni.clone(),
        secret: args.secret,
        rotations: args.rotations,
        served: store_to.len(),
        store_to_handshake: Quantiles::of(store_to),
        apply_start_to_handshake: Quantiles::of(start_to),
        apply_duration: Quantiles::of(apply_took),
        polls,
    })
}

/// Writes, under `--out`: `manifests/` (a Secret, Gateway server and
/// VirtualService per host `hN.bench.test`, one ServiceEntry for the
/// backend) and `pki/bench.test/` (the shared CA tree and one client
/// certificate that every host trusts).
pub fn hosts(args: HostsArgs) -> anyhow::Result<()> {
    check_address(args.backend, false)?;
    if args.count == 0 || args.count > 100_000 {
        anyhow::bail!("--count must be between 1 and 100000");
    }
    let root = Ca::new_root("gatehouse bench root", KeyType::EcdsaP256)?;
    let inter = root.intermediate("gatehouse bench intermediate")?;
    let layout = HostLayout::new(args.out.join("pki"), "bench.test");
    write_client_tree(&layout, &root, &inter)?;
    let manifests = args.out.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let mut files = host_manifests(&args, &inter, &manifests)?;
    files.extend(shared_manifests(&args, &manifests)?);
    for (path, text) in files {
        write_private(&path, &text)?;
    }
    println!(
        "{} hosts: manifests in {}, client credentials in {}",
        args.count,
        manifests.display(),
        layout.dir.display()
    );
    Ok(())
}

/// The shared CA tree and the one client certificate every host trusts.
fn write_client_tree(layout: &HostLayout, root: &Ca, inter: &Ca) -> anyhow::Result<()> {
    let chain = inter.chain_pem();
    let client = inter.issue(&LeafSpec::client("bench-client"))?;
    for (path, text, private) in [
        (&layout.root_cert, root.cert_pem().to_owned(), false),
        (
            &layout.intermediate_cert,
            inter.cert_pem().to_owned(),
            false,
        ),
        (&layout.intermediate_key, inter.key_pem(), true),
        (&layout.ca_chain, chain, false),
        (&layout.client_cert, client.cert_pem.clone(), false),
        (&layout.client_key, client.key_pem.clone(), true),
    ] {
        if private {
            write_private(path, &text)?;
        } else {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// A Secret and a VirtualService per host, in files of 1,000 hosts
/// (`gatehouse apply` reads files of at most 8 MiB); the Gateway's servers
/// are written by [`shared_manifests`].
fn host_manifests(
    args: &HostsArgs,
    inter: &Ca,
    manifests: &Path,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let chain = inter.chain_pem();
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let (mut secrets, mut services) = (String::new(), String::new());
    for i in 0..args.count {
        let host = format!("h{i}.bench.test");
        let leaf = inter.issue(&LeafSpec::server(host.clone()))?;
        let cred = format!("h{i}-credential");
        let doc = secret_json(&cred, &leaf.cert_pem, &leaf.key_pem, &chain);
        secrets.push_str("---\n");
        secrets.push_str(&serde_json::to_string(&doc)?);
        secrets.push('\n');
        let vs = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": format!("h{i}"), "namespace": "default"},
            "spec": {
                "hosts": [host],
                "gateways": ["bench-gateway"],
                "http": [{"route": [{"destination": {
                    "host": "backend.bench.svc.cluster.local",
                    "port": {"number": 80},
                }}]}],
            },
        });
        services.push_str("---\n");
        services.push_str(&serde_json::to_string(&vs)?);
        services.push('\n');
        if (i + 1) % 1000 == 0 || i + 1 == args.count {
            let part = i / 1000;
            files.push((
                manifests.join(format!("secrets-{part:03}.yaml")),
                std::mem::take(&mut secrets),
            ));
            files.push((
                manifests.join(format!("virtualservices-{part:03}.yaml")),
                std::mem::take(&mut services),
            ));
        }
    }
    Ok(files)
}

/// The one Gateway (a MUTUAL server per host) and the backend's ServiceEntry.
fn shared_manifests(args: &HostsArgs, manifests: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let servers: Vec<serde_json::Value> = (0..args.count)
        .map(|i| {
            json!({
                "port": {"number": 443, "name": format!("https-h{i}"), "protocol": "HTTPS"},
                "tls": {"mode": "MUTUAL", "credentialName": format!("h{i}-credential")},
                "hosts": [format!("h{i}.bench.test")],
            })
        })
        .collect();
    let gateway = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "bench-gateway", "namespace": "default"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers},
    });
    let entry = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "bench-backend", "namespace": "default"},
        "spec": {
            "hosts": ["backend.bench.svc.cluster.local"],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "STATIC",
            "endpoints": [{"address": args.backend.ip().to_string(),
                           "ports": {"http": args.backend.port()}}],
        },
    });
    Ok(vec![
        (
            manifests.join("gateway.yaml"),
            serde_json::to_string(&gateway)?,
        ),
        (
            manifests.join("serviceentry.yaml"),
            serde_json::to_string(&entry)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<Duration> = (1..=50).map(Duration::from_millis).collect();
        let q = Quantiles::of(v);
        assert_eq!(q.p50_ms, 25.0);
        assert_eq!(q.p99_ms, 50.0);
    }
}
