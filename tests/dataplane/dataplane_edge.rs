//! Edge defaults as a client meets them: slow handshakes and idle
//! connections are closed, bad header names and encoded slashes get 400,
//! too many headers 431, connections over the limit are closed at once
//! when no idle connection can make room.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::load;
use crate::support::{FRONTEND, FRONTEND_BODY, Walkthrough};

fn target(w: &Walkthrough, port: u16) -> load::Target {
    let pki = w.site.pki(FRONTEND);
    load::Target::new(
        SocketAddr::from(([127, 0, 0, 1], port)),
        FRONTEND,
        &std::fs::read(w.site.path(&pki.ca_chain)).unwrap(),
        &std::fs::read(w.site.path(&pki.client_cert)).unwrap(),
        &std::fs::read(w.site.path(&pki.client_key)).unwrap(),
    )
}

/// Reads until the peer closes; returns how long that took, or `None` if it
/// was still open after `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 256];
    while start.elapsed() < within {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_closed_at_the_deadline() {
    let w = Walkthrough::new();
    let gw = w
        .site
        .start_gateway_with(&[443], &["--handshake-timeout", "1s"]);
    let mut silent = TcpStream::connect(("127.0.0.1", gw.port(443))).unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(8))
        .expect("a silent client must be closed at the handshake deadline");
    assert!(
        took >= Duration::from_millis(800),
        "closed too early: {took:?}"
    );
    // Others are served meanwhile and after.
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let w = Walkthrough::new();
    let gw = w.site.start_gateway_with(&[443], &["--idle-timeout", "1s"]);
    let t = target(&w, gw.port(443));
    let mut busy = load::Conn::open(&t).unwrap();
    let mut idle = load::Conn::open(&t).unwrap();
    assert_eq!(idle.get().unwrap(), 200);
    // Requests every 300 ms for 2 s keep `busy` alive past the idle timeout.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert_eq!(busy.get().unwrap(), 200, "a busy connection was closed");
        std::thread::sleep(Duration::from_millis(300));
    }
    // `idle` sent nothing for 2 s: the gateway has closed it.
    assert!(
        idle.get().is_err(),
        "an idle connection outlived --idle-timeout"
    );
}

#[test]
fn bad_header_names_and_encoded_slashes_are_400_and_reach_no_backend() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .header("x_team: ux")
        .run()
        .assert_status(400);
    for path in ["/a%2Fb", "/a%5cb", "/a%00"] {
        w.site
            .walkthrough_curl(FRONTEND, port)
            .path(path)
            .run()
            .assert_status(400);
    }
    assert_eq!(w.backend_hits(), 0);
    // `..` is normalized, not passed on: /x/../ is /, which routes.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .path("/x/../")
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn too_many_request_headers_are_refused() {
    let w = Walkthrough::new();
    let gw = w.start();
    let mut curl = w.site.walkthrough_curl(FRONTEND, gw.port(443));
    for i in 0..120 {
        curl = curl.header(&format!("x-h{i}: v"));
    }
    let out = curl.run();
    assert_eq!(
        w.backend_hits(),
        0,
        "an oversized request reached a backend"
    );
    assert!(
        out.status == 431 || out.status == 0,
        "expected 431 or a closed connection, got {}",
        out.status
    );
}

#[test]
fn connections_over_the_limit_are_closed_at_once_when_none_is_idle() {
    // Idle connections make room for new ones (tests/edge/edge_overload.rs);
    // with every connection busy, a new one is closed, not left hanging.
    let w = Walkthrough::new();
    let slow = support::Backend::slow(FRONTEND_BODY, Duration::from_secs(4));
    w.site
        .apply_service_entries(slow.port(), w.inventory.port());
    let gw = w
        .site
        .start_gateway_with(&[443], &["--max-connections", "2"]);
    let t = target(&w, gw.port(443));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || load::Conn::open(&t).unwrap().get().unwrap())
        })
        .collect();
    support::poll("two requests in flight", Duration::from_secs(10), || {
        (slow.hits() == 2).then_some(())
    });
    let mut third = TcpStream::connect(("127.0.0.1", gw.port(443))).unwrap();
    let _ = third.write_all(b"\x16\x03\x01");
    let took = closed_within(&mut third, Duration::from_secs(5))
        .expect("the connection over the limit was not closed");
    assert!(took < Duration::from_secs(2), "it hung for {took:?}");
    for b in busy {
        assert_eq!(b.join().unwrap(), 200);
    }
    // A freed slot is usable again.
    let mut again = support::poll("a free slot", Duration::from_secs(5), || {
        load::Conn::open(&t).ok()
    });
    assert_eq!(again.get().unwrap(), 200);
}
