//! A route's `corsPolicy` in checked form: the origin matchers and the
//! response header values, built once.
//!
//! Validation builds this; the data plane reads it and never parses a
//! string again. Nothing here does I/O or knows serde.

use http::HeaderValue;

use super::route::Matcher;

/// One checked `corsPolicy`.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `allowOrigins`; `exact: "*"` is stored as [`Matcher::Present`]
    /// (any origin). An allowed origin is always echoed, never `*`.
    pub origins: Vec<Matcher>,
    /// `Access-Control-Allow-Methods`, when `allowMethods` is set.
    pub allow_methods: Option<HeaderValue>,
    /// `Access-Control-Allow-Headers`, when `allowHeaders` is set.
    pub allow_headers: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers`, when `exposeHeaders` is set.
    pub expose_headers: Option<HeaderValue>,
    /// `Access-Control-Max-Age` in seconds, when `maxAge` is set.
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
    /// `unmatchedPreflights: FORWARD` (the default): a preflight whose
    /// origin is not allowed goes to the backend; with `IGNORE` the
    /// gateway answers it itself, without CORS headers.
    pub forward_unmatched_preflights: bool,
}

impl Cors {
    /// Whether `origin` (an `Origin` header's value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|m| m.matches(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let c = Cors {
            origins: vec![
                Matcher::Exact("https://a.example".into()),
                Matcher::Prefix("https://dev.".into()),
                Matcher::regex(r"https://[a-z]+\.b\.example").unwrap(),
            ],
            allow_methods: None,
            allow_headers: None,
            expose_headers: None,
            max_age: None,
            allow_credentials: false,
            forward_unmatched_preflights: true,
        };
        for (o, ok) in [
            ("https://a.example", true),
            ("https://a.example.evil", false),
            ("http://a.example", false),
            ("https://A.example", false),
            ("https://dev.anything", true),
            ("https://x.b.example", true),
            ("https://x.b.example.evil", false),
            ("null", false),
        ] {
            assert_eq!(c.allows(o), ok, "{o}");
        }
    }
}
