//! The Server-Server API of every tenant: its published signing keys, other servers' keys,
//! request authentication, and the transports requests travel over. [`Federation`] is the
//! platform's share (transports, key cache, notaries); a tenant reaches it through its runtime.

mod acl;
pub mod authentication;
pub(crate) mod backfilling;
pub mod discovery;
pub mod e2ee;
pub mod events;
pub mod hierarchy;
pub mod invite;
pub(crate) mod joining;
mod key_cache;
pub(crate) mod knocking;
pub(crate) mod leaving;
pub mod membership;
pub(crate) mod missing;
pub mod network;
pub mod notary;
pub(crate) mod partial_state;
pub mod query;
pub mod received;
pub(crate) mod sender;
pub mod server_keys;
pub mod transactions;
pub mod transport;

use ruma::api::auth_scheme::NoAuthentication;
use ruma::api::federation::authentication::{ServerSignatures, ServerSignaturesInput};
use ruma::api::path_builder::SinglePath;
use ruma::api::{IncomingResponse, OutgoingRequest};
use ruma::{OwnedServerName, ServerName};
use serde_json::Value;

use std::sync::Arc;

use tokio::sync::mpsc;

use self::key_cache::KeyCache;
use self::transport::{Transport, TransportError, Transports};
use crate::config::FederationConfig;
use crate::store::ControlStore;
use crate::{Error, Result, Tenant};

/// What all tenants share to federate.
pub struct Federation {
    transports: Transports,
    keys: KeyCache,
    /// Asked for other servers' keys before the servers themselves.
    notaries: Vec<OwnedServerName>,
    /// Which tenants have events queued for other servers, on their way to the control plane
    /// (`(tenant_id, pending)`, in order).
    pending: mpsc::UnboundedSender<(String, bool)>,
    pending_marks: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<(String, bool)>>>,
}

impl Federation {
    pub(crate) fn new(config: &FederationConfig) -> Self {
        // `Config::check` refused names that don't parse.
        let notaries = config
            .trusted_notaries
            .iter()
            .filter_map(|name| ServerName::parse(name).ok())
            .collect();
        let (pending, marks) = mpsc::unbounded_channel();
        Self {
            transports: Transports::default(),
            keys: KeyCache::default(),
            notaries,
            pending,
            pending_marks: parking_lot::Mutex::new(Some(marks)),
        }
    }

    /// Records that `tenant_id` has events queued for other servers (or no longer has), so a
    /// restarted platform loads it to deliver them.
    pub(crate) fn mark_pending(&self, tenant_id: &str, pending: bool) {
        // The receiver lives as long as the platform.
        let _ = self.pending.send((tenant_id.to_owned(), pending));
    }

    /// Writes the marks to the control plane, in order, until the platform goes; taken once.
    pub(crate) fn record_pending_marks(&self, control: Arc<dyn ControlStore>) {
        let Some(mut marks) = self.pending_marks.lock().take() else {
            return;
        };
        tokio::spawn(async move {
            while let Some((tenant_id, pending)) = marks.recv().await {
                if let Err(e) = control.set_federation_pending(&tenant_id, pending).await {
                    tracing::warn!(%tenant_id, error = %e, "federation queue mark not recorded");
                }
            }
        });
    }

    /// Where the binary installs the network and in-process transports.
    pub fn transports(&self) -> &Transports {
        &self.transports
    }

    /// Sends a request that needs no signature (the key endpoints).
    pub(crate) async fn send_unauthenticated<R>(
        &self,
        destination: &ServerName,
        request: R,
    ) -> Result<R::IncomingResponse>
    where
        R: OutgoingRequest<Authentication = NoAuthentication, PathBuilder = SinglePath>,
    {
        let http = request
            .try_into_http_request::<Vec<u8>>(&base_url(destination), (), ())
            .map_err(|e| Error::Internal(format!("building a federation request: {e}")))?;
        self.exchange::<R>(destination, http).await
    }

    /// Sends a request signed by `origin` with `X-Matrix`.
    pub(crate) async fn send_signed<R>(
        &self,
        origin: &Tenant,
        destination: &ServerName,
        request: R,
    ) -> Result<R::IncomingResponse>
    where
        R: OutgoingRequest<Authentication = ServerSignatures, PathBuilder = SinglePath>,
    {
        let key = origin.signing_key().await?;
        let input = ServerSignaturesInput::new(
            origin.server_name().to_owned(),
            destination.to_owned(),
            &key,
        );
        let http = request
            .try_into_http_request::<Vec<u8>>(&base_url(destination), input, ())
            .map_err(|e| Error::Internal(format!("building a federation request: {e}")))?;
        self.exchange::<R>(destination, http).await
    }

    async fn exchange<R: OutgoingRequest>(
        &self,
        destination: &ServerName,
        request: transport::Request,
    ) -> Result<R::IncomingResponse> {
        let transport: std::sync::Arc<dyn Transport> = self
            .transports
            .for_destination(destination)
            .map_err(|e| unreachable(&e))?;
        let response = transport
            .send(destination, request)
            .await
            .map_err(|e| unreachable(&e))?;
        if !response.status().is_success() {
            return Err(remote_error(destination, &response));
        }
        R::IncomingResponse::try_from_http_response(response).map_err(|e| {
            Error::RemoteUnavailable(format!("{destination} answered out of the spec: {e}"))
        })
    }
}

/// ruma builds absolute URLs; transports keep only the path and query.
fn base_url(destination: &ServerName) -> String {
    format!("https://{destination}")
}

fn unreachable(error: &TransportError) -> Error {
    Error::RemoteUnavailable(error.to_string())
}

/// An error answer of another server, as our error: what it says isn't found or isn't
/// allowed stays so; anything else is the other server failing.
fn remote_error(destination: &ServerName, response: &transport::Response) -> Error {
    let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    let errcode = body["errcode"].as_str().unwrap_or("M_UNKNOWN");
    let message = body["error"].as_str().unwrap_or("");
    let said = format!(
        "{destination} answered {}: {errcode} {message}",
        response.status()
    );
    match response.status() {
        http::StatusCode::NOT_FOUND => Error::NotFound(said),
        http::StatusCode::FORBIDDEN => Error::Forbidden(said),
        _ => Error::RemoteUnavailable(said),
    }
}
