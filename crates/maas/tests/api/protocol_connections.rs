//! Protocol abuse, connection level: clients that trickle their headers or body, say nothing,
//! half-close, hold too many connections, or send bodies over the limit; and shutdown with a
//! slow client and a long-poll in flight. The server's timeouts are set to a second here
//! (`MAAS_LIMITS__…`), so each case takes a few seconds at most.

use std::time::Duration;

use reqwest::Method;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::harness::*;
use crate::raw_http::*;
use crate::room_support::*;

/// A server whose header, body and idle timeouts are one second.
async fn impatient_server() -> TestServer {
    let options = Options::default()
        .env("MAAS_LIMITS__HEADER_READ_TIMEOUT_SECS", "1")
        .env("MAAS_LIMITS__BODY_READ_TIMEOUT_SECS", "1")
        .env("MAAS_LIMITS__IDLE_TIMEOUT_SECS", "1");
    TestServer::start_with(options).await
}

/// Well past the one-second timeouts, well before [`PATIENCE`].
const CUT_OFF_WITHIN: Duration = Duration::from_secs(4);

/// Asserts that the server closes the connection within [`CUT_OFF_WITHIN`].
async fn assert_cut_off(stream: &mut (impl AsyncRead + Unpin), what: &str) {
    let closed = closed_within(stream, CUT_OFF_WITHIN).await;
    assert!(closed.is_some(), "{what} stayed open");
}

const VERSIONS: &str = "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn headers_trickled_are_cut_off() {
    let srv = impatient_server().await;
    let (mut reader, mut writer) = connect(&srv).await.into_split();
    // Always sending, never done: a header line every 200 ms.
    let trickling = tokio::spawn(async move {
        let mut head = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n".to_vec();
        for i in 0..50 {
            head.extend_from_slice(format!("X-Slow-{i}: 1\r\n").as_bytes());
        }
        trickle(&mut writer, &head, Duration::from_millis(20)).await
    });
    assert_cut_off(&mut reader, "a connection trickling its headers").await;
    trickling.abort();
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let srv = impatient_server().await;
    let mut stream = connect(&srv).await;
    assert_cut_off(&mut stream, "a connection that sent nothing").await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_requests() {
    let srv = impatient_server().await;
    let mut stream = connect(&srv).await;
    // Requests back to back keep the connection: it is idle only between them.
    for _ in 0..3 {
        stream.write_all(VERSIONS.as_bytes()).await.expect("write");
        let response = read_response(&mut stream).await.expect("a response");
        assert_eq!(response.status, 200, "{}", response.head);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_cut_off(&mut stream, "an idle keep-alive connection").await;
}

#[tokio::test]
async fn a_body_trickled_is_cut_off_with_408() {
    let srv = impatient_server().await;
    let (mut reader, mut writer) = connect(&srv).await.into_split();
    let started = Instant::now();
    let trickling = tokio::spawn(async move {
        let head = "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
                    Content-Type: application/json\r\nContent-Length: 200\r\n\r\n";
        writer.write_all(head.as_bytes()).await.expect("write");
        // 200 bytes, one every 50 ms: ten seconds, always sending.
        trickle(&mut writer, &[b' '; 200], Duration::from_millis(50)).await
    });
    let response = read_response(&mut reader).await;
    trickling.abort();
    let response = response.expect("an answer to the trickled body");
    response.assert_error(408, "M_UNKNOWN");
    assert!(
        started.elapsed() < CUT_OFF_WITHIN,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn half_open_connections_are_closed() {
    let srv = TestServer::start().await;
    // Half a request, then the client closes its side: nothing more can come.
    let mut stream = connect(&srv).await;
    stream
        .write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: loc")
        .await
        .expect("write");
    stream.shutdown().await.expect("shutdown");
    let closed = closed_within(&mut stream, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "a half-closed connection stayed open");
    // A whole body announced, half of it sent, then the client closes its side.
    let mut stream = connect(&srv).await;
    let request = "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
                   Content-Length: 100\r\n\r\n{\"type\":";
    stream.write_all(request.as_bytes()).await.expect("write");
    stream.shutdown().await.expect("shutdown");
    let closed = closed_within(&mut stream, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "a half-closed connection stayed open");
    // The server still serves.
    srv.on("localhost")
        .get("/_matrix/client/versions")
        .await
        .ok();
}

/// Sends `request` and reads the answer, which must come within two seconds: without waiting
/// for a body.
async fn answered_at_once(stream: &mut TcpStream, request: &str) -> RawResponse {
    let started = Instant::now();
    stream.write_all(request.as_bytes()).await.expect("write");
    let response = read_response(stream).await.expect("a response");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    response
}

/// `Content-Length` above `limits.max_request_bytes` (1 MiB by default).
const TOO_LONG: usize = 2 * 1024 * 1024;

#[tokio::test]
async fn an_oversize_body_with_expect_gets_413_instead_of_100_continue() {
    let srv = TestServer::start().await;
    let mut stream = connect(&srv).await;
    let request = format!(
        "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {TOO_LONG}\r\n\r\n"
    );
    answered_at_once(&mut stream, &request)
        .await
        .assert_error(413, "M_TOO_LARGE");
    // Within the limit, the client is told to go on.
    let mut stream = connect(&srv).await;
    let request = "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
                   Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("write");
    let response = read_response(&mut stream).await.expect("a response");
    assert_eq!(response.status, 100, "{}", response.head);
    stream.write_all(b"{}").await.expect("write");
    let response = read_response(&mut stream).await.expect("a response");
    response.assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn an_oversize_body_is_refused_before_it_is_read() {
    let srv = TestServer::start().await;
    // Announced too long: refused at once, without waiting for the bytes.
    let mut stream = connect(&srv).await;
    let request = format!(
        "PUT /_matrix/client/v3/profile/%40a%3Alocalhost/displayname HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {TOO_LONG}\r\n\r\n{{\"displayname\":"
    );
    answered_at_once(&mut stream, &request)
        .await
        .assert_error(413, "M_TOO_LARGE");
    // Chunked, so the length is unknown up front: refused once the limit is passed.
    let (mut reader, mut writer) = connect(&srv).await.into_split();
    let sending = tokio::spawn(async move {
        let head = "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
                    Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes()).await?;
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        for _ in 0..(TOO_LONG / 0x10000) {
            writer.write_all(chunk.as_bytes()).await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let response = read_response(&mut reader).await.expect("a response");
    response.assert_error(413, "M_TOO_LARGE");
    sending.abort();
}

#[tokio::test]
async fn connections_per_client_address_are_bounded() {
    let options = Options::default().env("MAAS_LIMITS__MAX_CONNECTIONS_PER_IP", "3");
    let srv = TestServer::start_with(options).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&srv).await;
        stream.write_all(VERSIONS.as_bytes()).await.expect("write");
        let response = read_response(&mut stream).await.expect("a response");
        assert_eq!(response.status, 200, "{}", response.head);
        held.push(stream);
    }
    // A fourth is answered at once, and closed.
    let mut fourth = connect(&srv).await;
    fourth.write_all(VERSIONS.as_bytes()).await.expect("write");
    let response = read_response(&mut fourth).await.expect("a response");
    response.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(
        response.body["retry_after_ms"].is_u64(),
        "{}",
        response.body
    );
    assert!(
        closed_within(&mut fourth, Duration::from_secs(2))
            .await
            .is_some()
    );
    // Once one of the three is closed, a new connection is served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let response = exchange(&srv, VERSIONS).await;
        if response.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", response.head);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn shutdown_answers_long_polls_and_does_not_wait_for_slow_clients() {
    let options = Options::default().env("MAAS_LIMITS__SHUTDOWN_GRACE_SECS", "1");
    let mut srv = TestServer::start_with(options).await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let since = next_batch(&sync(&api, None, None).await);

    // A long-poll with nothing to wake it for 30 s.
    let poll = http_client()
        .request(
            Method::GET,
            format!("{}{CS}/sync?since={since}&timeout=30000", srv.url),
        )
        .header("Host", "localhost")
        .bearer_auth(&alice.access_token);
    let long_poll = tokio::spawn(async move {
        let response = poll.send().await.expect("the long-poll's answer");
        let answered = Instant::now();
        let body: serde_json::Value = response.json().await.expect("JSON");
        (body, answered)
    });
    // A request whose body never comes, and one whose headers never end.
    let mut slow_body = connect(&srv).await;
    let head = "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    slow_body.write_all(head.as_bytes()).await.expect("write");
    let mut slow_head = connect(&srv).await;
    slow_head
        .write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: local")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let signalled = Instant::now();
    let status = srv.stop().await;
    let exited = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(exited < Duration::from_secs(4), "exited after {exited:?}");
    let (body, answered) = long_poll.await.expect("the long-poll task");
    assert!(
        answered.duration_since(signalled) < Duration::from_secs(1),
        "the long-poll was answered {:?} after the signal",
        answered.duration_since(signalled)
    );
    // The normal empty answer, with a position to carry on from.
    assert!(body["next_batch"].is_string(), "{body}");
    assert!(body["rooms"]["join"].is_object(), "{body}");
}
