//! How many connections each client address holds, so that one address can't take them all.
//! Over the bound a new connection is answered `429 M_LIMIT_EXCEEDED` at once and closed: the
//! client learns why (a refused or reset connection looks like a network fault) and when to
//! try again, and the server spends no request handling on it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The open connections of every address that has any.
#[derive(Clone)]
pub struct PerIp {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection of an address; dropping it frees its place.
pub struct Slot {
    per_ip: PerIp,
    ip: IpAddr,
}

impl PerIp {
    /// At most `limit` connections per address (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            open: Arc::default(),
        }
    }

    /// A place for one more connection of `ip`, or `None` when it holds its limit. IPv4
    /// addresses mapped into IPv6 count as the IPv4 address they are.
    pub fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            per_ip: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open_of(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .per_ip
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// How long a refused connection may take to be told so and closed (after its TLS handshake,
/// which is bounded alike).
pub const REFUSAL_TIME: Duration = Duration::from_secs(1);

const TOO_MANY: &str = concat!(
    r#"{"errcode":"M_LIMIT_EXCEEDED","#,
    r#""error":"Too many connections from this address","retry_after_ms":1000}"#
);

/// The refusal as a response, for a connection hyper serves: over TLS the client may have
/// negotiated HTTP/2, which the bytes of [`refuse`] are not.
pub fn too_many(version: http::Version) -> http::Response<axum::body::Body> {
    let mut response = http::Response::new(axum::body::Body::from(TOO_MANY));
    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    let value = http::HeaderValue::from_static;
    headers.insert(http::header::CONTENT_TYPE, value("application/json"));
    headers.insert(http::header::RETRY_AFTER, value("1"));
    // HTTP/2 has no `Connection` header; its connection ends with the refusal's time bound.
    if version < http::Version::HTTP_2 {
        headers.insert(http::header::CONNECTION, value("close"));
    }
    response
}

/// Answers a connection over its address's bound with `429` and closes it, without reading its
/// request. What the client sent meanwhile is read and dropped for a moment after the answer
/// (a "lingering close"): closing with unread bytes would reset the connection, and the reset
/// can destroy the answer before the client reads it.
pub async fn refuse(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{TOO_MANY}",
        TOO_MANY.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 1024];
        while stream.read(&mut discard).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_places_back() {
        let per_ip = PerIp::new(2);
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let first = per_ip.admit(a).expect("a first place");
        let _second = per_ip.admit(a).expect("a second place");
        assert!(per_ip.admit(a).is_none());
        // Other addresses are not affected.
        let _other = per_ip.admit(b).expect("another address");
        drop(first);
        assert_eq!(per_ip.open_of(a), 1);
        let _third = per_ip.admit(a).expect("a freed place");
        assert!(per_ip.admit(a).is_none());
    }

    #[test]
    fn mapped_ipv4_addresses_count_as_ipv4() {
        let per_ip = PerIp::new(1);
        let v4 = Ipv4Addr::new(192, 0, 2, 1);
        let _slot = per_ip.admit(IpAddr::V4(v4)).expect("a place");
        assert!(per_ip.admit(IpAddr::V6(v4.to_ipv6_mapped())).is_none());
        assert!(per_ip.admit(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_some());
    }

    #[test]
    fn addresses_without_connections_are_forgotten() {
        let per_ip = PerIp::new(1);
        let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
        drop(per_ip.admit(a));
        assert!(per_ip.open.lock().expect("lock").is_empty());
    }
}
