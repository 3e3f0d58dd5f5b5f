//! gatehouse's own chain check against webpki, on certificates both can
//! read (v3): for every key type, trust layout and CRL setting, both accept
//! the same good certificates and refuse the same bad ones (another CA,
//! expired, not yet valid, revoked, unknown revocation status, a CRL in the
//! issuer's name signed by another key).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;

use super::Chain;
use crate::crypto::provider;
use crate::pki::{Ca, Issued, KeyType, LeafSpec};

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn crl_der(pem: &str) -> CertificateRevocationListDer<'static> {
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// One trust setting: anchors, what the client sends, the CRLs.
struct Setting {
    anchors: Vec<CertificateDer<'static>>,
    sent: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

impl Setting {
    fn webpki(&self, ee: &CertificateDer<'static>) -> bool {
        let mut roots = RootCertStore::empty();
        for a in &self.anchors {
            roots.add(a.clone()).unwrap();
        }
        let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
        if !self.crls.is_empty() {
            b = b
                .with_crls(self.crls.iter().cloned())
                .only_check_end_entity_revocation();
        }
        b.build()
            .unwrap()
            .verify_client_cert(ee, &self.sent, UnixTime::now())
            .is_ok()
    }

    fn own(&self, ee: &CertificateDer<'static>) -> bool {
        Chain::new(self.anchors.clone(), self.crls.clone())
            .verify(ee.as_ref(), &self.sent, UnixTime::now())
            .is_ok()
    }
}

struct Pki {
    root: Ca,
    inter: Ca,
    good: Issued,
    revoked: Issued,
    expired: Issued,
    not_yet: Issued,
    foreign: Issued,
    crl: String,
    other_crl: String,
}

fn pki(key_type: KeyType) -> Pki {
    let root = Ca::new_root("Agreement Root", key_type).unwrap();
    let inter = root.intermediate("Agreement Intermediate").unwrap();
    let spec = |cn: &str| LeafSpec::client(cn).key_type(key_type);
    let good = inter.issue(&spec("good")).unwrap();
    let revoked = inter.issue(&spec("revoked")).unwrap();
    let expired = inter.issue(&spec("expired").expired()).unwrap();
    let not_yet = inter.issue(&spec("not-yet").not_yet_valid()).unwrap();
    let stranger = Ca::new_root("Agreement Root", key_type).unwrap();
    let foreign = stranger.issue(&spec("foreign")).unwrap();
    let crl = inter.crl(&[revoked.serial_hex.as_str()]).unwrap();
    // Same issuer name as the intermediate's CRL, signed by another key.
    let impostor = Ca::new_root("Agreement Intermediate", key_type).unwrap();
    let other_crl = impostor.crl(&[]).unwrap();
    Pki {
        root,
        inter,
        good,
        revoked,
        expired,
        not_yet,
        foreign,
        crl,
        other_crl,
    }
}

#[test]
fn own_chain_check_agrees_with_webpki() {
    let mut compared = 0;
    for key_type in KeyType::ALL {
        let p = pki(key_type);
        let root = p.root.cert_der().clone();
        let inter = p.inter.cert_der().clone();
        let layouts = [
            (vec![root.clone()], vec![inter.clone()]),
            (vec![inter.clone(), root.clone()], vec![]),
        ];
        let crl_sets = [
            vec![],
            vec![crl_der(&p.crl)],
            vec![crl_der(&p.other_crl)],
            vec![crl_der(&p.other_crl), crl_der(&p.crl)],
        ];
        for (anchors, sent) in &layouts {
            for crls in &crl_sets {
                let s = Setting {
                    anchors: anchors.clone(),
                    sent: sent.clone(),
                    crls: crls.clone(),
                };
                // A CRL in the intermediate's name by another key makes
                // the revocation status unknown: both refuse.
                let real_crl = crls == &[crl_der(&p.crl)];
                let has_crl = !crls.is_empty();
                let cases = [
                    (&p.good, !has_crl || real_crl),
                    (&p.revoked, !has_crl),
                    (&p.expired, false),
                    (&p.not_yet, false),
                    (&p.foreign, false),
                ];
                for (issued, expected) in cases {
                    let ee = der(&issued.cert_pem);
                    let (w, o) = (s.webpki(&ee), s.own(&ee));
                    assert_eq!(
                        (w, o),
                        (expected, expected),
                        "{key_type:?}, {} anchors, {} CRLs, {}",
                        anchors.len(),
                        crls.len(),
                        issued.serial_hex
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 2 * 2 * 4 * 5);
}

/// A self-signed certificate (its own anchor) and a leaf it signed.
fn anchor_and_leaf(anchor_is_ca: bool) -> (CertificateDer<'static>, CertificateDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "anchor");
    if anchor_is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let anchor = params.self_signed(&key).unwrap();
    let issuer = Issuer::new(params, key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["leaf.test".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (anchor.der().clone(), leaf.der().clone())
}

#[test]
fn only_a_ca_issues() {
    for anchor_is_ca in [true, false] {
        let (anchor, leaf) = anchor_and_leaf(anchor_is_ca);
        let s = Setting {
            anchors: vec![anchor.clone()],
            sent: vec![],
            crls: vec![],
        };
        assert_eq!(s.own(&leaf), anchor_is_ca, "anchor is a CA: {anchor_is_ca}");
        // A self-signed anchor is not its own issuer.
        assert!(!s.own(&anchor));
    }
}
