//! `Expect: 100-continue` on HTTP/1.1: a request the service answered
//! without reading its body closes its connection.
//!
//! A client that sends `Expect: 100-continue` (boto3 and the AWS CLI do on
//! every PutObject) holds the body back until the server says `100
//! Continue`, which hyper says only when the service reads the body. If the
//! service answers first (a failed precondition, a refused signature), the
//! client never sends the body. hyper does not know that: it keeps the
//! connection and, on its next read, takes the first bytes of the client's
//! *next* request as the unsent body, so that request fails with a bare
//! `400 Bad Request`. Answering such a request with `Connection: close`
//! makes hyper close the connection instead; the client opens a new one.

use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, EXPECT, HeaderValue};
use hyper::{Request, Response, Version};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// A request body that records whether the service ever received any of
/// it.
#[derive(Debug)]
pub struct Body {
    inner: Incoming,
    read: Arc<AtomicBool>,
}

impl HttpBody for Body {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        // Polled but pending is not read: hyper may not have said `100
        // Continue` yet, and does not if the body is dropped now. A frame
        // (or the end) means it did, and the client is sending the body.
        if frame.is_ready() {
            self.read.store(true, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps a service of [`Body`] requests as a service of hyper's requests,
/// closing the connection after answering an unread `100-continue` body.
#[derive(Clone, Debug)]
pub struct Guard<S>(pub S);

/// Whether the request waits for `100 Continue` before sending a body.
fn expects_continue<B: HttpBody>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && !request.body().is_end_stream()
        && request
            .headers()
            .get(EXPECT)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Guard<S>
where
    S: hyper::service::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let expects = expects_continue(&request);
        let read = Arc::new(AtomicBool::new(false));
        let request = request.map(|inner| Body {
            inner,
            read: read.clone(),
        });
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if expects && !read.load(Ordering::Relaxed) {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}
