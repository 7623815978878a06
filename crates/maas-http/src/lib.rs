//! The HTTP surfaces of maas, one folder per API surface: the Client-Server API, `.well-known`,
//! the Server-Server API, the Synapse-compatible admin API and the operator API, all assembled
//! in `routes`. Handlers are thin: parse with ruma, call `maas-core`, serialise with ruma.

mod admin;
mod body;
mod client;
mod context;
mod error;
mod extract;
mod federation;
mod operator;
mod routes;
mod ruma;
mod server;
mod well_known;

pub use error::HttpError;
pub use routes::router;
pub use server::serve;

/// How this server names itself to other servers and to tenant admins.
const IMPLEMENTATION_NAME: &str = "maas";
const IMPLEMENTATION_VERSION: &str = env!("CARGO_PKG_VERSION");
