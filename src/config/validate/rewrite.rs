//! A route's `rewrite`: the path prefix, `uriRegexRewrite` (RE2's `\N`
//! groups in the regex crate's form) and the authority, which the route's
//! own header operations may not set a second time.

use http::HeaderValue;

use super::super::checked::route::Rewrite;
use super::super::error::FieldErrors;
use super::super::virtual_service::HttpRoute;
use super::header_ops::{header_text, is_authority};

pub(super) fn rewrite(r: &HttpRoute, p: &str, e: &mut FieldErrors) -> Rewrite {
    let Some(rw) = &r.rewrite else {
        return Rewrite::default();
    };
    if rw.uri.is_none() && rw.authority.is_none() && rw.uri_regex_rewrite.is_none() {
        e.push(
            format!("{p}.rewrite"),
            "a rewrite must set uri, authority or uriRegexRewrite",
        );
    }
    let mut uri_regex = None;
    if let Some(rr) = &rw.uri_regex_rewrite {
        if rw.uri.is_some() {
            e.push(
                format!("{p}.rewrite"),
                "uri and uriRegexRewrite exclude each other",
            );
        }
        if rr.pattern.is_empty() {
            e.push(
                format!("{p}.rewrite.uriRegexRewrite.match"),
                "match is required",
            );
        } else {
            match regex::Regex::new(&rr.pattern) {
                Ok(re) => uri_regex = Some((re, substitution(&rr.rewrite))),
                Err(err) => e.push(
                    format!("{p}.rewrite.uriRegexRewrite.match"),
                    format!(
                        "invalid regex: {}",
                        super::super::error::one_line(&err.to_string())
                    ),
                ),
            }
        }
    }
    if rw.authority.is_some()
        && r.headers
            .as_ref()
            .and_then(|h| h.request.as_ref())
            .is_some_and(|req| {
                req.set
                    .keys()
                    .chain(req.add.keys())
                    .any(|k| is_authority(k))
            })
    {
        e.push(
            format!("{p}.headers.request"),
            "the authority is already set by rewrite.authority",
        );
    }
    if let Some(uri) = &rw.uri {
        header_text(uri, format!("{p}.rewrite.uri"), e);
    }
    let authority = rw.authority.as_ref().and_then(|a| {
        HeaderValue::from_str(a)
            .map_err(|_| {
                e.push(
                    format!("{p}.rewrite.authority"),
                    format!("{a:?} is not an authority"),
                )
            })
            .ok()
    });
    Rewrite {
        uri: rw.uri.clone(),
        uri_regex,
        authority,
    }
}

/// An RE2 substitution (`\1` names group 1, as Envoy's `regex_rewrite`
/// writes it) in the `regex` crate's form (`${1}`, a literal `$` as `$$`).
fn substitution(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len() + 8);
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::substitution;

    #[test]
    fn re2_substitutions_become_regex_ones() {
        assert_eq!(substitution(r"\2/instance/\1"), "${2}/instance/${1}");
        assert_eq!(substitution("/a$b"), "/a$$b");
        assert_eq!(substitution(r"/x\\y\z"), r"/x\y\z");
        let re = regex::Regex::new("^/service/([^/]+)(/.*)$").unwrap();
        assert_eq!(
            re.replace_all(
                "/service/foo/v1/api",
                substitution(r"\2/instance/\1").as_str()
            ),
            "/v1/api/instance/foo"
        );
    }
}
