//! TLS origination per cluster: for each cluster whose DestinationRule
//! sets `tls` SIMPLE or MUTUAL, one [`Origination`] holding the pooled
//! client its requests go through now. [`Origins`] keeps them between
//! compiles (in `snapshot::Compiler`), keyed by cluster name and TLS
//! settings, so a recompile keeps the pool; when the material changes (a
//! rotated `credentialName` Secret, a new CA file) the cluster gets a new
//! client with a fresh pool, so new requests use the new certificate while
//! requests in flight finish on the old connections.
//!
//! Unusable material gives a client that refuses to connect (503 `UF`,
//! with the reason and the rule in a WARN line), never a plaintext or
//! unverified one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::ServerName;

use super::connector::{Connector, TlsConnector};
use super::{HttpClient, pooled};
use crate::config::checked::destination_rule::{UpstreamTls, UpstreamTlsMode};
use crate::proxy::counted::CountingConnector;
use crate::secret::sds::Sds;
use crate::tls::origination::{self, Verify};
use crate::upstream::Upstream;

/// One cluster's TLS origination.
pub struct Origination {
    /// `namespace/name` of the DestinationRule.
    pub rule: Arc<str>,
    pub mode: UpstreamTlsMode,
    /// The SNI name sent (`sni`, else the destination host).
    pub sni: String,
    /// Where the material comes from: the `credentialName`, or `file`.
    pub credential: String,
    current: ArcSwap<Current>,
}

struct Current {
    client: HttpClient,
    /// Fingerprint of the material, or why there is none.
    state: Result<String, String>,
}

impl std::fmt::Debug for Origination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origination")
            .field("rule", &self.rule)
            .field("mode", &self.mode)
            .field("sni", &self.sni)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Origination {
    /// The client new requests go through.
    pub fn client(&self) -> HttpClient {
        self.current.load().client.clone()
    }

    /// Why this cluster cannot connect now, if it cannot.
    pub fn failure(&self) -> Option<String> {
        self.current.load().state.clone().err()
    }

    /// `SIMPLE` or `MUTUAL`, as the DestinationRule spells it.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            UpstreamTlsMode::Disable => "DISABLE",
            UpstreamTlsMode::Simple => "SIMPLE",
            UpstreamTlsMode::Mutual => "MUTUAL",
        }
    }
}

/// What the clients are built on: the process's counted TCP connector and
/// how long a TLS handshake may take.
#[derive(Clone)]
pub struct Base {
    pub tcp: CountingConnector,
    pub handshake_timeout: Duration,
}

struct Entry {
    tls: UpstreamTls,
    rule: Arc<str>,
    host: String,
    origination: Arc<Origination>,
}

/// The originations kept between compiles.
#[derive(Default)]
pub struct Origins {
    base: Option<Base>,
    entries: HashMap<String, Entry>,
    used: HashSet<String>,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins")
            .field("clusters", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Origins {
    /// Origins whose clients connect with `base`.
    pub fn new(base: Base) -> Origins {
        Origins {
            base: Some(base),
            ..Origins::default()
        }
    }

    /// `up` with its origination set when its policy asks for TLS: the
    /// kept one when its settings did not change (its material read again,
    /// and its client replaced only if that changed), else a new one.
    pub fn attach(&mut self, mut up: Upstream, sds: &Sds) -> Upstream {
        let Some(tls) = up
            .policy
            .tls
            .as_ref()
            .filter(|t| t.mode != UpstreamTlsMode::Disable)
        else {
            return up;
        };
        let cluster = up.cluster_name();
        let rule: Arc<str> = up.rule.clone().unwrap_or_else(|| "-".into());
        self.used.insert(cluster.clone());
        let base = self.base.clone().unwrap_or_else(default_base);
        if let Some(e) = self.entries.get(&cluster)
            && e.tls == *tls
            && e.rule == rule
            && e.host == up.host
        {
            refresh(&e.origination, tls, &cluster, &base, sds);
            up.origin = Some(e.origination.clone());
            return up;
        }
        let sni = tls.sni.clone().unwrap_or_else(|| up.host.clone());
        let (state, client) = build(tls, &sni, (&rule, &cluster), &base, sds);
        let origination = Arc::new(Origination {
            rule: rule.clone(),
            mode: tls.mode,
            sni,
            credential: tls
                .credential_name
                .clone()
                .unwrap_or_else(|| "file".to_owned()),
            current: ArcSwap::from_pointee(Current { client, state }),
        });
        self.entries.insert(
            cluster,
            Entry {
                tls: tls.clone(),
                rule,
                host: up.host.clone(),
                origination: origination.clone(),
            },
        );
        up.origin = Some(origination);
        up
    }

    /// After a compile: forgets the clusters it did not attach.
    pub fn finish(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
    }

    /// A rotation: the clusters whose `credentialName` is among `changed`
    /// read their material again (a new client where it changed).
    pub fn refresh_credentials(&self, changed: &[String], sds: &Sds) {
        let base = self.base.clone().unwrap_or_else(default_base);
        for (cluster, e) in &self.entries {
            if e.tls
                .credential_name
                .as_ref()
                .is_some_and(|c| changed.contains(c))
            {
                refresh(&e.origination, &e.tls, cluster, &base, sds);
            }
        }
    }
}

/// Reads `o`'s material again; swaps in a new client if it changed.
fn refresh(o: &Origination, tls: &UpstreamTls, cluster: &str, base: &Base, sds: &Sds) {
    let now = crate::secret::upstream::resolve(tls, sds).map(|r| r.fingerprint);
    if now == o.current.load().state {
        return;
    }
    let (state, client) = build(tls, &o.sni, (&o.rule, cluster), base, sds);
    if state.is_ok() {
        tracing::info!(destination_rule = %o.rule, cluster, "upstream TLS material updated: new connections use it");
    }
    o.current.store(Arc::new(Current { client, state }));
}

/// A client for the material `tls` names now (one that refuses to connect
/// when there is none usable), and the material's fingerprint or why.
fn build(
    tls: &UpstreamTls,
    sni: &str,
    (rule, cluster): (&Arc<str>, &str),
    base: &Base,
    sds: &Sds,
) -> (Result<String, String>, HttpClient) {
    let made = crate::secret::upstream::resolve(tls, sds).and_then(|r| {
        let verify = Verify {
            subject_alt_names: tls.subject_alt_names.clone(),
            skip: tls.insecure_skip_verify,
        };
        let config = origination::client_config(&r.material, &verify)?;
        let name = ServerName::try_from(sni.to_owned())
            .map_err(|e| format!("sni {sni:?} is not a server name: {e}"))?;
        Ok((r.fingerprint, config, name))
    });
    let (state, tls_config) = match made {
        Ok((fp, config, name)) => {
            if tls.insecure_skip_verify {
                tracing::warn!(destination_rule = %rule, cluster, "insecureSkipVerify: the backend's certificate is not verified");
            }
            (Ok(fp), Ok((config, name)))
        }
        Err(why) => {
            tracing::warn!(destination_rule = %rule, cluster, reason = %why, "upstream TLS unusable: requests to this cluster fail (503 UF)");
            (Err(why.clone()), Err(Arc::<str>::from(why)))
        }
    };
    let connector = TlsConnector::new(
        base.tcp.clone(),
        tls_config,
        base.handshake_timeout,
        (rule.clone(), cluster.into()),
    );
    (state, pooled(Connector::Tls(connector)))
}

/// The base of a compiler made without one (unit tests): default connect
/// and handshake timeouts, connections counted nowhere.
fn default_base() -> Base {
    Base {
        tcp: super::tcp_connector(
            Duration::from_secs(5),
            prometheus_client::metrics::gauge::Gauge::default(),
        ),
        handshake_timeout: Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::checked::destination_rule::ClusterPolicy;
    use crate::upstream::Endpoints;

    fn upstream(ca: &std::path::Path) -> Upstream {
        let mut up = Upstream::new("b.example.com".into(), 443, Endpoints::Static(Vec::new()));
        up.rule = Some("default/r".into());
        up.policy = Arc::new(ClusterPolicy {
            tls: Some(UpstreamTls {
                mode: UpstreamTlsMode::Simple,
                credential_name: None,
                client_certificate: None,
                private_key: None,
                ca_certificates: Some(ca.to_owned()),
                ca_crl: None,
                subject_alt_names: Vec::new(),
                sni: None,
                insecure_skip_verify: false,
            }),
            ..ClusterPolicy::default()
        });
        up
    }

    fn ca_pem(cn: &str) -> String {
        let ca = crate::pki::Ca::new_root(cn, crate::pki::KeyType::EcdsaP256).unwrap();
        ca.cert_pem().to_owned()
    }

    #[tokio::test]
    async fn a_recompile_keeps_the_client_until_the_material_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem("one")).unwrap();
        let sds = Sds::default();
        let mut origins = Origins::default();
        let attach = |o: &mut Origins| {
            let up = o.attach(upstream(&ca), &sds);
            o.finish();
            up.origin.unwrap()
        };
        let a = attach(&mut origins);
        let first = a.current.load_full();
        assert_eq!(a.sni, "b.example.com");
        assert_eq!(a.failure(), None);
        // Same settings, same material: the same client (and pool).
        let b = attach(&mut origins);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&first, &b.current.load_full()));
        // A new CA: the same origination, a new client.
        std::fs::write(&ca, ca_pem("two")).unwrap();
        let c = attach(&mut origins);
        assert!(Arc::ptr_eq(&a, &c));
        assert!(!Arc::ptr_eq(&first, &c.current.load_full()));
        assert_eq!(c.failure(), None);
        // The file gone: a client that refuses, and why.
        std::fs::remove_file(&ca).unwrap();
        let d = attach(&mut origins);
        assert!(d.failure().is_some_and(|f| f.starts_with("caCertificates")));
        // A compile without the cluster forgets it.
        origins.finish();
        assert!(origins.entries.is_empty());
    }
}
