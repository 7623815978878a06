//! One client connection: hyper serves it (HTTP/1.1, or HTTP/2 with prior knowledge or ALPN),
//! over TCP or TLS, and its timers close it when the client is too slow or silent. hyper's own
//! header-read timeout runs from the moment it waits for a request, so it can't tell a client
//! slow to send its headers from a kept-alive connection with nothing to ask; these timers can:
//!
//! - idle: no request in flight and no byte of a new one, for `idle_timeout`;
//! - head: a request begun (its first byte came) but not yet handed to the router, for
//!   `header_read_timeout`;
//! - busy: a request in flight (its handler runs or its response is being sent); no timer here:
//!   the body's own deadline (`body::with_body_deadline`) bounds its reading, and handlers
//!   bound their own waits (`/sync`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long a connection may be silent, by what it is doing; zero for no bound.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

impl Timeouts {
    /// How long a TLS handshake may take, `None` for no bound: it comes before the first
    /// request's head and is bounded like it, else like a silent connection.
    pub fn handshake(&self) -> Option<Duration> {
        [self.header_read, self.idle]
            .into_iter()
            .find(|timeout| !timeout.is_zero())
    }
}

/// Serves one connection until it ends, or until `stop` turns true: then its requests in flight
/// finish and it closes (graceful shutdown; the caller bounds how long that may take).
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(TimedIo::new(stream, Arc::clone(&activity), timeouts));
    let service = service_fn(move |req: Request<Incoming>| {
        let in_flight = activity.begin();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        let response = app.clone().oneshot(req);
        async move {
            let response = response.await?;
            // The request stays in flight until its response body is sent (or dropped): the
            // closure holds its guard, and lives as long as the body.
            let body = |body: Body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_flight = &in_flight;
                    frame
                }))
            };
            Ok::<_, Infallible>(response.map(body))
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let stopped = async move {
        // The value read is not kept: the guard `wait_for` returns must not be held.
        let _ = stop.wait_for(|stopping| *stopping).await.is_ok();
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended");
    }
}

/// What a connection's requests tell its timers: how many are in flight, and whom to wake
/// when the last one ends (the idle timer starts then).
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    fn park_reader(&self, waker: &Waker) {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if !reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *reader = Some(waker.clone());
        }
    }
}

/// One request in flight, from the router's call until its response body is sent (or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            let reader = self.0.reader.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(waker) = reader.as_ref() {
                waker.wake_by_ref();
            }
        }
    }
}

/// What a connection is doing, for its timers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// No request in flight and none begun, since then.
    Idle(Instant),
    /// A request's first byte came then; its head is not complete yet.
    Head(Instant),
    /// A request in flight.
    Busy,
}

impl Phase {
    fn next(self, busy: bool, arrived: bool, now: Instant) -> Phase {
        match self {
            _ if busy => Phase::Busy,
            Phase::Busy | Phase::Idle(_) if arrived => Phase::Head(now),
            Phase::Busy => Phase::Idle(now),
            unchanged => unchanged,
        }
    }

    fn deadline(self, timeouts: Timeouts) -> Option<Instant> {
        match self {
            Phase::Idle(since) => after(since, timeouts.idle),
            Phase::Head(since) => after(since, timeouts.header_read),
            Phase::Busy => None,
        }
    }

    fn expiry(self) -> &'static str {
        match self {
            Phase::Head(_) => "the request head did not arrive in time",
            _ => "the connection was idle too long",
        }
    }
}

/// `timeout` after `since`; a timeout of zero is none.
fn after(since: Instant, timeout: Duration) -> Option<Instant> {
    (!timeout.is_zero()).then(|| since + timeout)
}

/// A connection's byte stream with its timers: a read waiting past the deadline of its
/// [`Phase`] fails with `TimedOut`, which makes hyper close the connection.
struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
}

impl<T> TimedIo<T> {
    fn new(inner: T, activity: Arc<Activity>, timeouts: Timeouts) -> Self {
        let now = Instant::now();
        Self {
            inner,
            activity,
            timeouts,
            phase: Phase::Idle(now),
            // Set to the phase's deadline before it is first polled.
            timer: Box::pin(tokio::time::sleep_until(now)),
        }
    }

    /// Whether the current phase is past its deadline; otherwise `cx` is woken at the
    /// deadline, or when the last request in flight ends.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.activity.park_reader(cx.waker());
        let Some(deadline) = self.phase.deadline(self.timeouts) else {
            return false;
        };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl<T> TimedIo<T> {
    /// After a write: the end of a response going out is not idleness.
    fn wrote(&mut self, poll: &Poll<io::Result<usize>>) {
        if let (Poll::Ready(Ok(1..)), Phase::Idle(_)) = (poll, self.phase) {
            self.phase = Phase::Idle(Instant::now());
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let arrived = matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        this.phase = this
            .phase
            .next(this.activity.busy(), arrived, Instant::now());
        if poll.is_pending() && this.expired(cx) {
            let error = io::Error::new(io::ErrorKind::TimedOut, this.phase.expiry());
            return Poll::Ready(Err(error));
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&poll);
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    // Real time, kept short: paused time would need tokio's `test-util` in every build.
    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_millis(200),
        idle: Duration::from_millis(400),
    };

    /// Whether `took` is `expected`, give or take a busy scheduler.
    fn about(took: Duration, expected: Duration) -> bool {
        took >= expected && took < expected + Duration::from_millis(500)
    }

    fn timed() -> (TimedIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        (
            TimedIo::new(server, Arc::clone(&activity), TIMEOUTS),
            client,
            activity,
        )
    }

    /// Reads until a read fails, which must be a timeout, `after` from now.
    async fn assert_times_out_after(io: &mut TimedIo<DuplexStream>, after: Duration) {
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let error = loop {
            if let Err(e) = io.read(&mut buf).await {
                break e;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        let took = start.elapsed();
        assert!(
            about(took, after),
            "timed out after {took:?}, not {after:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_when_idle() {
        let (mut io, _client, _) = timed();
        assert_times_out_after(&mut io, TIMEOUTS.idle).await;
    }

    #[tokio::test]
    async fn a_head_trickled_times_out_from_its_first_byte() {
        let (mut io, mut client, _) = timed();
        tokio::spawn(async move {
            for _ in 0..100 {
                let _ = client.write_all(b"x").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        assert_times_out_after(&mut io, TIMEOUTS.header_read).await;
    }

    #[tokio::test]
    async fn no_timer_runs_while_a_request_is_in_flight() {
        let (mut io, _client, activity) = timed();
        let in_flight = activity.begin();
        let mut buf = [0u8; 8];
        let waited = tokio::time::timeout(TIMEOUTS.idle * 2, io.read(&mut buf)).await;
        assert!(waited.is_err(), "a read failed while busy: {waited:?}");
        // Once the request ends, the connection is idle again.
        drop(in_flight);
        assert_times_out_after(&mut io, TIMEOUTS.idle).await;
    }

    #[test]
    fn a_zero_timeout_is_none() {
        let now = Instant::now();
        let none = Timeouts {
            header_read: Duration::ZERO,
            idle: Duration::ZERO,
        };
        assert_eq!(Phase::Idle(now).deadline(none), None);
        assert_eq!(Phase::Head(now).deadline(none), None);
        let idle = Phase::Idle(now).deadline(TIMEOUTS);
        assert_eq!(idle, Some(now + TIMEOUTS.idle));
    }

    #[test]
    fn a_handshake_is_bounded_by_the_head_timeout_else_the_idle_one() {
        let secs = Duration::from_secs;
        let of = |header_read, idle| Timeouts { header_read, idle }.handshake();
        assert_eq!(of(secs(10), secs(75)), Some(secs(10)));
        assert_eq!(of(Duration::ZERO, secs(75)), Some(secs(75)));
        assert_eq!(of(Duration::ZERO, Duration::ZERO), None);
    }

    #[test]
    fn phases_follow_the_requests() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let idle = Phase::Idle(t0);
        assert_eq!(idle.next(false, false, t1), idle);
        assert_eq!(idle.next(false, true, t1), Phase::Head(t1));
        assert_eq!(Phase::Head(t0).next(false, true, t1), Phase::Head(t0));
        assert_eq!(Phase::Head(t0).next(true, false, t1), Phase::Busy);
        assert_eq!(Phase::Busy.next(false, false, t1), Phase::Idle(t1));
        assert_eq!(Phase::Busy.next(false, true, t1), Phase::Head(t1));
    }
}
