//! gRPC for the tests: [`GrpcBackend`], a tonic service `test.Echo`
//! served over h2c (HTTP/2 with prior knowledge, which is what the gateway
//! speaks to a ServiceEntry port of protocol `GRPC` or `HTTP2`) that
//! records what reaches it, and [`GrpcClient`], tonic's own client over
//! mutual TLS with ALPN h2, holding the walkthrough's client certificate.
//!
//! No protoc: the one message type is written with prost's derive, and
//! both sides use tonic's generic `Grpc` with `ProstCodec`.
//!
//! `test.Echo`'s methods:
//! - `Say` (unary): `hello TEXT`; TEXT `fail` answers FAILED_PRECONDITION
//!   "out of stock" (trailers-only, with `x-detail: custom` metadata);
//! - `Slow` (unary): answers after TEXT milliseconds;
//! - `Flaky` (unary): UNAVAILABLE for the first `flaky` calls, then `ok`;
//! - `Count` (server streaming): TEXT `N` streams `1`..`N`; `N!` then ends
//!   with ABORTED "stream broke" and `x-detail: custom` in real trailers;
//! - `Drip` (server streaming): TEXT `N` streams `1`..`N`, 100 ms apart;
//! - `Join` (client streaming): the texts joined by `,`;
//! - `Chat` (bidi streaming): `echo: TEXT` for each message as it comes.
//!
//! Any other path that is not gRPC (`GET /plain`) answers `plain over
//! HTTP/2` with status 200, for the plain h2c test.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// The one message: a text.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(string, tag = "1")]
    pub text: String,
}

pub fn msg(text: &str) -> Msg {
    Msg {
        text: text.to_owned(),
    }
}

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub version: http::Version,
    pub path: String,
    /// The `:authority` (the URI's authority), if any.
    pub authority: Option<String>,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Heard {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type BoxFut<T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send>>;
type BoxStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

#[derive(Default)]
struct State {
    heard: Mutex<Vec<Heard>>,
    /// `Flaky` calls still to fail.
    flaky: AtomicUsize,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Each connection serves one request, then goes away (GOAWAY).
    one_per_connection: bool,
}

/// The h2c gRPC backend, on a runtime of its own; stopped when dropped.
pub struct GrpcBackend {
    addr: SocketAddr,
    state: Arc<State>,
    _runtime: tokio::runtime::Runtime,
}

impl GrpcBackend {
    pub fn start() -> GrpcBackend {
        GrpcBackend::with(0, false)
    }

    /// A backend whose first `n` `Flaky` calls answer UNAVAILABLE.
    pub fn flaky(n: usize) -> GrpcBackend {
        GrpcBackend::with(n, false)
    }

    /// A backend that closes each connection (HTTP/2 GOAWAY, then the
    /// end) once it has answered one request.
    pub fn one_request_per_connection() -> GrpcBackend {
        GrpcBackend::with(0, true)
    }

    fn with(flaky: usize, one_per_connection: bool) -> GrpcBackend {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(State {
            flaky: AtomicUsize::new(flaky),
            one_per_connection,
            ..State::default()
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let accept_state = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(stream, accept_state.clone()));
            }
        });
        GrpcBackend {
            addr,
            state,
            _runtime: runtime,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request so far, in order.
    pub fn heard(&self) -> Vec<Heard> {
        self.state.heard.lock().unwrap().clone()
    }

    /// Requests for `path` so far.
    pub fn calls(&self, path: &str) -> usize {
        self.heard().iter().filter(|h| h.path == path).count()
    }
}

/// One h2c connection: requests served until the client goes, or, for a
/// one-request backend, until the first has been answered.
async fn connection(stream: TcpStream, state: Arc<State>) {
    let answered = Arc::new(tokio::sync::Notify::new());
    let svc_answered = answered.clone();
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let answered = svc_answered.clone();
        async move {
            let resp = serve(req, &state).await;
            if state.one_per_connection {
                answered.notify_one();
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = answered.notified() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn serve(req: http::Request<Incoming>, state: &State) -> http::Response<tonic::body::Body> {
    state.heard.lock().unwrap().push(Heard {
        version: req.version(),
        path: req.uri().path().to_owned(),
        authority: req.uri().authority().map(|a| a.to_string()),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
    });
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
    match req.uri().path() {
        "/test.Echo/Say" => grpc.unary(Say, req).await,
        "/test.Echo/Slow" => grpc.unary(Slow, req).await,
        "/test.Echo/Flaky" => {
            let fail = state
                .flaky
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            grpc.unary(Flaky(fail), req).await
        }
        "/test.Echo/Count" => grpc.server_streaming(Count, req).await,
        "/test.Echo/Drip" => grpc.server_streaming(Drip, req).await,
        "/test.Echo/Join" => grpc.client_streaming(Join, req).await,
        "/test.Echo/Chat" => grpc.streaming(Chat, req).await,
        p if p.starts_with("/test.") => Status::unimplemented(p).into_http(),
        _ => {
            let body =
                Full::new(Bytes::from_static(b"plain over HTTP/2")).map_err(|never| match never {});
            http::Response::new(tonic::body::Body::new(body))
        }
    }
}

/// Metadata `x-detail: custom`, sent with the errors.
fn detail() -> MetadataMap {
    let mut md = MetadataMap::new();
    md.insert("x-detail", "custom".parse().unwrap());
    md
}

struct Say;
impl tonic::server::UnaryService<Msg> for Say {
    type Response = Msg;
    type Future = BoxFut<Msg>;
    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let text = req.into_inner().text;
            if text == "fail" {
                return Err(Status::with_metadata(
                    Code::FailedPrecondition,
                    "out of stock",
                    detail(),
                ));
            }
            Ok(Response::new(msg(&format!("hello {text}"))))
        })
    }
}

struct Slow;
impl tonic::server::UnaryService<Msg> for Slow {
    type Response = Msg;
    type Future = BoxFut<Msg>;
    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let ms: u64 = req.into_inner().text.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Response::new(msg("slept")))
        })
    }
}

struct Flaky(bool);
impl tonic::server::UnaryService<Msg> for Flaky {
    type Response = Msg;
    type Future = BoxFut<Msg>;
    fn call(&mut self, _req: Request<Msg>) -> Self::Future {
        let fail = self.0;
        Box::pin(async move {
            if fail {
                return Err(Status::unavailable("not yet"));
            }
            Ok(Response::new(msg("ok")))
        })
    }
}

/// A stream of what a task sends into a channel.
fn channel_stream() -> (tokio::sync::mpsc::Sender<Result<Msg, Status>>, BoxStream) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    (tx, Box::pin(ReceiverStream::new(rx)))
}

struct Count;
impl tonic::server::ServerStreamingService<Msg> for Count {
    type Response = Msg;
    type ResponseStream = BoxStream;
    type Future = BoxFut<BoxStream>;
    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let text = req.into_inner().text;
            let broken = text.ends_with('!');
            let n: u32 = text.trim_end_matches('!').parse().unwrap_or(0);
            let (tx, stream) = channel_stream();
            tokio::spawn(async move {
                for i in 1..=n {
                    if tx.send(Ok(msg(&i.to_string()))).await.is_err() {
                        return;
                    }
                }
                if broken {
                    let err = Status::with_metadata(Code::Aborted, "stream broke", detail());
                    let _ = tx.send(Err(err)).await;
                }
            });
            Ok(Response::new(stream))
        })
    }
}

struct Drip;
impl tonic::server::ServerStreamingService<Msg> for Drip {
    type Response = Msg;
    type ResponseStream = BoxStream;
    type Future = BoxFut<BoxStream>;
    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let n: u32 = req.into_inner().text.parse().unwrap_or(0);
            let (tx, stream) = channel_stream();
            tokio::spawn(async move {
                for i in 1..=n {
                    if tx.send(Ok(msg(&i.to_string()))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            Ok(Response::new(stream))
        })
    }
}

struct Join;
impl tonic::server::ClientStreamingService<Msg> for Join {
    type Response = Msg;
    type Future = BoxFut<Msg>;
    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let mut input = req.into_inner();
            let mut texts = Vec::new();
            while let Some(m) = input.message().await? {
                texts.push(m.text);
            }
            Ok(Response::new(msg(&texts.join(","))))
        })
    }
}

struct Chat;
impl tonic::server::StreamingService<Msg> for Chat {
    type Response = Msg;
    type ResponseStream = BoxStream;
    type Future = BoxFut<BoxStream>;
    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let mut input = req.into_inner();
            let (tx, stream) = channel_stream();
            tokio::spawn(async move {
                while let Ok(Some(m)) = input.message().await {
                    if tx
                        .send(Ok(msg(&format!("echo: {}", m.text))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            Ok(Response::new(stream))
        })
    }
}

/// tonic's client to `host` at `127.0.0.1:port`, over mTLS (ALPN h2) with
/// a client certificate, on a runtime of its own.
pub struct GrpcClient {
    pub runtime: tokio::runtime::Runtime,
    grpc: tonic::client::Grpc<Channel>,
}

pub fn path(method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/test.Echo/{method}")).unwrap()
}

fn codec() -> ProstCodec<Msg, Msg> {
    ProstCodec::default()
}

impl GrpcClient {
    /// Connects lazily: the first call makes the connection.
    pub fn new(host: &str, port: u16, ca: &[u8], cert: &[u8], key: &[u8]) -> GrpcClient {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let tls = ClientTlsConfig::new()
            .domain_name(host)
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key));
        let endpoint = Endpoint::from_shared(format!("https://{host}:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20));
        // The name is only for TLS and `:authority`: every connection goes
        // to the gateway on loopback.
        let connector = Loopback(port);
        let channel = {
            let _in_runtime = runtime.enter();
            endpoint.connect_with_connector_lazy(connector)
        };
        GrpcClient {
            runtime,
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    /// A unary call of `method` with `text`, and a `grpc-timeout` header
    /// if given (as metadata: tonic's own `set_timeout` would also end the
    /// call itself, client side, and hide what the gateway does).
    pub fn unary(
        &self,
        method: &str,
        text: &str,
        timeout: Option<Duration>,
    ) -> Result<Response<Msg>, Status> {
        let mut grpc = self.grpc.clone();
        let mut req = Request::new(msg(text));
        if let Some(t) = timeout {
            let v = format!("{}m", t.as_millis()).parse().unwrap();
            req.metadata_mut().insert("grpc-timeout", v);
        }
        self.runtime.block_on(async move {
            grpc.ready()
                .await
                .map_err(|e| Status::unknown(e.to_string()))?;
            grpc.unary(req, path(method), codec()).await
        })
    }

    /// `Count`: the messages, then how the stream ended (with its trailers).
    pub fn count(&self, text: &str) -> (Vec<String>, Result<Option<MetadataMap>, Status>) {
        self.server_stream("Count", text, None)
    }

    /// A server-streaming `method`: the messages, then how the stream
    /// ended (with its trailers); with a `grpc-timeout` header if given.
    pub fn server_stream(
        &self,
        method: &str,
        text: &str,
        timeout: Option<Duration>,
    ) -> (Vec<String>, Result<Option<MetadataMap>, Status>) {
        let mut grpc = self.grpc.clone();
        let mut req = Request::new(msg(text));
        if let Some(t) = timeout {
            let v = format!("{}m", t.as_millis()).parse().unwrap();
            req.metadata_mut().insert("grpc-timeout", v);
        }
        self.runtime.block_on(async move {
            grpc.ready().await.unwrap();
            let mut stream = match grpc.server_streaming(req, path(method), codec()).await {
                Ok(r) => r.into_inner(),
                Err(s) => return (Vec::new(), Err(s)),
            };
            let mut got = Vec::new();
            loop {
                match stream.message().await {
                    Ok(Some(m)) => got.push(m.text),
                    Ok(None) => return (got, stream.trailers().await),
                    Err(s) => return (got, Err(s)),
                }
            }
        })
    }

    /// `Join` of `texts`, streamed one message at a time.
    pub fn join(&self, texts: &[&str]) -> Result<String, Status> {
        let mut grpc = self.grpc.clone();
        let msgs: Vec<Msg> = texts.iter().map(|t| msg(t)).collect();
        self.runtime.block_on(async move {
            grpc.ready().await.unwrap();
            let req = Request::new(tokio_stream::iter(msgs));
            grpc.client_streaming(req, path("Join"), codec())
                .await
                .map(|r| r.into_inner().text)
        })
    }

    /// `Chat`: sends each of `texts` only after the answer to the one
    /// before came back (so the two directions interleave); the answers.
    pub fn chat(&self, texts: &[&str]) -> Result<Vec<String>, Status> {
        let mut grpc = self.grpc.clone();
        let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        self.runtime.block_on(async move {
            grpc.ready().await.unwrap();
            let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(1);
            let req = Request::new(ReceiverStream::new(rx));
            let mut texts = texts.into_iter();
            let first = texts.next().unwrap();
            tx.send(msg(&first)).await.unwrap();
            let mut answers = grpc
                .streaming(req, path("Chat"), codec())
                .await?
                .into_inner();
            let mut got = Vec::new();
            loop {
                let Some(m) = answers.message().await? else {
                    return Ok(got);
                };
                got.push(m.text);
                match texts.next() {
                    Some(t) => tx.send(msg(&t)).await.unwrap(),
                    None => return Ok(got),
                }
            }
        })
    }
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TcpStream>>> + Send>>;

/// A connector to `127.0.0.1:PORT`, whatever the URI names.
#[derive(Clone)]
struct Loopback(u16);

impl tower_service::Service<http::Uri> for Loopback {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let port = self.0;
        Box::pin(async move {
            let s = TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(TokioIo::new(s))
        })
    }
}
