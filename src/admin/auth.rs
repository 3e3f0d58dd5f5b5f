//! The admin endpoint's bearer token (`--admin-token-file`): reading it,
//! checking a request's `Authorization: Bearer` header against it in
//! constant time, and the 401 that asks for it.
//!
//! With a token, every admin path needs it except the readiness probes
//! (`/ready`, `/healthz/ready`: a kubelet or load balancer sends no header)
//! and the dashboard's static shell (`/ui` and its script and style, which
//! hold no data: the page asks for the token and sends it on its fetches).
//! `run` refuses a non-loopback `--admin` without a token (`cli/run.rs`).
//!
//! It must never log, print or echo the token: its `Debug` is redacted and
//! no error message quotes the file's content.

use std::path::Path;

use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use zeroize::Zeroizing;

/// The shortest token `--admin-token-file` takes (a shorter one is
/// guessable over the network).
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin token, read once at start.
#[derive(Clone)]
pub struct AdminToken(Zeroizing<String>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why a token file cannot be used. Never holds the token itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("--admin-token-file {path}: cannot read: {error}")]
    Read { path: String, error: std::io::Error },
    #[error(
        "--admin-token-file {path}: the token must be one line of at least {MIN_TOKEN_LEN} visible ASCII characters (no spaces), e.g. `openssl rand -hex 32`"
    )]
    Malformed { path: String },
}

impl AdminToken {
    /// Reads the token from `path`: its one line, without the line end.
    pub fn load(path: &Path) -> Result<AdminToken, TokenError> {
        let shown = path.display().to_string();
        let raw = Zeroizing::new(std::fs::read(path).map_err(|error| TokenError::Read {
            path: shown.clone(),
            error,
        })?);
        AdminToken::parse(&raw).ok_or(TokenError::Malformed { path: shown })
    }

    /// The token in `raw` (a file's bytes): one line of visible ASCII, at
    /// least [`MIN_TOKEN_LEN`] long; a final line end is dropped.
    fn parse(raw: &[u8]) -> Option<AdminToken> {
        let line = raw
            .strip_suffix(b"\n")
            .map_or(raw, |l| l.strip_suffix(b"\r").unwrap_or(l));
        let ok = line.len() >= MIN_TOKEN_LEN && line.iter().all(|b| b.is_ascii_graphic());
        ok.then(|| AdminToken(Zeroizing::new(String::from_utf8_lossy(line).into_owned())))
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`
    /// (the scheme in any case, as RFC 9110 says), compared in constant time.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some((scheme, token)) = value.split_at_checked(7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ")
            && crate::crypto::secrets_equal(token, self.0.as_bytes())
    }

    /// `Bearer <token>` for a client to send, marked sensitive (HPACK
    /// never indexes it, `Debug` hides it).
    pub fn header_value(&self) -> Option<HeaderValue> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", self.0.as_str())).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// Whether a request without a token may be answered for the host it
/// names: an IP address or `localhost` (any port), or none at all. A web
/// page that points its own name at 127.0.0.1 (DNS rebinding) names its
/// own host, so it cannot read the admin endpoint through a browser on
/// the gateway's machine; a client that dials the address names the
/// address. With a token the token decides.
pub fn host_allowed(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    if host.starts_with('[') {
        // An IPv6 literal: `[::1]:15000`.
        return true;
    }
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Whether `path` is served without the token: the readiness probes and
/// the dashboard's static shell.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/ready" | "/healthz/ready") || super::ui::is_shell(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn hosts_a_rebinding_page_cannot_use() {
        for ok in [
            None,
            Some("127.0.0.1:15000"),
            Some("localhost:15000"),
            Some("LOCALHOST"),
            Some("[::1]:15000"),
            Some("10.0.0.7"),
        ] {
            assert!(host_allowed(ok), "{ok:?}");
        }
        for bad in [
            Some("evil.example:15000"),
            Some("localhost.evil.example"),
            Some("127.0.0.1.nip.io:15000"),
            Some(""),
        ] {
            assert!(!host_allowed(bad), "{bad:?}");
        }
    }

    #[test]
    fn token_file_format() {
        let t = AdminToken::parse(b"0123456789abcdef\n").unwrap();
        assert!(t.allows(&headers("Bearer 0123456789abcdef")));
        assert!(AdminToken::parse(b"0123456789abcdef\r\n").is_some());
        for bad in [
            &b""[..],
            b"\n",
            b"short\n",
            b"0123456789 abcdef",
            b"0123456789abcdef\n\n",
            b"0123456789abcdef\nsecond line",
            "0123456789abcdéf".as_bytes(),
        ] {
            assert!(AdminToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn bearer_checks() {
        let t = AdminToken::parse(b"0123456789abcdef").unwrap();
        assert!(t.allows(&headers("bearer 0123456789abcdef")));
        assert!(t.allows(&headers("BEARER 0123456789abcdef")));
        for bad in [
            "Bearer 0123456789abcde",
            "Bearer 0123456789abcdefg",
            "Bearer  0123456789abcdef",
            "Basic 0123456789abcdef",
            "0123456789abcdef",
            "Bearer",
            "",
        ] {
            assert!(!t.allows(&headers(bad)), "{bad:?}");
        }
        assert!(!t.allows(&HeaderMap::new()));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = AdminToken::parse(b"0123456789abcdef").unwrap();
        assert_eq!(format!("{t:?}"), "AdminToken(<redacted>)");
        assert!(!format!("{:?}", t.header_value()).contains("0123"));
    }

    #[test]
    fn probes_and_shell_are_public() {
        for p in [
            "/ready",
            "/healthz/ready",
            "/ui",
            "/ui/app.js",
            "/ui/scrape.js",
            "/ui/app.css",
        ] {
            assert!(is_public(p), "{p}");
        }
        for p in [
            "/credentials",
            "/config_dump",
            "/metrics",
            "/status",
            "/ui/x",
            "/",
        ] {
            assert!(!is_public(p), "{p}");
        }
    }
}
