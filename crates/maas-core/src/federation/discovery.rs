//! Server discovery (spec v1.15, Server-Server API, "Resolving server names"): which address,
//! `Host` header and certificate name reach a server name. Owns the cache of
//! `/.well-known/matrix/server` answers and the seams ([`Dns`], [`WellKnownFetcher`]) that let
//! tests run without a resolver or a network.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::proto::rr::RData;
use http::HeaderMap;
use http::header::{CACHE_CONTROL, EXPIRES};
use lru::LruCache;
use parking_lot::Mutex;
use rand::Rng;
use ruma::{OwnedServerName, ServerName};
use tokio::time::Instant;

/// The port of a server name that names none and has no SRV record.
pub const DEFAULT_PORT: u16 = 8448;
/// The path of the delegation document on a server name's host.
pub const WELL_KNOWN_PATH: &str = "/.well-known/matrix/server";

/// How long a `.well-known` answer is kept when its headers say nothing (spec: 24 h).
const WELL_KNOWN_DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest a `.well-known` answer is kept, whatever its headers say (spec: 48 h).
const WELL_KNOWN_MAX_TTL: Duration = Duration::from_secs(48 * 3600);
/// The shortest: a server answering `no-store` would otherwise cost a fetch per request.
const WELL_KNOWN_MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long an invalid answer (non-200, bad JSON, no `m.server`) is kept (spec: up to 1 h).
const WELL_KNOWN_INVALID_TTL: Duration = Duration::from_secs(3600);
/// How long the first "no answer at all" is kept; it doubles with each one after, up to
/// [`WELL_KNOWN_INVALID_TTL`]: the spec asks for backing off repeated failures, and a host that
/// was down a moment ought to be asked again sooner than one that answers nonsense.
const WELL_KNOWN_UNREACHABLE_TTL: Duration = Duration::from_secs(2 * 60);
/// Hosts whose `.well-known` answers are kept.
const WELL_KNOWN_CACHE_ENTRIES: usize = 10_000;

/// The SRV services that may name a server's address, newest first (`_matrix._tcp` is
/// deprecated but still looked up).
const SRV_SERVICES: [&str; 2] = ["_matrix-fed._tcp", "_matrix._tcp"];

/// A host to connect to or to check a certificate against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name, without trailing dot.
    Name(String),
}

impl Host {
    /// The host of a server name or of an SRV target: an IP literal (IPv6 in brackets or not)
    /// or a DNS name.
    pub fn parse(host: &str) -> Host {
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match unbracketed.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.trim_end_matches('.').to_owned()),
        }
    }
}

impl fmt::Display for Host {
    /// As a URL writes it: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// Where and how to reach a server, as discovery found it. The three differ: after an SRV
/// lookup one connects to the record's target, but sends the server's name as `Host` and
/// expects a certificate for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The host to connect to: an address, or a name to resolve with AAAA/A records.
    pub connect_host: Host,
    pub port: u16,
    /// The value of the `Host` header of requests.
    pub host_header: String,
    /// The name the server's certificate must be valid for (and the SNI, for a DNS name).
    pub tls_name: Host,
}

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host; `.` (or empty) means "no service here".
    pub target: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DnsError(pub String);

/// The DNS lookups discovery and the network make; the system's resolver in production
/// ([`SystemDns`]), a table in tests.
#[async_trait]
pub trait Dns: Send + Sync {
    /// The SRV records of `name`; empty when it has none (NXDOMAIN included).
    async fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, DnsError>;
    /// The AAAA and A addresses of `host` (CNAMEs followed); empty when it has none.
    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError>;
}

/// [`Dns`] through hickory with the system's configuration. Hickory caches answers for their
/// TTLs, negative ones included, so discovery doesn't keep DNS answers itself.
pub struct SystemDns {
    resolver: TokioResolver,
}

impl SystemDns {
    /// Reads the system's resolver configuration (`/etc/resolv.conf` on Unix).
    pub fn from_system_conf() -> Result<SystemDns, String> {
        let mut builder = TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?;
        // Both families: the connector tries every address, and a server may have only one.
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot build the DNS resolver: {e}"))?;
        Ok(SystemDns { resolver })
    }
}

/// Federation names are absolute: a trailing dot keeps the system's search domains out.
fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

#[async_trait]
impl Dns for SystemDns {
    async fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, DnsError> {
        match self.resolver.srv_lookup(absolute(name)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some(SrvRecord {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_ascii(),
                    }),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(DnsError(format!("SRV lookup of {name}: {e}"))),
        }
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Host::Ip(ip) = Host::parse(host) {
            return Ok(vec![ip]);
        }
        match self.resolver.lookup_ip(absolute(host)).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(DnsError(format!("address lookup of {host}: {e}"))),
        }
    }
}

/// Fetches `https://<hostname>/.well-known/matrix/server`; the network in production.
#[async_trait]
pub trait WellKnownFetcher: Send + Sync {
    /// The answer, whatever its status, redirects followed. `Err` when none came (no
    /// address, connection, TLS, timeout, too large), with the reason.
    async fn fetch(&self, hostname: &str) -> Result<http::Response<Vec<u8>>, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Dns(#[from] DnsError),
}

/// What is known of a host's `.well-known`, until `expires`.
struct WellKnownEntry {
    /// The server name it delegates to, if it answered a valid one.
    delegation: Option<OwnedServerName>,
    expires: Instant,
    /// Fetches in a row that got no answer, for backing off.
    unreachable: u32,
}

/// Resolves server names, keeping `.well-known` answers as the spec asks.
pub struct Discovery {
    dns: Arc<dyn Dns>,
    fetcher: Arc<dyn WellKnownFetcher>,
    well_known: Mutex<LruCache<String, WellKnownEntry>>,
}

impl Discovery {
    pub fn new(dns: Arc<dyn Dns>, fetcher: Arc<dyn WellKnownFetcher>) -> Discovery {
        let capacity = NonZeroUsize::new(WELL_KNOWN_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Discovery {
            dns,
            fetcher,
            well_known: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Where and how to reach `server_name`.
    pub async fn resolve(&self, server_name: &ServerName) -> Result<Resolved, DiscoveryError> {
        if let Some(resolved) = without_lookup(server_name) {
            return Ok(resolved);
        }
        let hostname = server_name.host();
        match self.delegation(hostname).await {
            Some(delegated) => match without_lookup(&delegated) {
                Some(resolved) => Ok(resolved),
                None => self.by_srv(delegated.host()).await,
            },
            None => self.by_srv(hostname).await,
        }
    }

    /// Steps 4 to 6 (3.3 to 3.5 for a delegated name): an SRV record of `hostname`, the
    /// current service then the deprecated one, else `hostname:8448`. Either way the request
    /// names `hostname` and its certificate must be for `hostname`, not for the SRV target
    /// (DNS is not trusted to delegate).
    async fn by_srv(&self, hostname: &str) -> Result<Resolved, DiscoveryError> {
        let named = |connect_host: Host, port: u16| Resolved {
            connect_host,
            port,
            host_header: hostname.to_owned(),
            tls_name: Host::Name(hostname.to_owned()),
        };
        for service in SRV_SERVICES {
            let records = self.dns.srv(&format!("{service}.{hostname}")).await?;
            if let Some(record) = pick_srv(records) {
                return Ok(named(Host::parse(&record.target), record.port));
            }
        }
        Ok(named(Host::Name(hostname.to_owned()), DEFAULT_PORT))
    }

    /// The server name `hostname`'s `.well-known` delegates to, from the cache or fetched.
    async fn delegation(&self, hostname: &str) -> Option<OwnedServerName> {
        let now = Instant::now();
        let (stale, unreachable) = {
            let mut cache = self.well_known.lock();
            match cache.get(hostname) {
                Some(entry) if entry.expires > now => return entry.delegation.clone(),
                Some(entry) => (entry.delegation.clone(), entry.unreachable),
                None => (None, 0),
            }
        };
        let entry = match self.fetcher.fetch(hostname).await {
            Ok(answer) => {
                let (delegation, ttl) = read_answer(hostname, &answer, SystemTime::now());
                WellKnownEntry {
                    delegation,
                    expires: now + ttl,
                    unreachable: 0,
                }
            }
            Err(reason) => {
                tracing::debug!(hostname, %reason, "no answer from .well-known/matrix/server");
                // A host that is down a moment keeps the delegation it last gave: its
                // delegate is often up when the website that serves the file is not.
                WellKnownEntry {
                    delegation: stale,
                    expires: now + unreachable_ttl(unreachable),
                    unreachable: unreachable.saturating_add(1),
                }
            }
        };
        let delegation = entry.delegation.clone();
        self.well_known.lock().put(hostname.to_owned(), entry);
        delegation
    }
}

/// Steps 1 and 2 (3.1 and 3.2 for a delegated name): an IP literal, or a hostname with an
/// explicit port, need no lookup to decide. The `Host` header is the name as written.
fn without_lookup(name: &ServerName) -> Option<Resolved> {
    let host = Host::parse(name.host());
    let port = match (&host, name.port()) {
        (Host::Ip(_), port) => port.unwrap_or(DEFAULT_PORT),
        (Host::Name(_), Some(port)) => port,
        (Host::Name(_), None) => return None,
    };
    Some(Resolved {
        connect_host: host.clone(),
        port,
        host_header: name.as_str().to_owned(),
        tls_name: host,
    })
}

/// The record to use (RFC 2782): of the lowest priority, chosen at random by weight. `None`
/// when there is none, or every record says "no service here".
fn pick_srv(records: Vec<SrvRecord>) -> Option<SrvRecord> {
    let usable: Vec<SrvRecord> = records
        .into_iter()
        .filter(|r| !r.target.trim_end_matches('.').is_empty())
        .collect();
    let priority = usable.iter().map(|r| r.priority).min()?;
    let mut candidates: Vec<SrvRecord> = usable
        .into_iter()
        .filter(|r| r.priority == priority)
        .collect();
    let total: u32 = candidates.iter().map(|r| u32::from(r.weight)).sum();
    if total == 0 {
        let index = rand::thread_rng().gen_range(0..candidates.len());
        return Some(candidates.swap_remove(index));
    }
    let mut point = rand::thread_rng().gen_range(0..total);
    let index = candidates
        .iter()
        .position(|r| {
            let weight = u32::from(r.weight);
            if point < weight {
                return true;
            }
            point -= weight;
            false
        })
        .unwrap_or(0);
    Some(candidates.swap_remove(index))
}

/// The delegation a `.well-known` answer gives, and how long to keep it.
fn read_answer(
    hostname: &str,
    answer: &http::Response<Vec<u8>>,
    now: SystemTime,
) -> (Option<OwnedServerName>, Duration) {
    match parse_delegation(answer) {
        Ok(delegation) => {
            let ttl = cache_period(answer.headers(), now)
                .unwrap_or(WELL_KNOWN_DEFAULT_TTL)
                .clamp(WELL_KNOWN_MIN_TTL, WELL_KNOWN_MAX_TTL);
            (Some(delegation), ttl)
        }
        Err(reason) => {
            tracing::debug!(hostname, reason, "invalid .well-known/matrix/server");
            (None, WELL_KNOWN_INVALID_TTL)
        }
    }
}

/// The `m.server` of a 200 answer, if it is a valid server name.
fn parse_delegation(answer: &http::Response<Vec<u8>>) -> Result<OwnedServerName, &'static str> {
    if answer.status() != http::StatusCode::OK {
        return Err("status is not 200");
    }
    let body: serde_json::Value =
        serde_json::from_slice(answer.body()).map_err(|_| "body is not JSON")?;
    let server = body
        .get("m.server")
        .and_then(serde_json::Value::as_str)
        .ok_or("no string m.server")?;
    ServerName::parse(server).map_err(|_| "m.server is not a server name")
}

/// How long the headers allow keeping the answer: `Cache-Control` (`no-store`, `no-cache`,
/// `max-age`) first, then `Expires`; `None` when they say nothing.
fn cache_period(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let directives = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|directive| directive.trim().to_ascii_lowercase());
    for directive in directives {
        if directive == "no-store" || directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=")
            && let Ok(seconds) = seconds.trim_matches('"').parse::<u64>()
        {
            return Some(Duration::from_secs(seconds));
        }
    }
    let expires = headers.get(EXPIRES)?;
    // An Expires that is not a date means "already expired" (RFC 9111, 5.3).
    let at = expires
        .to_str()
        .ok()
        .and_then(|value| httpdate::parse_http_date(value).ok());
    Some(at.map_or(Duration::ZERO, |at| {
        at.duration_since(now).unwrap_or(Duration::ZERO)
    }))
}

/// How long the `failures`+1-th fetch in a row without an answer is kept.
fn unreachable_ttl(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX);
    WELL_KNOWN_UNREACHABLE_TTL
        .saturating_mul(factor)
        .min(WELL_KNOWN_INVALID_TTL)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// DNS from a table: SRV records and addresses by name; a name in `failing` errs.
    #[derive(Default)]
    pub(crate) struct FakeDns {
        srv: HashMap<String, Vec<SrvRecord>>,
        ips: HashMap<String, Vec<IpAddr>>,
        failing: Vec<String>,
        srv_queries: Mutex<Vec<String>>,
    }

    impl FakeDns {
        pub(crate) fn with_ip(mut self, host: &str, ip: &str) -> Self {
            let ip = ip.parse().expect("an IP address");
            self.ips.entry(host.to_owned()).or_default().push(ip);
            self
        }

        pub(crate) fn with_srv(mut self, name: &str, target: &str, port: u16) -> Self {
            self.srv
                .entry(name.to_owned())
                .or_default()
                .push(SrvRecord {
                    priority: 10,
                    weight: 5,
                    port,
                    target: target.to_owned(),
                });
            self
        }
    }

    #[async_trait]
    impl Dns for FakeDns {
        async fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, DnsError> {
            self.srv_queries.lock().push(name.to_owned());
            if self.failing.iter().any(|f| f == name) {
                return Err(DnsError(format!("SERVFAIL for {name}")));
            }
            Ok(self.srv.get(name).cloned().unwrap_or_default())
        }

        async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
            Ok(self.ips.get(host).cloned().unwrap_or_default())
        }
    }

    /// Status, headers and body.
    type FakeAnswer = (u16, Vec<(&'static str, String)>, String);

    /// A `.well-known` per host: status, headers and body, or no answer at all.
    #[derive(Default)]
    struct FakeWellKnown {
        answers: Mutex<HashMap<String, Result<FakeAnswer, String>>>,
        fetches: AtomicUsize,
    }

    impl FakeWellKnown {
        fn set(&self, host: &str, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
            self.answers
                .lock()
                .insert(host.to_owned(), Ok((status, headers, body.to_owned())));
        }

        fn set_unreachable(&self, host: &str) {
            self.answers
                .lock()
                .insert(host.to_owned(), Err("connection refused".to_owned()));
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl WellKnownFetcher for FakeWellKnown {
        async fn fetch(&self, hostname: &str) -> Result<http::Response<Vec<u8>>, String> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers.lock().get(hostname).cloned();
            let (status, headers, body) = match answer {
                Some(Ok(answer)) => answer,
                Some(Err(reason)) => return Err(reason),
                None => (404, Vec::new(), "not found".to_owned()),
            };
            let mut response = http::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            Ok(response.body(body.into_bytes()).unwrap())
        }
    }

    fn discovery(dns: FakeDns) -> (Discovery, Arc<FakeWellKnown>) {
        let fetcher = Arc::new(FakeWellKnown::default());
        (Discovery::new(Arc::new(dns), fetcher.clone()), fetcher)
    }

    fn name(s: &str) -> OwnedServerName {
        ServerName::parse(s).unwrap()
    }

    fn dns_name(s: &str) -> Host {
        Host::Name(s.to_owned())
    }

    fn expect(connect: Host, port: u16, host_header: &str, tls_name: Host) -> Resolved {
        Resolved {
            connect_host: connect,
            port,
            host_header: host_header.to_owned(),
            tls_name,
        }
    }

    async fn resolve(discovery: &Discovery, server: &str) -> Resolved {
        discovery.resolve(&name(server)).await.unwrap()
    }

    #[tokio::test]
    async fn ip_literals_need_no_lookup() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let cases = [
            (
                "192.0.2.7",
                expect(Host::Ip(v4), 8448, "192.0.2.7", Host::Ip(v4)),
            ),
            (
                "192.0.2.7:8000",
                expect(Host::Ip(v4), 8000, "192.0.2.7:8000", Host::Ip(v4)),
            ),
            (
                "[2001:db8::1]",
                expect(Host::Ip(v6), 8448, "[2001:db8::1]", Host::Ip(v6)),
            ),
            (
                "[2001:db8::1]:443",
                expect(Host::Ip(v6), 443, "[2001:db8::1]:443", Host::Ip(v6)),
            ),
        ];
        for (server, expected) in cases {
            assert_eq!(resolve(&discovery, server).await, expected, "{server}");
        }
        assert_eq!(fetcher.fetches(), 0);
    }

    #[tokio::test]
    async fn explicit_port_skips_well_known_and_srv() {
        let dns = FakeDns::default().with_srv("_matrix-fed._tcp.example.org", "other.org", 1);
        let (discovery, fetcher) = discovery(dns);
        fetcher.set(
            "example.org",
            200,
            vec![],
            r#"{"m.server": "elsewhere.org"}"#,
        );
        assert_eq!(
            resolve(&discovery, "example.org:8000").await,
            expect(
                dns_name("example.org"),
                8000,
                "example.org:8000",
                dns_name("example.org")
            )
        );
        assert_eq!(fetcher.fetches(), 0);
    }

    #[tokio::test]
    async fn well_known_with_port() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        fetcher.set(
            "example.org",
            200,
            vec![],
            r#"{"m.server": "matrix.example.org:443"}"#,
        );
        assert_eq!(
            resolve(&discovery, "example.org").await,
            expect(
                dns_name("matrix.example.org"),
                443,
                "matrix.example.org:443",
                dns_name("matrix.example.org")
            )
        );
    }

    #[tokio::test]
    async fn well_known_without_port_then_srv_of_the_delegated_name() {
        let dns = FakeDns::default()
            .with_srv(
                "_matrix-fed._tcp.matrix.example.org",
                "fed.example.net.",
                8449,
            )
            .with_srv("_matrix-fed._tcp.example.org", "wrong.example.org", 1);
        let (discovery, fetcher) = discovery(dns);
        fetcher.set(
            "example.org",
            200,
            vec![],
            r#"{"m.server": "matrix.example.org"}"#,
        );
        assert_eq!(
            resolve(&discovery, "example.org").await,
            expect(
                dns_name("fed.example.net"),
                8449,
                "matrix.example.org",
                dns_name("matrix.example.org")
            )
        );
    }

    #[tokio::test]
    async fn well_known_without_port_nor_srv_is_port_8448() {
        let dns = FakeDns::default();
        let (discovery, fetcher) = discovery(dns);
        fetcher.set(
            "example.org",
            200,
            vec![],
            r#"{"m.server": "matrix.example.org"}"#,
        );
        assert_eq!(
            resolve(&discovery, "example.org").await,
            expect(
                dns_name("matrix.example.org"),
                8448,
                "matrix.example.org",
                dns_name("matrix.example.org")
            )
        );
    }

    #[tokio::test]
    async fn well_known_ip_literal() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        fetcher.set("a.org", 200, vec![], r#"{"m.server": "203.0.113.9"}"#);
        fetcher.set(
            "b.org",
            200,
            vec![],
            r#"{"m.server": "[2001:db8::2]:8009"}"#,
        );
        assert_eq!(
            resolve(&discovery, "a.org").await,
            expect(Host::Ip(v4), 8448, "203.0.113.9", Host::Ip(v4))
        );
        assert_eq!(
            resolve(&discovery, "b.org").await,
            expect(Host::Ip(v6), 8009, "[2001:db8::2]:8009", Host::Ip(v6))
        );
    }

    #[tokio::test]
    async fn invalid_well_known_falls_back_to_the_hostname() {
        let cases: [(u16, &str); 5] = [
            (200, "not json"),
            (200, r#"{"m.server": 12}"#),
            (200, r#"{"m.server": "bad name!"}"#),
            (200, r#"{"other": "x.org"}"#),
            (404, r#"{"m.server": "x.org"}"#),
        ];
        for (status, body) in cases {
            let (discovery, fetcher) = discovery(FakeDns::default());
            fetcher.set("example.org", status, vec![], body);
            assert_eq!(
                resolve(&discovery, "example.org").await,
                expect(
                    dns_name("example.org"),
                    8448,
                    "example.org",
                    dns_name("example.org")
                ),
                "{status} {body}"
            );
        }
    }

    #[tokio::test]
    async fn srv_of_the_hostname_without_well_known() {
        let dns = FakeDns::default()
            .with_srv("_matrix-fed._tcp.example.org", "fed.example.net", 443)
            .with_srv("_matrix._tcp.example.org", "legacy.example.net", 8448);
        let (discovery, _) = discovery(dns);
        assert_eq!(
            resolve(&discovery, "example.org").await,
            expect(
                dns_name("fed.example.net"),
                443,
                "example.org",
                dns_name("example.org")
            )
        );
    }

    #[tokio::test]
    async fn legacy_srv_when_the_current_one_is_missing() {
        let dns =
            FakeDns::default().with_srv("_matrix._tcp.example.org", "legacy.example.net", 8450);
        let (discovery, _) = discovery(dns);
        assert_eq!(
            resolve(&discovery, "example.org").await,
            expect(
                dns_name("legacy.example.net"),
                8450,
                "example.org",
                dns_name("example.org")
            )
        );
    }

    #[tokio::test]
    async fn srv_saying_no_service_is_skipped() {
        let dns = FakeDns::default()
            .with_srv("_matrix-fed._tcp.example.org", ".", 0)
            .with_srv("_matrix._tcp.example.org", "legacy.example.net", 8450);
        let (discovery, _) = discovery(dns);
        assert_eq!(resolve(&discovery, "example.org").await.port, 8450);
    }

    #[tokio::test]
    async fn nothing_found_is_the_hostname_on_8448() {
        let dns = FakeDns::default();
        let (discovery, fetcher) = discovery(dns);
        assert_eq!(
            resolve(&discovery, "example.org").await,
            expect(
                dns_name("example.org"),
                8448,
                "example.org",
                dns_name("example.org")
            )
        );
        assert_eq!(fetcher.fetches(), 1);
    }

    #[tokio::test]
    async fn dns_failure_is_an_error_not_a_fallback() {
        let dns = FakeDns {
            failing: vec!["_matrix-fed._tcp.example.org".to_owned()],
            ..FakeDns::default()
        };
        let (discovery, _) = discovery(dns);
        let result = discovery.resolve(&name("example.org")).await;
        assert!(matches!(result, Err(DiscoveryError::Dns(_))), "{result:?}");
    }

    #[test]
    fn srv_choice_takes_the_lowest_priority() {
        let record = |priority, weight, target: &str| SrvRecord {
            priority,
            weight,
            port: 1,
            target: target.to_owned(),
        };
        for _ in 0..50 {
            let chosen = pick_srv(vec![
                record(20, 100, "late.org"),
                record(10, 0, "first.org"),
                record(10, 1, "second.org"),
                record(5, 0, "."),
            ])
            .unwrap();
            assert!(["first.org", "second.org"].contains(&chosen.target.as_str()));
        }
        // Weight 0 against weight 1000: the heavy one nearly always.
        let heavy = (0..200)
            .filter(|_| {
                pick_srv(vec![
                    record(1, 0, "light.org"),
                    record(1, 1000, "heavy.org"),
                ])
                .unwrap()
                .target
                    == "heavy.org"
            })
            .count();
        assert!(heavy > 190, "{heavy}");
        assert_eq!(pick_srv(vec![record(1, 1, ".")]), None);
        assert_eq!(pick_srv(Vec::new()), None);
    }

    /// Resolves `example.org` at `after` from the start; tells whether it fetched.
    async fn fetched_again(
        discovery: &Discovery,
        fetcher: &FakeWellKnown,
        after: Duration,
    ) -> bool {
        let before = fetcher.fetches();
        tokio::time::advance(after).await;
        resolve(discovery, "example.org").await;
        fetcher.fetches() > before
    }

    fn delegating(fetcher: &FakeWellKnown, headers: Vec<(&'static str, String)>) {
        fetcher.set(
            "example.org",
            200,
            headers,
            r#"{"m.server": "m.example.org:443"}"#,
        );
    }

    #[tokio::test(start_paused = true)]
    async fn well_known_is_cached_for_max_age() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        delegating(
            &fetcher,
            vec![("cache-control", "public, max-age=3600".to_owned())],
        );
        assert!(fetched_again(&discovery, &fetcher, Duration::ZERO).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(3590)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn well_known_default_is_a_day_and_cap_two_days() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        delegating(&fetcher, vec![]);
        assert!(fetched_again(&discovery, &fetcher, Duration::ZERO).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(24 * 3600 - 10)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);

        delegating(
            &fetcher,
            vec![("cache-control", "max-age=31536000".to_owned())],
        );
        tokio::time::advance(Duration::from_secs(25 * 3600)).await;
        assert!(fetched_again(&discovery, &fetcher, Duration::ZERO).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(48 * 3600 - 10)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn well_known_expires_header_and_no_store_floor() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        let in_two_hours = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(7200));
        delegating(&fetcher, vec![("expires", in_two_hours)]);
        assert!(fetched_again(&discovery, &fetcher, Duration::ZERO).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(7100)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(120)).await);

        // `no-store` would mean a fetch per request: kept five minutes all the same.
        delegating(&fetcher, vec![("cache-control", "no-store".to_owned())]);
        tokio::time::advance(Duration::from_secs(7200)).await;
        assert!(fetched_again(&discovery, &fetcher, Duration::ZERO).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(290)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_cached_an_hour() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        fetcher.set(
            "example.org",
            500,
            vec![("cache-control", "max-age=60".to_owned())],
            "",
        );
        assert!(fetched_again(&discovery, &fetcher, Duration::ZERO).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(3590)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn unreachable_backs_off_and_keeps_the_last_delegation() {
        let (discovery, fetcher) = discovery(FakeDns::default());
        delegating(&fetcher, vec![("cache-control", "max-age=600".to_owned())]);
        assert_eq!(resolve(&discovery, "example.org").await.port, 443);

        fetcher.set_unreachable("example.org");
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(610)).await);
        // Still the delegation it gave before it went down.
        assert_eq!(resolve(&discovery, "example.org").await.port, 443);
        // 2 minutes, then 4, then 8…
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(110)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(230)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);
        assert!(!fetched_again(&discovery, &fetcher, Duration::from_secs(470)).await);
        assert!(fetched_again(&discovery, &fetcher, Duration::from_secs(20)).await);
    }

    #[test]
    fn unreachable_ttl_doubles_up_to_an_hour() {
        assert_eq!(unreachable_ttl(0), Duration::from_secs(120));
        assert_eq!(unreachable_ttl(1), Duration::from_secs(240));
        assert_eq!(unreachable_ttl(4), Duration::from_secs(1920));
        assert_eq!(unreachable_ttl(5), Duration::from_secs(3600));
        assert_eq!(unreachable_ttl(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn cache_headers() {
        let now = SystemTime::now();
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, value.parse().unwrap());
            }
            map
        };
        assert_eq!(cache_period(&headers(&[]), now), None);
        assert_eq!(
            cache_period(&headers(&[("cache-control", "public, Max-Age=120")]), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            cache_period(&headers(&[("cache-control", "no-cache")]), now),
            Some(Duration::ZERO)
        );
        // Cache-Control wins over Expires.
        let later = httpdate::fmt_http_date(now + Duration::from_secs(9000));
        assert_eq!(
            cache_period(
                &headers(&[("cache-control", "max-age=5"), ("expires", &later)]),
                now
            ),
            Some(Duration::from_secs(5))
        );
        let from_expires = cache_period(&headers(&[("expires", &later)]), now).unwrap();
        assert!(
            from_expires.as_secs().abs_diff(9000) <= 1,
            "{from_expires:?}"
        );
        assert_eq!(
            cache_period(&headers(&[("expires", "0")]), now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn host_parsing() {
        assert_eq!(
            Host::parse("[::1]"),
            Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            Host::parse("10.0.0.1"),
            Host::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(Host::parse("fed.example.net."), dns_name("fed.example.net"));
        assert_eq!(
            Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)).to_string(),
            "[::1]"
        );
    }
}
