//! Request paths as the router matches them and as the backend receives
//! them: one normalized form (RFC 3986 §6), as Envoy's `normalize_path`
//! with `merge_slashes` makes it.
//!
//! Percent-encoded unreserved characters (`ALPHA DIGIT - . _ ~`, so `%2e`
//! too) are decoded first, then dot segments are removed and repeated
//! slashes merged; every other escape is kept with upper-case hex
//! (§6.2.2.1). An encoded `/` or `\` (and a raw `\`, which some backends
//! take for a separator) is never a separator here: it is refused, or with
//! [`EscapedSlashes::Keep`] kept encoded. An encoded NUL and a malformed
//! escape are always refused.
//!
//! This must never let a path that the router classifies as one route
//! reach a backend looking like another: the caller matches the returned
//! path and forwards that same path, and normalizing it again changes
//! nothing.

use std::borrow::Cow;

/// What an encoded `/` or `\` in a path gets (Envoy's
/// `path_with_escaped_slashes_action`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EscapedSlashes {
    /// 400: the request is refused.
    #[default]
    Reject,
    /// Kept encoded (`%2F`, `%5C`), never treated as a separator.
    Keep,
}

/// Why a path is refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("an encoded NUL in the path")]
    Nul,
    #[error("an encoded '/' or '\\', or a '\\', in the path")]
    EscapedSlash,
    #[error("a malformed percent-encoding in the path")]
    BadEscape,
}

/// The normalized form of `path` (the part before `?`), borrowed when it
/// is normal already (the common case costs a scan, no allocation).
pub fn normalize(path: &str, slashes: EscapedSlashes) -> Result<Cow<'_, str>, PathError> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(b) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(b, slashes)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

/// No escape, no `\`, and no empty, `.` or `..` segment (an empty last
/// segment is a trailing slash, which is normal).
fn is_normal(b: &[u8]) -> bool {
    if b.iter().any(|c| matches!(c, b'%' | b'\\')) {
        return false;
    }
    let mut segments = b[1..].split(|c| *c == b'/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg == b"." || seg == b".." {
            return false;
        }
    }
    true
}

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Step one: escapes of unreserved characters decoded, the rest kept with
/// upper-case hex; encoded (or raw `\`) separators refused or kept encoded.
fn decode(b: &[u8], slashes: EscapedSlashes) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let (byte, width) = match c {
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex_value);
                let lo = b.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                ((hi << 4) | lo, 3)
            }
            b'\\' => (b'\\', 1),
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        match byte {
            0 => return Err(PathError::Nul),
            b'/' | b'\\' if slashes == EscapedSlashes::Reject => {
                return Err(PathError::EscapedSlash);
            }
            c if unreserved(c) => out.push(c),
            c => out.extend_from_slice(&[
                b'%',
                HEX_UPPER[usize::from(c >> 4)],
                HEX_UPPER[usize::from(c & 0xf)],
            ]),
        }
        i += width;
    }
    // Only ASCII runs were replaced by ASCII, so what was UTF-8 still is.
    String::from_utf8(out).map_err(|_| PathError::BadEscape)
}

/// Step two (RFC 3986 §5.2.4, plus merged slashes): `.` and empty
/// segments dropped, `..` drops the segment before it (never above the
/// root). A path whose last segment was empty, `.` or `..` keeps its
/// trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in path.split('/').skip(1) {
        trailing_slash = true;
        match seg {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => {
                kept.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
