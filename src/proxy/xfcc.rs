//! The `x-forwarded-client-cert` value for a verified client certificate,
//! as Envoy writes it behind an Istio gateway with the Subject, URI and DNS
//! details on: `Hash=<sha256>;Subject="<RFC 2253>";URI=<uri>;DNS=<dns>`.
//!
//! The subject is rendered the way OpenSSL and BoringSSL's
//! `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` render it, because that is what
//! Envoy puts there: last RDN first, `,` between RDNs and `+` inside one,
//! short attribute names, RFC 2253 backslash escapes, every byte above 0x7f
//! as `\XX`, and attributes of unknown type (or of a non-string value) as
//! `OID=#<DER in hex>`. `URI=` is always present (empty when the
//! certificate has none), one entry per URI and per DNS name.
//!
//! Every value is written so that no certificate can split the header or
//! add a field (the CVE-2023-27493 class): a value holding `,` `;` `=` `"`
//! `\` or a space is double-quoted with `"` and `\` backslash-escaped (the
//! Subject always is), which Envoy's own XFCC reader and any RFC 9110
//! quoted-string reader undo exactly. A field that a header cannot carry
//! faithfully (a control character in the subject or a SAN, a SAN that is
//! not printable ASCII or does not parse) makes the certificate
//! [`Unrepresentable`]: its requests are refused, never forwarded without
//! the identity.
//!
//! It must never take anything from the request: only the certificate.

use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// The certificate's facts as forwarded and logged, worked out once per
/// connection (never per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// RFC 2253, as Envoy's `Subject=`.
    pub subject: String,
    /// SHA-256 of the DER, lower-case hex, as Envoy's `Hash=`.
    pub sha256: String,
    /// The URI SANs, in order (each printable ASCII).
    pub uri_sans: Vec<String>,
    /// The DNS SANs, in order (each printable ASCII).
    pub dns_sans: Vec<String>,
    /// The whole `x-forwarded-client-cert` value.
    pub xfcc: String,
}

/// A verified certificate whose identity cannot be carried in a header:
/// what to log about it (safe to log: the subject's control characters
/// are escaped) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrepresentable {
    pub sha256: String,
    /// RFC 2253, every control character as `\XX`; `-` when none.
    pub subject: String,
    pub why: String,
}

/// The certificate's forwarded form, or why it has none.
pub fn peer_cert(der: &[u8]) -> Result<PeerCert, Unrepresentable> {
    let sha256 = crate::crypto::sha256_hex(der);
    let refuse = |subject: &str, why: String| Unrepresentable {
        sha256: sha256.clone(),
        subject: subject.to_owned(),
        why,
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Err(refuse("-", "the certificate does not parse".into()));
    };
    let subject = render_name(cert.subject());
    if let Some(attr) = subject.unrepresentable {
        return Err(refuse(
            &subject.text,
            format!("a control or invalid character in the subject's {attr}"),
        ));
    }
    let subject = subject.text;
    let (uris, dns) = sans(&cert).map_err(|why| refuse(&subject, why))?;
    let mut xfcc = format!("Hash={sha256};Subject=");
    push_quoted(&subject, &mut xfcc);
    if uris.is_empty() {
        xfcc.push_str(";URI=");
    }
    for u in &uris {
        xfcc.push_str(";URI=");
        push_value(u, &mut xfcc);
    }
    for d in &dns {
        xfcc.push_str(";DNS=");
        push_value(d, &mut xfcc);
    }
    let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect();
    Ok(PeerCert {
        subject,
        sha256,
        uri_sans: owned(uris),
        dns_sans: owned(dns),
        xfcc,
    })
}

/// The URI and DNS names, each printable ASCII; an error names the first
/// that is not (or a subjectAltName extension that does not parse).
fn sans<'a>(
    cert: &'a x509_parser::certificate::X509Certificate<'_>,
) -> Result<(Vec<&'a str>, Vec<&'a str>), String> {
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|_| "the subjectAltName extension does not parse".to_owned())?;
    let Some(san) = san else {
        return Ok((uris, dns));
    };
    let printable = |v: &str| v.bytes().all(|b| (0x20..=0x7e).contains(&b));
    for n in &san.value.general_names {
        match n {
            GeneralName::URI(u) if printable(u) => uris.push(*u),
            GeneralName::DNSName(d) if printable(d) => dns.push(*d),
            GeneralName::URI(_) | GeneralName::Invalid(Tag(6), _) => {
                return Err("a URI SAN that is not printable ASCII".into());
            }
            GeneralName::DNSName(_) | GeneralName::Invalid(Tag(2), _) => {
                return Err("a DNS SAN that is not printable ASCII".into());
            }
            _ => {}
        }
    }
    Ok((uris, dns))
}

/// A value as is, or double-quoted when it holds a character that would
/// end it or that a reader trims (the XFCC grammar: `,` `;` `=` `"` `\`,
/// a space). Empty stays empty (`URI=`, as Envoy writes it).
fn push_value(v: &str, out: &mut String) {
    if v.contains([',', ';', '=', '"', '\\', ' ']) {
        push_quoted(v, out);
    } else {
        out.push_str(v);
    }
}

/// `"v"` with `"` and `\` backslash-escaped.
fn push_quoted(v: &str, out: &mut String) {
    out.push('"');
    for c in v.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
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

/// A subject as rendered, and the first attribute (its short name or
/// OID) that holds a character a header cannot carry faithfully.
struct Rendered {
    text: String,
    unrepresentable: Option<String>,
}

/// A distinguished name as `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it.
fn render_name(name: &X509Name<'_>) -> Rendered {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    let mut unrepresentable = None;
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
            let name = short_name(&oid);
            out.push_str(name.unwrap_or(&oid));
            out.push('=');
            let faithful = match name {
                Some(_) => value(attr.attr_value(), &mut out),
                None => {
                    dump(attr.attr_value(), &mut out);
                    true
                }
            };
            if !faithful && unrepresentable.is_none() {
                unrepresentable = Some(name.map_or(oid.clone(), str::to_owned));
            }
        }
    }
    Rendered {
        text: out,
        unrepresentable,
    }
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

/// Renders a string value (or dumps another type); `false` when it holds
/// a control character or a code point that is no character: rendered
/// escaped (safe to log), but not a name anyone should be forwarded as.
fn value(v: &Any<'_>, out: &mut String) -> bool {
    let Some(chars) = chars(v) else {
        dump(v, out);
        return true;
    };
    let mut faithful = true;
    let last = chars.len().saturating_sub(1);
    for (i, c) in chars.iter().enumerate() {
        let mut utf8 = [0u8; 4];
        let bytes: &[u8] = match char::from_u32(*c) {
            Some(ch) => {
                faithful &= !ch.is_control();
                ch.encode_utf8(&mut utf8).as_bytes()
            }
            None => {
                faithful = false;
                &[]
            }
        };
        for b in bytes {
            escape(*b, i == 0, i == last, out);
        }
    }
    faithful
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
#[path = "../../tests/support/xfcc.rs"]
mod reader;

#[cfg(test)]
#[path = "xfcc_tests.rs"]
mod tests;
