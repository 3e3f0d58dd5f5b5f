//! Certificate revocation lists signed by a [`Ca`], and the revocation index
//! (`2_intermediate/index.txt`) that remembers what was revoked so each CRL
//! can be rebuilt whole.
//!
//! A CRL made here always lists every serial it is given; this module must
//! never drop an entry from the index, and never sign a CRL with a key other
//! than the issuing CA's.

use std::path::Path;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};

use super::ca::Ca;
use super::error::PkiError;
use super::x509::{pem_encode, serial_hex};

/// How long a CRL made by [`CrlSpec::new`] stays current.
const CRL_DAYS: i64 = 30;

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Hex, any case, colons allowed (`7f:0a` or `7F0A`).
    pub serial_hex: String,
    pub revoked_at: OffsetDateTime,
}

/// What a CRL says. [`CrlSpec::new`] makes a current one; set the dates to
/// make an expired or not-yet-valid CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSpec {
    pub revoked: Vec<Revoked>,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    /// `None`: the current time in nanoseconds, which grows from one CRL to
    /// the next as RFC 5280 asks.
    pub crl_number: Option<u64>,
}

impl CrlSpec {
    /// Current from a minute ago for 30 days, revoking `serials` as of then.
    pub fn new<S: AsRef<str>>(serials: &[S]) -> Self {
        let this_update = OffsetDateTime::now_utc() - Duration::minutes(1);
        CrlSpec {
            revoked: serials
                .iter()
                .map(|s| Revoked {
                    serial_hex: s.as_ref().to_string(),
                    revoked_at: this_update,
                })
                .collect(),
            this_update,
            next_update: this_update + Duration::days(CRL_DAYS),
            crl_number: None,
        }
    }

    /// Next update was a day ago.
    pub fn expired(mut self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.this_update = now - Duration::days(31);
        self.next_update = now - Duration::days(1);
        for r in &mut self.revoked {
            r.revoked_at = self.this_update;
        }
        self
    }
}

impl Ca {
    /// A current CRL (PEM) signed by this CA revoking `revoked_serials`
    /// (hex, as in [`Issued::serial_hex`](super::Issued::serial_hex)).
    pub fn crl(&self, revoked_serials: &[&str]) -> Result<String, PkiError> {
        self.crl_with(&CrlSpec::new(revoked_serials))
    }

    /// A CRL (PEM) exactly as `spec` says.
    pub fn crl_with(&self, spec: &CrlSpec) -> Result<String, PkiError> {
        let mut revoked_certs = Vec::with_capacity(spec.revoked.len());
        for r in &spec.revoked {
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&parse_serial(&r.serial_hex)?),
                revocation_time: r.revoked_at,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let crl_number = spec.crl_number.unwrap_or_else(|| {
            u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(1)
        });
        let params = CertificateRevocationListParams {
            this_update: spec.this_update,
            next_update: spec.next_update,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            // The CRL's authority key identifier must equal the CA
            // certificate's subject key identifier, however that was made.
            key_identifier_method: match self.key_id() {
                Some(id) => KeyIdMethod::PreSpecified(id.to_vec()),
                None => KeyIdMethod::Sha256,
            },
        };
        let crl = params
            .signed_by(self.issuer())
            .map_err(|source| PkiError::Generate {
                what: format!("CRL of CA {:?}", self.cn()),
                source,
            })?;
        Ok(pem_encode("X509 CRL", crl.der()))
    }
}

/// A serial given as hex (colons and case ignored) as unsigned big-endian
/// octets without leading zeros.
pub(crate) fn parse_serial(given: &str) -> Result<Vec<u8>, PkiError> {
    let invalid = |reason: &str| PkiError::InvalidSerial {
        given: given.to_string(),
        reason: reason.to_string(),
    };
    let digits: Vec<u8> = given
        .trim()
        .bytes()
        .filter(|b| *b != b':')
        .map(|b| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(invalid("not hexadecimal")),
        })
        .collect::<Result<_, _>>()?;
    if digits.is_empty() {
        return Err(invalid("empty"));
    }
    let padded: Vec<u8> = if digits.len() % 2 == 1 {
        std::iter::once(0).chain(digits).collect()
    } else {
        digits
    };
    let bytes: Vec<u8> = padded.chunks(2).map(|p| (p[0] << 4) | p[1]).collect();
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let bytes = bytes[start..].to_vec();
    // RFC 5280 allows 20 octets; a 21st would only be DER's sign octet.
    if bytes.len() > 20 {
        return Err(invalid("longer than 20 octets"));
    }
    Ok(bytes)
}

/// Header of the revocation index.
pub(crate) const INDEX_HEADER: &str = "# gatehouse revocation index: serial (hex) <TAB> revoked at (unix seconds) <TAB> certificate\n";

/// Reads the revocation index at `path`; a missing index means nothing has
/// been revoked. Serials come back normalised (lowercase, no leading zeros).
pub fn read_index(path: &Path) -> Result<Vec<Revoked>, PkiError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(super::files::io_error("read", path, e)),
    };
    let mut revoked = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| PkiError::Index {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let mut fields = line.split('\t');
        let serial = fields.next().unwrap_or_default();
        let serial = parse_serial(serial).map_err(|e| bad(e.to_string()))?;
        let at = fields
            .next()
            .ok_or_else(|| bad("missing revocation time".to_string()))?;
        let at = at
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| bad(format!("invalid revocation time {at:?}")))?;
        revoked.push(Revoked {
            serial_hex: serial_hex(&serial),
            revoked_at: at,
        });
    }
    Ok(revoked)
}

/// One index line for a newly revoked certificate.
pub(crate) fn index_line(serial_hex: &str, at: OffsetDateTime, what: &str) -> String {
    // A tab or newline in the note would break the line format.
    let note: String = what
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{serial_hex}\t{}\t{note}\n", at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_parsing_table() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("7f0a", Some(&[0x7f, 0x0a])),
            ("7F:0A", Some(&[0x7f, 0x0a])),
            ("00ff", Some(&[0xff])),
            ("abc", Some(&[0x0a, 0xbc])),
            ("0", Some(&[0x00])),
            ("", None),
            ("xyz", None),
            ("01020304050607080910111213141516171819202122", None),
        ];
        for (given, want) in cases {
            assert_eq!(parse_serial(given).ok().as_deref(), *want, "{given:?}");
        }
    }

    #[test]
    fn index_round_trips_and_reports_bad_lines() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let path = dir.path().join("index.txt");
        assert_eq!(read_index(&path).ok(), Some(Vec::new()));
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).ok();
        let Some(at) = at else { panic!("time") };
        let text = format!("{INDEX_HEADER}{}", index_line("00AB", at, "x\ty.pem"));
        assert!(std::fs::write(&path, &text).is_ok());
        let want = vec![Revoked {
            serial_hex: "ab".into(),
            revoked_at: at,
        }];
        assert_eq!(read_index(&path).ok(), Some(want));

        assert!(std::fs::write(&path, format!("{text}zz\t1\n")).is_ok());
        let err = read_index(&path).err().map(|e| e.to_string());
        let Some(err) = err else {
            panic!("bad line accepted")
        };
        assert!(err.contains("index.txt:3: invalid serial number"), "{err}");
    }
}
