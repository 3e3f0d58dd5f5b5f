//! [`TlsBackend`]: an in-process HTTPS backend (rustls, HTTP/1.1 and, when
//! asked, HTTP/2 by ALPN) that may require a client certificate from one
//! CA, and answers every request with what it saw of the connection: the
//! HTTP version, the SNI name and the client certificate's common name.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What one request saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSeen {
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    pub sni: Option<String>,
    /// The client certificate's CN, if one was presented.
    pub client: Option<String>,
}

struct State {
    hits: AtomicUsize,
    seen: Mutex<Vec<TlsSeen>>,
}

/// An HTTPS server on `127.0.0.1:0` in its own runtime.
pub struct TlsBackend {
    pub addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// How a [`TlsBackend`] is set up.
pub struct TlsBackendSpec<'a> {
    /// Its certificate chain and key (PEM).
    pub cert: &'a str,
    pub key: &'a str,
    /// Require a client certificate from this CA (PEM).
    pub client_ca: Option<&'a str>,
    /// Offer `h2` by ALPN (else only `http/1.1`).
    pub h2: bool,
}

impl TlsBackend {
    pub fn start(spec: &TlsBackendSpec<'_>) -> TlsBackend {
        let config = Arc::new(server_config(spec));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(State {
            hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, st) = (acceptor.clone(), st.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let (_, conn) = tls.get_ref();
                    let sni = conn.server_name().map(str::to_owned);
                    let client = conn
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| common_name(c.as_ref()));
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen = TlsSeen {
                            version: format!("{:?}", req.version()),
                            sni: sni.clone(),
                            client: client.clone(),
                        };
                        st.hits.fetch_add(1, Ordering::SeqCst);
                        st.seen.lock().unwrap().push(seen.clone());
                        let body = format!(
                            "version={} sni={} client={}\n",
                            seen.version,
                            seen.sni.as_deref().unwrap_or("-"),
                            seen.client.as_deref().unwrap_or("-"),
                        );
                        async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        TlsBackend {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<TlsSeen> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn server_config(spec: &TlsBackendSpec<'_>) -> rustls::ServerConfig {
    let provider = gatehouse::crypto::provider();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(spec.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(spec.key.as_bytes()).unwrap();
    let signer = provider.key_provider.load_private_key(key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match spec.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // Not `with_single_cert`: its key check parses the certificate with
    // webpki, which refuses X.509 v1 ones (that real backends serve).
    let certified = rustls::sign::CertifiedKey::new(chain, signer);
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = if spec.h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}
