//! How a request reaches another server's federation API: through a [`Transport`]. The
//! platform holds two, the network (HTTPS after server discovery) and, for tenants of this
//! same process, an in-process one that hands the request to our own federation router, so
//! co-hosted tenants go through exactly the checks a remote server's request goes through.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use ruma::ServerName;

/// A federation request: method, path and query (`/_matrix/…`), headers (the `X-Matrix`
/// authorization among them) and the JSON body.
pub type Request = http::Request<Vec<u8>>;
/// The answer, whatever its status.
pub type Response = http::Response<Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The destination's name did not lead to an address we may connect to.
    #[error("could not resolve {destination}: {reason}")]
    Resolution { destination: String, reason: String },
    /// The destination is not contacted for a while after failures.
    #[error("{destination} is backed off after failures, retry in {retry_in_ms} ms")]
    BackedOff {
        destination: String,
        retry_in_ms: u64,
    },
    /// Connecting, TLS, or the exchange itself failed.
    #[error("request to {destination} failed: {reason}")]
    Connection { destination: String, reason: String },
    /// The answer was larger than we accept.
    #[error("the answer of {destination} is too large")]
    TooLarge { destination: String },
}

#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` to `destination` and returns its answer. Errors are about reaching the
    /// destination; an error status is an answer.
    async fn send(
        &self,
        destination: &ServerName,
        request: Request,
    ) -> Result<Response, TransportError>;

    /// Whether this transport reaches `destination` by itself. The in-process transport
    /// reaches only the tenants of this process; the network reaches everyone.
    fn reaches(&self, _destination: &ServerName) -> bool {
        true
    }

    /// Forgets the destination's failures, so that the next request goes out at once (an
    /// admin's "reset connection"); transports without a backoff have nothing to forget.
    fn reset_backoff(&self, _destination: &ServerName) {}
}

/// The platform's choice of transport per destination: in-process for server names this
/// process hosts (once the HTTP layer installed its router), the network for the rest.
#[derive(Default)]
pub struct Transports {
    network: RwLock<Option<Arc<dyn Transport>>>,
    in_process: RwLock<Option<Arc<dyn Transport>>>,
}

impl Transports {
    pub fn set_network(&self, transport: Arc<dyn Transport>) {
        *self.network.write() = Some(transport);
    }

    pub fn set_in_process(&self, transport: Arc<dyn Transport>) {
        *self.in_process.write() = Some(transport);
    }

    /// Drops both transports: the in-process one holds the router, which holds the platform.
    pub(crate) fn clear(&self) {
        *self.network.write() = None;
        *self.in_process.write() = None;
    }

    /// Forgets `destination`'s failures in the transport that reaches it.
    pub(crate) fn reset_backoff(&self, destination: &ServerName) {
        if let Ok(transport) = self.for_destination(destination) {
            transport.reset_backoff(destination);
        }
    }

    /// The transport for `destination`: in-process when it reaches it, else the network.
    pub(crate) fn for_destination(
        &self,
        destination: &ServerName,
    ) -> Result<Arc<dyn Transport>, TransportError> {
        let in_process = self.in_process.read().clone();
        let chosen = match in_process {
            Some(transport) if transport.reaches(destination) => Some(transport),
            _ => self.network.read().clone(),
        };
        chosen.ok_or_else(|| TransportError::Connection {
            destination: destination.to_string(),
            reason: "federation is not running in this process".into(),
        })
    }
}
