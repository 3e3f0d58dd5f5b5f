//! The backend every proxy under test forwards to: plain HTTP/1.1 with
//! keep-alive, one fixed body, no logging. Sharing it keeps the comparison
//! about the proxies.
//!
//! It listens on loopback only unless told otherwise, and can stop by itself.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::cli::BackendArgs;
use crate::conn::check_address;

pub async fn serve(args: BackendArgs) -> anyhow::Result<()> {
    check_address(args.listen, args.allow_remote)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    println!("listening on {}", listener.local_addr()?);
    let body = Bytes::from(args.body);
    let accept = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, most likely: let some close.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        let mut resp = hyper::Response::new(Full::new(body));
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    };
    let limit = if args.max_seconds > 0.0 && args.max_seconds.is_finite() {
        Duration::from_secs_f64(args.max_seconds)
    } else {
        Duration::MAX
    };
    let _ = tokio::time::timeout(limit, accept).await;
    Ok(())
}
