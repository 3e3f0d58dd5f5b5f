//! The admin endpoint: readiness (not ready while starting, while a
//! listener cannot bind, and from the start of a drain), the credentials
//! the proxy holds (EXPIRING / EXPIRED when a serving certificate nears or
//! passes its `notAfter`), and its listeners, as JSON; `/metrics` in the
//! OpenMetrics text format (`crate::metrics`); the dashboard at `/ui`
//! (`ui/`). Loopback only unless configured otherwise; elsewhere only with
//! a bearer token (`auth.rs`), which every path but the probes and the
//! dashboard's static shell then needs.
//!
//! `/config_dump` shows everything it serves at once (`config_dump.rs`).
//!
//! It never shows key material: only certificate facts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

pub mod auth;
pub mod client;
pub mod config_dump;
pub mod routes_view;
pub mod ui;
pub mod warnings;

use self::auth::AdminToken;
use crate::control::Status;
use crate::metrics::Metrics;
use crate::proxy::Drain;
use crate::secret::credential::rfc3339;
use crate::secret::sds::{ResourceKind, Status as CredStatus};

/// The JSON of `/credentials`: what `proxy-config secret` prints.
pub fn credentials_json(status: &Status) -> serde_json::Value {
    json!({ "snapshot": status.snapshot_version, "credentials": credential_rows(status) })
}

/// One row per credential resource: its state and its certificates' facts
/// (never key material).
pub fn credential_rows(status: &Status) -> Vec<serde_json::Value> {
    status
        .credentials
        .iter()
        .map(|r| {
            let not_after = r.certs.first().map(|c| rfc3339(c.not_after));
            let (state, reason) = match &r.status {
                CredStatus::Active => ("ACTIVE", None),
                CredStatus::Warming => ("WARMING", None),
                CredStatus::Rejected(why) => ("REJECTED", Some(why.clone())),
                CredStatus::Expiring => (
                    "EXPIRING",
                    not_after.map(|t| format!("expires at {t} (within --expiry-warning)")),
                ),
                CredStatus::Expired => (
                    "EXPIRED",
                    not_after.map(|t| format!("expired at {t}; still serving it")),
                ),
            };
            json!({
                "resource": r.resource,
                "kind": match r.kind {
                    ResourceKind::KeyCertPair => "Cert Chain",
                    ResourceKind::RootCert => "CA",
                },
                "state": state,
                "reason": reason,
                "certs": r.certs.iter().map(|c| json!({
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "serial": c.serial_hex,
                    "not_before": c.not_before,
                    "not_after": c.not_after,
                    "sha256": c.sha256_hex,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn respond(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// `/ready`: 200 only when the config is loaded, every listener is bound and
/// the process is not draining; the body says which and why.
fn ready(status: &Status, draining: bool) -> Response<Full<Bytes>> {
    let why = if draining {
        "draining (shutting down)".to_owned()
    } else if !status.listener_errors.is_empty() {
        let errors: Vec<String> = status
            .listener_errors
            .iter()
            .map(|e| e.to_string())
            .collect();
        errors.join("; ")
    } else if status.ready {
        return respond(
            StatusCode::OK,
            format!("ready: {}\n", status.source.as_str()),
            "text/plain",
        );
    } else {
        status.source.as_str().to_owned()
    };
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {why}\n"),
        "text/plain",
    )
}

fn handle(
    req: &Request<Incoming>,
    status: &Status,
    draining: bool,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => respond(
            StatusCode::OK,
            metrics.encode(status),
            crate::metrics::CONTENT_TYPE,
        ),
        "/ready" | "/healthz/ready" => ready(status, draining),
        "/status" => respond(
            StatusCode::OK,
            json!({
                "ready": status.ready && !draining,
                "draining": draining,
                "source": status.source.as_str(),
                "snapshot": status.snapshot_version,
                "listener_errors": status.listener_errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            })
            .to_string(),
            "application/json",
        ),
        "/credentials" | "/certs" => respond(
            StatusCode::OK,
            credentials_json(status).to_string(),
            "application/json",
        ),
        "/warnings" => respond(
            StatusCode::OK,
            warnings::json(status).to_string(),
            "application/json",
        ),
        "/listeners" => {
            let l: Vec<_> = status
                .listeners
                .iter()
                .map(|(p, a)| json!({"port": p, "address": a.to_string()}))
                .chain(status.listener_errors.iter().map(
                    |e| json!({"port": e.port, "address": e.addr.to_string(), "error": e.error}),
                ))
                .collect();
            respond(StatusCode::OK, json!(l).to_string(), "application/json")
        }
        _ => respond(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}

/// 401 with `WWW-Authenticate: Bearer` (RFC 6750): the token is missing
/// or wrong (the body does not say which).
fn unauthorized() -> Response<Full<Bytes>> {
    let mut r = respond(
        StatusCode::UNAUTHORIZED,
        "unauthorized: this admin endpoint needs Authorization: Bearer <the token of --admin-token-file>\n".into(),
        "text/plain",
    );
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static(r#"Bearer realm="gatehouse admin""#),
    );
    r
}

/// The 401 for a request that needs the token and does not carry it;
/// without a token, the 403 for a request that names a host other than an
/// address or `localhost` (`auth::host_allowed`: DNS rebinding).
fn refused(req: &Request<Incoming>, token: Option<&AdminToken>) -> Option<Response<Full<Bytes>>> {
    let public = auth::is_public(req.uri().path());
    let Some(t) = token else {
        let host = req.uri().host().or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .map(|h| h.to_str().unwrap_or(""))
        });
        return (!public && !auth::host_allowed(host)).then(|| {
            respond(
                StatusCode::FORBIDDEN,
                "the admin endpoint answers requests for an address or localhost only\n".into(),
                "text/plain",
            )
        });
    };
    (!public && !t.allows(req.headers())).then(unauthorized)
}

/// `/config_dump`: a large config makes a large document, so it is built
/// on a blocking thread, never on a worker that serves requests.
async fn config_dump(status: Arc<Status>) -> Response<Full<Bytes>> {
    match tokio::task::spawn_blocking(move || config_dump::json(&status).to_string()).await {
        Ok(body) => respond(StatusCode::OK, body, "application/json"),
        Err(_) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "config_dump: could not build the dump\n".into(),
            "text/plain",
        ),
    }
}

/// Serves the admin endpoint on `listener` until the process ends; it
/// keeps answering while the data plane drains, so `/ready` can say so.
/// With `token`, every path but the probes and `/ui`'s shell needs it.
pub async fn serve(
    listener: TcpListener,
    status: Arc<ArcSwap<Status>>,
    drain: Arc<Drain>,
    metrics: Arc<Metrics>,
    token: Option<Arc<AdminToken>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let status = status.clone();
        let drain = drain.clone();
        let metrics = metrics.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let s = status.load_full();
                let draining = drain.is_draining();
                let metrics = metrics.clone();
                let token = token.clone();
                async move {
                    if let Some(r) = refused(&req, token.as_deref()) {
                        return Ok::<_, Infallible>(r);
                    }
                    let path = req.uri().path();
                    if path == "/config_dump" {
                        return Ok(config_dump(s).await);
                    }
                    if let Some(r) = ui::serve(path) {
                        return Ok(r);
                    }
                    Ok(handle(&req, &s, draining, &metrics))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Whether an admin address is on loopback (the default and the safe choice).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
