//! Test builds only (feature `test-headers`): every forwarded request
//! carries `x-sluice-node` (the routing node) and `x-sluice-revision` (the
//! revision of the replicated state its route was built from), so a fault
//! harness's backend can tell whether a node routed to it after applying
//! the command that removed it. Never compiled into a release build.

use http::{HeaderName, HeaderValue, Request};

use crate::routing::RouteOrigin;

static NODE: HeaderName = HeaderName::from_static("x-sluice-node");
static REVISION: HeaderName = HeaderName::from_static("x-sluice-revision");

/// `req` with the route's origin stamped on it (any value the client sent
/// under these names is replaced).
pub(crate) fn stamp<B>(mut req: Request<B>, origin: RouteOrigin) -> Request<B> {
    let h = req.headers_mut();
    h.insert(NODE.clone(), HeaderValue::from(origin.node));
    h.insert(REVISION.clone(), HeaderValue::from(origin.revision));
    req
}
