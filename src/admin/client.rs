//! A tiny HTTP/1.1 GET for the CLI to read the admin endpoint, with the
//! bearer token of `--admin-token-file` when one was given.
//!
//! The token is handed over once, before any command runs
//! ([`use_token`]), so that every command that reads the admin endpoint
//! sends it without threading it through each one's arguments. It is never
//! printed, not even in an error.

use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::auth::AdminToken;

/// The token the CLI sends (`--admin-token-file`), set once at start.
static TOKEN: OnceLock<AdminToken> = OnceLock::new();

/// Sends `token` on every later [`get`]. Only the first call counts.
pub fn use_token(token: AdminToken) {
    let _ = TOKEN.set(token);
}

/// GETs `path` from the admin endpoint and returns the body as text.
pub async fn get(admin: SocketAddr, path: &str) -> anyhow::Result<String> {
    let stream = tokio::net::TcpStream::connect(admin).await.map_err(|e| {
        anyhow::anyhow!("cannot reach the gateway's admin endpoint at {admin}: {e} (is `gatehouse run` running? use --admin ADDR)")
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::get(path)
        .header(http::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())?;
    if let Some(v) = TOKEN.get().and_then(AdminToken::header_value) {
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
    }
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status == http::StatusCode::UNAUTHORIZED {
        match TOKEN.get() {
            Some(_) => anyhow::bail!(
                "the admin endpoint at {admin} refused the token of --admin-token-file (401)"
            ),
            None => anyhow::bail!(
                "the admin endpoint at {admin} needs a token: give --admin-token-file FILE (401)"
            ),
        }
    }
    if !status.is_success() {
        anyhow::bail!("the admin endpoint answered {status} for {path}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}
