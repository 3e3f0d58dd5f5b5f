//! A strict reader of `x-forwarded-client-cert`, for tests: the header's
//! elements (`,`), each a list of `Key=value` pairs (`;`) in order, values
//! unquoted. A quoted value may hold anything but a bare `"` or `\`, which
//! must be escaped (`\"`, `\\`); a plain value may hold none of `,;="\`,
//! no space and no control character. Anything else is an error, so a
//! test sees a malformed header rather than a guess.
//!
//! Also [`parse_dn`], which reads the RFC 2253 subject back into its
//! attributes. Written apart from gatehouse's encoder on purpose; the
//! library's unit tests include this file too.

/// One XFCC element: its pairs in the order written.
pub type Element = Vec<(String, String)>;

/// Every element of an XFCC header value.
pub fn parse(header: &str) -> Result<Vec<Element>, String> {
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut chars = header.chars().peekable();
    loop {
        let mut key = String::new();
        while let Some(c) = chars.next_if(char::is_ascii_alphabetic) {
            key.push(c);
        }
        if key.is_empty() || chars.next() != Some('=') {
            return Err(format!("no `Key=` at {key:?} in {header:?}"));
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            quoted(&mut chars).map_err(|e| format!("{e} in {header:?}"))?
        } else {
            let mut v = String::new();
            while let Some(c) = chars.next_if(|c| !matches!(c, ';' | ',')) {
                if matches!(c, '"' | '\\' | '=' | ' ') || c.is_control() {
                    return Err(format!("{c:?} in the plain value of {key} in {header:?}"));
                }
                v.push(c);
            }
            v
        };
        pairs.push((key, value));
        match chars.next() {
            None => {
                elements.push(pairs);
                return Ok(elements);
            }
            Some(';') => {}
            Some(',') => elements.push(std::mem::take(&mut pairs)),
            Some(c) => return Err(format!("{c:?} after a value in {header:?}")),
        }
    }
}

/// The rest of a quoted value, after its opening quote.
fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut v = String::new();
    loop {
        match chars.next() {
            None => return Err("an unterminated quoted value".into()),
            Some('"') => return Ok(v),
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => v.push(c),
                other => return Err(format!("a bad escape \\{other:?}")),
            },
            Some(c) if c.is_control() => return Err(format!("{c:?} in a quoted value")),
            Some(c) => v.push(c),
        }
    }
}

/// The values of `key` in `element`, in order.
pub fn values<'a>(element: &'a Element, key: &str) -> Vec<&'a str> {
    element
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// An RFC 2253 name as OpenSSL prints it, read back: its attributes as
/// `(type, value)`, last RDN first as written (`+`-joined attributes of
/// one RDN in order). `\X` is X; `\HH` is the byte HH of the UTF-8 form.
pub fn parse_dn(dn: &str) -> Result<Vec<(String, String)>, String> {
    let mut attrs = Vec::new();
    if dn.is_empty() {
        return Ok(attrs);
    }
    let b = dn.as_bytes();
    let mut i = 0;
    loop {
        let eq = b[i..]
            .iter()
            .position(|c| *c == b'=')
            .ok_or_else(|| format!("no '=' after byte {i} of {dn:?}"))?;
        let ty = dn[i..i + eq].to_owned();
        i += eq + 1;
        let mut value = Vec::new();
        while let Some(&c) = b.get(i) {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    let hex = b.get(i + 1..i + 3).and_then(hex_byte);
                    match (hex, b.get(i + 1)) {
                        (Some(v), _) => {
                            value.push(v);
                            i += 3;
                        }
                        (None, Some(c)) => {
                            value.push(*c);
                            i += 2;
                        }
                        (None, None) => return Err(format!("a trailing '\\' in {dn:?}")),
                    }
                }
                _ => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        let value = String::from_utf8(value).map_err(|e| format!("{e} in {dn:?}"))?;
        attrs.push((ty, value));
        if i >= b.len() {
            return Ok(attrs);
        }
        i += 1;
    }
}

/// Two hex digits (and only those: `from_str_radix` alone takes `+4`).
fn hex_byte(h: &[u8]) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    match h {
        [a, b] => u8::try_from(digit(*a)? * 16 + digit(*b)?).ok(),
        _ => None,
    }
}
