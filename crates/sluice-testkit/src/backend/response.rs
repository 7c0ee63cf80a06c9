//! The demo backend's answers: plain text, named by the `x-backend`
//! header.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::state::BackendState;

/// The body of every answer.
pub(crate) type Body = Full<Bytes>;

/// A `text/plain` answer with `status`, `body`, and the backend's name in
/// `x-backend`.
pub(crate) fn text_response(
    shared: &BackendState,
    status: StatusCode,
    body: &str,
) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(name) = HeaderValue::from_str(&shared.name) {
        headers.insert("x-backend", name);
    }
    response
}
