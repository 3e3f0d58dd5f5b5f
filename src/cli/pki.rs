//! `pki init|client|revoke`: certificates in the walkthrough's folder layout.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::pki;

#[derive(Debug, Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    pub command: PkiCommand,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Root CA, intermediate CA, server and client certificates for HOST under DIR/HOST/.
    Init {
        host: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// ecdsa-p256 or rsa-2048.
        #[arg(long = "key-type", default_value = "ecdsa-p256")]
        key_type: String,
        /// Validity of the leaf certificates, in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace an existing DIR/HOST.
        #[arg(long)]
        force: bool,
    },
    /// Another client certificate (CN = NAME) from HOST's intermediate CA.
    Client {
        host: String,
        name: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[arg(long)]
        force: bool,
    },
    /// Revoke a certificate issued by HOST's intermediate CA and write the CRL.
    Revoke {
        host: String,
        /// The certificate to revoke.
        cert: PathBuf,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

pub fn pki(args: PkiArgs) -> anyhow::Result<()> {
    match args.command {
        PkiCommand::Init {
            host,
            out,
            key_type,
            days,
            force,
        } => {
            let key_type: pki::KeyType = key_type.parse()?;
            let layout = pki::init(&pki::InitOptions {
                host: host.clone(),
                out,
                key_type,
                days,
                force,
            })?;
            println!("root CA:            {}", layout.root_cert.display());
            println!("CA chain:           {}", layout.ca_chain.display());
            println!("server certificate: {}", layout.server_cert.display());
            println!("server key:         {}", layout.server_key.display());
            println!("client certificate: {}", layout.client_cert.display());
            println!("client key:         {}", layout.client_key.display());
        }
        PkiCommand::Client {
            host,
            name,
            out,
            days,
            force,
        } => {
            let (cert, key) = pki::issue_client(&out, &host, &name, days, force)?;
            println!("client certificate: {}", cert.display());
            println!("client key:         {}", key.display());
        }
        PkiCommand::Revoke { host, cert, out } => {
            let crl = pki::revoke(&out, &host, &cert)?;
            println!("revoked {}; CRL: {}", cert.display(), crl.display());
        }
    }
    Ok(())
}
