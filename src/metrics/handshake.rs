//! The result of a TLS handshake, as `gatehouse_tls_handshakes_total`
//! counts it: `success`, or why it was refused, classified from the error
//! rustls (or gatehouse's own verifier and chain check) returned.
//!
//! The classes are fixed: an error this does not recognise is `protocol`,
//! never a new label value, so a client can never add a series.

use rustls::{CertificateError, Error};

/// The `result` label of a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    /// No server for the ClientHello's SNI (or no SNI and no `*` server).
    UnknownSni,
    /// A MUTUAL server, and the client sent no certificate.
    NoClientCert,
    /// The client certificate does not chain to the server's CA.
    UnknownCa,
    /// The client certificate is past its notAfter or before its notBefore.
    Expired,
    /// The client certificate is revoked, or its revocation status cannot
    /// be established (a CRL is missing or expired: fail closed).
    Revoked,
    /// The client certificate's extended key usage excludes clientAuth.
    BadEku,
    /// The client certificate is not in the server's `subjectAltNames`,
    /// `verifyCertificateSpki` or `verifyCertificateHash` lists.
    AllowListMismatch,
    /// The server has no usable credential (missing or invalid secret).
    NoCredential,
    /// Anything else: not TLS, a version or cipher the server does not
    /// offer, a broken message, the client going away or refusing us.
    Protocol,
    /// The handshake did not finish within `--handshake-timeout`.
    Timeout,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Success,
        Outcome::UnknownSni,
        Outcome::NoClientCert,
        Outcome::UnknownCa,
        Outcome::Expired,
        Outcome::Revoked,
        Outcome::BadEku,
        Outcome::AllowListMismatch,
        Outcome::NoCredential,
        Outcome::Protocol,
        Outcome::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::UnknownSni => "unknown_sni",
            Outcome::NoClientCert => "no_client_cert",
            Outcome::UnknownCa => "unknown_ca",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::BadEku => "bad_eku",
            Outcome::AllowListMismatch => "allow_list_mismatch",
            Outcome::NoCredential => "no_credential",
            Outcome::Protocol => "protocol",
            Outcome::Timeout => "timeout",
        }
    }

    /// The class of a failed handshake's I/O error (tokio-rustls carries
    /// the rustls error inside it).
    pub fn of_io(e: &std::io::Error) -> Outcome {
        match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
            Some(tls) => Outcome::of(tls),
            None => Outcome::Protocol,
        }
    }

    /// The class of a rustls error. `ApplicationVerificationFailure` is
    /// what `tls::verifier` returns for the allow-lists, and only for them.
    pub fn of(e: &Error) -> Outcome {
        match e {
            Error::NoCertificatesPresented => Outcome::NoClientCert,
            Error::InvalidCertificate(c) => Outcome::of_certificate(c),
            Error::InvalidCertRevocationList(_) => Outcome::Revoked,
            _ => Outcome::Protocol,
        }
    }

    fn of_certificate(c: &CertificateError) -> Outcome {
        match c {
            CertificateError::UnknownIssuer => Outcome::UnknownCa,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => Outcome::Expired,
            CertificateError::Revoked
            | CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => Outcome::Revoked,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                Outcome::BadEku
            }
            CertificateError::ApplicationVerificationFailure => Outcome::AllowListMismatch,
            _ => Outcome::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;

    #[test]
    fn rustls_errors_map_to_the_documented_results() {
        let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(100));
        let table: [(Error, &str); 10] = [
            (Error::NoCertificatesPresented, "no_client_cert"),
            (CertificateError::UnknownIssuer.into(), "unknown_ca"),
            (
                CertificateError::ExpiredContext {
                    time: t,
                    not_after: t,
                }
                .into(),
                "expired",
            ),
            (CertificateError::NotValidYet.into(), "expired"),
            (CertificateError::Revoked.into(), "revoked"),
            (CertificateError::InvalidPurpose.into(), "bad_eku"),
            (
                CertificateError::ApplicationVerificationFailure.into(),
                "allow_list_mismatch",
            ),
            (CertificateError::BadSignature.into(), "protocol"),
            (
                Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic),
                "protocol",
            ),
            (
                Error::AlertReceived(rustls::AlertDescription::UnknownCA),
                "protocol",
            ),
        ];
        for (e, want) in table {
            assert_eq!(Outcome::of(&e).as_str(), want, "{e:?}");
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            assert_eq!(Outcome::of_io(&io).as_str(), want);
        }
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(Outcome::of_io(&eof), Outcome::Protocol);
    }
}
