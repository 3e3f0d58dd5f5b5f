use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Cursor, Head, PREFACE, Watched, costs_without_asking};

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn peer() -> SocketAddr {
    ([127, 0, 0, 1], 1).into()
}

#[test]
fn the_cursor_finds_every_head_however_the_bytes_are_split() {
    let mut bytes = frame(0x0, 0, 1, &[7; 300]);
    bytes.extend(frame(0x6, 0, 0, &[0; 8]));
    bytes.extend(frame(0x1, 0x4, 3, &[1, 2, 3]));
    for split in [1, 2, 5, 9, 10, 64, 1000] {
        let mut c = Cursor::default();
        let mut seen = Vec::new();
        for chunk in bytes.chunks(split) {
            let took = c.feed(chunk, |h| {
                seen.push((h.kind, h.len, h.stream));
                true
            });
            assert_eq!(took, chunk.len());
        }
        assert_eq!(
            seen,
            vec![(0x0, 300, 1), (0x6, 8, 0), (0x1, 3, 3)],
            "split {split}"
        );
        assert!(c.at_boundary());
    }
}

#[test]
fn only_frames_that_ask_for_nothing_are_counted() {
    let h = |kind, flags, len| Head {
        len,
        kind,
        flags,
        stream: 1,
    };
    for (head, counted) in [
        (h(0x0, 0, 0), true),    // empty DATA
        (h(0x0, 0x1, 0), false), // empty DATA that ends the stream
        (h(0x0, 0, 10), false),  // DATA
        (h(0x1, 0x4, 20), false),
        (h(0x1, 0x4, 0), true),
        (h(0x2, 0, 5), true),
        (h(0x3, 0, 4), true),
        (h(0x4, 0, 6), true),
        (h(0x4, 0x1, 0), false), // SETTINGS ack
        (h(0x6, 0, 8), true),
        (h(0x6, 0x1, 8), false), // PING ack
        (h(0x8, 0, 4), false),
        (h(0x9, 0, 0), true),
        (h(0x9, 0, 9), false),
        (h(0xf0, 0, 3), true),
    ] {
        assert_eq!(costs_without_asking(head), counted, "{head:?}");
    }
}

/// Sends the preface and `pings` PINGs through a watch with `limit`;
/// returns the bytes the server side read and what the client received.
async fn pings_through(pings: usize, limit: u32) -> (usize, Vec<u8>, bool) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let mut watched = Watched::new(server, peer(), limit);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let mut sent = PREFACE.to_vec();
    sent.extend(frame(0x1, 0x5, 1, &[0x82]));
    for _ in 0..pings {
        sent.extend(frame(0x6, 0, 0, &[0; 8]));
    }
    client_write.write_all(&sent).await.unwrap();
    client_write.shutdown().await.unwrap();
    let mut read = 0;
    let mut buf = vec![0u8; 4096];
    let ended_with_error = loop {
        match watched.read(&mut buf).await {
            Ok(0) => break false,
            Ok(n) => read += n,
            Err(_) => break true,
        }
    };
    drop(watched);
    let mut got = Vec::new();
    client_read.read_to_end(&mut got).await.unwrap();
    (read, got, ended_with_error)
}

#[tokio::test]
async fn within_the_budget_every_byte_passes() {
    let (read, got, error) = pings_through(10, 10).await;
    assert_eq!(read, PREFACE.len() + 10 + 10 * 17);
    assert!(got.is_empty());
    assert!(!error);
}

#[tokio::test]
async fn over_the_budget_the_rest_is_withheld_and_a_goaway_sent() {
    let (read, got, error) = pings_through(1000, 10).await;
    assert_eq!(read, PREFACE.len() + 10 + 10 * 17, "only the budget passes");
    assert!(error, "the connection ends with an error");
    // GOAWAY, last stream 1, ENHANCE_YOUR_CALM.
    assert_eq!(got, frame(0x7, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0xb]));
}

/// A client that negotiated `h2` and sends something else (HTTP/1.1,
/// which hyper's auto server would take past the HTTP/1 byte watch) gets
/// none of it through: the read fails.
#[tokio::test]
async fn bytes_that_are_not_http2_end_the_connection() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut watched = Watched::new(server, peer(), 1);
    let (_client_read, mut client_write) = tokio::io::split(client);
    let mut sent = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    sent.extend(std::iter::repeat_n(0u8, 1000));
    client_write.write_all(&sent).await.unwrap();
    client_write.shutdown().await.unwrap();
    let mut got = Vec::new();
    let read = watched.read_to_end(&mut got).await;
    assert_eq!(
        read.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::InvalidData)
    );
    assert!(got.is_empty(), "passed on: {got:?}");
}
