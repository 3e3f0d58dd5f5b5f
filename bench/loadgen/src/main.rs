//! gatehouse-loadgen: the load generator of the side-by-side benchmark
//! (bench/README.md). Mutual TLS with one client certificate, HTTP/1.1 or
//! HTTP/2, in three load modes (keep-alive, a handshake per request, idle
//! connections), plus the shared backend and gatehouse's credential
//! measurements.
//!
//! It only connects to the address it is given, refuses non-loopback
//! addresses unless told `--allow-remote`, and every run ends by itself.

mod backend;
mod cli;
mod conn;
mod credentials;
mod report;
mod run;

use clap::Parser;

use cli::{Cli, Mode};

fn main() {
    let cli = Cli::parse();
    if let Err(e) = start(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn start(cli: Cli) -> anyhow::Result<()> {
    if cli.threads == 0 || cli.threads > 256 {
        anyhow::bail!("--threads must be between 1 and 256");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads)
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli.mode))
}

async fn dispatch(mode: Mode) -> anyhow::Result<()> {
    match mode {
        Mode::Keepalive(a) => {
            let json = a.output.json;
            run::keepalive(a).await?.print(json)
        }
        Mode::Handshakes(a) => {
            let json = a.output.json;
            run::handshakes(a).await?.print(json)
        }
        Mode::Idle(a) => {
            let json = a.output.json;
            run::idle(a).await?.print(json)
        }
        Mode::Backend(a) => backend::serve(a).await,
        Mode::PushLatency(a) => {
            let json = a.output.json;
            credentials::push_latency(a).await?.print(json)
        }
        Mode::Hosts(a) => credentials::hosts(a),
    }
}
