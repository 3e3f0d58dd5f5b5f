//! Where a backend's TLS material comes from (a DestinationRule's
//! `trafficPolicy.tls`): the Secret of `credentialName`, through the same
//! SDS state as the gateway's own credentials (so rotation, the last good
//! version and the REJECTED rows work the same), or the files of
//! `clientCertificate`, `privateKey`, `caCertificates` and `caCrl`.
//!
//! It answers what to build a client config from, or why there is nothing
//! usable; it must never answer "no CA" where a CA was asked for (the
//! caller fails closed on the error), nor put key material in an error.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

use super::credential::{self, now_unix};
use super::sds::{Sds, Status, Wanted};
use crate::config::checked::destination_rule::{
    CheckedDestinationRule, ClusterPolicy, UpstreamTls, UpstreamTlsMode,
};
use crate::tls::origination::{Material, Roots};

/// Material for one cluster, and a fingerprint of all of it: the same
/// fingerprint means the same connections may go on being used.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub material: Material,
    pub fingerprint: String,
}

/// Adds every `credentialName` the rules' TLS settings name to what SDS
/// keeps (with no hosts to cover: a client certificate names no server).
pub fn want(rules: &[&CheckedDestinationRule], wanted: &mut Wanted) {
    let mut add = |p: &ClusterPolicy| {
        if let Some(name) = p.tls.as_ref().and_then(|t| t.credential_name.as_ref()) {
            wanted.entry(name.clone()).or_default();
        }
    };
    for r in rules {
        let policies =
            std::iter::once(&r.policy).chain(r.subsets.iter().filter_map(|s| s.policy.as_ref()));
        for p in policies {
            add(&p.parts);
            p.ports.iter().for_each(|(_, pp)| add(pp));
        }
    }
}

/// The material `tls` names, read now (files) or taken from SDS.
pub fn resolve(tls: &UpstreamTls, sds: &Sds) -> Result<Resolved, String> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let (mut roots, client) = match &tls.credential_name {
        Some(name) => from_sds(tls.mode, name, sds)?,
        None => from_files(tls)?,
    };
    if let Some(path) = &tls.ca_crl {
        if roots.cas.is_none() {
            return Err(
                "caCrl needs caCertificates or a CA in the credentialName Secret".to_owned(),
            );
        }
        let pem = read(path, "caCrl")?;
        let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("caCrl {}: not valid PEM: {e}", path.display()))?;
        if crls.is_empty() {
            return Err(format!("caCrl {}: no PEM X509 CRL found", path.display()));
        }
        roots.crls.extend(crls);
    }
    let ca_ders: Vec<&CertificateDer<'static>> = roots.cas.iter().flatten().collect();
    parts.extend(ca_ders.iter().map(|c| c.as_ref()));
    parts.push(b"|crl|");
    parts.extend(roots.crls.iter().map(|c| c.as_ref()));
    parts.push(b"|client|");
    if let Some(k) = &client {
        parts.extend(k.cert.iter().map(|c| c.as_ref()));
    }
    let fingerprint = crate::crypto::sha256_hex(&parts.concat());
    Ok(Resolved {
        material: Material { roots, client },
        fingerprint,
    })
}

type Parts = (Roots, Option<std::sync::Arc<rustls::sign::CertifiedKey>>);

/// The Secret's parts: its key pair (MUTUAL) and its CA (`ca.crt`,
/// `cacert` or the `NAME-cacert` Secret; required for SIMPLE, else the
/// system's).
fn from_sds(mode: UpstreamTlsMode, name: &str, sds: &Sds) -> Result<Parts, String> {
    let client = if mode == UpstreamTlsMode::Mutual {
        let c = sds
            .server_credential(name)
            .ok_or_else(|| why_not(sds, name, "a client certificate and key"))?;
        Some(c.certified.clone())
    } else {
        None
    };
    let roots = match sds.trust(name) {
        Some(t) => Roots {
            cas: Some(t.roots.clone()),
            crls: t.crls.clone(),
        },
        None if mode == UpstreamTlsMode::Simple => {
            return Err(why_not(sds, name, "a CA certificate (ca.crt)"));
        }
        None => Roots::default(),
    };
    Ok((roots, client))
}

/// Why the Secret `name` gives nothing usable.
fn why_not(sds: &Sds, name: &str, what: &str) -> String {
    let entry = sds.certs.get(name);
    let root = sds.roots.get(name);
    let seen =
        entry.is_some_and(|e| e.source.is_some()) || root.is_some_and(|e| e.source.is_some());
    let rejected = [entry.map(|e| &e.status), root.map(|e| &e.status)]
        .into_iter()
        .flatten()
        .find_map(|s| match s {
            Status::Rejected(why) => Some(why.clone()),
            _ => None,
        });
    match rejected {
        Some(why) => format!("credentialName Secret {name} was rejected: {why}"),
        None if seen => format!("credentialName Secret {name} holds no {what}"),
        None => format!("credentialName Secret {name} not found"),
    }
}

/// The files' parts: `clientCertificate` and `privateKey` (MUTUAL),
/// `caCertificates` (else the system's CAs).
fn from_files(tls: &UpstreamTls) -> Result<Parts, String> {
    let client = match (&tls.client_certificate, &tls.private_key) {
        (Some(c), Some(k)) if tls.mode == UpstreamTlsMode::Mutual => {
            let cert = read(c, "clientCertificate")?;
            let key = read(k, "privateKey")?;
            let cred = credential::server_credential(
                "clientCertificate",
                &cert,
                "privateKey",
                &key,
                now_unix(),
            )
            .map_err(|e| e.to_string())?;
            Some(cred.certified)
        }
        _ => None,
    };
    let roots = match &tls.ca_certificates {
        Some(path) => {
            let pem = read(path, "caCertificates")?;
            let t = credential::trust_bundle("caCertificates", &pem, None)
                .map_err(|e| format!("{e} ({})", path.display()))?;
            Roots {
                cas: Some(t.roots),
                crls: Vec::new(),
            }
        }
        None => Roots::default(),
    };
    Ok((roots, client))
}

fn read(path: &Path, field: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{field} {}: {e}", path.display()))
}
