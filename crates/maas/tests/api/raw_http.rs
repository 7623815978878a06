//! HTTP/1.1 spoken by hand over TCP, for what a well-behaved client library never sends: duplicate
//! headers, absolute-form targets, trickled bytes, half-open and idle connections.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::harness::TestServer;

/// Longest any raw exchange of these tests waits for the server.
pub const PATIENCE: Duration = Duration::from_secs(8);

/// A response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// The status line's code.
    pub status: u16,
    /// The head (status line and headers) as sent.
    pub head: String,
    pub body: Value,
}

impl RawResponse {
    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or_default()
    }

    /// The value of a header (first of that name, case-insensitive), "" when absent.
    pub fn header(&self, name: &str) -> String {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, errcode: &str) {
        assert_eq!(
            (self.status, self.errcode()),
            (status, errcode),
            "{}\n{}",
            self.head,
            self.body
        );
        assert!(
            self.header("content-type").starts_with("application/json"),
            "{}",
            self.head
        );
    }
}

/// A TCP connection to the server.
pub async fn connect(srv: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", srv.port))
        .await
        .expect("connecting to the server")
}

/// Sends `request` (a whole HTTP/1.1 message) on a new connection and reads one response.
pub async fn exchange(srv: &TestServer, request: &str) -> RawResponse {
    let mut stream = connect(srv).await;
    stream
        .write_all(request.as_bytes())
        .await
        .expect("writing the request");
    read_response(&mut stream)
        .await
        .unwrap_or_else(|| panic!("no response to {request:?}"))
}

/// Reads one response (head, then a `Content-Length` body); `None` when the server closes the
/// connection (or resets it) before a whole response, or sends nothing within [`PATIENCE`].
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end + 4;
        }
        read_more(stream, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut response = RawResponse {
        status,
        head,
        body: Value::Null,
    };
    let length: usize = response.header("content-length").parse().unwrap_or(0);
    while buf.len() < head_end + length {
        read_more(stream, &mut buf).await?;
    }
    response.body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
    Some(response)
}

/// Reads what the server sends next; `None` on close, reset or silence.
async fn read_more(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
        _ => None,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits until the server closes the connection (EOF or reset), discarding what it sends;
/// returns how long that took, or `None` if it is still open after `within`.
pub async fn closed_within(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        let left = within.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Writes `bytes` one at a time, `pause` apart, until done or the server stops reading
/// (the write fails). Returns whether all of it was written.
pub async fn trickle(
    stream: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    pause: Duration,
) -> bool {
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            return false;
        }
        tokio::time::sleep(pause).await;
    }
    true
}
