//! The ClientHello reader, on real ClientHellos made by a rustls client and
//! on arbitrary bytes (proptest): it never panics, finds the end of the
//! hello however the bytes are split into records and reads, and hands on
//! every byte it read.

use proptest::prelude::*;

use super::*;

/// A real ClientHello for `name` (with a big extension, so that it can be
/// split over records), as a rustls client sends it.
fn client_hello(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut c = rustls::ClientConnection::new(std::sync::Arc::new(config), server).unwrap();
    let mut out = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut out).unwrap();
    }
    out
}

/// The same handshake bytes re-framed into records of at most `size` bytes.
fn reframe(hello: &[u8], size: usize) -> Vec<u8> {
    let payload = &hello[5..];
    let mut out = Vec::new();
    for chunk in payload.chunks(size.max(1)) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn finds_the_sni_of_a_real_hello() {
    let hello = client_hello("Nginx.Example.com");
    assert_eq!(complete(&hello).unwrap(), Some(hello.len()));
    assert_eq!(sni(&hello).unwrap().as_deref(), Some("nginx.example.com"));
    // Split over many records, it is still one ClientHello.
    let split = reframe(&hello, 100);
    assert_eq!(complete(&split).unwrap(), Some(split.len()));
    assert_eq!(sni(&split).unwrap().as_deref(), Some("nginx.example.com"));
    // Any prefix asks for more.
    for cut in [0, 1, 4, 5, 9, split.len() - 1] {
        assert_eq!(complete(&split[..cut]).unwrap(), None, "cut at {cut}");
    }
}

#[test]
fn refuses_what_is_not_a_client_hello() {
    assert!(matches!(
        complete(b"GET / HTTP/1.1\r\n\r\n"),
        Err(HelloError::NotHandshake)
    ));
    // A handshake record holding a ServerHello (type 2).
    assert!(matches!(
        complete(&[22, 3, 3, 0, 4, 2, 0, 0, 0]),
        Err(HelloError::NotClientHello)
    ));
    assert!(matches!(
        complete(&[22, 3, 3, 0, 0]),
        Err(HelloError::BadRecord)
    ));
    // A ClientHello that says it is 1 MiB long.
    assert!(matches!(
        complete(&[22, 3, 3, 0, 4, 1, 16, 0, 0]),
        Err(HelloError::TooLarge)
    ));
}

#[tokio::test]
async fn reads_across_segments_and_keeps_every_byte() {
    let hello = reframe(&client_hello("a.example.com"), 300);
    let mut sent = hello.clone();
    sent.extend_from_slice(b"early");
    let (mut client, mut server) = tokio::io::duplex(64);
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            for piece in sent.chunks(7) {
                client.write_all(piece).await.unwrap();
            }
            client
        }
    });
    let got = read(&mut server).await.unwrap();
    assert!(got.len() >= hello.len() && sent.starts_with(&got));
    let _client = writer.await.unwrap();
    let mut replay = Prefixed::new(got.clone(), &mut server);
    let mut all = vec![0u8; sent.len()];
    replay.read_exact(&mut all).await.unwrap();
    assert_eq!(all, sent);
}

proptest! {
    #[test]
    fn prop_any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = complete(&bytes);
        let _ = sni(&bytes);
    }

    #[test]
    fn prop_any_record_split_is_one_hello(size in 1usize..600, extra in 0usize..40) {
        let hello = client_hello("shop.example.com");
        let mut framed = reframe(&hello, size);
        let end = framed.len();
        framed.extend(std::iter::repeat_n(23u8, extra));
        prop_assert_eq!(complete(&framed).unwrap(), Some(end));
        let name = sni(&framed[..end]).unwrap();
        prop_assert_eq!(name.as_deref(), Some("shop.example.com"));
    }

    #[test]
    fn prop_corrupted_hellos_never_panic(at in 0usize..200, byte in any::<u8>()) {
        let mut hello = client_hello("shop.example.com");
        let i = at % hello.len();
        hello[i] = byte;
        let _ = complete(&hello);
        let _ = sni(&hello);
    }
}
