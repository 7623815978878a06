//! URL previews (`GET /_matrix/client/v1/media/preview_url`): fetches a page and reads its
//! OpenGraph data, every hop (redirects, the page's image) kept off private addresses and
//! bounded in size and time. Storing the image as media and caching previews are the caller's.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::redirect::Policy;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};
use url::Url;

use crate::federation::discovery::{Dns, SystemDns};
use crate::federation::network::{cause_of_type, error_chain, is_public_address};

const USER_AGENT: &str = concat!("maas/", env!("CARGO_PKG_VERSION"), " (URL preview bot)");

/// The `preview_url` settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviewConfig {
    /// Off by default: previews make the server fetch whatever URL a user names.
    pub enabled: bool,
    /// Bytes of a page read at most; a longer page is read up to there, which holds its head
    /// and so its OpenGraph tags.
    pub max_page_bytes: usize,
    /// Largest image fetched (a page's `og:image`, or a URL that is an image).
    pub max_image_bytes: usize,
    /// The whole preview: redirects, page and image.
    #[serde(rename = "timeout_secs", with = "seconds")]
    pub timeout: Duration,
    /// Redirects followed at most, each one checked like the first URL.
    pub max_redirects: u32,
    /// CIDR ranges (or single addresses) fetched from although not public, like Synapse's
    /// `url_preview_ip_range_whitelist`; they win over `denied_ip_ranges`.
    pub allowed_ip_ranges: Vec<String>,
    /// CIDR ranges (or single addresses) refused besides the non-public ones.
    pub denied_ip_ranges: Vec<String>,
}

impl PreviewConfig {
    /// What can't work, for the configuration's check at start (keys under `media.url_preview`).
    pub fn check(&self) -> Result<(), String> {
        AddressPolicy::new(self)
            .map(|_| ())
            .map_err(|e| format!("media.url_preview.{e}"))
    }
}

impl Default for PreviewConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_page_bytes: 1024 * 1024,
            // Synapse's `max_spider_size`.
            max_image_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            max_redirects: 5,
            allowed_ip_ranges: Vec::new(),
            denied_ip_ranges: Vec::new(),
        }
    }
}

/// A duration written as whole seconds, like the other `_secs` keys of the configuration.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// What a URL shows: its OpenGraph data and the image to store for it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preview {
    /// `og:*` properties (and `twitter:card`, `twitter:creator`). Never `og:image`: the
    /// caller sets it to the mxc URI of the stored `image` (with `matrix:image:size`, and
    /// `og:image:type`, `og:image:width`/`height` as it knows them); without an image the
    /// spec leaves it out.
    pub og: Map<String, Value>,
    /// The page's `og:image`, or the URL itself when it is an image.
    pub image: Option<FetchedImage>,
}

/// An image as fetched, within `max_image_bytes`.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchedImage {
    pub bytes: Vec<u8>,
    /// The `Content-Type` essence (`image/png`), without parameters.
    pub content_type: String,
    /// Where the bytes came from, after redirects.
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("URL previews are disabled")]
    Disabled,
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// An address the policy refuses (403 `M_FORBIDDEN`).
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("the content is too large")]
    TooLarge,
    /// Unreachable, timed out, or an error status (502).
    #[error("cannot fetch the URL: {0}")]
    Fetch(String),
}

/// Which addresses previews may be fetched from: public ones not denied, and the allowed.
#[derive(Debug)]
struct AddressPolicy {
    allowed: Vec<IpNet>,
    denied: Vec<IpNet>,
}

impl AddressPolicy {
    fn new(config: &PreviewConfig) -> Result<AddressPolicy, String> {
        Ok(AddressPolicy {
            allowed: parse_ranges(&config.allowed_ip_ranges, "allowed_ip_ranges")?,
            denied: parse_ranges(&config.denied_ip_ranges, "denied_ip_ranges")?,
        })
    }

    fn allows(&self, ip: IpAddr) -> bool {
        // `::ffff:10.0.0.1` is 10.0.0.1: ranges match either form.
        let canonical = ip.to_canonical();
        let within = |ranges: &[IpNet]| {
            ranges
                .iter()
                .any(|range| range.contains(&ip) || range.contains(&canonical))
        };
        within(&self.allowed) || (is_public_address(ip) && !within(&self.denied))
    }
}

fn parse_ranges(ranges: &[String], key: &str) -> Result<Vec<IpNet>, String> {
    ranges
        .iter()
        .map(|range| {
            let range = range.trim();
            range
                .parse::<IpNet>()
                .or_else(|_| range.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{key}: {range} is neither a CIDR range nor an address"))
        })
        .collect()
}

/// Why a name gave nothing to connect to. It travels through reqwest as the resolver's error
/// and is found again among the error's sources.
#[derive(Debug, thiserror::Error)]
enum ResolveFailure {
    #[error("{host} is at {addresses}, where previews are not fetched from")]
    Refused { host: String, addresses: String },
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns { host: String, reason: String },
}

/// reqwest's resolver: DNS, then the policy. Connections go only where this answers, so a name
/// that changes its address between check and connection (DNS rebinding) gains nothing.
struct PolicyResolver {
    dns: Arc<dyn Dns>,
    policy: Arc<AddressPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let (dns, policy) = (self.dns.clone(), self.policy.clone());
        Box::pin(async move {
            let addresses = allowed_addresses(dns.as_ref(), &policy, &host).await?;
            // Port 0: the connector puts the URL's port in.
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// `host`'s addresses, or a refusal if any of them is refused: as in Synapse, a name that also
/// points inside is more likely aimed there than a site with a stray record.
async fn allowed_addresses(
    dns: &dyn Dns,
    policy: &AddressPolicy,
    host: &str,
) -> Result<Vec<IpAddr>, ResolveFailure> {
    let addresses = dns.ips(host).await.map_err(|e| ResolveFailure::Dns {
        host: host.to_owned(),
        reason: e.0,
    })?;
    if addresses.is_empty() {
        return Err(ResolveFailure::NoAddress {
            host: host.to_owned(),
        });
    }
    if addresses.iter().any(|ip| !policy.allows(*ip)) {
        let listed: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
        return Err(ResolveFailure::Refused {
            host: host.to_owned(),
            addresses: listed.join(", "),
        });
    }
    Ok(addresses)
}

/// What the first URL turned out to be.
enum Page {
    Html {
        og: Map<String, Value>,
        url: Url,
    },
    Image(FetchedImage),
    /// Neither: nothing to show (Synapse answers `{}` too), and no reason to download it.
    Other,
}

/// Fetches pages for previews.
pub struct Previewer {
    config: PreviewConfig,
    policy: Arc<AddressPolicy>,
    client: reqwest::Client,
}

impl Previewer {
    /// A previewer resolving names with the system's DNS configuration.
    pub fn new(config: &PreviewConfig) -> Result<Previewer, String> {
        let dns: Arc<dyn Dns> = Arc::new(SystemDns::from_system_conf()?);
        Previewer::with_dns(config, dns)
    }

    /// A previewer resolving names with `dns`. Fails on a range the config can't mean.
    pub fn with_dns(config: &PreviewConfig, dns: Arc<dyn Dns>) -> Result<Previewer, String> {
        let policy = Arc::new(AddressPolicy::new(config)?);
        let resolver = PolicyResolver {
            dns,
            policy: policy.clone(),
        };
        let client = reqwest::Client::builder()
            // Followed by hand, each hop checked (`Previewer::get`).
            .redirect(Policy::none())
            // A proxy would resolve names itself, out of the policy's reach.
            .no_proxy()
            .user_agent(USER_AGENT)
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|e| format!("cannot build the URL preview HTTP client: {e}"))?;
        Ok(Previewer {
            config: config.clone(),
            policy,
            client,
        })
    }

    /// The preview of `url`, an `http` or `https` URL.
    pub async fn preview(&self, url: &str) -> Result<Preview, PreviewError> {
        if !self.config.enabled {
            return Err(PreviewError::Disabled);
        }
        let url = Url::parse(url).map_err(|e| PreviewError::InvalidUrl(e.to_string()))?;
        check_form(&url).map_err(PreviewError::InvalidUrl)?;
        tracing::debug!(%url, "previewing a URL");
        let deadline = Instant::now() + self.config.timeout;
        let page = timeout_at(deadline, self.fetch_page(url))
            .await
            .map_err(|_| self.timed_out())??;
        Ok(match page {
            Page::Html { mut og, url } => {
                let image = self.page_image(&mut og, &url, deadline).await;
                Preview { og, image }
            }
            Page::Image(image) => Preview {
                og: Map::new(),
                image: Some(image),
            },
            Page::Other => Preview::default(),
        })
    }

    fn timed_out(&self) -> PreviewError {
        let secs = self.config.timeout.as_secs_f64();
        PreviewError::Fetch(format!("no complete answer within {secs} s"))
    }

    async fn fetch_page(&self, url: Url) -> Result<Page, PreviewError> {
        let (url, response) = self.get(url).await?;
        let content = ContentType::of(response.headers());
        if content.is_image() {
            return self
                .read_image(url, content, response)
                .await
                .map(Page::Image);
        }
        if !content.is_html() {
            return Ok(Page::Other);
        }
        let body = read_body(response, self.config.max_page_bytes).await?;
        let text = html::decode(&body.bytes, content.charset.as_deref());
        Ok(Page::Html {
            og: html::open_graph(&text),
            url,
        })
    }

    /// The page's `og:image`, fetched, and taken out of `og` (see [`Preview::og`]); `None`
    /// when it can't be had in time: the preview is still worth its text.
    async fn page_image(
        &self,
        og: &mut Map<String, Value>,
        page_url: &Url,
        deadline: Instant,
    ) -> Option<FetchedImage> {
        let value = og.remove("og:image")?;
        let url = page_url.join(value.as_str()?).ok()?;
        if let Err(reason) = check_form(&url) {
            tracing::debug!(%url, reason, "og:image not fetched");
            return None;
        }
        match timeout_at(deadline, self.fetch_image(url.clone())).await {
            Ok(Ok(image)) => Some(image),
            Ok(Err(error)) => {
                tracing::debug!(%url, %error, "og:image not fetched");
                None
            }
            Err(_) => {
                tracing::debug!(%url, "og:image not fetched in time");
                None
            }
        }
    }

    async fn fetch_image(&self, url: Url) -> Result<FetchedImage, PreviewError> {
        let (url, response) = self.get(url).await?;
        let content = ContentType::of(response.headers());
        if !content.is_image() {
            let essence = content.essence;
            return Err(PreviewError::Fetch(format!("{essence:?} is not an image")));
        }
        self.read_image(url, content, response).await
    }

    /// The image `response` holds, refused whole if larger than `max_image_bytes`: a cut
    /// image is no image.
    async fn read_image(
        &self,
        url: Url,
        content: ContentType,
        response: reqwest::Response,
    ) -> Result<FetchedImage, PreviewError> {
        let limit = self.config.max_image_bytes;
        let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
        if response.content_length().is_some_and(|len| len > limit_u64) {
            return Err(PreviewError::TooLarge);
        }
        let body = read_body(response, limit).await?;
        if body.truncated {
            return Err(PreviewError::TooLarge);
        }
        Ok(FetchedImage {
            bytes: body.bytes,
            content_type: content.essence,
            url: url.into(),
        })
    }

    /// The first answer to `url` that is not a redirect, and the URL it came from. Redirects
    /// are followed here rather than by reqwest so that each hop is checked as the first URL
    /// was; names are checked by the resolver, IP literals (never resolved) here.
    async fn get(&self, mut url: Url) -> Result<(Url, reqwest::Response), PreviewError> {
        let mut redirects = 0;
        loop {
            self.check_address(&url)?;
            let response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(send_error)?;
            if response.status().is_success() {
                return Ok((url, response));
            }
            let next = redirect_target(&url, &response)?;
            redirects += 1;
            if redirects > self.config.max_redirects {
                let most = self.config.max_redirects;
                return Err(PreviewError::Fetch(format!("more than {most} redirects")));
            }
            check_form(&next).map_err(|reason| {
                PreviewError::Fetch(format!("redirected to an unusable URL: {reason}"))
            })?;
            tracing::debug!(from = %url, to = %next, "following a redirect");
            url = next;
        }
    }

    fn check_address(&self, url: &Url) -> Result<(), PreviewError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.policy.allows(ip) {
            Ok(())
        } else {
            Err(PreviewError::Forbidden(format!(
                "{ip} is not an address previews are fetched from"
            )))
        }
    }
}

/// Refuses what is not a plain web URL: another scheme, or credentials (reqwest would send
/// them, and they would end up in logs).
fn check_form(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{}: only http and https URLs", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials are not fetched".to_owned());
    }
    if url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    Ok(())
}

/// Where a redirect answer points; an error for any other answer that is not a success.
fn redirect_target(url: &Url, response: &reqwest::Response) -> Result<Url, PreviewError> {
    let status = response.status();
    if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Err(PreviewError::Fetch(format!("the server answered {status}")));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| PreviewError::Fetch(format!("{status} without a usable Location")))?;
    url.join(location)
        .map_err(|e| PreviewError::Fetch(format!("redirect to an invalid URL: {e}")))
}

/// A failed request: `Forbidden` when the resolver refused the addresses, else `Fetch`.
fn send_error(error: reqwest::Error) -> PreviewError {
    if let Some(failure) = resolve_failure(&error) {
        let reason = failure.to_string();
        return match failure {
            ResolveFailure::Refused { .. } => PreviewError::Forbidden(reason),
            _ => PreviewError::Fetch(reason),
        };
    }
    fetch_error(error)
}

/// Without the URL: its query may hold a secret, and the message may be logged.
fn fetch_error(error: reqwest::Error) -> PreviewError {
    PreviewError::Fetch(error_chain(&error.without_url()))
}

fn resolve_failure<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a ResolveFailure> {
    cause_of_type(error)
}

/// A `Content-Type`: its essence in lower case, and its charset.
struct ContentType {
    essence: String,
    charset: Option<String>,
}

impl ContentType {
    fn of(headers: &HeaderMap) -> ContentType {
        let value = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let (essence, parameters) = value.split_once(';').unwrap_or((value, ""));
        ContentType {
            essence: essence.trim().to_ascii_lowercase(),
            charset: html::charset_parameter(parameters),
        }
    }

    fn is_image(&self) -> bool {
        self.essence.starts_with("image/")
    }

    fn is_html(&self) -> bool {
        matches!(self.essence.as_str(), "text/html" | "application/xhtml+xml")
    }
}

/// A body's first bytes.
struct Body {
    bytes: Vec<u8>,
    /// Whether there was more than the limit.
    truncated: bool,
}

/// The body's first `limit` bytes. Reading stops there: the rest is never downloaded (the
/// response is dropped, which closes the connection).
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Body, PreviewError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
        let room = limit.saturating_sub(bytes.len());
        if chunk.len() > room {
            bytes.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Ok(Body {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes,
        truncated: false,
    })
}

/// Reading pages: their charset, then their meta tags, with html5ever's tokenizer (a tree is
/// not needed for tags that are read in document order).
mod html {
    use std::cell::RefCell;

    use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};
    use html5ever::TokenizerResult;
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::states::RawKind;
    use html5ever::tokenizer::{
        BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
    };
    use serde_json::{Map, Value};

    /// Tags of one prefix (`og:`, `twitter:`) kept at most, as in Synapse: a page with more
    /// is not describing itself.
    const MAX_TAGS: usize = 50;
    /// Longest value kept, in bytes: previews are stored and sent to clients, and an
    /// attribute may hold megabytes.
    const MAX_VALUE_BYTES: usize = 4096;
    /// Bytes searched for a `<meta>` charset, as browsers' prescan does.
    const PRESCAN_BYTES: usize = 1024;

    /// `bytes` as text: in the charset of the `Content-Type` header, else of a `<meta>`, else
    /// UTF-8; a byte order mark overrides them all, as in browsers.
    pub(super) fn decode(bytes: &[u8], header_charset: Option<&str>) -> String {
        let from_header = header_charset.and_then(|label| Encoding::for_label(label.as_bytes()));
        let encoding = from_header.or_else(|| declared(bytes)).unwrap_or(UTF_8);
        let (text, _, _) = encoding.decode(bytes);
        text.into_owned()
    }

    /// The charset a `<meta>` in the page's first bytes declares. UTF-16 there is a mistake
    /// (the tag was read as ASCII), taken as UTF-8 as the HTML spec says.
    fn declared(bytes: &[u8]) -> Option<&'static Encoding> {
        let head = bytes.get(..PRESCAN_BYTES).unwrap_or(bytes);
        // Any ASCII-compatible decoding shows the declaration, itself ASCII.
        let text = WINDOWS_1252.decode_without_bom_handling(head).0;
        let label = scan(&text).charset?;
        let encoding = Encoding::for_label(label.as_bytes())?;
        Some(if encoding == UTF_16LE || encoding == UTF_16BE {
            UTF_8
        } else {
            encoding
        })
    }

    /// The page's OpenGraph data: its `og:` tags, `twitter:` tags for what they leave out,
    /// then `<title>` and `<meta name="description">`.
    pub(super) fn open_graph(html: &str) -> Map<String, Value> {
        scan(html).into_open_graph()
    }

    /// The charset of a `Content-Type` value's parameters (`text/html; charset=utf-8`).
    pub(super) fn charset_parameter(parameters: &str) -> Option<String> {
        let lower = parameters.to_ascii_lowercase();
        // Lower-casing ASCII keeps byte offsets, so `start` is valid in `parameters` too.
        let start = lower.find("charset")? + "charset".len();
        let rest = parameters.get(start..)?.trim_start();
        let rest = rest.strip_prefix('=')?.trim_start();
        let value = match rest.chars().next()? {
            quote @ ('"' | '\'') => rest.get(1..)?.split(quote).next()?,
            _ => rest
                .split(|c: char| c == ';' || c.is_ascii_whitespace())
                .next()?,
        };
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    fn scan(html: &str) -> Found {
        let tokenizer = Tokenizer::new(Collector::default(), TokenizerOpts::default());
        let input = BufferQueue::default();
        input.push_back(StrTendril::from_slice(html));
        // The collector never stops the tokenizer (it runs no script), so this feeds once;
        // the loop only makes sure all input is read whatever the tokenizer answers.
        while !matches!(tokenizer.feed(&input), TokenizerResult::Done) {}
        tokenizer.end();
        tokenizer.sink.found.take()
    }

    /// What the tags of a page said.
    #[derive(Default)]
    struct Found {
        og: Map<String, Value>,
        twitter: Map<String, Value>,
        title: Option<String>,
        /// The text of the first `<title>`, while in it.
        open_title: Option<String>,
        description: Option<String>,
        charset: Option<String>,
    }

    #[derive(Default)]
    struct Collector {
        found: RefCell<Found>,
    }

    impl TokenSink for Collector {
        type Handle = ();

        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            let mut found = self.found.borrow_mut();
            match token {
                Token::TagToken(tag) if tag.kind == TagKind::StartTag => {
                    return found.start_tag(&tag);
                }
                Token::TagToken(tag) if &*tag.name == "title" => found.close_title(),
                Token::CharacterTokens(text) => found.text(&text),
                Token::EOFToken => found.close_title(),
                _ => {}
            }
            TokenSinkResult::Continue
        }
    }

    impl Found {
        /// Reads `tag`, and tells the tokenizer which elements hold raw text: without the
        /// tree builder nobody else does, and a `<meta>` written in a script is no tag.
        fn start_tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
            match &*tag.name {
                "meta" => self.meta(tag),
                "title" => {
                    if self.title.is_none() && self.open_title.is_none() {
                        self.open_title = Some(String::new());
                    }
                    return TokenSinkResult::RawData(RawKind::Rcdata);
                }
                "textarea" => return TokenSinkResult::RawData(RawKind::Rcdata),
                "script" => return TokenSinkResult::RawData(RawKind::ScriptData),
                "style" | "xmp" | "iframe" | "noembed" | "noframes" => {
                    return TokenSinkResult::RawData(RawKind::Rawtext);
                }
                "plaintext" => return TokenSinkResult::Plaintext,
                _ => {}
            }
            TokenSinkResult::Continue
        }

        fn meta(&mut self, tag: &Tag) {
            let attribute = |name: &str| {
                tag.attrs
                    .iter()
                    .find(|a| &*a.name.local == name)
                    .map(|a| a.value.to_string())
            };
            if self.charset.is_none() {
                self.charset = attribute("charset")
                    .map(|c| c.trim().to_owned())
                    .or_else(|| {
                        let http_equiv = attribute("http-equiv")?;
                        http_equiv
                            .trim()
                            .eq_ignore_ascii_case("content-type")
                            .then(|| charset_parameter(&attribute("content")?))?
                    });
            }
            let Some(content) = attribute("content").filter(|c| !c.trim().is_empty()) else {
                return;
            };
            let Some(key) = attribute("property").or_else(|| attribute("name")) else {
                return;
            };
            let key = key.trim().to_ascii_lowercase();
            if key.starts_with("og:") {
                keep(&mut self.og, key, content);
            } else if key.starts_with("twitter:") {
                keep(&mut self.twitter, key, content);
            } else if key == "description" && self.description.is_none() {
                self.description = Some(bounded(collapse_whitespace(&content)));
            }
        }

        fn text(&mut self, text: &str) {
            // Collapsing whitespace later may shorten it; twice the bound is plenty.
            if let Some(title) = &mut self.open_title
                && title.len() < 2 * MAX_VALUE_BYTES
            {
                title.push_str(text);
            }
        }

        fn close_title(&mut self) {
            if let Some(text) = self.open_title.take() {
                let title = bounded(collapse_whitespace(&text));
                self.title = (!title.is_empty()).then_some(title);
            }
        }

        fn into_open_graph(self) -> Map<String, Value> {
            let mut og = self.og;
            // As in Synapse: Twitter's tags fill in for missing OpenGraph ones, except the two
            // that have no OpenGraph counterpart, which are kept as they are.
            for (key, value) in self.twitter {
                let key = match key.strip_prefix("twitter:") {
                    Some(name) if name != "card" && name != "creator" => format!("og:{name}"),
                    _ => key,
                };
                og.entry(key).or_insert(value);
            }
            if !og.contains_key("og:title")
                && let Some(title) = self.title
            {
                og.insert("og:title".to_owned(), Value::String(title));
            }
            if !og.contains_key("og:description")
                && let Some(description) = self.description
            {
                og.insert("og:description".to_owned(), Value::String(description));
            }
            og
        }
    }

    /// Keeps the first value of `key`, as the OpenGraph protocol says for repeated tags.
    fn keep(tags: &mut Map<String, Value>, key: String, value: String) {
        if tags.len() < MAX_TAGS && !tags.contains_key(&key) {
            tags.insert(key, Value::String(bounded(value.trim().to_owned())));
        }
    }

    fn collapse_whitespace(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn bounded(mut text: String) -> String {
        if text.len() > MAX_VALUE_BYTES {
            let mut end = MAX_VALUE_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }

    #[cfg(test)]
    mod tests {
        use serde_json::json;

        use super::*;

        #[test]
        fn meta_tags_are_read_as_a_browser_would() {
            let page = r#"<!doctype html><html><head>
                <script>document.write('<meta property="og:title" content="from a script">')</script>
                <style>/* <meta property="og:title" content="from a style"> */</style>
                <meta property="og:title" content="Fish &amp; Chips">
                <meta property="og:title" content="second one">
                <meta name="og:type" content="article">
                <meta property="OG:Site_Name" content="  Shop  ">
                <meta property="og:empty" content="">
                <meta name="twitter:title" content="twitter title">
                <meta name="twitter:description" content="twitter description">
                <meta name="twitter:card" content="summary">
                <meta name="description" content="not used: twitter's comes first">
                <title>not used either</title>
                <meta name="keywords" content="ignored">
                </head><body><textarea><meta property="og:url" content="x"></textarea></body></html>"#;
            let og = open_graph(page);
            assert_eq!(
                Value::Object(og),
                json!({
                    "og:title": "Fish & Chips",
                    "og:type": "article",
                    "og:site_name": "Shop",
                    "og:description": "twitter description",
                    "twitter:card": "summary",
                })
            );
        }

        #[test]
        fn title_and_description_stand_in() {
            let page = "<title>\n  Hello &lt;world&gt;\n</title><title>other</title>\
                        <META NAME=Description CONTENT='A  page\nabout things'>";
            assert_eq!(
                Value::Object(open_graph(page)),
                json!({"og:title": "Hello <world>", "og:description": "A page about things"})
            );
            // A page cut inside its title still has one.
            assert_eq!(open_graph("<title>cut sh")["og:title"], "cut sh");
            assert!(open_graph("<p>no tags</p>").is_empty());
        }

        #[test]
        fn tags_and_values_are_bounded() {
            let mut page: String = (0..80)
                .map(|i| format!(r#"<meta property="og:k{i}" content="v">"#))
                .collect();
            page.push_str(&format!(r#"<title>{}</title>"#, "é".repeat(10_000)));
            let og = open_graph(&page);
            assert_eq!(og.len(), MAX_TAGS + 1);
            let title = og["og:title"].as_str().unwrap_or_default();
            assert!(title.len() <= MAX_VALUE_BYTES && title.len() > MAX_VALUE_BYTES - 2);
        }

        #[test]
        fn charsets() {
            // From the header, whatever the page says.
            let latin1 = b"<meta charset=utf-8><title>caf\xe9</title>";
            assert!(decode(latin1, Some("ISO-8859-1")).contains("café"));
            // From `<meta charset>` and from `<meta http-equiv>`.
            assert!(decode(b"<meta charset='windows-1252'>caf\xe9", None).contains("café"));
            let shift_jis = b"<meta http-equiv=Content-Type content=\"text/html; charset=Shift_JIS\">\x93\xfa\x96\x7b";
            assert!(decode(shift_jis, None).contains("日本"));
            // UTF-16 in a meta means UTF-8; a byte order mark wins over everything.
            assert!(decode("<meta charset=utf-16>café".as_bytes(), None).contains("café"));
            assert!(decode(b"\xef\xbb\xbfcaf\xc3\xa9", Some("iso-8859-1")).contains("café"));
            // Unknown labels and no label: UTF-8.
            assert!(decode("café".as_bytes(), Some("klingon")).contains("café"));
            assert!(decode("café".as_bytes(), None).contains("café"));
        }

        #[test]
        fn charset_parameters() {
            assert_eq!(
                charset_parameter(" charset=UTF-8").as_deref(),
                Some("UTF-8")
            );
            assert_eq!(
                charset_parameter(" Charset = \"iso-8859-1\"; x=y").as_deref(),
                Some("iso-8859-1")
            );
            assert_eq!(
                charset_parameter("text/html; charset=koi8-r ").as_deref(),
                Some("koi8-r")
            );
            assert_eq!(charset_parameter("text/html"), None);
            assert_eq!(charset_parameter("charset="), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use parking_lot::Mutex;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::federation::discovery::tests::FakeDns;

    /// What the test server answers.
    #[derive(Clone)]
    enum Reply {
        /// Status, headers and body; then the connection closes.
        Full(u16, Vec<(&'static str, String)>, Vec<u8>),
        /// A 200 page whose body goes on (up to 64 MiB, or until the client leaves).
        Endless,
        /// Nothing: the connection stays open and silent.
        Silent,
    }

    type Route = Arc<dyn Fn(&str, u16) -> Reply + Send + Sync>;

    /// An HTTP/1.1 server on 127.0.0.1 answering by path; the route gets the server's port.
    struct TestServer {
        port: u16,
        connections: Arc<AtomicUsize>,
        paths: Arc<Mutex<Vec<String>>>,
        task: JoinHandle<()>,
    }

    impl TestServer {
        async fn start(route: impl Fn(&str, u16) -> Reply + Send + Sync + 'static) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let route: Route = Arc::new(route);
            let connections = Arc::new(AtomicUsize::new(0));
            let paths = Arc::new(Mutex::new(Vec::new()));
            let (count, log) = (connections.clone(), paths.clone());
            let task = tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(tcp, route.clone(), port, log.clone()));
                }
            });
            TestServer {
                port,
                connections,
                paths,
                task,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }

        fn paths(&self) -> Vec<String> {
            self.paths.lock().clone()
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn serve(tcp: TcpStream, route: Route, port: u16, log: Arc<Mutex<Vec<String>>>) {
        let mut stream = BufReader::new(tcp);
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        loop {
            let mut header = String::new();
            let read = stream.read_line(&mut header).await.unwrap_or(0);
            if read == 0 || header.trim_end().is_empty() {
                break;
            }
        }
        log.lock().push(path.clone());
        let out = stream.get_mut();
        match route(&path, port) {
            Reply::Full(status, headers, body) => {
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = out.write_all(head.as_bytes()).await;
                let _ = out.write_all(&body).await;
            }
            Reply::Endless => {
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n";
                let _ = out.write_all(head.as_bytes()).await;
                let _ = out.write_all(OG_HEAD.as_bytes()).await;
                let filler = vec![b'x'; 16 * 1024];
                for _ in 0..4096 {
                    if out.write_all(&filler).await.is_err() {
                        break;
                    }
                }
            }
            Reply::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    }

    const OG_HEAD: &str =
        r#"<html><head><meta property="og:title" content="Endless"></head><body>"#;
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really a png";
    const LOOPBACK: &[&str] = &["127.0.0.1/32"];

    fn html(body: &str) -> Reply {
        let content_type = ("content-type", "text/html; charset=utf-8".to_owned());
        Reply::Full(200, vec![content_type], body.as_bytes().to_vec())
    }

    fn image(bytes: &[u8]) -> Reply {
        Reply::Full(
            200,
            vec![("content-type", "image/png".to_owned())],
            bytes.to_vec(),
        )
    }

    fn redirect(location: String) -> Reply {
        Reply::Full(302, vec![("location", location)], Vec::new())
    }

    fn not_found() -> Reply {
        Reply::Full(404, Vec::new(), b"no".to_vec())
    }

    fn config(allowed: &[&str]) -> PreviewConfig {
        PreviewConfig {
            enabled: true,
            allowed_ip_ranges: allowed.iter().map(|range| (*range).to_owned()).collect(),
            timeout: Duration::from_secs(5),
            ..PreviewConfig::default()
        }
    }

    fn previewer(config: &PreviewConfig, dns: FakeDns) -> Previewer {
        Previewer::with_dns(config, Arc::new(dns)).unwrap()
    }

    #[tokio::test]
    async fn open_graph_tags_and_their_image() {
        let server = TestServer::start(|path, _| match path {
            "/page?secret=1" => html(
                r#"<html><head>
                <meta property="og:title" content="A title">
                <meta property="og:description" content="A description">
                <meta property="og:image" content="/images/a.png">
                <meta property="og:image:width" content="600">
                </head></html>"#,
            ),
            "/images/a.png" => image(PNG),
            _ => not_found(),
        })
        .await;
        let previewer = previewer(&config(LOOPBACK), FakeDns::default());

        let preview = previewer
            .preview(&server.url("/page?secret=1"))
            .await
            .unwrap();
        assert_eq!(
            Value::Object(preview.og),
            json!({
                "og:title": "A title",
                "og:description": "A description",
                "og:image:width": "600",
            })
        );
        let image = preview.image.unwrap();
        assert_eq!(image.bytes, PNG);
        assert_eq!(image.content_type, "image/png");
        assert_eq!(image.url, server.url("/images/a.png"));

        // A URL that is an image is its own preview.
        let preview = previewer
            .preview(&server.url("/images/a.png"))
            .await
            .unwrap();
        assert!(preview.og.is_empty());
        assert_eq!(preview.image.map(|i| i.bytes), Some(PNG.to_vec()));
    }

    #[tokio::test]
    async fn pages_without_tags_and_images_that_are_not() {
        let server = TestServer::start(|path, _| match path {
            "/plain" => html(
                "<title> Plain page </title><meta name=description content='About it'>\
                 <meta property='og:image' content='/not-an-image'>",
            ),
            "/not-an-image" => html("<p>hi</p>"),
            "/file.pdf" => Reply::Full(
                200,
                vec![("content-type", "application/pdf".to_owned())],
                b"%PDF".to_vec(),
            ),
            _ => not_found(),
        })
        .await;
        let previewer = previewer(&config(LOOPBACK), FakeDns::default());

        let preview = previewer.preview(&server.url("/plain")).await.unwrap();
        assert_eq!(
            Value::Object(preview.og),
            json!({"og:title": "Plain page", "og:description": "About it"})
        );
        assert_eq!(preview.image, None);

        let preview = previewer.preview(&server.url("/file.pdf")).await.unwrap();
        assert_eq!(preview, Preview::default());

        let missing = previewer.preview(&server.url("/missing")).await;
        assert!(
            matches!(missing, Err(PreviewError::Fetch(_))),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn a_page_in_its_declared_charset() {
        let server = TestServer::start(|_, _| {
            let body = b"<meta charset=iso-8859-1><title>Caf\xe9</title>".to_vec();
            Reply::Full(200, vec![("content-type", "text/html".to_owned())], body)
        })
        .await;
        let previewer = previewer(&config(LOOPBACK), FakeDns::default());
        let preview = previewer.preview(&server.url("/")).await.unwrap();
        assert_eq!(preview.og["og:title"], "Café");
    }

    #[tokio::test]
    async fn redirects_are_followed_up_to_the_limit() {
        let server = TestServer::start(|path, port| match path {
            "/one" => redirect("/two".to_owned()),
            "/two" => redirect(format!("http://page.test:{port}/page")),
            "/page" => html(r#"<meta property="og:title" content="Arrived">"#),
            "/loop" => redirect("/loop".to_owned()),
            _ => not_found(),
        })
        .await;
        let dns = FakeDns::default().with_ip("page.test", "127.0.0.1");
        let five = previewer(&config(LOOPBACK), dns);

        let preview = five.preview(&server.url("/one")).await.unwrap();
        assert_eq!(preview.og["og:title"], "Arrived");
        assert_eq!(server.paths(), ["/one", "/two", "/page"]);

        let looping = five.preview(&server.url("/loop")).await;
        assert!(
            matches!(looping, Err(PreviewError::Fetch(_))),
            "{looping:?}"
        );
        // The first request and the five redirects allowed.
        assert_eq!(server.paths().len(), 3 + 6);

        let two = PreviewConfig {
            max_redirects: 1,
            ..config(LOOPBACK)
        };
        let dns = FakeDns::default().with_ip("page.test", "127.0.0.1");
        let result = previewer(&two, dns).preview(&server.url("/one")).await;
        assert!(matches!(result, Err(PreviewError::Fetch(_))), "{result:?}");
    }

    #[tokio::test]
    async fn private_addresses_are_refused_without_connecting() {
        let server = TestServer::start(|_, _| html("<title>secret</title>")).await;
        let port = server.port;
        let dns = FakeDns::default()
            .with_ip("localhost.test", "127.0.0.1")
            .with_ip("six.test", "::1");
        let closed = previewer(&config(&[]), dns);
        let urls = [
            server.url("/"),
            format!("http://[::1]:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            // The URL parser reads these as 127.0.0.1, as browsers do.
            format!("http://0x7f.1:{port}/"),
            format!("http://2130706433:{port}/"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://10.0.0.1/".to_owned(),
            "https://[fd00::1]/".to_owned(),
            format!("http://localhost.test:{port}/"),
            format!("http://six.test:{port}/"),
        ];
        for url in &urls {
            let result = closed.preview(url).await;
            assert!(
                matches!(result, Err(PreviewError::Forbidden(_))),
                "{url}: {result:?}"
            );
        }

        // One allowed address does not make the other one right.
        let dns = FakeDns::default()
            .with_ip("mixed.test", "127.0.0.1")
            .with_ip("mixed.test", "10.0.0.1");
        let loopback_only = previewer(&config(LOOPBACK), dns);
        let result = loopback_only
            .preview(&format!("http://mixed.test:{port}/"))
            .await;
        assert!(
            matches!(result, Err(PreviewError::Forbidden(_))),
            "{result:?}"
        );
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn redirects_to_addresses_not_allowed_are_refused() {
        let server = TestServer::start(|path, port| match path {
            "/to-ip" => redirect(format!("http://127.0.0.2:{port}/")),
            "/to-name" => redirect(format!("http://inside.test:{port}/")),
            "/to-file" => redirect("file:///etc/passwd".to_owned()),
            _ => html("<title>inside</title>"),
        })
        .await;
        let dns = FakeDns::default().with_ip("inside.test", "127.0.0.2");
        let previewer = previewer(&config(LOOPBACK), dns);
        for path in ["/to-ip", "/to-name"] {
            let result = previewer.preview(&server.url(path)).await;
            assert!(
                matches!(result, Err(PreviewError::Forbidden(_))),
                "{path}: {result:?}"
            );
        }
        let result = previewer.preview(&server.url("/to-file")).await;
        assert!(matches!(result, Err(PreviewError::Fetch(_))), "{result:?}");
        // Only the redirects were fetched.
        assert_eq!(server.paths(), ["/to-ip", "/to-name", "/to-file"]);
    }

    #[tokio::test]
    async fn large_pages_are_cut_and_large_images_refused() {
        let big_image = vec![7u8; 64 * 1024];
        let server = TestServer::start(move |path, _| match path {
            "/long" => {
                let mut page = OG_HEAD.to_owned();
                page.push_str(r#"<meta property="og:image" content="/big.png">"#);
                page.push_str(&"<p>filler</p>".repeat(100_000));
                page.push_str(r#"<meta property="og:description" content="too far">"#);
                html(&page)
            }
            "/endless" => Reply::Endless,
            "/big.png" => image(&big_image),
            _ => not_found(),
        })
        .await;
        let small = PreviewConfig {
            max_page_bytes: 16 * 1024,
            max_image_bytes: 8 * 1024,
            ..config(LOOPBACK)
        };
        let previewer = previewer(&small, FakeDns::default());

        let preview = previewer.preview(&server.url("/long")).await.unwrap();
        assert_eq!(Value::Object(preview.og), json!({"og:title": "Endless"}));
        assert_eq!(preview.image, None);

        let started = std::time::Instant::now();
        let preview = previewer.preview(&server.url("/endless")).await.unwrap();
        assert_eq!(preview.og["og:title"], "Endless");
        assert!(started.elapsed() < Duration::from_secs(3));

        let result = previewer.preview(&server.url("/big.png")).await;
        assert!(matches!(result, Err(PreviewError::TooLarge)), "{result:?}");
    }

    #[tokio::test]
    async fn image_bodies_are_limited_while_read() {
        // A body longer than its Content-Length says nothing, so send none: the server closes.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\nconnection: close\r\n\r\n";
                let mut buffer = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut buffer).await;
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(&[1u8; 32 * 1024]).await;
            }
        });
        let small = PreviewConfig {
            max_image_bytes: 8 * 1024,
            ..config(LOOPBACK)
        };
        let result = previewer(&small, FakeDns::default())
            .preview(&format!("http://127.0.0.1:{port}/x.png"))
            .await;
        assert!(matches!(result, Err(PreviewError::TooLarge)), "{result:?}");
        task.abort();
    }

    #[tokio::test]
    async fn slow_servers_time_out() {
        let server = TestServer::start(|path, _| match path {
            "/page" => {
                html(r#"<title>Slow image</title><meta property="og:image" content="/slow.png">"#)
            }
            _ => Reply::Silent,
        })
        .await;
        let quick = PreviewConfig {
            timeout: Duration::from_secs(1),
            ..config(LOOPBACK)
        };
        let previewer = previewer(&quick, FakeDns::default());

        let started = std::time::Instant::now();
        let result = previewer.preview(&server.url("/silent")).await;
        assert!(matches!(result, Err(PreviewError::Fetch(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(3));

        // The page came in time, its image not: the page without it.
        let started = std::time::Instant::now();
        let preview = previewer.preview(&server.url("/page")).await.unwrap();
        assert_eq!(Value::Object(preview.og), json!({"og:title": "Slow image"}));
        assert_eq!(preview.image, None);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn only_plain_web_urls() {
        let previewer = previewer(&config(LOOPBACK), FakeDns::default());
        let urls = [
            "ftp://127.0.0.1/file",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/html,<title>x</title>",
            "not a url",
            "/relative",
            "http://user:password@127.0.0.1/",
        ];
        for url in urls {
            let result = previewer.preview(url).await;
            assert!(
                matches!(result, Err(PreviewError::InvalidUrl(_))),
                "{url}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn disabled_unless_enabled() {
        let previewer = previewer(&PreviewConfig::default(), FakeDns::default());
        let result = previewer.preview("https://example.org/").await;
        assert!(matches!(result, Err(PreviewError::Disabled)), "{result:?}");
    }

    #[test]
    fn address_policy() {
        let policy = |allowed: &[&str], denied: &[&str]| {
            let config = PreviewConfig {
                allowed_ip_ranges: allowed.iter().map(|r| (*r).to_owned()).collect(),
                denied_ip_ranges: denied.iter().map(|r| (*r).to_owned()).collect(),
                ..PreviewConfig::default()
            };
            AddressPolicy::new(&config).unwrap()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();

        let default = policy(&[], &[]);
        assert!(default.allows(ip("93.184.216.34")));
        assert!(default.allows(ip("2606:4700::1111")));
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!default.allows(ip(private)), "{private}");
        }

        let denied = policy(&[], &["93.184.216.0/24", "2606:4700::/32"]);
        assert!(!denied.allows(ip("93.184.216.34")));
        assert!(!denied.allows(ip("::ffff:93.184.216.34")));
        assert!(!denied.allows(ip("2606:4700::1111")));
        assert!(denied.allows(ip("1.1.1.1")));

        // Allowed ranges win, single addresses count as ranges.
        let allowed = policy(&["127.0.0.0/8", "10.1.2.3"], &["127.0.0.0/8"]);
        assert!(allowed.allows(ip("127.0.0.5")));
        assert!(allowed.allows(ip("::ffff:127.0.0.5")));
        assert!(allowed.allows(ip("10.1.2.3")));
        assert!(!allowed.allows(ip("10.1.2.4")));

        let bad = PreviewConfig {
            denied_ip_ranges: vec!["10.0.0.0/33".to_owned()],
            ..PreviewConfig::default()
        };
        let error = Previewer::with_dns(&bad, Arc::new(FakeDns::default()))
            .err()
            .unwrap();
        assert!(error.contains("denied_ip_ranges: 10.0.0.0/33"), "{error}");
    }

    #[test]
    fn config_in_seconds() {
        let config: PreviewConfig =
            serde_json::from_value(json!({"enabled": true, "timeout_secs": 3})).unwrap();
        assert!(config.enabled);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.max_redirects, 5);
        assert_eq!(serde_json::to_value(&config).unwrap()["timeout_secs"], 3);
        let unknown = serde_json::from_value::<PreviewConfig>(json!({"timeout": 3}));
        assert!(unknown.is_err());
    }
}
