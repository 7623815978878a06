//! HTTP client for the operator API (`/_maas/operator/v1`) of a running server: finds the
//! server and token, sends one request, and turns Matrix-style error bodies into `ApiError`.
//! It passes JSON through untouched so `--json` prints exactly what the API answered.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use maas_core::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::data_dir;

/// Environment variable holding the operator token for CLI commands.
pub const TOKEN_ENV: &str = "MAAS_OPERATOR_TOKEN";

const API_PREFIX: &str = "/_maas/operator/v1";

/// An error answer of the API. Displayed as `<errcode>: <message>`; `main` prefixes `error: `.
#[derive(Debug)]
pub struct ApiError {
    pub errcode: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.errcode, self.message)
    }
}

impl std::error::Error for ApiError {}

pub struct OperatorClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
    /// Set when the address came from `server.json`, to explain a refused connection.
    data_dir: Option<PathBuf>,
}

impl OperatorClient {
    /// Finds the server's operator API (`--url`, else `<data_dir>/server.json`) and the token
    /// (`MAAS_OPERATOR_TOKEN`, else `operator.token` in the config, else the token file).
    pub fn connect(url: Option<&str>, config: &Config) -> anyhow::Result<Self> {
        let dir = &config.server.data_dir;
        let (base_url, data_dir) = match url {
            Some(url) => (base_url(url)?, None),
            None => (url_from_data_dir(dir)?, Some(dir.clone())),
        };
        let token = find_token(config)?;
        // A proxy from the environment must not intercept calls to our own local server.
        let mut builder =
            reqwest::Client::builder().user_agent(concat!("maas-cli/", env!("CARGO_PKG_VERSION")));
        if data_dir.is_some() {
            builder = builder.no_proxy();
        }
        let http = builder.build().context("cannot build HTTP client")?;
        Ok(Self {
            http,
            base_url,
            token,
            data_dir,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.request(Method::DELETE, path, None).await
    }

    /// A `GET` whose answer is not JSON (a tenant archive), to be read as it arrives.
    pub async fn get_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = self.url(path);
        self.start(self.http.get(&url), &url).await
    }

    /// A `POST` of a body sent as it is produced (a tenant archive); the answer is JSON.
    pub async fn post_stream(
        &self,
        path: &str,
        body: reqwest::Body,
        content_type: &str,
    ) -> anyhow::Result<Value> {
        let url = self.url(path);
        let request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let bytes = self.send(request, &url).await?;
        parse_body(&bytes).with_context(|| format!("{url} answered with invalid JSON"))
    }

    /// `path` is relative to the API prefix and must already be percent-encoded.
    fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.base_url)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = self.url(path);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let bytes = self.send(request, &url).await?;
        parse_body(&bytes).with_context(|| format!("{url} answered with invalid JSON"))
    }

    /// Sends with the operator token; an error answer becomes `ApiError`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> anyhow::Result<bytes::Bytes> {
        let response = self.start(request, url).await?;
        response
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {url}"))
    }

    /// Sends with the operator token and returns a successful answer before its body is read;
    /// an error answer becomes `ApiError`.
    async fn start(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|error| self.explain_send_error(error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let mut error = api_error(status, &bytes);
        // The operator API's paths are unknown at this address: most likely the public
        // listener, where they were served before the operator API had its own.
        if status == StatusCode::NOT_FOUND && error.errcode == "M_UNRECOGNIZED" {
            error.message = format!(
                "{}; {} serves no operator API: it has a listener of its own \
                 (operator.listen, 127.0.0.1:8009 by default; operator_url in server.json)",
                error.message, self.base_url
            );
        }
        Err(error.into())
    }

    fn explain_send_error(&self, error: reqwest::Error) -> anyhow::Error {
        match &self.data_dir {
            Some(dir) if error.is_connect() => not_running(dir),
            _ => {
                anyhow!(error).context(format!("cannot reach the maas server at {}", self.base_url))
            }
        }
    }
}

/// Percent-encodes one path segment or query value, keeping only RFC 3986 unreserved
/// characters (server names and localparts are mostly safe already, but a typo must not turn
/// into a different path).
pub fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `--url` as the base of the API's paths. A bare `HOST:PORT` means `http://HOST:PORT`, the
/// way the server's own addresses are written; anything else must be an http(s) URL with a
/// host (it may have a path, for a server behind a proxy under a prefix).
fn base_url(raw: &str) -> anyhow::Result<String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let invalid = |why: String| {
        anyhow!(
            "--url {raw}: {why}; expected the operator API's address, e.g. http://127.0.0.1:8009"
        )
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| invalid(format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("{} is not http or https", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment has no place in it".into()));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn url_from_data_dir(dir: &Path) -> anyhow::Result<String> {
    match data_dir::read_server_info(dir)? {
        Some(info) => Ok(info.operator_url().trim_end_matches('/').to_owned()),
        None => Err(not_running(dir)),
    }
}

fn not_running(dir: &Path) -> anyhow::Error {
    anyhow!(
        "no server running for data dir {}; start it with `maas serve`",
        dir.display()
    )
}

fn find_token(config: &Config) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        let token = token.trim();
        if !token.is_empty() {
            return Ok(token.to_owned());
        }
    }
    if let Some(token) = config.operator.token.as_deref().map(str::trim)
        && !token.is_empty()
    {
        return Ok(token.to_owned());
    }
    let path = data_dir::operator_token_path(&config.server.data_dir);
    data_dir::read_operator_token(&path)?.ok_or_else(|| {
        anyhow!(
            "no operator token: set {TOKEN_ENV}, or run `maas serve` once to create {}",
            path.display()
        )
    })
}

/// An empty body (some endpoints answer `{}` or nothing) counts as `{}`.
fn parse_body(bytes: &[u8]) -> serde_json::Result<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes)
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ApiError {
    let body: Option<Value> = serde_json::from_slice(bytes).ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let fallback = || {
        let text = String::from_utf8_lossy(bytes).trim().to_owned();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        }
    };
    ApiError {
        errcode: field("errcode").unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
        message: field("error").unwrap_or_else(fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_error_bodies_become_api_errors() {
        let error = api_error(
            StatusCode::NOT_FOUND,
            br#"{"errcode":"M_NOT_FOUND","error":"Unknown tenant"}"#,
        );
        assert_eq!(error.to_string(), "M_NOT_FOUND: Unknown tenant");
    }

    #[test]
    fn other_error_bodies_are_still_readable() {
        let error = api_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(error.to_string(), "HTTP 502: upstream down");
        let error = api_error(StatusCode::INTERNAL_SERVER_ERROR, b"");
        assert_eq!(error.to_string(), "HTTP 500: Internal Server Error");
    }

    #[test]
    fn url_may_lack_its_scheme_but_not_its_host() {
        assert_eq!(
            base_url("127.0.0.1:8009").expect("bare"),
            "http://127.0.0.1:8009"
        );
        assert_eq!(
            base_url("https://ops.example.org/maas/").expect("prefix"),
            "https://ops.example.org/maas"
        );
        assert_eq!(base_url("[::1]:8009").expect("v6"), "http://[::1]:8009");
        for bad in [
            "http://",
            "ftp://127.0.0.1:1",
            "http:// x",
            "127.0.0.1:8009/?a=1",
            "",
        ] {
            let error = base_url(bad).expect_err(bad).to_string();
            assert!(
                error.starts_with(&format!("--url {}:", bad.trim())),
                "{error}"
            );
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode("example.org"), "example.org");
        assert_eq!(encode("a/b c&d"), "a%2Fb%20c%26d");
        assert_eq!(encode("localhost:8448"), "localhost%3A8448");
    }

    #[test]
    fn empty_bodies_are_empty_objects() {
        assert_eq!(parse_body(b"").expect("parse"), serde_json::json!({}));
        assert_eq!(
            parse_body(b"{\"a\":1}").expect("parse"),
            serde_json::json!({"a": 1})
        );
    }

    // `Jail` serialises environment changes between tests; its closures return its error type.
    #[test]
    #[allow(clippy::result_large_err)]
    fn token_comes_from_env_then_config_then_file() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env(); // variables of the surrounding shell must not leak in
            let mut config = Config::default();
            config.server.data_dir = jail.directory().to_path_buf();
            assert!(find_token(&config).is_err());
            jail.create_file("operator.token", "from-file\n")?;
            assert_eq!(find_token(&config).map_err(|e| e.to_string())?, "from-file");
            config.operator.token = Some("from-config".into());
            assert_eq!(
                find_token(&config).map_err(|e| e.to_string())?,
                "from-config"
            );
            jail.set_env(TOKEN_ENV, "from-env");
            assert_eq!(find_token(&config).map_err(|e| e.to_string())?, "from-env");
            Ok(())
        });
    }

    #[test]
    fn missing_server_json_says_how_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = url_from_data_dir(dir.path()).expect_err("no server");
        assert!(
            error
                .to_string()
                .starts_with("no server running for data dir")
        );
        assert!(error.to_string().contains("maas serve"));
    }
}
