//! A tenant: one complete homeserver inside the platform. Its handle owns the tenant's
//! database, settings and per-tenant state; every per-tenant service is reached through it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use ruma::{OwnedServerName, ServerName};
use serde::{Deserialize, Serialize};

use ruma::signatures::Ed25519KeyPair;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::accounts::moderation::Moderation;
use crate::accounts::sessions::{self, SessionCache};
use crate::accounts::{Accounts, passwords};
use crate::config::Config;
use crate::federation::Federation;
use crate::federation::partial_state::PartialRooms;
use crate::federation::sender::{FederationStep, Sender};
use crate::federation::server_keys::ServerKeys;
use crate::keys;
use crate::openid::OpenIdTokens;
use crate::platform::metrics::{MetricsStep, TenantCounters};
use crate::platform::runtime::{Hashing, Runtime};
use crate::presence::PresenceState;
use crate::push::{self, PushStep, RulesetCache};
use crate::quotas::QuotaState;
use crate::ratelimit::RateLimiter;
use crate::registration_tokens::RegistrationTokens;
use crate::rooms::Rooms;
use crate::rooms::commit::Committer;
use crate::rooms::heads::RoomHeads;
use crate::rooms::lock::RoomLocks;
use crate::rooms::state::StateCache;
use crate::rooms::steps::Steps;
use crate::rooms::transactions::Transactions;
use crate::store::TenantStore;
use crate::stream::Stream;
use crate::typing::TypingState;
use crate::uia::Uia;
use crate::{Error, Result, now_ms};

/// One tenant as the control plane knows it: what the operator created and may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantInfo {
    pub tenant_id: String,
    pub server_name: String,
    /// Host names the tenant answers on, lower-case, without port. Unique across tenants.
    pub hosts: Vec<String>,
    pub settings: TenantSettings,
    pub created_ts: i64,
}

/// Who may register on a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationPolicy {
    #[default]
    Closed,
    Open,
    Token,
}

/// The per-tenant settings an operator can change, stored as one JSON document so that new
/// settings need no schema migration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TenantSettings {
    pub registration: RegistrationPolicy,
    pub suspended: bool,
    pub allow_guests: bool,
    pub max_users: Option<u64>,
    /// The tenant's other quotas (rooms, storage, message rate); `None` bounds nothing.
    #[serde(default, skip_serializing_if = "Quotas::is_default")]
    pub quotas: Quotas,
    /// `m.homeserver.base_url` served in `/.well-known/matrix/client`.
    pub client_base_url: Option<String>,
    /// `m.server` served in `/.well-known/matrix/server`.
    pub federation_server: Option<String>,
    /// Absolute path of the PEM certificate chain the federation listener presents to clients
    /// naming this tenant (SNI); set and cleared with `tls_key`. Left out of the stored JSON
    /// when unset, so settings without it read the same to older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<String>,
    /// Absolute path of the PEM private key of `tls_certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// The secret of registration by `POST /_synapse/admin/v1/register`; none disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_shared_secret: Option<crate::shared_secret::SharedSecret>,
    /// The tenant's media bounds and switches.
    #[serde(default, skip_serializing_if = "MediaSettings::is_default")]
    pub media: MediaSettings,
    /// What becomes of rooms the tenant's users are done with.
    #[serde(default, skip_serializing_if = "RoomSettings::is_default")]
    pub rooms: RoomSettings,
}

/// What becomes of a tenant's rooms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomSettings {
    /// Purge a room from the tenant's database once its last local member has left (or was
    /// kicked or banned) and no local user is invited; customers expect a room nobody of
    /// theirs is in to be gone. On unless the operator turns it off.
    pub forget_empty_rooms: bool,
    /// How long after that the room goes: its members' clients see them leave meanwhile,
    /// and a leave by mistake can still be undone by joining again.
    pub forget_empty_rooms_after_secs: u64,
}

impl Default for RoomSettings {
    fn default() -> Self {
        Self {
            forget_empty_rooms: true,
            forget_empty_rooms_after_secs: 300,
        }
    }
}

impl RoomSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What a tenant may hold and do besides users (`max_users`) and media (`MediaSettings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Quotas {
    /// Rooms the tenant's database may hold, created here or joined over federation.
    pub max_rooms: Option<u64>,
    /// Bytes the tenant may store: its database and its media together.
    pub max_storage_bytes: Option<u64>,
    /// Events the tenant's users may send per second together (messages, state events,
    /// redactions), with bursts of as many at once.
    pub max_messages_per_second: Option<u32>,
}

impl Quotas {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What a tenant's content repository allows; `None` bounds are the platform's (uploads) or
/// none (quotas).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MediaSettings {
    /// Largest upload in bytes; never above the platform's `media.max_upload_bytes`.
    pub max_upload_bytes: Option<u64>,
    /// Bytes of media all users together may store.
    pub quota_bytes: Option<u64>,
    /// Bytes of media each user may store.
    pub user_quota_bytes: Option<u64>,
    /// Whether `preview_url` fetches pages for this tenant's users (off unless the operator
    /// turns it on, and the platform's `media.url_preview.enabled` too).
    pub url_previews: bool,
    /// The freeze of unauthenticated media (spec: Client-Server API, "Content repository"):
    /// the deprecated `/_matrix/media/*` downloads serve only media stored before this time.
    /// New tenants are frozen from their creation; `None` serves everything there.
    pub unauthenticated_frozen_ts: Option<i64>,
}

impl MediaSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A cheap, clonable handle on a loaded tenant.
#[derive(Clone)]
pub struct Tenant(Arc<TenantInner>);

/// A handle that doesn't keep the tenant loaded: for background tasks that should end when
/// the platform unloads it.
#[derive(Clone)]
pub(crate) struct WeakTenant(Weak<TenantInner>);

impl WeakTenant {
    pub(crate) fn upgrade(&self) -> Option<Tenant> {
        self.0.upgrade().map(Tenant)
    }
}

struct TenantInner {
    server_name: OwnedServerName,
    stream: Stream,
    state_cache: StateCache,
    room_heads: RoomHeads,
    sessions: SessionCache,
    /// What admins restrict about users (suspension, shadow-bans, own message rates).
    moderation: Moderation,
    push_rules: RulesetCache,
    committer: Committer,
    room_locks: RoomLocks,
    transactions: Transactions,
    typing: TypingState,
    openid_tokens: OpenIdTokens,
    presence: PresenceState,
    sender: Sender,
    partial_rooms: PartialRooms,
    /// Backfilled history takes the stream positions below the lowest one at a time.
    backfill: tokio::sync::Mutex<()>,
    /// Held while media records and the blob store's references change together, so a blob
    /// is never released while a new record names it.
    media_references: tokio::sync::Mutex<()>,
    /// Woken when an upload's bytes are stored, for downloads waiting for them.
    media_uploaded: tokio::sync::Notify,
    /// What the admin API keeps in memory.
    admin_state: crate::admin_state::AdminState,
    /// Loaded on first use; replaced when the key rotates.
    server_keys: RwLock<Option<Arc<ServerKeys>>>,
    record: RwLock<TenantInfo>,
    store: Arc<dyn TenantStore>,
    config: Arc<Config>,
    runtime: Arc<Runtime>,
    /// This tenant's share of the platform's password-hashing slots.
    hashing: Hashing,
    /// Turns at building events and sync responses (`tenants.work_slots`).
    work: Arc<Semaphore>,
    last_used_ms: AtomicI64,
    quotas: QuotaState,
    counters: TenantCounters,
}

/// A tenant just created, with the credentials of its first admin: shown once, never stored.
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub record: TenantInfo,
    pub admin_user_id: String,
    pub admin_password: String,
}

impl Tenant {
    pub(crate) async fn open(
        record: TenantInfo,
        store: Arc<dyn TenantStore>,
        config: Arc<Config>,
        runtime: Arc<Runtime>,
    ) -> Result<Self> {
        let server_name = parse_server_name(&record.server_name)?;
        let work = Arc::new(Semaphore::new(work_slots(&config)));
        let stream = Stream::load(store.clone()).await?;
        let partial_rooms = PartialRooms::load(&store.partial_state_rooms().await?)?;
        Ok(Self(Arc::new(TenantInner {
            server_name,
            stream,
            state_cache: StateCache::default(),
            room_heads: RoomHeads::default(),
            sessions: sessions::session_cache(),
            moderation: Moderation::default(),
            push_rules: push::ruleset_cache(),
            committer: Committer::start(&runtime, store.commits_inline(), steps()),
            room_locks: RoomLocks::default(),
            transactions: Transactions::default(),
            typing: TypingState::default(),
            openid_tokens: OpenIdTokens::default(),
            presence: PresenceState::default(),
            sender: Sender::default(),
            partial_rooms,
            backfill: tokio::sync::Mutex::new(()),
            media_references: tokio::sync::Mutex::new(()),
            media_uploaded: tokio::sync::Notify::new(),
            admin_state: Default::default(),
            server_keys: RwLock::new(None),
            record: RwLock::new(record),
            store,
            config,
            hashing: runtime.hashing().share(),
            work,
            runtime,
            last_used_ms: AtomicI64::new(now_ms()),
            quotas: QuotaState::default(),
            counters: TenantCounters::default(),
        })))
    }

    pub fn id(&self) -> String {
        self.0.record.read().tenant_id.clone()
    }

    pub fn server_name(&self) -> &ServerName {
        &self.0.server_name
    }

    pub fn record(&self) -> TenantInfo {
        self.0.record.read().clone()
    }

    pub fn settings(&self) -> TenantSettings {
        self.0.record.read().settings.clone()
    }

    pub(crate) fn set_record(&self, record: TenantInfo) {
        *self.0.record.write() = record;
    }

    /// The host clients use for this homeserver: the first configured host.
    pub fn primary_host(&self) -> String {
        let record = self.0.record.read();
        record
            .hosts
            .first()
            .cloned()
            .unwrap_or_else(|| record.server_name.clone())
    }

    /// `m.server` of `/.well-known/matrix/server`: the configured delegation, else the primary
    /// host on the platform's federation port.
    pub fn federation_server(&self) -> String {
        let settings = self.settings();
        settings.federation_server.unwrap_or_else(|| {
            format!(
                "{}:{}",
                self.primary_host(),
                self.0.config.server.federation_port
            )
        })
    }

    /// Refuses when the operator suspended the tenant; data stays, the API closes.
    pub fn ensure_active(&self) -> Result<()> {
        if self.0.record.read().settings.suspended {
            return Err(Error::TenantSuspended);
        }
        Ok(())
    }

    pub(crate) fn quota_state(&self) -> &QuotaState {
        &self.0.quotas
    }

    pub(crate) fn counters(&self) -> &TenantCounters {
        &self.0.counters
    }

    pub(crate) fn store(&self) -> &dyn TenantStore {
        self.0.store.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn limiter(&self) -> &RateLimiter {
        self.0.runtime.limiter()
    }

    /// Becomes `true` when the platform begins to shut down (see `Platform::begin_shutdown`).
    pub(crate) fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.runtime.shutting_down()
    }

    /// The argon2id hash of a new password, in turn with every other tenant's hashes.
    pub(crate) async fn hash_password(&self, password: &str) -> Result<String> {
        passwords::hash(&self.0.hashing, &self.0.config.passwords, password).await
    }

    /// A turn at the tenant's work (`tenants.work_slots` at once): held while building
    /// events or a sync response, never while waiting for commits or new events, so a tenant
    /// flooding the server queues behind itself and leaves cores to the other tenants.
    pub(crate) async fn work(&self) -> Result<SemaphorePermit<'_>> {
        self.0
            .work
            .acquire()
            .await
            .map_err(|e| Error::Internal(format!("work turns unavailable: {e}")))
    }

    /// Whether `password` matches the stored hash `phc`.
    pub(crate) async fn verify_password(&self, phc: &str, password: &str) -> Result<bool> {
        passwords::verify(&self.0.hashing, phc, password).await
    }

    pub(crate) fn touch(&self) {
        self.0.last_used_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn last_used_ms(&self) -> i64 {
        self.0.last_used_ms.load(Ordering::Relaxed)
    }

    pub fn stream(&self) -> &Stream {
        &self.0.stream
    }

    pub(crate) fn presence(&self) -> &PresenceState {
        &self.0.presence
    }

    pub(crate) fn typing(&self) -> &TypingState {
        &self.0.typing
    }

    pub(crate) fn openid_tokens(&self) -> &OpenIdTokens {
        &self.0.openid_tokens
    }

    pub(crate) fn state_cache(&self) -> &StateCache {
        &self.0.state_cache
    }

    pub(crate) fn room_heads(&self) -> &RoomHeads {
        &self.0.room_heads
    }

    pub(crate) fn sessions(&self) -> &SessionCache {
        &self.0.sessions
    }

    pub(crate) fn moderation(&self) -> &Moderation {
        &self.0.moderation
    }

    pub(crate) fn rulesets(&self) -> &RulesetCache {
        &self.0.push_rules
    }

    pub(crate) fn committer(&self) -> &Committer {
        &self.0.committer
    }

    pub(crate) fn room_locks(&self) -> &RoomLocks {
        &self.0.room_locks
    }

    pub(crate) fn transactions(&self) -> &Transactions {
        &self.0.transactions
    }

    /// The tenant's current signing key.
    pub(crate) async fn signing_key(&self) -> Result<Arc<Ed25519KeyPair>> {
        Ok(self.server_keys().await?.current.clone())
    }

    /// The tenant's signing keys, current and old, loaded on first use.
    pub async fn server_keys(&self) -> Result<Arc<ServerKeys>> {
        if let Some(keys) = self.0.server_keys.read().clone() {
            return Ok(keys);
        }
        let records = self.store().signing_keys().await?;
        let keys = Arc::new(ServerKeys::from_records(&records)?);
        *self.0.server_keys.write() = Some(keys.clone());
        Ok(keys)
    }

    /// Adds a new signing key that signs from now on; returns its id.
    pub(crate) async fn rotate_signing_key(&self) -> Result<String> {
        let mut record = keys::generate_signing_key();
        // Keys are ordered by creation: the new one must come last even within a millisecond.
        let records = self.store().signing_keys().await?;
        if let Some(last) = records.last() {
            record.created_ts = record.created_ts.max(last.created_ts + 1);
        }
        self.store().insert_signing_key(&record).await?;
        *self.0.server_keys.write() = None;
        Ok(record.key_id)
    }

    pub(crate) fn downgrade(&self) -> WeakTenant {
        WeakTenant(Arc::downgrade(&self.0))
    }

    /// The tenant's federation sender: its delivery tasks per destination.
    pub(crate) fn sender(&self) -> &Sender {
        &self.0.sender
    }

    /// The rooms joined with partial state whose members are being fetched.
    pub(crate) fn partial_rooms(&self) -> &PartialRooms {
        &self.0.partial_rooms
    }

    /// Held while backfilled events take their stream positions.
    pub(crate) fn backfill_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.0.backfill
    }

    /// Held while media records and blob references change together.
    pub(crate) fn media_references(&self) -> &tokio::sync::Mutex<()> {
        &self.0.media_references
    }

    pub(crate) fn media_uploaded(&self) -> &tokio::sync::Notify {
        &self.0.media_uploaded
    }

    /// A turn at making a thumbnail, shared by all tenants.
    pub(crate) async fn thumbnail_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.0.runtime.thumbnail_turn().await
    }

    /// The platform's URL preview fetcher, when previews are on.
    pub(crate) fn previewer(&self) -> Result<Option<&crate::media::preview::Previewer>> {
        self.0.runtime.previewer()
    }

    /// The platform's media blob store.
    pub(crate) fn blobs(&self) -> Result<&crate::platform::blobs::BlobStore> {
        self.0.runtime.blobs()
    }

    /// The platform's federation: transports and other servers' keys.
    pub(crate) fn federation(&self) -> &Federation {
        self.0.runtime.federation()
    }

    pub fn rooms(&self) -> Rooms<'_> {
        Rooms::new(self)
    }

    pub fn accounts(&self) -> Accounts<'_> {
        Accounts::new(self)
    }

    pub fn uia(&self) -> Uia<'_> {
        Uia::new(self)
    }

    pub fn registration_tokens(&self) -> RegistrationTokens<'_> {
        RegistrationTokens::new(self)
    }

    pub fn reports(&self) -> crate::reports::Reports<'_> {
        crate::reports::Reports::new(self)
    }

    pub fn shared_secret(&self) -> crate::shared_secret::SharedSecretRegistration<'_> {
        crate::shared_secret::SharedSecretRegistration::new(self)
    }

    pub(crate) fn admin_state(&self) -> &crate::admin_state::AdminState {
        &self.0.admin_state
    }
}

fn work_slots(config: &Config) -> usize {
    match config.tenants.work_slots {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        slots => slots,
    }
}

/// The steps of the event pipeline every tenant runs, in order.
fn steps() -> Steps {
    Steps::new(vec![
        Arc::new(PushStep::default()),
        Arc::new(FederationStep),
        Arc::new(MetricsStep),
        Arc::new(crate::rooms::forget::ForgetStep::default()),
    ])
}

pub(crate) fn parse_server_name(name: &str) -> Result<OwnedServerName> {
    ServerName::parse(name)
        .map_err(|e| Error::InvalidParam(format!("Invalid server name {name:?}: {e}")))
}

/// Normalises a host name a tenant answers on: lower-case, no port, a valid DNS name or IP.
pub fn normalize_host(host: &str) -> Result<String> {
    let host = host.trim().to_ascii_lowercase();
    let parsed = parse_server_name(&host)?;
    if parsed.port().is_some() {
        return Err(Error::InvalidParam(format!(
            "Host {host:?} must not carry a port"
        )));
    }
    Ok(host)
}

/// The host name of a `Host` header value or URI authority, as tenants' hosts are stored: lower
/// case, without port (`example.org:8448`, `[::1]:8008`), and without the trailing dot of a
/// fully qualified name (`example.org.` is the same name as `example.org`, RFC 1034 §3.1).
pub fn host_without_port(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split(']')
            .next()
            .map(|h| format!("[{h}]"))
            .unwrap_or_default();
    }
    let name = host.split(':').next().unwrap_or_default();
    name.strip_suffix('.').unwrap_or(name).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("Example.ORG").expect("valid"), "example.org");
        assert!(normalize_host("example.org:8448").is_err());
        assert!(normalize_host("bad host").is_err());
        assert_eq!(host_without_port("Example.org:8008"), "example.org");
        assert_eq!(host_without_port("[::1]:8008"), "[::1]");
        assert_eq!(host_without_port("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_without_port("Example.ORG."), "example.org");
        assert_eq!(host_without_port("example.org.:8448"), "example.org");
        // Only one trailing dot makes a fully qualified name; more is no host name at all.
        assert_eq!(host_without_port("example.org.."), "example.org.");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }
}
