//! Transactions from other servers (spec: Server-Server API, "Transactions"; ruma
//! `transactions`): `PUT /send/{txnId}`.

use maas_core::federation::transactions::{self, Transaction};
use ruma::api::federation::transactions::send_transaction_message;

use super::authentication::Origin;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<send_transaction_message::v1::Request, _, _>(router, send_transaction)
}

/// `PUT /_matrix/federation/v1/send/{txnId}`
async fn send_transaction(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<send_transaction_message::v1::Request>,
) -> Result<RumaResponse<send_transaction_message::v1::Response>> {
    let txn = Transaction {
        txn_id: req.transaction_id.as_str(),
        origin: &req.origin,
        pdus: &req.pdus,
        edus: &req.edus,
    };
    let results = transactions::receive(&tenant, &origin, txn).await?;
    Ok(send_transaction_message::v1::Response::new(results).into())
}
