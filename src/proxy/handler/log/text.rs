//! The text access-log line: the request line and facts the log has
//! always had, then `key=value` pairs, all on one line.
//!
//! A value that could hold a space, a quote, a backslash or a character
//! that is not printable ASCII (a host header, a path, a certificate's
//! subject or SANs, a route's name) is written double-quoted with `"`,
//! `\` and every control character backslash-escaped, so that nothing a
//! client or a certificate holds can end the line, add a field or change
//! another's value. It writes straight into the log's formatter: no
//! buffer of its own.

use std::fmt::{self, Display, Write};

use super::{Dash, Entry, Joined};

/// An [`Entry`] as one text line.
pub(super) struct Line<'a, 'b>(pub &'a Entry<'b>);

impl Display for Line<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        // What the line has always said, in its old order.
        write!(f, "{} sni=", e.peer)?;
        value(f, e.sni)?;
        f.write_str(" host=")?;
        value(f, e.host)?;
        f.write_str(" \"")?;
        escaped(f, e.method)?;
        f.write_char(' ')?;
        escaped(f, e.path)?;
        write!(f, "\" {} ", e.status)?;
        match e.bytes {
            Some(b) => write!(f, "{b}")?,
            None => f.write_char('-')?,
        }
        write!(f, " {:.3}ms upstream={}", e.duration_ms, Dash(e.upstream))?;
        f.write_str(" cert=")?;
        quoted(f, e.subject())?;
        // Then every other fact, as `key=value`.
        write!(f, " protocol={} server=", e.protocol)?;
        value(f, e.server)?;
        f.write_str(" route=")?;
        let route_quoted = e.route.is_some_and(|r| {
            needs_quotes(&r.virtual_service) || r.name.as_deref().is_some_and(needs_quotes)
        });
        maybe_quoted(f, Dash(e.route), route_quoted)?;
        f.write_str(" upstream_cluster=")?;
        let cluster_quoted = e.cluster.is_some_and(|c| needs_quotes(&c.host));
        maybe_quoted(
            f,
            Dash(e.cluster.map(crate::upstream::Upstream::cluster)),
            cluster_quoted,
        )?;
        f.write_str(" upstream_ms=")?;
        match e.upstream_ms {
            Some(ms) => write!(f, "{ms:.3}")?,
            None => f.write_char('-')?,
        }
        write!(f, " response_flags={} request_id=", e.flags)?;
        value(f, e.request_id)?;
        write!(
            f,
            " tls_version={} cipher={} resumed=",
            e.tls_version(),
            e.cipher()
        )?;
        match e.tls {
            Some(h) => write!(f, "{}", h.resumed)?,
            None => f.write_char('-')?,
        }
        f.write_str(" client_sha256=")?;
        value(f, e.sha256())?;
        let (uris, dns) = e.sans();
        f.write_str(" client_uri_san=")?;
        sans(f, uris)?;
        f.write_str(" client_dns_san=")?;
        sans(f, dns)
    }
}

/// Whether `v` must be quoted to stay one value: empty, or holding a
/// space, `"`, `\`, `=` or anything but printable ASCII.
fn needs_quotes(v: &str) -> bool {
    v.is_empty()
        || v.bytes()
            .any(|b| !b.is_ascii_graphic() || matches!(b, b'"' | b'\\' | b'='))
}

/// `v` bare when it is safe so, else quoted.
fn value(f: &mut fmt::Formatter<'_>, v: &str) -> fmt::Result {
    if needs_quotes(v) {
        quoted(f, v)
    } else {
        f.write_str(v)
    }
}

/// `"v"`, escaped.
fn quoted(f: &mut fmt::Formatter<'_>, v: &str) -> fmt::Result {
    f.write_char('"')?;
    escaped(f, v)?;
    f.write_char('"')
}

/// A list of SANs joined by `,`, quoted when any one needs it.
fn sans(f: &mut fmt::Formatter<'_>, v: &[String]) -> fmt::Result {
    let quote = v.iter().any(|s| needs_quotes(s));
    maybe_quoted(f, Joined(v), quote)
}

/// A value whose text the caller has judged: quoted and escaped, or bare.
fn maybe_quoted(f: &mut fmt::Formatter<'_>, v: impl Display, quote: bool) -> fmt::Result {
    if quote {
        f.write_char('"')?;
        write!(Escaper(f), "{v}")?;
        f.write_char('"')
    } else {
        write!(f, "{v}")
    }
}

fn escaped(f: &mut fmt::Formatter<'_>, v: &str) -> fmt::Result {
    Escaper(f).write_str(v)
}

/// Writes what passes through with `"` and `\` backslash-escaped,
/// `\n` `\r` `\t` as such and every other control character (and the
/// Unicode line and paragraph separators) as `\u{XXXX}`.
struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => None,
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            match escape {
                Some(e) => self.0.write_str(e)?,
                None => write!(self.0, "\\u{{{:04x}}}", u32::from(c))?,
            }
            start = i + c.len_utf8();
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Esc<'a>(&'a str);

    impl Display for Esc<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            value(f, self.0)
        }
    }

    #[test]
    fn values_stay_one_token_on_one_line() {
        let cases = [
            ("frontend.foocorp.com", "frontend.foocorp.com"),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("k=v", "\"k=v\""),
            ("CN=x\\\"y", "\"CN=x\\\\\\\"y\""),
            ("a\nb\rc\td", "\"a\\nb\\rc\\td\""),
            (
                "nul\0del\u{7f}c1\u{85}",
                "\"nul\\u{0000}del\\u{007f}c1\\u{0085}\"",
            ),
            ("ls\u{2028}ps\u{2029}", "\"ls\\u{2028}ps\\u{2029}\""),
            ("café", "\"café\""),
        ];
        for (v, want) in cases {
            let got = Esc(v).to_string();
            assert_eq!(got, want, "{v:?}");
            assert!(!got.contains(['\n', '\r']), "{got:?}");
        }
    }

    #[test]
    fn a_san_list_is_quoted_when_one_san_needs_it() {
        struct S<'a>(&'a [String]);
        impl Display for S<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                sans(f, self.0)
            }
        }
        assert_eq!(S(&[]).to_string(), "-");
        let plain = ["a.example".to_owned(), "b.example".to_owned()];
        assert_eq!(S(&plain).to_string(), "a.example,b.example");
        let odd = ["x y;z=w,v".to_owned(), "b".to_owned()];
        assert_eq!(S(&odd).to_string(), "\"x y;z=w,v,b\"");
    }
}
