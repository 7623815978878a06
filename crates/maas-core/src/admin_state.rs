//! What the Synapse-compatible admin API keeps in memory per tenant, lost with the tenant's
//! handle as Synapse loses it on restart: the nonces of shared-secret registration, the lock
//! under which a user's server notice room is made, and the background updates switch.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::shared_secret::Nonces;

#[derive(Default)]
pub(crate) struct AdminState {
    pub(crate) nonces: Nonces,
    /// Held while a server notice room is looked up and made, so that two notices sent at
    /// once to a user without a room make one room.
    pub(crate) notice_rooms: tokio::sync::Mutex<()>,
    /// `POST /background_updates/enabled {"enabled": false}` was the last word.
    background_updates_paused: AtomicBool,
}

impl AdminState {
    pub(crate) fn background_updates_enabled(&self) -> bool {
        !self.background_updates_paused.load(Ordering::Relaxed)
    }

    pub(crate) fn set_background_updates_enabled(&self, enabled: bool) {
        self.background_updates_paused
            .store(!enabled, Ordering::Relaxed);
    }
}
