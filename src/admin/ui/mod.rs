//! The dashboard at `/ui`: one page, its two scripts (`scrape.js` reads
//! `/metrics`, `app.js` draws) and its style, compiled into the binary. The page reads `/config_dump` and `/metrics` every
//! second and draws listeners, servers, credentials, routes with their
//! recent error rates, handshake refusals and the last SDS events.
//!
//! What is served here is static: it holds no data, so it is public even
//! when the admin endpoint needs a token (the page asks for the token on a
//! 401 and sends it on its fetches). It must never load anything from
//! elsewhere (the Content-Security-Policy allows only this origin, with no
//! inline script or style), and the script must never put text from the
//! gateway into the page as markup (only `textContent`): an object's name
//! could hold HTML.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const SCRAPE: &str = include_str!("scrape.js");
const STYLE: &str = include_str!("app.css");

/// Only this origin; no inline script or style, no frames, no plugins, no
/// form posts elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The paths of the static shell.
pub fn is_shell(path: &str) -> bool {
    matches!(
        path,
        "/ui" | "/ui/" | "/ui/app.js" | "/ui/scrape.js" | "/ui/app.css"
    )
}

/// The shell's response for `path`, or `None` when `path` is not one of it.
pub fn serve(path: &str) -> Option<Response<Full<Bytes>>> {
    let (body, content_type) = match path {
        "/ui" | "/ui/" => (INDEX, "text/html; charset=utf-8"),
        "/ui/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/ui/scrape.js" => (SCRAPE, "text/javascript; charset=utf-8"),
        "/ui/app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_has_no_external_or_inline_code() {
        for needle in ["http://", "https://", "<style", "style=", "innerHTML"] {
            assert!(!INDEX.contains(needle), "index.html holds {needle:?}");
        }
        // No inline event handler (` onclick=` and the like).
        let handler = INDEX.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "index.html holds an inline event handler");
        assert!(INDEX.contains(r#"<script src="/ui/app.js" defer></script>"#));
        assert!(INDEX.contains(r#"<script src="/ui/scrape.js" defer></script>"#));
        for script in [SCRIPT, SCRAPE] {
            for markup in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "document.write",
            ] {
                assert!(!script.contains(markup), "a script uses {markup}");
            }
        }
        assert!(!STYLE.contains("url("), "the style loads nothing");
    }

    #[test]
    fn every_shell_path_is_served_with_the_policy() {
        for p in ["/ui", "/ui/", "/ui/app.js", "/ui/scrape.js", "/ui/app.css"] {
            assert!(is_shell(p));
            let r = serve(p).unwrap();
            assert_eq!(r.headers()["content-security-policy"], CSP);
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        }
        assert!(serve("/ui/other").is_none());
    }
}
