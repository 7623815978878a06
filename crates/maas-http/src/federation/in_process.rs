//! The in-process transport: a federation request from one tenant to another tenant of this
//! process goes straight to our own router, as a request from the network would, signature
//! checks and all, without a socket.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, to_bytes};
use maas_core::Platform;
use maas_core::federation::transport::{Request, Response, Transport, TransportError};
use ruma::ServerName;
use tower::ServiceExt;

/// The largest answer taken from a co-hosted tenant, as from the network.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub struct InProcess {
    app: Router,
    platform: Weak<Platform>,
}

impl InProcess {
    /// Makes co-hosted tenants of `platform` federate through its own router.
    pub fn install(platform: &Arc<Platform>) {
        let transport = Arc::new(InProcess {
            app: crate::routes::router(platform.clone()),
            platform: Arc::downgrade(platform),
        });
        platform.federation().transports().set_in_process(transport);
    }
}

#[async_trait]
impl Transport for InProcess {
    async fn send(
        &self,
        destination: &ServerName,
        request: Request,
    ) -> Result<Response, TransportError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Body::from(body));
        let response = match self.app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes =
            to_bytes(body, MAX_RESPONSE_BYTES)
                .await
                .map_err(|_| TransportError::TooLarge {
                    destination: destination.to_string(),
                })?;
        Ok(http::Response::from_parts(parts, bytes.to_vec()))
    }

    fn reaches(&self, destination: &ServerName) -> bool {
        self.platform
            .upgrade()
            .is_some_and(|platform| platform.serves_server_name(destination.as_str()))
    }
}
