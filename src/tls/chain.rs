//! gatehouse's own client-chain check, for what webpki refuses to parse but
//! real PKIs emit and Envoy, nginx and HAProxy accept: X.509 v1 end-entity
//! certificates (`openssl x509 -req` without `-extfile`) and CRLs without
//! extensions (v1, or without CRL number / authority key identifier).
//!
//! It must never be looser than webpki on what it checks: every signature
//! up to a trust anchor, every date, CA basicConstraints and keyUsage on
//! every issuer (so no v1 CA or intermediate), path length, and revocation
//! failing closed (no authoritative CRL for the issuer is an error). What it
//! does not evaluate (name constraints, unknown critical extensions,
//! partitioned CRLs) makes it refuse, never pass.

use rustls::CertificateError;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::x509::X509Version;

use super::signed::{split_signed, verify_by};

/// Longest chain of intermediates followed, as webpki bounds its search.
const MAX_INTERMEDIATES: usize = 6;

/// Trust anchors and CRLs of one client trust bundle.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    anchors: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

/// Whether webpki refuses this certificate for its version alone (v1/v2):
/// those are the leaves that take gatehouse's own path. It reads only the
/// version field (this runs on every mutual-TLS handshake); anything it
/// cannot read goes to webpki, which refuses it.
pub(crate) fn is_legacy_version(der: &[u8]) -> bool {
    super::signed::x509_version(der).is_some_and(|v| v < 2)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertificateError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], c)) => Ok(c),
        _ => Err(CertificateError::BadEncoding),
    }
}

fn unhandled_critical(exts: &[X509Extension<'_>]) -> bool {
    exts.iter().any(|e| {
        e.critical
            && matches!(
                e.parsed_extension(),
                ParsedExtension::UnsupportedExtension { .. } | ParsedExtension::ParseError { .. }
            )
    })
}

fn check_time(c: &X509Certificate<'_>, now: i64) -> Result<(), CertificateError> {
    if now < c.validity().not_before.timestamp() {
        return Err(CertificateError::NotValidYet);
    }
    if now > c.validity().not_after.timestamp() {
        return Err(CertificateError::Expired);
    }
    Ok(())
}

/// Whether `c` may issue certificates `depth` CAs above an end entity: a v3
/// CA (basicConstraints CA:TRUE) whose keyUsage, if any, has keyCertSign,
/// within its path length, and with nothing this check cannot evaluate.
fn may_issue(c: &X509Certificate<'_>, depth: usize) -> bool {
    let ca = match c.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => bc.value.path_len_constraint,
        _ => return false,
    };
    if ca.is_some_and(|n| depth > n as usize) {
        return false;
    }
    let usage_ok = match c.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    usage_ok
        && c.version() == X509Version::V3
        && matches!(c.name_constraints(), Ok(None))
        && !unhandled_critical(c.extensions())
}

/// The issuer found for a certificate: its DER, to check CRLs against.
struct Issuer(Vec<u8>);

impl Chain {
    pub(crate) fn new(
        anchors: Vec<CertificateDer<'static>>,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Chain {
        Chain { anchors, crls }
    }

    /// Verifies a client certificate: chain to an anchor, dates, and (when
    /// the bundle has CRLs) the end entity's revocation by its issuer's CRL.
    pub(crate) fn verify(
        &self,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), CertificateError> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let ee = parse(end_entity)?;
        if unhandled_critical(ee.extensions()) {
            return Err(CertificateError::UnhandledCriticalExtension);
        }
        check_time(&ee, now)?;
        let issuer = self.issuer_of(end_entity, &ee, intermediates, now, 0)?;
        if self.crls.is_empty() {
            return Ok(());
        }
        self.check_revocation(&ee, &issuer)
    }

    /// Finds a path from `child` to an anchor; returns `child`'s issuer.
    fn issuer_of(
        &self,
        child_der: &[u8],
        child: &X509Certificate<'_>,
        intermediates: &[CertificateDer<'_>],
        now: i64,
        depth: usize,
    ) -> Result<Issuer, CertificateError> {
        let signed = split_signed(child_der).ok_or(CertificateError::BadEncoding)?;
        let fits = |der: &[u8], c: &X509Certificate<'_>| {
            c.subject().as_raw() == child.issuer().as_raw()
                && may_issue(c, depth)
                && verify_by(&signed, c.public_key().raw)
                && der != child_der
        };
        for anchor in &self.anchors {
            if let Ok(a) = parse(anchor.as_ref())
                && fits(anchor.as_ref(), &a)
            {
                return Ok(Issuer(anchor.to_vec()));
            }
        }
        if depth >= MAX_INTERMEDIATES {
            return Err(CertificateError::UnknownIssuer);
        }
        let mut last = CertificateError::UnknownIssuer;
        for inter in intermediates {
            let Ok(i) = parse(inter.as_ref()) else {
                continue;
            };
            if !fits(inter.as_ref(), &i) {
                continue;
            }
            // An intermediate must be in date, like the end entity.
            match check_time(&i, now)
                .and_then(|()| self.issuer_of(inter.as_ref(), &i, intermediates, now, depth + 1))
            {
                Ok(_) => return Ok(Issuer(inter.to_vec())),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Revocation of the end entity by a CRL its issuer signed. No such CRL
    /// is an error (unknown status fails closed), as is a revoked serial.
    fn check_revocation(
        &self,
        ee: &X509Certificate<'_>,
        issuer: &Issuer,
    ) -> Result<(), CertificateError> {
        let issuer = parse(&issuer.0)?;
        // An issuer that limits its key's use must allow CRL signing.
        if let Ok(Some(ku)) = issuer.key_usage()
            && !ku.value.crl_sign()
        {
            return Err(CertificateError::UnknownRevocationStatus);
        }
        let mut known = false;
        for der in &self.crls {
            let Ok((_, crl)) = x509_parser::parse_x509_crl(der.as_ref()) else {
                continue;
            };
            // A critical extension (say, a distribution point that
            // partitions the CRL) is one this check cannot honour: such a
            // CRL is not authoritative here.
            if crl.issuer().as_raw() != ee.issuer().as_raw()
                || crl.extensions().iter().any(|e| e.critical)
            {
                continue;
            }
            // A CRL in the issuer's name that the issuer did not sign is
            // refused, not skipped: webpki refuses it too, and a bundle
            // holding one is broken, whatever else it holds.
            let signed = split_signed(der.as_ref()).ok_or(CertificateError::BadEncoding)?;
            if !verify_by(&signed, issuer.public_key().raw) {
                return Err(CertificateError::UnknownRevocationStatus);
            }
            known = true;
            if crl
                .iter_revoked_certificates()
                .any(|r| r.raw_serial() == ee.raw_serial())
            {
                return Err(CertificateError::Revoked);
            }
        }
        if known {
            Ok(())
        } else {
            Err(CertificateError::UnknownRevocationStatus)
        }
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
