//! How a request reaches a backend: the one place that chooses the client
//! a cluster's requests go through. The primary request, each retry and
//! each mirrored copy ask here, so a cluster's transport (plain HTTP/1.1
//! today) is decided once for all three.

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;

use super::Shared;
use super::counted::CountingConnector;
use super::handler::body::ClientBody;
use crate::upstream::Upstream;

/// The pooled client every transport is built on.
pub type HttpClient = Client<CountingConnector, ClientBody>;

/// The client for `up`'s requests.
pub(crate) fn client<'a>(shared: &'a Shared, up: &'a Upstream) -> &'a HttpClient {
    // A DestinationRule's connect timeout, keepalive or idle timeout.
    if let Some(own) = super::pool::own_client(shared, up) {
        return own;
    }
    &shared.client
}

/// Sends `req` (its URI already names the endpoint) over `up`'s transport.
pub(crate) async fn send(
    shared: &Shared,
    up: &Upstream,
    req: Request<ClientBody>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    client(shared, up).request(req).await
}
