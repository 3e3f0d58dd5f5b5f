//! A tiny HTTP/1.1 GET for the CLI to read the admin endpoint.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// GETs `path` from the admin endpoint and returns the body as text.
pub async fn get(admin: SocketAddr, path: &str) -> anyhow::Result<String> {
    let stream = tokio::net::TcpStream::connect(admin).await.map_err(|e| {
        anyhow::anyhow!("cannot reach the gateway's admin endpoint at {admin}: {e} (is `gatehouse run` running? use --admin ADDR)")
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        anyhow::bail!("the admin endpoint answered {status} for {path}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}
