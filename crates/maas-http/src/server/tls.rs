//! TLS on a listener (the federation listener): the handshake, bounded in time, and the
//! certificate it presents, chosen by the name the client asks for (SNI): the tenant's own,
//! else the platform's default (`federation.tls_certificate`), else none, and the handshake
//! fails. Certificates come from core's cache, which reads replaced files again.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use maas_core::Platform;
use maas_core::platform::certificates::{CertificateCache, CertificateFiles, RECHECK};
use maas_core::tenants::TenantSettings;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;

use super::per_ip::{self, REFUSAL_TIME};

/// The TLS side of the federation listener: what it presents, to whom.
#[derive(Clone)]
pub struct FederationTls {
    acceptor: TlsAcceptor,
}

impl FederationTls {
    /// TLS with the platform's default certificate (when configured) and the tenants'. The
    /// default one must load now: a start with a broken one would fail every handshake that
    /// names no tenant. A refusal names the configuration key and the file.
    pub fn new(platform: &Arc<Platform>) -> Result<FederationTls, String> {
        let federation = &platform.config().federation;
        CertificateFiles::check_platform_default(federation)?;
        let default = CertificateFiles::platform_default(federation);
        let resolver = SniResolver {
            platform: Arc::clone(platform),
            default,
            cache: CertificateCache::new(RECHECK),
        };
        let provider = Arc::new(aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        // Both are served on one connection type (hyper's auto builder); HTTP/2 first.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(FederationTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The connection after its handshake, or `None` when that failed or took longer than
    /// `bound`; either way it is only worth a debug line (scanners, clients giving up).
    pub(super) async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        bound: Option<Duration>,
    ) -> Option<TlsStream<TcpStream>> {
        let accepting = self.acceptor.accept(stream);
        let result = match bound {
            Some(bound) => match tokio::time::timeout(bound, accepting).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return None;
                }
            },
            None => accepting.await,
        };
        result
            .inspect_err(|error| tracing::debug!(%peer, %error, "TLS handshake failed"))
            .ok()
    }

    /// Refuses a connection over its address's bound as on a plain listener (`429`), in TLS
    /// and in the HTTP version the client negotiated, so that it can read why. Handshake and
    /// answer together have the refusal's time bound.
    pub(super) async fn refuse(&self, stream: TcpStream, peer: SocketAddr) {
        let refusal = async {
            let Some(stream) = self.handshake(stream, peer, None).await else {
                return;
            };
            let service = service_fn(|request: http::Request<Incoming>| async move {
                Ok::<_, Infallible>(per_ip::too_many(request.version()))
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let served = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "refused connection ended");
            }
        };
        let _ = tokio::time::timeout(REFUSAL_TIME, refusal).await;
    }
}

/// Picks the certificate of a handshake by its SNI name. Runs inside the handshake, so it
/// reads only memory: the platform's directory and the cache, which looks at the files at
/// most every few seconds (a `stat`, and a read of a few kilobytes when they changed).
struct SniResolver {
    platform: Arc<Platform>,
    default: Option<CertificateFiles>,
    cache: CertificateCache,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        let lookup = |name: &str| self.platform.settings_for_name(name);
        let chosen = candidates(sni, lookup, self.default.as_ref())
            .iter()
            .find_map(|files| self.cache.get(files));
        if chosen.is_none() {
            tracing::debug!(sni, "no TLS certificate for this name; handshake refused");
        }
        chosen
    }
}

/// The certificates to try for a client asking for `sni`, best first: the tenant's own when it
/// answers on that name (a host or its server name) and has one, then the platform's default.
/// A tenant's certificate that doesn't load falls back to the default too.
fn candidates(
    sni: Option<&str>,
    lookup: impl FnOnce(&str) -> Option<TenantSettings>,
    default: Option<&CertificateFiles>,
) -> Vec<CertificateFiles> {
    let own = sni
        .and_then(lookup)
        .and_then(|settings| CertificateFiles::of_tenant(&settings));
    own.into_iter().chain(default.cloned()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn files(stem: &str) -> CertificateFiles {
        CertificateFiles {
            certificate: format!("/etc/maas/{stem}.crt").into(),
            key: format!("/etc/maas/{stem}.key").into(),
        }
    }

    fn with_certificate(stem: &str) -> TenantSettings {
        let files = files(stem);
        TenantSettings {
            tls_certificate: Some(files.certificate.display().to_string()),
            tls_key: Some(files.key.display().to_string()),
            ..TenantSettings::default()
        }
    }

    #[test]
    fn the_sni_name_picks_its_tenants_certificate_else_the_default() {
        // What `Platform::settings_for_name` answers: tenants by host or server name.
        let tenants = HashMap::from([
            ("a.test", with_certificate("a")),
            ("matrix.a.test", with_certificate("a")),
            ("b.test", with_certificate("b")),
            ("plain.test", TenantSettings::default()),
        ]);
        let lookup = |name: &str| tenants.get(name).cloned();
        let default = files("default");
        let choose = |sni: Option<&str>, default: Option<&CertificateFiles>| {
            candidates(sni, lookup, default)
        };

        assert_eq!(
            choose(Some("a.test"), Some(&default)),
            [files("a"), default.clone()]
        );
        assert_eq!(choose(Some("matrix.a.test"), None), [files("a")]);
        assert_eq!(choose(Some("b.test"), None), [files("b")]);
        // A tenant without a certificate of its own, a name no tenant answers on, no SNI:
        // the platform's default, or nothing (the handshake fails).
        for sni in [Some("plain.test"), Some("unknown.test"), None] {
            assert_eq!(
                choose(sni, Some(&default)),
                vec![default.clone()],
                "{sni:?}"
            );
            assert!(choose(sni, None).is_empty(), "{sni:?}");
        }
    }
}
