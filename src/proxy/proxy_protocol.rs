//! The PROXY protocol (HAProxy's, versions 1 and 2): how a TCP load
//! balancer in front of gatehouse passes on the client's address, and how
//! gatehouse passes it on to a TCP or TLS-passthrough backend.
//!
//! On a listener with `--proxy-protocol`, every connection must start with
//! a header: it is read, and only it, before anything else (the bytes
//! after it are the client's, untouched), under the handshake deadline; a
//! connection without a valid one is closed (fail closed: a client that
//! could skip the header could pose as the load balancer's peer). The
//! header's source address then stands for the client everywhere
//! (`x-forwarded-for`, the access log). A v2 `LOCAL` header (the load
//! balancer's own health check) and an `UNKNOWN`/unspecified family keep
//! the socket's peer. This module never trusts a length it has not
//! bounded: a header is at most [`MAX_HEADER`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::checked::destination_rule::ProxyVersion;

/// v2's signature.
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// v1's longest line (the spec's 107 bytes, CRLF included).
const V1_MAX: usize = 107;
/// The longest header accepted (v2 with its TLVs).
pub const MAX_HEADER: usize = 1024;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("bad PROXY protocol header: {0}")]
    Bad(&'static str),
    #[error("PROXY protocol header not received in time")]
    Timeout,
    #[error("connection closed before its PROXY protocol header")]
    Closed,
}

/// What a complete header says: its length, and the client's address
/// (`None`: keep the socket's peer).
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub source: Option<SocketAddr>,
}

/// Parses a header at the start of `buf`: `Ok(None)` when more bytes are
/// needed to decide.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let sig = buf.len().min(V2_SIG.len());
    if buf[..sig] == V2_SIG[..sig] {
        return if buf.len() < 16 {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let prefix = b"PROXY ";
    let n = buf.len().min(prefix.len());
    if buf[..n] != prefix[..n] {
        return Err(ProxyError::Missing);
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::Bad("v1 line longer than 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::Bad("v1 not ASCII"))?;
    let mut parts = line.split(' ');
    let _proxy = parts.next();
    let len = end + 2;
    let family = parts.next().ok_or(ProxyError::Bad("v1 family missing"))?;
    if family == "UNKNOWN" {
        return Ok(Some(Header { len, source: None }));
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(ProxyError::Bad("v1 needs 4 address fields"));
    };
    let ip: IpAddr = match family {
        "TCP4" => src
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ProxyError::Bad("v1 source is not an IPv4 address"))?,
        "TCP6" => src
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ProxyError::Bad("v1 source is not an IPv6 address"))?,
        _ => return Err(ProxyError::Bad("v1 family is not TCP4, TCP6 or UNKNOWN")),
    };
    let port = v1_port(sport)?;
    v1_port(_dport)?;
    Ok(Some(Header {
        len,
        source: Some(SocketAddr::new(ip, port)),
    }))
}

/// A v1 port: decimal, no sign or leading zero.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    match s.parse() {
        Ok(p) if canonical => Ok(p),
        _ => Err(ProxyError::Bad("v1 port is not a port number")),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Bad("v2 version is not 2"));
    }
    let family = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > MAX_HEADER {
        return Err(ProxyError::Bad("v2 header longer than 1024 bytes"));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let addr = &buf[16..len];
    let source = match (ver_cmd & 0x0f, family) {
        // LOCAL: the balancer's own connection (health checks).
        (0, _) => None,
        (1, 0x11) => {
            let a = addr
                .get(..12)
                .ok_or(ProxyError::Bad("v2 IPv4 addresses too short"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        (1, 0x21) => {
            let a = addr
                .get(..36)
                .ok_or(ProxyError::Bad("v2 IPv6 addresses too short"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        // UNSPEC, UDP and unix sockets: no TCP client address to take.
        (1, _) => None,
        _ => return Err(ProxyError::Bad("v2 command is not LOCAL or PROXY")),
    };
    Ok(Some(Header { len, source }))
}

/// Reads the header at the start of `stream` within `deadline`, consuming
/// exactly its bytes (it peeks first, so nothing after it is taken), and
/// returns the client's address (`peer` when the header names none).
pub async fn accept(
    stream: &mut TcpStream,
    peer: SocketAddr,
    deadline: Duration,
) -> Result<SocketAddr, ProxyError> {
    let read = async {
        let mut buf = vec![0u8; MAX_HEADER];
        let mut seen = 0;
        loop {
            let n = stream
                .peek(&mut buf)
                .await
                .map_err(|_| ProxyError::Closed)?;
            if n == 0 {
                return Err(ProxyError::Closed);
            }
            if let Some(h) = parse(&buf[..n])? {
                let mut take = vec![0u8; h.len];
                stream
                    .read_exact(&mut take)
                    .await
                    .map_err(|_| ProxyError::Closed)?;
                return Ok(h.source.unwrap_or(peer));
            }
            if n == seen {
                // Nothing new since the last peek: wait for more bytes.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen = n;
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| ProxyError::Timeout)?
}

/// The header gatehouse sends first on a connection to a backend:
/// `client` connected to gatehouse at `local`.
pub fn encode(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    // Both ends in one family: an IPv4 client on an IPv6 socket is mapped.
    let (src, dst) = match (client.ip(), local.ip()) {
        (IpAddr::V4(a), IpAddr::V6(b)) => (IpAddr::V6(a.to_ipv6_mapped()), IpAddr::V6(b)),
        (IpAddr::V6(a), IpAddr::V4(b)) => (IpAddr::V6(a), IpAddr::V6(b.to_ipv6_mapped())),
        (a, b) => (a, b),
    };
    match version {
        ProxyVersion::V1 => {
            let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {src} {dst} {} {}\r\n",
                client.port(),
                local.port()
            )
            .into_bytes()
        }
        ProxyVersion::V2 => {
            let mut out = V2_SIG.to_vec();
            out.push(0x21);
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    let v6 = |ip: IpAddr| match ip {
                        IpAddr::V6(v) => v.octets(),
                        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
                    };
                    out.push(0x21);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(s));
                    out.extend_from_slice(&v6(d));
                }
            }
            out.extend_from_slice(&client.port().to_be_bytes());
            out.extend_from_slice(&local.port().to_be_bytes());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_headers() {
        let h = parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\nGET /").unwrap();
        assert_eq!(
            h,
            Some(Header {
                len: 43,
                source: Some(addr("203.0.113.7:56324"))
            })
        );
        let h = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 443\r\n").unwrap();
        assert_eq!(h.unwrap().source, Some(addr("[2001:db8::1]:1")));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
        // Incomplete: wait.
        assert_eq!(parse(b"PROXY TCP4 203.0").unwrap(), None);
        assert_eq!(parse(b"PRO").unwrap(), None);
        for bad in [
            &b"PROXY TCP4 203.0.113.7 10.0.0.1 056324 443\r\n"[..],
            b"PROXY TCP4 203.0.113.7 10.0.0.1 70000 443\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 1\r\n",
            b"PROXY UDP4 203.0.113.7 10.0.0.1 1 2\r\n",
        ] {
            assert!(matches!(parse(bad), Err(ProxyError::Bad(_))), "{bad:?}");
        }
        let long = [b"PROXY ".as_slice(), &[b'a'; 120]].concat();
        assert!(matches!(parse(&long), Err(ProxyError::Bad(_))));
        assert_eq!(parse(b"\x16\x03\x01"), Err(ProxyError::Missing));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
    }

    #[test]
    fn v2_headers_round_trip_what_we_send() {
        for (client, local) in [
            ("203.0.113.7:56324", "10.0.0.1:443"),
            ("[2001:db8::1]:5", "[2001:db8::2]:443"),
            ("203.0.113.7:9", "[::1]:443"),
        ] {
            let (client, local) = (addr(client), addr(local));
            let bytes = encode(ProxyVersion::V2, client, local);
            let h = parse(&bytes).unwrap().unwrap();
            assert_eq!(h.len, bytes.len());
            let got = h.source.unwrap();
            assert_eq!(got.port(), client.port());
            let same = match (got.ip(), client.ip()) {
                (IpAddr::V6(g), IpAddr::V4(c)) => g.to_ipv4_mapped() == Some(c),
                (g, c) => g == c,
            };
            assert!(same, "{got} for {client}");
            let v1 = encode(ProxyVersion::V1, client, local);
            let h1 = parse(&v1).unwrap().unwrap();
            assert_eq!(h1.len, v1.len());
        }
        // Partial v2: wait; LOCAL: no address.
        let bytes = encode(ProxyVersion::V2, addr("1.2.3.4:5"), addr("5.6.7.8:9"));
        assert_eq!(parse(&bytes[..20]).unwrap(), None);
        let mut local = bytes.clone();
        local[12] = 0x20;
        assert_eq!(parse(&local).unwrap().unwrap().source, None);
        let mut v3 = bytes.clone();
        v3[12] = 0x31;
        assert!(parse(&v3).is_err());
        let mut huge = bytes;
        huge[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert!(parse(&huge).is_err());
    }
}
