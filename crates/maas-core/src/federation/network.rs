//! The network transport: HTTPS to the address [`Discovery`] gives, with the `Host` header and
//! certificate name the spec asks for. Owns the one HTTP client of outbound federation, the
//! guard that keeps requests off private addresses, and the per-destination backoff.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;
use http::header::HOST;
use lru::LruCache;
use parking_lot::Mutex;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use ruma::{OwnedServerName, ServerName};
use tokio::time::Instant;
use url::Url;

use super::discovery::{
    Discovery, Dns, Host, Resolved, SystemDns, WELL_KNOWN_PATH, WellKnownFetcher,
};
use super::transport::{Request, Response, Transport, TransportError};
use crate::config::FederationConfig;

/// The largest answer body accepted from another server.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// The largest `.well-known/matrix/server` accepted: it holds one server name.
const MAX_WELL_KNOWN_BYTES: usize = 64 * 1024;
/// The longest a `.well-known` fetch may take: it stands before the first request to a
/// server, and a host that doesn't serve the file ought not to hold that request long.
const WELL_KNOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed for a `.well-known` fetch.
const WELL_KNOWN_REDIRECTS: usize = 5;
/// The port `.well-known` is fetched from.
const HTTPS_PORT: u16 = 443;
/// The backoff after a destination's first failure; it doubles with each one after.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// Destinations whose failures are remembered; the least recently failed are forgotten.
const BACKOFF_ENTRIES: usize = 100_000;
/// SRV-aliased names known to the resolver (see [`Aliases`]).
const ALIAS_ENTRIES: usize = 10_000;
const USER_AGENT: &str = concat!("maas/", env!("CARGO_PKG_VERSION"));

/// Whether `ip` is a global address: not loopback, private (RFC 1918, fc00::/7), link-local,
/// unspecified, multicast, documentation, shared (CGNAT) or otherwise reserved. IPv4 inside
/// IPv6 (mapped, NAT64, 6to4) is judged by the IPv4 address.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = a == 0 // "this network", 0.0.0.0 among them
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relays
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // NAT64 of the well-known prefix reaches the IPv4 address it embeds.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => is_public_v4(embedded(high, low)),
        // 6to4 reaches the IPv4 address after the prefix.
        [0x2002, high, low, ..] => is_public_v4(embedded(high, low)),
        // IETF protocol assignments (Teredo, ORCHID, …) and documentation.
        [0x2001, second, ..] if second < 0x0200 || second == 0x0db8 => false,
        [0x3fff, second, ..] if second < 0x1000 => false,
        // Only 2000::/3 is global unicast: this leaves out loopback, unspecified, unique
        // local, link-local, site-local, multicast and the rest.
        [first, ..] => first & 0xe000 == 0x2000,
    }
}

/// Which addresses outbound requests may go to.
#[derive(Clone, Copy, Debug)]
struct AddressGuard {
    allow_private: bool,
}

impl AddressGuard {
    fn allows(self, ip: IpAddr) -> bool {
        self.allow_private || is_public_address(ip)
    }

    /// The addresses of `host` requests may go to; an error when there is none.
    async fn addresses(self, dns: &dyn Dns, host: &Host) -> Result<Vec<IpAddr>, ResolveFailure> {
        let all = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => dns.ips(name).await.map_err(|e| ResolveFailure::Dns {
                host: host.to_string(),
                reason: e.0,
            })?,
        };
        if all.is_empty() {
            return Err(ResolveFailure::NoAddress {
                host: host.to_string(),
            });
        }
        let allowed: Vec<IpAddr> = all.iter().copied().filter(|ip| self.allows(*ip)).collect();
        if allowed.is_empty() {
            return Err(ResolveFailure::Refused {
                host: host.to_string(),
                addresses: all
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(allowed)
    }
}

/// Why a name gave no address to connect to. It travels through reqwest as the resolver's
/// error and is found again in the error's sources, to answer `Resolution`, not `Connection`.
#[derive(Debug, thiserror::Error)]
enum ResolveFailure {
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("{host} is at {addresses}, where federation does not go (not a public address)")]
    Refused { host: String, addresses: String },
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns { host: String, reason: String },
}

/// Names that stand for an SRV record's target. After an SRV lookup the spec wants the
/// connection made to the target but the certificate checked (and SNI sent) for the server's
/// own name; reqwest takes the certificate name from the URL, so the URL names the server and
/// the resolver maps that name to the target. The URL writes the name with a trailing dot,
/// which TLS ignores, so that it differs from the plain name another destination (the same
/// host with an explicit port) resolves normally: resolver and connection pool both tell them
/// apart. An alias evicted before its connection resolves falls back to the name's own
/// addresses, still checked against its certificate.
struct Aliases(Mutex<LruCache<String, Host>>);

impl Aliases {
    fn new() -> Aliases {
        let capacity = NonZeroUsize::new(ALIAS_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Aliases(Mutex::new(LruCache::new(capacity)))
    }

    fn set(&self, url_host: &str, target: Host) {
        self.0.lock().put(url_host.to_owned(), target);
    }

    fn target(&self, url_host: &str) -> Option<Host> {
        self.0.lock().get(url_host).cloned()
    }
}

/// reqwest's resolver: aliases first, then DNS, and only the addresses the guard allows.
struct GuardedResolver {
    dns: Arc<dyn Dns>,
    aliases: Arc<Aliases>,
    guard: AddressGuard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let requested = name.as_str().to_owned();
        let host = self
            .aliases
            .target(&requested)
            .unwrap_or_else(|| Host::parse(&requested));
        let (dns, guard) = (self.dns.clone(), self.guard);
        Box::pin(async move {
            let addresses = guard.addresses(dns.as_ref(), &host).await?;
            // Port 0: the connector puts the URL's port in.
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// One destination's failures in a row, and until when it is left alone.
#[derive(Clone, Copy)]
struct BackoffEntry {
    failures: u32,
    until: Instant,
}

/// Destinations that failed lately.
struct Backoff(Mutex<LruCache<OwnedServerName, BackoffEntry>>);

impl Backoff {
    fn new() -> Backoff {
        let capacity = NonZeroUsize::new(BACKOFF_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Backoff(Mutex::new(LruCache::new(capacity)))
    }

    /// How long `destination` is still left alone, if it is.
    fn remaining(&self, destination: &ServerName) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.0.lock();
        let entry = entries.peek(destination)?;
        (entry.until > now).then(|| entry.until - now)
    }

    fn failed(&self, destination: &ServerName) {
        let now = Instant::now();
        let mut entries = self.0.lock();
        let failures = match entries.get(destination) {
            // A request sent before the last failure that fails too says nothing new: it
            // must not double the delay again.
            Some(entry) if entry.until > now => return,
            Some(entry) => entry.failures.saturating_add(1),
            None => 1,
        };
        let until = now + backoff_delay(failures);
        entries.put(destination.to_owned(), BackoffEntry { failures, until });
    }

    fn reset(&self, destination: &ServerName) {
        self.0.lock().pop(destination);
    }
}

/// The delay after the `failures`-th failure in a row: 1 s, 2 s, 4 s… up to an hour.
fn backoff_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    BACKOFF_START
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

/// Fetches `.well-known/matrix/server` with the federation client (so through the guard).
struct HttpWellKnown {
    client: reqwest::Client,
    /// 443; tests serve it elsewhere.
    port: u16,
    timeout: Duration,
}

#[async_trait]
impl WellKnownFetcher for HttpWellKnown {
    async fn fetch(&self, hostname: &str) -> Result<http::Response<Vec<u8>>, String> {
        let url = format!("https://{hostname}:{}{WELL_KNOWN_PATH}", self.port);
        let response = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        read_answer(response, MAX_WELL_KNOWN_BYTES)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => "the answer is too large".to_owned(),
                ReadError::Failed(e) => error_chain(&e),
            })
    }
}

enum ReadError {
    TooLarge,
    Failed(reqwest::Error),
}

/// The whole answer, its body at most `limit` bytes.
async fn read_answer(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<http::Response<Vec<u8>>, ReadError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if response.content_length().is_some_and(|len| len > limit_u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Failed)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let mut answer = http::Response::new(body);
    *answer.status_mut() = response.status();
    *answer.version_mut() = response.version();
    *answer.headers_mut() = std::mem::take(response.headers_mut());
    Ok(answer)
}

/// An error and its causes, as one line.
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// The resolver's failure among `error`'s causes, if that is why it failed.
fn resolve_failure<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a ResolveFailure> {
    cause_of_type(error)
}

/// The first of `error`'s causes (itself included) that is a `T`: how a resolver's own
/// failure is found again under the HTTP client's errors.
pub(crate) fn cause_of_type<'a, T: StdError + 'static>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// Redirects: a federation answer is never followed (the request was signed for its
/// destination and path, and a 30x is an answer like any other); `.well-known` redirects
/// are followed a few times, without loops, and not to an address the guard refuses (names
/// go through the guarded resolver anyway).
fn redirect_policy(guard: AddressGuard) -> Policy {
    Policy::custom(move |attempt| {
        let previous = attempt.previous();
        let from_well_known = previous
            .first()
            .is_some_and(|url| url.path() == WELL_KNOWN_PATH);
        if !from_well_known {
            return attempt.stop();
        }
        if previous.len() > WELL_KNOWN_REDIRECTS {
            return attempt.error("too many redirects");
        }
        if previous.contains(attempt.url()) {
            return attempt.error("redirect loop");
        }
        let refused = match attempt.url().host() {
            Some(url::Host::Ipv4(ip)) => !guard.allows(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => !guard.allows(IpAddr::V6(ip)),
            _ => false,
        };
        if refused {
            return attempt.error("redirect to an address federation does not go to");
        }
        attempt.follow()
    })
}

/// The CA certificates of `paths`, each file checked on its own so an error names it.
fn read_ca_files(paths: &[PathBuf]) -> Result<Vec<reqwest::Certificate>, String> {
    let mut certificates = Vec::new();
    for path in paths {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read CA file {shown}: {e}"))?;
        let found = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file {shown} is not PEM certificates: {e}"))?;
        if found.is_empty() {
            return Err(format!("CA file {shown} holds no certificate"));
        }
        // reqwest parses the certificates only when building a client: build one for this
        // file alone, so a broken one is reported with its file.
        reqwest::Client::builder()
            .tls_certs_only(found.clone())
            .build()
            .map_err(|e| format!("CA file {shown} holds an invalid certificate: {e}"))?;
        certificates.extend(found);
    }
    Ok(certificates)
}

/// The one client of outbound federation: HTTPS only, HTTP/1.1 (HTTP/2 would send the URL's
/// authority as `:authority`, where the spec's `Host` differs from it after an SRV lookup),
/// no proxy (it would bypass the address guard), no cookies, the guarded resolver.
fn build_client(
    config: &FederationConfig,
    resolver: GuardedResolver,
    guard: AddressGuard,
) -> Result<reqwest::Client, String> {
    let certificates = read_ca_files(&config.ca_files)?;
    let builder = reqwest::Client::builder()
        .https_only(true)
        .http1_only()
        .no_proxy()
        .user_agent(USER_AGENT)
        .timeout(request_timeout(config))
        .redirect(redirect_policy(guard))
        .dns_resolver(Arc::new(resolver));
    let builder = if config.system_roots {
        builder.tls_certs_merge(certificates)
    } else {
        builder.tls_certs_only(certificates)
    };
    builder
        .build()
        .map_err(|e| format!("cannot build the federation HTTP client: {e}"))
}

fn request_timeout(config: &FederationConfig) -> Duration {
    // Zero would fail every request at once; the config means "as short as possible".
    Duration::from_secs(config.request_timeout_secs.max(1))
}

/// Outbound federation over HTTPS.
pub struct Network {
    client: reqwest::Client,
    discovery: Discovery,
    aliases: Arc<Aliases>,
    guard: AddressGuard,
    backoff: Backoff,
    max_response_bytes: usize,
}

impl Network {
    /// The network transport with the system's DNS configuration and `config`'s TLS roots.
    pub fn new(config: &FederationConfig) -> Result<Network, String> {
        let dns: Arc<dyn Dns> = Arc::new(SystemDns::from_system_conf()?);
        Network::with_dns(config, dns)
    }

    /// The network transport with its DNS lookups made by `dns`.
    pub fn with_dns(config: &FederationConfig, dns: Arc<dyn Dns>) -> Result<Network, String> {
        Network::build(config, dns, HTTPS_PORT)
    }

    fn build(
        config: &FederationConfig,
        dns: Arc<dyn Dns>,
        well_known_port: u16,
    ) -> Result<Network, String> {
        let guard = AddressGuard {
            allow_private: config.allow_private_addresses,
        };
        let aliases = Arc::new(Aliases::new());
        let resolver = GuardedResolver {
            dns: dns.clone(),
            aliases: aliases.clone(),
            guard,
        };
        let client = build_client(config, resolver, guard)?;
        let fetcher = Arc::new(HttpWellKnown {
            client: client.clone(),
            port: well_known_port,
            timeout: WELL_KNOWN_TIMEOUT.min(request_timeout(config)),
        });
        Ok(Network {
            client,
            discovery: Discovery::new(dns, fetcher),
            aliases,
            guard,
            backoff: Backoff::new(),
            max_response_bytes: MAX_RESPONSE_BYTES,
        })
    }

    /// Forgets `destination`'s failures: the next request to it goes out at once.
    pub fn reset_backoff(&self, destination: &ServerName) {
        self.backoff.reset(destination);
    }

    /// The URL of `path_and_query` on `target`: its host is the certificate name, its port
    /// the one to connect to. Registers the alias an SRV target needs, and refuses an IP
    /// literal the guard doesn't allow (reqwest doesn't resolve those).
    fn url(
        &self,
        destination: &ServerName,
        target: &Resolved,
        path_and_query: &str,
    ) -> Result<Url, TransportError> {
        if let Host::Ip(ip) = target.connect_host
            && !self.guard.allows(ip)
        {
            return Err(resolution(
                destination,
                format!("{ip} is not a public address"),
            ));
        }
        let aliased = target.connect_host != target.tls_name;
        let host = match &target.tls_name {
            Host::Name(name) if aliased => format!("{name}."),
            other => other.to_string(),
        };
        let url = Url::parse(&format!("https://{host}:{}{path_and_query}", target.port))
            .map_err(|e| resolution(destination, format!("no URL for {host}: {e}")))?;
        if aliased && let Some(url_host) = url.host_str() {
            self.aliases.set(url_host, target.connect_host.clone());
        }
        Ok(url)
    }

    /// Sends `request` to `url` with the spec's `Host` header and reads the answer.
    async fn exchange(
        &self,
        destination: &ServerName,
        url: Url,
        host_header: &str,
        request: Request,
    ) -> Result<Response, TransportError> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        let host = HeaderValue::from_str(host_header)
            .map_err(|_| resolution(destination, format!("{host_header} is no Host header")))?;
        headers.insert(HOST, host);
        let response = self
            .client
            .request(parts.method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| send_error(destination, &e))?;
        read_answer(response, self.max_response_bytes)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => TransportError::TooLarge {
                    destination: destination.to_string(),
                },
                ReadError::Failed(e) => send_error(destination, &e),
            })
    }
}

fn resolution(destination: &ServerName, reason: String) -> TransportError {
    TransportError::Resolution {
        destination: destination.to_string(),
        reason,
    }
}

/// A failed exchange: `Resolution` when the resolver found nothing to connect to, else
/// `Connection`.
fn send_error(destination: &ServerName, error: &reqwest::Error) -> TransportError {
    match resolve_failure(error) {
        Some(failure) => resolution(destination, failure.to_string()),
        None => TransportError::Connection {
            destination: destination.to_string(),
            reason: error_chain(error),
        },
    }
}

#[async_trait]
impl Transport for Network {
    async fn send(
        &self,
        destination: &ServerName,
        request: Request,
    ) -> Result<Response, TransportError> {
        if let Some(remaining) = self.backoff.remaining(destination) {
            return Err(TransportError::BackedOff {
                destination: destination.to_string(),
                retry_in_ms: u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let target = self
            .discovery
            .resolve(destination)
            .await
            .map_err(|e| resolution(destination, e.to_string()))?;
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        if !path_and_query.starts_with('/') {
            return Err(TransportError::Connection {
                destination: destination.to_string(),
                reason: format!("{path_and_query} is not a path"),
            });
        }
        let url = self.url(destination, &target, &path_and_query)?;
        let result = self
            .exchange(destination, url, &target.host_header, request)
            .await;
        // Only failing to reach the server backs it off: an answer, even an error status,
        // means it is there; a refused address or a missing DNS record is no reason to wait.
        match &result {
            Ok(_) => self.backoff.reset(destination),
            Err(TransportError::Connection { .. }) => self.backoff.failed(destination),
            Err(_) => {}
        }
        result
    }

    fn reset_backoff(&self, destination: &ServerName) {
        Network::reset_backoff(self, destination);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

    use super::super::discovery::tests::FakeDns;
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "172.32.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ];
        let private = [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:0001::1",
            "::127.0.0.1",
        ];
        for ip in public {
            assert!(is_public_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in private {
            assert!(!is_public_address(ip.parse().unwrap()), "{ip}");
        }
        let open = AddressGuard {
            allow_private: true,
        };
        assert!(open.allows("127.0.0.1".parse().unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_an_hour_and_resets() {
        let backoff = Backoff::new();
        let server = ServerName::parse("remote.test").unwrap();
        let other = ServerName::parse("other.test").unwrap();
        assert_eq!(backoff.remaining(&server), None);

        backoff.failed(&server);
        assert_eq!(backoff.remaining(&server), Some(Duration::from_secs(1)));
        assert_eq!(backoff.remaining(&other), None);
        // A second failure while backed off (a request already under way) changes nothing.
        backoff.failed(&server);
        assert_eq!(backoff.remaining(&server), Some(Duration::from_secs(1)));

        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(backoff.remaining(&server), Some(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(backoff.remaining(&server), None);

        let mut expected = Vec::new();
        let mut seen = Vec::new();
        for failure in 2..=15u32 {
            backoff.failed(&server);
            let remaining = backoff.remaining(&server).unwrap();
            seen.push(remaining.as_secs());
            expected.push((1u64 << (failure - 1)).min(3600));
            tokio::time::advance(remaining).await;
        }
        assert_eq!(seen, expected);
        assert_eq!(seen.last(), Some(&3600));

        backoff.reset(&server);
        backoff.failed(&server);
        assert_eq!(backoff.remaining(&server), Some(Duration::from_secs(1)));
    }

    #[test]
    fn backoff_delays() {
        assert_eq!(backoff_delay(1), Duration::from_secs(1));
        assert_eq!(backoff_delay(2), Duration::from_secs(2));
        assert_eq!(backoff_delay(12), Duration::from_secs(2048));
        assert_eq!(backoff_delay(13), Duration::from_secs(3600));
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(3600));
    }

    /// A test CA (its PEM in a file) and a server certificate it signed for `names`.
    struct Pki {
        ca_file: tempfile::NamedTempFile,
        server: Arc<ServerConfig>,
    }

    fn pki(names: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "maas test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let server_cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(server_cert.der().to_vec())],
                PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
            )
            .unwrap();

        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        ca_file.write_all(ca_cert.pem().as_bytes()).unwrap();
        Pki {
            ca_file,
            server: Arc::new(server),
        }
    }

    /// A request as the test server read it.
    #[derive(Clone, Debug)]
    struct Received {
        sni: Option<String>,
        method: String,
        target: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    type Answer = (u16, Vec<(String, String)>, Vec<u8>);
    type Route = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

    /// An HTTPS/1.1 server on 127.0.0.1 that records what it receives.
    struct TestServer {
        port: u16,
        connections: Arc<AtomicUsize>,
        received: Arc<Mutex<Vec<Received>>>,
    }

    impl TestServer {
        async fn start(tls: Arc<ServerConfig>, route: Route) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let connections = Arc::new(AtomicUsize::new(0));
            let received = Arc::new(Mutex::new(Vec::new()));
            let acceptor = TlsAcceptor::from(tls);
            let (count, log) = (connections.clone(), received.clone());
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, route, log) = (acceptor.clone(), route.clone(), log.clone());
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            serve_connection(tls, route, log).await;
                        }
                    });
                }
            });
            TestServer {
                port,
                connections,
                received,
            }
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }

        fn received(&self) -> Vec<Received> {
            self.received.lock().clone()
        }
    }

    async fn serve_connection(
        tls: tokio_rustls::server::TlsStream<TcpStream>,
        route: Route,
        log: Arc<Mutex<Vec<Received>>>,
    ) {
        let sni = tls.get_ref().1.server_name().map(str::to_owned);
        let mut stream = BufReader::new(tls);
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or_default().to_owned();
            let target = words.next().unwrap_or_default().to_owned();
            let mut headers = HashMap::new();
            loop {
                let mut header = String::new();
                stream.read_line(&mut header).await.unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
            }
            let length: usize = headers
                .get("content-length")
                .map_or(0, |l| l.parse().unwrap());
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await.unwrap();
            let request = Received {
                sni: sni.clone(),
                method,
                target,
                headers,
                body,
            };
            let (status, headers, body) = route(&request);
            log.lock().push(request);
            let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let out = stream.get_mut();
            out.write_all(head.as_bytes()).await.unwrap();
            out.write_all(&body).await.unwrap();
            out.flush().await.unwrap();
        }
    }

    fn json_route(body: &'static str) -> Route {
        Arc::new(move |_| (200, Vec::new(), body.as_bytes().to_vec()))
    }

    fn config(pki: &Pki, allow_private: bool) -> FederationConfig {
        FederationConfig {
            allow_private_addresses: allow_private,
            ca_files: vec![pki.ca_file.path().to_owned()],
            system_roots: false,
            request_timeout_secs: 10,
            ..FederationConfig::default()
        }
    }

    fn get(path: &str) -> Request {
        http::Request::get(path).body(Vec::new()).unwrap()
    }

    fn name(s: &str) -> OwnedServerName {
        ServerName::parse(s).unwrap()
    }

    #[tokio::test]
    async fn round_trip_to_an_ip_literal() {
        let pki = pki(&["127.0.0.1"]);
        let server = TestServer::start(pki.server.clone(), json_route(r#"{"ok":true}"#)).await;
        let network = Network::with_dns(&config(&pki, true), Arc::new(FakeDns::default())).unwrap();
        let destination = name(&format!("127.0.0.1:{}", server.port));

        let request = http::Request::put("/_matrix/federation/v1/send/txn1?x=1")
            .header(
                "authorization",
                "X-Matrix origin=\"a.test\",key=\"ed25519:k\",sig=\"s\"",
            )
            .header("content-type", "application/json")
            .body(br#"{"pdus":[]}"#.to_vec())
            .unwrap();
        let answer = network.send(&destination, request).await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.body(), br#"{"ok":true}"#);

        let received = server.received();
        assert_eq!(received.len(), 1);
        let first = &received[0];
        assert_eq!(first.method, "PUT");
        assert_eq!(first.target, "/_matrix/federation/v1/send/txn1?x=1");
        assert_eq!(first.headers["host"], format!("127.0.0.1:{}", server.port));
        assert!(first.headers["authorization"].starts_with("X-Matrix origin="));
        assert_eq!(first.body, br#"{"pdus":[]}"#);
        // No SNI for an address: the certificate is checked for the IP.
        assert_eq!(first.sni, None);

        // One client for everything: the second request reuses the connection.
        network
            .send(&destination, get("/_matrix/key/v2/server"))
            .await
            .unwrap();
        assert_eq!(server.connections(), 1);
        assert_eq!(server.received().len(), 2);
    }

    #[tokio::test]
    async fn srv_target_is_reached_with_the_server_s_name() {
        let pki = pki(&["matrix.test"]);
        let server = TestServer::start(pki.server.clone(), json_route("{}")).await;
        // No .well-known (matrix.test has no address); the SRV record points elsewhere.
        let dns = FakeDns::default()
            .with_srv("_matrix-fed._tcp.matrix.test", "backend.test.", server.port)
            .with_ip("backend.test", "127.0.0.1");
        let network = Network::with_dns(&config(&pki, true), Arc::new(dns)).unwrap();

        let answer = network
            .send(&name("matrix.test"), get("/_matrix/federation/v1/version"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let received = server.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].headers["host"], "matrix.test");
        assert_eq!(received[0].sni.as_deref(), Some("matrix.test"));
    }

    #[tokio::test]
    async fn well_known_redirect_then_delegated_name_with_port() {
        let pki = pki(&["example.test", "matrix.test"]);
        let port_slot = Arc::new(AtomicUsize::new(0));
        let port_of = port_slot.clone();
        let route: Route = Arc::new(move |request| {
            let port = port_of.load(Ordering::SeqCst);
            match request.target.as_str() {
                WELL_KNOWN_PATH => {
                    let location = format!("https://matrix.test:{port}/delegation");
                    (302, vec![("location".to_owned(), location)], Vec::new())
                }
                "/delegation" => {
                    let body = format!(r#"{{"m.server": "matrix.test:{port}"}}"#);
                    (200, Vec::new(), body.into_bytes())
                }
                _ => (200, Vec::new(), b"{}".to_vec()),
            }
        });
        let server = TestServer::start(pki.server.clone(), route).await;
        port_slot.store(usize::from(server.port), Ordering::SeqCst);
        let dns = FakeDns::default()
            .with_ip("example.test", "127.0.0.1")
            .with_ip("matrix.test", "127.0.0.1");
        let network = Network::build(&config(&pki, true), Arc::new(dns), server.port).unwrap();

        let answer = network
            .send(&name("example.test"), get("/_matrix/federation/v1/version"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let received = server.received();
        let seen: Vec<(&str, &str, Option<&str>)> = received
            .iter()
            .map(|r| {
                (
                    r.target.as_str(),
                    r.headers["host"].as_str(),
                    r.sni.as_deref(),
                )
            })
            .collect();
        let with_port = format!("matrix.test:{}", server.port);
        let well_known_host = format!("example.test:{}", server.port);
        assert_eq!(
            seen,
            vec![
                (
                    WELL_KNOWN_PATH,
                    well_known_host.as_str(),
                    Some("example.test")
                ),
                ("/delegation", with_port.as_str(), Some("matrix.test")),
                (
                    "/_matrix/federation/v1/version",
                    with_port.as_str(),
                    Some("matrix.test")
                ),
            ]
        );
    }

    #[tokio::test]
    async fn federation_answers_are_not_redirected() {
        let pki = pki(&["127.0.0.1"]);
        let route: Route = Arc::new(|_| {
            let location = ("location".to_owned(), "https://127.0.0.1:1/x".to_owned());
            (301, vec![location], Vec::new())
        });
        let server = TestServer::start(pki.server.clone(), route).await;
        let network = Network::with_dns(&config(&pki, true), Arc::new(FakeDns::default())).unwrap();
        let destination = name(&format!("127.0.0.1:{}", server.port));
        let answer = network.send(&destination, get("/_matrix/x")).await.unwrap();
        assert_eq!(answer.status(), 301);
        assert_eq!(server.received().len(), 1);
    }

    #[tokio::test]
    async fn private_addresses_are_refused_without_connecting() {
        let pki = pki(&["127.0.0.1", "sneaky.test", "matrix.test"]);
        let server = TestServer::start(pki.server.clone(), json_route("{}")).await;
        let dns = FakeDns::default()
            .with_ip("sneaky.test", "127.0.0.1")
            .with_ip("sneaky.test", "::1")
            .with_srv("_matrix-fed._tcp.matrix.test", "backend.test", server.port)
            .with_ip("backend.test", "10.0.0.1");
        let network = Network::with_dns(&config(&pki, false), Arc::new(dns)).unwrap();

        let destinations = [
            format!("127.0.0.1:{}", server.port),
            format!("[::1]:{}", server.port),
            format!("sneaky.test:{}", server.port),
            "matrix.test".to_owned(),
        ];
        for destination in destinations {
            let result = network.send(&name(&destination), get("/_matrix/x")).await;
            assert!(
                matches!(result, Err(TransportError::Resolution { .. })),
                "{destination}: {result:?}"
            );
            // Refusals are not failures to connect: no backoff.
            assert_eq!(network.backoff.remaining(&name(&destination)), None);
        }
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn untrusted_or_misnamed_certificates_fail() {
        let pki = pki(&["127.0.0.1"]);
        let server = TestServer::start(pki.server.clone(), json_route("{}")).await;

        let no_roots = FederationConfig {
            ca_files: Vec::new(),
            ..config(&pki, true)
        };
        let network = Network::with_dns(&no_roots, Arc::new(FakeDns::default())).unwrap();
        let destination = name(&format!("127.0.0.1:{}", server.port));
        let result = network.send(&destination, get("/_matrix/x")).await;
        assert!(
            matches!(result, Err(TransportError::Connection { .. })),
            "{result:?}"
        );

        // Trusted CA, but the certificate is for 127.0.0.1, not for the name asked.
        let dns = FakeDns::default().with_ip("wrong.test", "127.0.0.1");
        let network = Network::with_dns(&config(&pki, true), Arc::new(dns)).unwrap();
        let destination = name(&format!("wrong.test:{}", server.port));
        let result = network.send(&destination, get("/_matrix/x")).await;
        assert!(
            matches!(result, Err(TransportError::Connection { .. })),
            "{result:?}"
        );
        assert!(server.received().is_empty());
    }

    #[tokio::test]
    async fn connection_failures_back_off_until_reset() {
        let pki = pki(&["127.0.0.1"]);
        // A port nobody listens on.
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let network = Network::with_dns(&config(&pki, true), Arc::new(FakeDns::default())).unwrap();
        let destination = name(&format!("127.0.0.1:{port}"));

        let first = network.send(&destination, get("/_matrix/x")).await;
        assert!(
            matches!(first, Err(TransportError::Connection { .. })),
            "{first:?}"
        );
        let second = network.send(&destination, get("/_matrix/x")).await;
        match second {
            Err(TransportError::BackedOff { retry_in_ms, .. }) => {
                assert!(retry_in_ms <= 1000, "{retry_in_ms}")
            }
            other => panic!("{other:?}"),
        }
        network.reset_backoff(&destination);
        let third = network.send(&destination, get("/_matrix/x")).await;
        assert!(
            matches!(third, Err(TransportError::Connection { .. })),
            "{third:?}"
        );
    }

    #[tokio::test]
    async fn large_answers_are_refused() {
        let pki = pki(&["127.0.0.1"]);
        let route: Route = Arc::new(|_| (200, Vec::new(), vec![b'x'; 4096]));
        let server = TestServer::start(pki.server.clone(), route).await;
        let mut network =
            Network::with_dns(&config(&pki, true), Arc::new(FakeDns::default())).unwrap();
        network.max_response_bytes = 1024;
        let destination = name(&format!("127.0.0.1:{}", server.port));
        let result = network.send(&destination, get("/_matrix/x")).await;
        assert!(
            matches!(result, Err(TransportError::TooLarge { .. })),
            "{result:?}"
        );

        network.max_response_bytes = 4096;
        let answer = network.send(&destination, get("/_matrix/x")).await.unwrap();
        assert_eq!(answer.body().len(), 4096);
    }

    #[tokio::test]
    async fn slow_servers_time_out() {
        let pki = pki(&["127.0.0.1"]);
        // Accepts connections and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                open.push(tcp);
            }
        });
        let config = FederationConfig {
            request_timeout_secs: 1,
            ..config(&pki, true)
        };
        let network = Network::with_dns(&config, Arc::new(FakeDns::default())).unwrap();
        let started = std::time::Instant::now();
        let result = network
            .send(&name(&format!("127.0.0.1:{port}")), get("/_matrix/x"))
            .await;
        assert!(
            matches!(result, Err(TransportError::Connection { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        held.abort();
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let missing = FederationConfig {
            ca_files: vec![PathBuf::from("/nonexistent/ca.pem")],
            ..FederationConfig::default()
        };
        let error = Network::with_dns(&missing, Arc::new(FakeDns::default()))
            .err()
            .unwrap();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");

        let mut garbage = tempfile::NamedTempFile::new().unwrap();
        garbage.write_all(b"not a certificate\n").unwrap();
        let path = garbage.path().display().to_string();
        let invalid = FederationConfig {
            ca_files: vec![garbage.path().to_owned()],
            ..FederationConfig::default()
        };
        let error = Network::with_dns(&invalid, Arc::new(FakeDns::default()))
            .err()
            .unwrap();
        assert!(error.contains(&path), "{error}");
    }
}
