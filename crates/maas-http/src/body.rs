//! Bounds on request bodies before anything reads them: a body announced larger than the limit
//! is refused at once (so `Expect: 100-continue` gets `413`, not `100 Continue`), and a body
//! must arrive whole within a deadline, however steadily it trickles in.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::HttpError;

/// `413 M_TOO_LARGE` when the request announces (`Content-Length`) a body over `limit` bytes.
/// Refusing before the body is read means hyper never sends `100 Continue` to a client that
/// asked with `Expect`, and never reads bytes it would only throw away.
pub fn refuse_announced_oversize(headers: &HeaderMap, limit: usize) -> Result<(), HttpError> {
    let announced = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(length) if length > u64::try_from(limit).unwrap_or(u64::MAX) => {
            Err(HttpError::too_large())
        }
        _ => Ok(()),
    }
}

/// The request with its body due within `timeout` from now; a timeout of zero is none.
pub fn with_body_deadline(req: Request, timeout: Duration) -> Request {
    if timeout.is_zero() {
        return req;
    }
    let deadline = Instant::now() + timeout;
    req.map(|body| Body::new(DeadlineBody::new(body, deadline)))
}

/// The error a body yields once its deadline has passed.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

/// A body that fails with [`BodyTimeout`] if it is not over by its deadline. tower-http's
/// `TimeoutBody` restarts its timer at every frame, so a client sending a byte a second would
/// never trip it; this deadline is for the whole body.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Body, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn headers(length: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = http::HeaderValue::from_str(length).expect("a header value");
        headers.insert(http::header::CONTENT_LENGTH, value);
        headers
    }

    #[test]
    fn only_announced_lengths_over_the_limit_are_refused() {
        assert!(refuse_announced_oversize(&headers("10"), 10).is_ok());
        let refused = refuse_announced_oversize(&headers("11"), 10).expect_err("too long");
        assert_eq!(refused.errcode(), "M_TOO_LARGE");
        assert!(refuse_announced_oversize(&HeaderMap::new(), 10).is_ok());
        // hyper refuses malformed lengths itself; nothing to add here.
        assert!(refuse_announced_oversize(&headers("x"), 10).is_ok());
    }

    /// A body whose bytes come when the test sends them.
    struct Trickled(tokio::sync::mpsc::Receiver<Bytes>);

    impl http_body::Body for Trickled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_body_not_over_by_its_deadline_fails() {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let body = Body::new(Trickled(receiver));
        let body = DeadlineBody::new(body, Instant::now() + Duration::from_millis(200));
        let reading = tokio::spawn(async move { body.collect().await.map(|b| b.to_bytes()) });
        // Steady bytes don't move the deadline.
        for _ in 0..6 {
            let _ = sender.send(Bytes::from_static(b"x")).await;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let error = reading.await.expect("task").expect_err("timed out");
        let source = std::error::Error::source(&error).expect("a source");
        assert!(source.is::<BodyTimeout>(), "{error}");
    }

    #[tokio::test]
    async fn a_body_over_in_time_is_whole() {
        let body = DeadlineBody::new(Body::from("{}"), Instant::now() + Duration::from_secs(1));
        let bytes = body.collect().await.expect("in time").to_bytes();
        assert_eq!(bytes, Bytes::from_static(b"{}"));
    }
}
