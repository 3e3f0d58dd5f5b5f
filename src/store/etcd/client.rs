//! One etcd member over gRPC: the channel (TLS with aws-lc-rs when the
//! endpoint is `https://`), the login token a user with a password gets,
//! and one call with a deadline. Everything above (which member, retries,
//! what a call means for the store) is the caller's.
//!
//! It must never log or put in an error the password or the token, and
//! never let a call wait longer than its deadline.

use std::fmt;
use std::time::Duration;

use etcd_rpc::etcdserverpb::auth_client::AuthClient;
use etcd_rpc::etcdserverpb::kv_client::KvClient;
use etcd_rpc::etcdserverpb::watch_client::WatchClient;
use etcd_rpc::etcdserverpb::{AuthenticateRequest, RangeRequest};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use super::{CALL_TIMEOUT, EtcdOptions};
use crate::store::StoreError;

/// The channel every call of one member goes through, with its token.
type Svc = InterceptedService<Channel, Token>;

/// A connection to one member (cheap to clone: the channel is shared).
#[derive(Clone)]
pub(super) struct Member {
    kv: KvClient<Svc>,
    watch: WatchClient<Svc>,
}

/// Adds the login token, if any, to every call (etcd reads it from the
/// `token` metadata).
#[derive(Clone)]
pub(super) struct Token(Option<MetadataValue<Ascii>>);

impl Interceptor for Token {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("token", token.clone());
        }
        Ok(request)
    }
}

pub(super) fn unavailable(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd {what}: {e}"))
}

/// A status as one line: etcd's message (`etcdserver: leader changed`)
/// and, for a transport failure, what lies under it.
fn status_text(status: &Status) -> String {
    let mut text = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_owned()
    };
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text.replace(['\n', '\r'], " ")
}

/// Runs one call with [`CALL_TIMEOUT`]; every failure is `Unavailable`
/// (the caller may try another member).
pub(super) async fn timed<T>(
    what: &str,
    f: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v.into_inner()),
        Ok(Err(status)) => Err(unavailable(what, status_text(&status))),
        Err(_) => Err(unavailable(what, "timed out after 5 s")),
    }
}

/// A range request for exactly `key`.
pub(super) fn range(key: Vec<u8>) -> RangeRequest {
    RangeRequest {
        key,
        ..RangeRequest::default()
    }
}

/// The end of the range of every key that starts with `prefix`: the prefix
/// with its last byte below 0xff incremented (etcd's `WithPrefix`).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff (or no prefix): to the end of the key space.
    vec![0]
}

fn endpoint(url: &str, opts: &EtcdOptions) -> Result<Endpoint, StoreError> {
    let bad = |e: &dyn fmt::Display| StoreError::BadUrl(format!("etcd endpoint {url:?}: {e}"));
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &opts.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &opts.client_cert_pem {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| bad(&e))?;
    }
    Ok(endpoint)
}

impl Member {
    /// A member's connection. The channel connects on the first call, so
    /// this does no I/O unless a user must log in first.
    pub(super) async fn connect(url: &str, opts: &EtcdOptions) -> Result<Member, StoreError> {
        let channel = endpoint(url, opts)?.connect_lazy();
        let token = match &opts.user {
            None => None,
            Some((name, password)) => {
                let req = AuthenticateRequest {
                    name: name.clone(),
                    password: password.clone(),
                };
                let resp =
                    timed("login", AuthClient::new(channel.clone()).authenticate(req)).await?;
                let token = MetadataValue::try_from(resp.token)
                    .map_err(|_| unavailable("login", "the token etcd gave is not ASCII"))?;
                Some(token)
            }
        };
        let token = Token(token);
        Ok(Member {
            kv: KvClient::with_interceptor(channel.clone(), token.clone()),
            watch: WatchClient::with_interceptor(channel, token),
        })
    }

    pub(super) fn kv(&self) -> KvClient<Svc> {
        self.kv.clone()
    }

    pub(super) fn watch(&self) -> WatchClient<Svc> {
        self.watch.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/gatehouse/"), b"/gatehouse0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
