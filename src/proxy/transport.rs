//! How a request reaches a backend: the one place that chooses the client
//! a cluster's requests go through. The primary request, each retry and
//! each mirrored copy ask here, so a cluster's transport is decided once
//! for all three: HTTP/1.1 through the pooled client, or HTTP/2 with prior
//! knowledge (h2c, `h2c.rs`) when the destination's ServiceEntry port is
//! `HTTP2` or `GRPC` or its DestinationRule says `h2UpgradePolicy:
//! UPGRADE`; with `useClientProtocol`, the protocol the client spoke.

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;

use super::Shared;
use super::counted::CountingConnector;
use super::h2c::{H2c, H2cError};
use super::handler::body::ClientBody;
use crate::upstream::Upstream;

/// The pooled client every transport is built on.
pub type HttpClient = Client<CountingConnector, ClientBody>;

/// Why a request got no answer from the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Http1(#[from] hyper_util::client::legacy::Error),
    #[error(transparent)]
    H2c(#[from] H2cError),
}

impl Error {
    /// The connection could not be made (nothing was sent).
    pub fn is_connect(&self) -> bool {
        match self {
            Error::Http1(e) => e.is_connect(),
            Error::H2c(e) => matches!(e, H2cError::Connect { .. }),
        }
    }
}

/// The HTTP version a cluster speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Http1,
    H2c,
    /// `useClientProtocol`: HTTP/2 to the backend when the client spoke it.
    AsClient,
}

fn speaks(up: &Upstream) -> Speaks {
    let as_client = up
        .policy
        .connection_pool
        .as_ref()
        .is_some_and(|c| c.use_client_protocol);
    // Istio: useClientProtocol makes h2UpgradePolicy ineffective.
    if as_client {
        Speaks::AsClient
    } else if up.h2c {
        Speaks::H2c
    } else {
        Speaks::Http1
    }
}

/// A cluster's transport, cheap to clone (a mirror's task keeps one).
#[derive(Clone)]
pub(crate) struct Transport {
    http1: HttpClient,
    h2c: H2c,
    speaks: Speaks,
}

impl Transport {
    /// Sends `req` (its URI already names the endpoint; its version is the
    /// client's).
    pub(crate) async fn request(
        &self,
        req: Request<ClientBody>,
    ) -> Result<Response<Incoming>, Error> {
        dispatch(&self.http1, &self.h2c, self.speaks, req).await
    }
}

/// The transport for `up`'s requests.
pub(crate) fn client(shared: &Shared, up: &Upstream) -> Transport {
    Transport {
        http1: shared.client.clone(),
        h2c: shared.h2c.clone(),
        speaks: speaks(up),
    }
}

/// Sends `req` (its URI already names the endpoint; its version is the
/// client's) over `up`'s transport.
pub(crate) async fn send(
    shared: &Shared,
    up: &Upstream,
    req: Request<ClientBody>,
) -> Result<Response<Incoming>, Error> {
    dispatch(&shared.client, &shared.h2c, speaks(up), req).await
}

async fn dispatch(
    http1: &HttpClient,
    h2c: &H2c,
    speaks: Speaks,
    mut req: Request<ClientBody>,
) -> Result<Response<Incoming>, Error> {
    let h2 = match speaks {
        Speaks::Http1 => false,
        Speaks::H2c => true,
        Speaks::AsClient => req.version() == Version::HTTP_2,
    };
    if h2 {
        return Ok(h2c.request(req).await?);
    }
    *req.version_mut() = Version::HTTP_11;
    Ok(http1.request(req).await?)
}
