//! The `x-forwarded-client-cert` value for a verified client certificate,
//! as Envoy writes it behind an Istio gateway with the Subject, URI and DNS
//! details on: `Hash=<sha256>;Subject="<RFC 2253>";URI=<uri>;DNS=<dns>`.
//!
//! The subject is rendered the way OpenSSL and BoringSSL's
//! `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` render it, because that is what
//! Envoy puts there: last RDN first, `,` between RDNs and `+` inside one,
//! short attribute names, RFC 2253 backslash escapes, control characters and
//! every byte above 0x7f as `\XX`, and attributes of unknown type (or of a
//! non-string value) as `OID=#<DER in hex>`. `URI=` is always present (empty
//! when the certificate has none), one entry per URI and per DNS name.
//!
//! It must never take anything from the request: only the certificate.

use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::x509::X509Name;

/// The certificate's facts as forwarded and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// RFC 2253, as Envoy's `Subject=`.
    pub subject: String,
    /// The whole `x-forwarded-client-cert` value.
    pub xfcc: String,
}

/// Parses a DER certificate into its forwarded form; `None` if it does not parse.
pub fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = rfc2253(cert.subject());
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for n in &san.value.general_names {
            match n {
                GeneralName::URI(u) => uris.push(*u),
                GeneralName::DNSName(d) => dns.push(*d),
                _ => {}
            }
        }
    }
    let mut xfcc = format!(
        "Hash={};Subject=\"{subject}\"",
        crate::crypto::sha256_hex(der)
    );
    if uris.is_empty() {
        xfcc.push_str(";URI=");
    }
    for u in uris {
        xfcc.push_str(";URI=");
        xfcc.push_str(&plain_or_quoted(u));
    }
    for d in dns {
        xfcc.push_str(";DNS=");
        xfcc.push_str(&plain_or_quoted(d));
    }
    Some(PeerCert { subject, xfcc })
}

/// A value as is, or double-quoted with `"` and `\` escaped when it holds a
/// character that would end it (the XFCC grammar: `,` `;` `=` or a quote).
fn plain_or_quoted(v: &str) -> String {
    if v.contains([',', ';', '=', '"', '\\']) || v.chars().any(char::is_whitespace) {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_owned()
    }
}

/// OpenSSL's short names for the attribute types it knows.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.16" => "postalAddress",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.20" => "telephoneNumber",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.72" => "role",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// A distinguished name as `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let attrs: Vec<_> = rdn.iter().collect();
        for (j, attr) in attrs.iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            match short_name(&oid) {
                Some(sn) => {
                    out.push_str(sn);
                    out.push('=');
                    value(attr.attr_value(), &mut out);
                }
                None => {
                    out.push_str(&oid);
                    out.push('=');
                    dump(attr.attr_value(), &mut out);
                }
            }
        }
    }
    out
}

/// The characters of a string value, or `None` for a type OpenSSL dumps.
fn chars(v: &Any<'_>) -> Option<Vec<u32>> {
    let data = v.data;
    if v.header.class() != Class::Universal {
        return None;
    }
    match v.tag() {
        Tag::Utf8String => std::str::from_utf8(data)
            .ok()
            .map(|s| s.chars().map(u32::from).collect()),
        Tag::NumericString
        | Tag::PrintableString
        | Tag::T61String
        | Tag::Ia5String
        | Tag::UtcTime
        | Tag::GeneralizedTime
        | Tag::VisibleString => Some(data.iter().map(|b| u32::from(*b)).collect()),
        Tag::BmpString if data.len().is_multiple_of(2) => Some(
            data.chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect(),
        ),
        Tag::UniversalString if data.len().is_multiple_of(4) => Some(
            data.chunks(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => None,
    }
}

fn value(v: &Any<'_>, out: &mut String) {
    let Some(chars) = chars(v) else {
        dump(v, out);
        return;
    };
    let last = chars.len().saturating_sub(1);
    for (i, c) in chars.iter().enumerate() {
        let mut utf8 = [0u8; 4];
        let bytes: &[u8] = match char::from_u32(*c) {
            Some(ch) => ch.encode_utf8(&mut utf8).as_bytes(),
            None => &[],
        };
        for b in bytes {
            escape(*b, i == 0, i == last, out);
        }
    }
}

/// RFC 2253 escaping of one byte of the UTF-8 form, as OpenSSL does it.
fn escape(b: u8, first: bool, last: bool, out: &mut String) {
    let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
        || (first && matches!(b, b' ' | b'#'))
        || (last && b == b' ');
    if special {
        out.push('\\');
        out.push(char::from(b));
    } else if !(0x20..=0x7e).contains(&b) {
        out.push_str(&format!("\\{b:02X}"));
    } else {
        out.push(char::from(b));
    }
}

/// `#` and the value's whole DER encoding in upper-case hex.
fn dump(v: &Any<'_>, out: &mut String) {
    let mut der = Vec::with_capacity(v.data.len() + 6);
    let class = match v.header.class() {
        Class::Universal => 0x00,
        Class::Application => 0x40,
        Class::ContextSpecific => 0x80,
        Class::Private => 0xc0,
    };
    let constructed = if v.header.constructed() { 0x20 } else { 0 };
    let tag = v.tag().0;
    if tag < 31 {
        // Fits in the low five bits.
        der.push(class | constructed | u8::try_from(tag).unwrap_or(0));
    } else {
        der.push(class | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push(u8::try_from(t & 0x7f).unwrap_or(0));
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().enumerate().rev() {
            der.push(if i == 0 { *g } else { g | 0x80 });
        }
    }
    let len = v.data.len();
    if len < 0x80 {
        der.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        der.extend(bytes);
    }
    der.extend_from_slice(v.data);
    out.push('#');
    for b in der {
        out.push_str(&format!("{b:02X}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let cases: [(&str, &str); 6] = [
            ("plain", "plain"),
            ("a,b+c", "a\\,b\\+c"),
            (" #lead", "\\ #lead"),
            ("#x", "\\#x"),
            ("trail ", "trail\\ "),
            ("é\t\"q\"", "\\C3\\A9\\09\\\"q\\\""),
        ];
        for (input, want) in cases {
            let mut out = String::new();
            let chars: Vec<char> = input.chars().collect();
            let last = chars.len() - 1;
            for (i, c) in chars.iter().enumerate() {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).as_bytes() {
                    escape(*byte, i == 0, i == last, &mut out);
                }
            }
            assert_eq!(out, want, "{input:?}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(
            plain_or_quoted("spiffe://foocorp.com/ns/ux"),
            "spiffe://foocorp.com/ns/ux"
        );
        assert_eq!(plain_or_quoted("urn:a;b=\"c\""), "\"urn:a;b=\\\"c\\\"\"");
    }
}
