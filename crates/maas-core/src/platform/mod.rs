//! The platform: what all tenants share in one process. It knows every tenant's record and
//! hosts (a small directory kept in memory), loads a tenant's handle and database on first use
//! and drops them again after an idle period, and carries out the operator's tenant changes.
//! Its [`runtime`] holds the workers and limiters the tenants share.

pub mod blobs;
pub mod certificates;
mod commit_threads;
pub mod metrics;
pub mod runtime;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

use self::runtime::Runtime;
use crate::config::Config;
use crate::export::check::Consistency;
use crate::export::read::{ArchiveReader, Entry, receive_blob};
use crate::export::{ArchiveSource, TenantExport};
use crate::store::{
    Backend, RegistrationPolicy, StoreError, TableImport, TenantInfo, TenantSettings,
};
use crate::tenants::{CreatedTenant, Tenant, normalize_host, parse_server_name};
use crate::{Error, Result, keys, now_ms, secrets};

/// How often idle tenants are looked for.
const REAPER_INTERVAL: Duration = Duration::from_secs(30);

/// Open files one loaded SQLite tenant may hold (database and log per connection, shared
/// memory), rounded up; and files kept for everything else (control plane, sockets).
const FILES_PER_LOADED_TENANT: usize = 10;
const FILES_RESERVED: usize = 1024;

pub struct Platform {
    config: Arc<Config>,
    backend: Arc<dyn Backend>,
    directory: RwLock<Directory>,
    loaded: DashMap<String, Arc<OnceCell<Tenant>>>,
    /// Tenants loaded at once at most (`tenants.max_loaded`, or what the open files allow).
    max_loaded: usize,
    runtime: Arc<Runtime>,
    operator_token_digest: [u8; 32],
    /// Serialises operator changes to tenants, so two of them can't interleave.
    operator_lock: tokio::sync::Mutex<()>,
    metrics: metrics::Metrics,
}

/// Every tenant's record, indexed the ways requests reach them.
#[derive(Default)]
struct Directory {
    records: HashMap<String, TenantInfo>,
    by_host: HashMap<String, String>,
    by_server_name: HashMap<String, String>,
}

impl Directory {
    fn insert(&mut self, record: TenantInfo) {
        for host in &record.hosts {
            self.by_host.insert(host.clone(), record.tenant_id.clone());
        }
        self.by_server_name
            .insert(record.server_name.clone(), record.tenant_id.clone());
        self.records.insert(record.tenant_id.clone(), record);
    }

    fn remove(&mut self, tenant_id: &str) -> Option<TenantInfo> {
        let record = self.records.remove(tenant_id)?;
        for host in &record.hosts {
            self.by_host.remove(host);
        }
        self.by_server_name.remove(&record.server_name);
        Some(record)
    }

    /// The first of `hosts` served by a tenant other than `except`.
    fn taken_host<'h>(&self, hosts: &'h [String], except: Option<&str>) -> Option<&'h str> {
        hosts
            .iter()
            .find(|h| {
                self.by_host
                    .get(*h)
                    .is_some_and(|id| Some(id.as_str()) != except)
            })
            .map(String::as_str)
    }
}

/// What the operator asks for when creating a tenant.
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub server_name: String,
    /// Defaults to the server name alone.
    pub hosts: Option<Vec<String>>,
    pub settings: TenantSettings,
    /// Localpart of the first admin; `admin` by default.
    pub admin_localpart: Option<String>,
}

/// A partial change of a tenant; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    pub hosts: Option<Vec<String>>,
    pub registration: Option<RegistrationPolicy>,
    pub suspended: Option<bool>,
    pub allow_guests: Option<bool>,
    pub max_users: Option<Option<u64>>,
    pub max_rooms: Option<Option<u64>>,
    pub max_storage_bytes: Option<Option<u64>>,
    pub max_messages_per_second: Option<Option<u32>>,
    pub client_base_url: Option<Option<String>>,
    pub federation_server: Option<Option<String>>,
    /// The tenant's TLS certificate chain and key files (absolute paths), set or cleared
    /// together; refused unless they load and match.
    pub tls_certificate: Option<Option<String>>,
    pub tls_key: Option<Option<String>>,
    pub media_max_upload_bytes: Option<Option<u64>>,
    pub media_quota_bytes: Option<Option<u64>>,
    pub media_user_quota_bytes: Option<Option<u64>>,
    pub url_previews: Option<bool>,
    /// `true` freezes unauthenticated media from now on (an existing freeze keeps its time);
    /// `false` lifts the freeze.
    pub freeze_unauthenticated_media: Option<bool>,
    /// Whether rooms the tenant's users all left are purged (`RoomSettings`), and how long
    /// after.
    pub forget_empty_rooms: Option<bool>,
    pub forget_empty_rooms_after_secs: Option<u64>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Platform {
    /// Starts on `backend`'s control plane and tenant directory; tenants themselves load
    /// lazily.
    pub async fn start(config: Config, backend: Arc<dyn Backend>) -> Result<Arc<Platform>> {
        let Some(token) = config.operator.token.as_deref() else {
            return Err(Error::Internal("no operator token configured".into()));
        };
        let operator_token_digest = digest(token);
        let mut directory = Directory::default();
        for record in backend.control().tenants().await? {
            directory.insert(record);
        }
        // Every loaded SQLite tenant holds file descriptors; the binary raises the soft limit
        // to the hard one, and this is the number that bounds how many can be active at once.
        let files = open_files_limit();
        let max_loaded = match config.tenants.max_loaded {
            0 => files.map_or(usize::MAX, |limit| {
                (limit.saturating_sub(FILES_RESERVED) / FILES_PER_LOADED_TENANT).max(16)
            }),
            configured => configured,
        };
        tracing::info!(
            tenants = directory.records.len(),
            open_files_limit = files,
            max_loaded,
            "tenant directory loaded"
        );
        let platform = Arc::new(Platform {
            runtime: Arc::new(Runtime::start(&config)),
            config: Arc::new(config),
            backend,
            directory: RwLock::new(directory),
            loaded: DashMap::new(),
            max_loaded,
            operator_token_digest,
            operator_lock: tokio::sync::Mutex::new(()),
            metrics: metrics::Metrics::new()?,
        });
        platform
            .runtime
            .federation()
            .record_pending_marks(platform.backend.control());
        spawn_reaper(Arc::downgrade(&platform));
        crate::maintenance::spawn(
            Arc::downgrade(&platform),
            platform.config.retention.interval_secs,
        );
        Ok(platform)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `token` is the operator token; compared in constant time.
    pub fn is_operator_token(&self, token: &str) -> bool {
        digest(token).ct_eq(&self.operator_token_digest).into()
    }

    /// The tenant answering on `host` (no port), loading it if needed.
    pub async fn tenant_for_host(&self, host: &str) -> Result<Option<Tenant>> {
        let record = {
            let directory = self.directory.read();
            let Some(id) = directory.by_host.get(host) else {
                return Ok(None);
            };
            directory.records.get(id).cloned()
        };
        match record {
            Some(record) => self.load(record).await.map(Some),
            None => Ok(None),
        }
    }

    /// The tenant named `server_name`, loading it if needed; `NotFound` when there is none.
    pub async fn tenant_by_server_name(&self, server_name: &str) -> Result<Tenant> {
        self.tenant_for_server_name(server_name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("No tenant {server_name}")))
    }

    /// The tenant named `server_name` (a federation request's destination), loading it if
    /// needed.
    pub async fn tenant_for_server_name(&self, server_name: &str) -> Result<Option<Tenant>> {
        let record = {
            let directory = self.directory.read();
            let id = directory
                .by_server_name
                .get(&server_name.to_ascii_lowercase());
            id.and_then(|id| directory.records.get(id)).cloned()
        };
        match record {
            Some(record) => self.load(record).await.map(Some),
            None => Ok(None),
        }
    }

    async fn load(&self, record: TenantInfo) -> Result<Tenant> {
        if !self.loaded.contains_key(&record.tenant_id) {
            self.make_room();
        }
        let cell = self
            .loaded
            .entry(record.tenant_id.clone())
            .or_default()
            .clone();
        let tenant = cell
            .get_or_try_init(|| async {
                let store = self.backend.open_tenant(&record.tenant_id).await?;
                let tenant = Tenant::open(
                    record.clone(),
                    store,
                    self.config.clone(),
                    self.runtime.clone(),
                )
                .await?;
                // What was queued for other servers before the tenant was last unloaded.
                if let Err(e) = tenant.sender().resume(&tenant).await {
                    tracing::warn!(server_name = %record.server_name, error = %e, "federation queue not resumed");
                }
                crate::federation::partial_state::resume(&tenant);
                // Admin tasks (room deletions, purges) the tenant's last run left unfinished.
                crate::rooms::tasks::resume(&tenant);
                Ok::<_, Error>(tenant)
            })
            .await?
            .clone();
        tenant.touch();
        Ok(tenant)
    }

    /// Loads every tenant that had events queued for other servers when the platform last
    /// ran, so their queues are delivered now; called once the transports are installed.
    pub async fn resume_federation(&self) -> Result<()> {
        for tenant_id in self.backend.control().federation_pending().await? {
            let record = self.directory.read().records.get(&tenant_id).cloned();
            let Some(record) = record else {
                continue;
            };
            if let Err(e) = self.load(record).await {
                tracing::warn!(%tenant_id, error = %e, "tenant with queued events not loaded");
            }
        }
        Ok(())
    }

    /// All tenants, ordered by server name.
    pub fn tenants(&self) -> Vec<TenantInfo> {
        let mut records: Vec<_> = self.directory.read().records.values().cloned().collect();
        records.sort_by(|a, b| a.server_name.cmp(&b.server_name));
        records
    }

    /// Creates the `localhost` tenant on a platform that has no tenant yet.
    pub async fn bootstrap_default_tenant(&self) -> Result<Option<CreatedTenant>> {
        if !self.directory.read().records.is_empty() {
            return Ok(None);
        }
        let new = NewTenant {
            server_name: "localhost".into(),
            hosts: Some(vec!["localhost".into(), "127.0.0.1".into()]),
            settings: TenantSettings {
                registration: RegistrationPolicy::Open,
                ..Default::default()
            },
            admin_localpart: None,
        };
        self.create_tenant(new).await.map(Some)
    }

    /// Creates a tenant with its database, signing key and first admin.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<CreatedTenant> {
        let _guard = self.operator_lock.lock().await;
        let server_name = parse_server_name(&new.server_name.to_ascii_lowercase())?.to_string();
        let hosts = normalize_hosts(new.hosts.unwrap_or_else(|| vec![server_name.clone()]))?;
        check_settings(&new.settings)?;
        {
            let directory = self.directory.read();
            if directory.by_server_name.contains_key(&server_name) {
                return Err(Error::Conflict(format!(
                    "Tenant {server_name} already exists"
                )));
            }
            if let Some(host) = directory.taken_host(&hosts, None) {
                return Err(Error::Conflict(format!(
                    "Host {host} is served by another tenant"
                )));
            }
        }
        let created_ts = now_ms();
        let mut settings = new.settings;
        // A new homeserver starts with the freeze the spec asks of servers since v1.12: its
        // media is for the authenticated endpoints only.
        settings
            .media
            .unauthenticated_frozen_ts
            .get_or_insert(created_ts);
        settings
            .registration_shared_secret
            .get_or_insert_with(crate::shared_secret::SharedSecret::generate);
        let record = TenantInfo {
            tenant_id: secrets::new_tenant_id(),
            server_name,
            hosts,
            settings,
            created_ts,
        };
        self.backend
            .control()
            .insert_tenant(&record)
            .await
            .map_err(conflict)?;
        match self
            .provision(&record, new.admin_localpart.as_deref().unwrap_or("admin"))
            .await
        {
            Ok(created) => {
                self.directory.write().insert(record);
                Ok(created)
            }
            Err(e) => {
                self.remove_data(&record.tenant_id).await;
                Err(e)
            }
        }
    }

    /// Fills a new tenant's database: signing key and first admin.
    async fn provision(&self, record: &TenantInfo, admin: &str) -> Result<CreatedTenant> {
        let tenant = self.load(record.clone()).await?;
        tenant
            .store()
            .insert_signing_key(&keys::generate_signing_key())
            .await?;
        // The first admin exists whatever the quota says: the customer needs a way in.
        let mut unlimited = record.clone();
        unlimited.settings.max_users = None;
        tenant.set_record(unlimited);
        let created = tenant.accounts().create_user(admin, None, true, None).await;
        tenant.set_record(record.clone());
        let created = created?;
        Ok(CreatedTenant {
            record: record.clone(),
            admin_user_id: crate::accounts::usernames::user_id(
                &created.account.localpart,
                tenant.server_name(),
            )?
            .to_string(),
            admin_password: created.generated_password.unwrap_or_default(),
        })
    }

    /// Applies an operator's change to a tenant's hosts and settings.
    pub async fn update_tenant(
        &self,
        server_name: &str,
        update: TenantUpdate,
    ) -> Result<TenantInfo> {
        // Read before the lock: the files are the operator's, not the tenant's.
        let certificate = certificates::requested(&update.tls_certificate, &update.tls_key)?;
        if let Some(Some(files)) = certificate {
            certificates::verify(files).await?;
        }
        let _guard = self.operator_lock.lock().await;
        let mut record = self.tenant_by_server_name(server_name).await?.record();
        if let Some(hosts) = update.hosts.clone() {
            let hosts = normalize_hosts(hosts)?;
            if let Some(host) = self
                .directory
                .read()
                .taken_host(&hosts, Some(&record.tenant_id))
            {
                return Err(Error::Conflict(format!(
                    "Host {host} is served by another tenant"
                )));
            }
            record.hosts = hosts;
        }
        apply_settings(&mut record.settings, update);
        check_settings(&record.settings)?;
        self.backend
            .control()
            .update_tenant(&record)
            .await
            .map_err(conflict)?;
        {
            let mut directory = self.directory.write();
            directory.remove(&record.tenant_id);
            directory.insert(record.clone());
        }
        if let Some(tenant) = self
            .loaded
            .get(&record.tenant_id)
            .and_then(|c| c.get().cloned())
        {
            tenant.set_record(record.clone());
        }
        Ok(record)
    }

    /// Replaces the tenant's registration shared secret (`None` disables shared-secret
    /// registration); the change applies to the next request.
    pub async fn set_registration_shared_secret(
        &self,
        server_name: &str,
        secret: Option<crate::shared_secret::SharedSecret>,
    ) -> Result<TenantInfo> {
        let _guard = self.operator_lock.lock().await;
        let mut record = self.tenant_by_server_name(server_name).await?.record();
        record.settings.registration_shared_secret = secret;
        self.backend
            .control()
            .update_tenant(&record)
            .await
            .map_err(conflict)?;
        {
            let mut directory = self.directory.write();
            directory.remove(&record.tenant_id);
            directory.insert(record.clone());
        }
        if let Some(tenant) = self
            .loaded
            .get(&record.tenant_id)
            .and_then(|c| c.get().cloned())
        {
            tenant.set_record(record.clone());
        }
        Ok(record)
    }

    /// Deletes a tenant and every byte it stored.
    pub async fn delete_tenant(&self, server_name: &str) -> Result<()> {
        let _guard = self.operator_lock.lock().await;
        let tenant_id = self.tenant_by_server_name(server_name).await?.id();
        self.directory.write().remove(&tenant_id);
        self.remove_data(&tenant_id).await;
        Ok(())
    }

    /// The archive of a tenant: its record and every row of its database, read in one
    /// snapshot while the tenant keeps serving, handed out a line at a time as it is read.
    pub async fn export_tenant(&self, server_name: &str) -> Result<TenantExport> {
        let tenant = self.tenant_by_server_name(server_name).await?;
        TenantExport::start(tenant, now_ms())
    }

    /// Recreates a tenant from its archive under a new tenant id, with the same server name,
    /// hosts and settings. The archive streams from `source` into the new tenant's database in
    /// one transaction, checked line by line and against itself (`export::check`); it is
    /// committed only once the trailer's checksum matched. An existing tenant of that server
    /// name is refused (`Conflict`, told before the rest of the archive is read) unless
    /// `replace`, and is then removed only once the new database holds every row, so a failed
    /// import leaves it as it was.
    pub async fn import_tenant(
        &self,
        source: &mut dyn ArchiveSource,
        replace: bool,
    ) -> Result<TenantInfo> {
        let (mut reader, archived, archive_created_ts) = ArchiveReader::open(source).await?;
        let server_name =
            parse_server_name(&archived.server_name.to_ascii_lowercase())?.to_string();
        let hosts = normalize_hosts(archived.hosts.clone())?;
        check_settings(&archived.settings)?;
        // Told at once, rather than after a large body was read for nothing; asked again
        // below, since the directory may change while the archive is read.
        self.import_target(&server_name, &hosts, replace)?;
        let record = TenantInfo {
            tenant_id: secrets::new_tenant_id(),
            server_name,
            hosts,
            settings: archived.settings,
            created_ts: archived.created_ts,
        };
        // The new database is filled before the control plane knows it: until the record
        // exists no request can reach it, and a failure leaves only storage to remove.
        if let Err(e) = self.fill_imported(&record, &mut reader).await {
            self.discard_import(&record.tenant_id).await;
            return Err(e);
        }
        let _guard = self.operator_lock.lock().await;
        let existing = match self.import_target(&record.server_name, &record.hosts, replace) {
            Ok(existing) => existing,
            Err(e) => {
                self.discard_import(&record.tenant_id).await;
                return Err(e);
            }
        };
        if let Some(old) = &existing {
            self.directory.write().remove(old);
            self.remove_data(old).await;
        }
        if let Err(e) = self.backend.control().insert_tenant(&record).await {
            self.discard_import(&record.tenant_id).await;
            return Err(conflict(e));
        }
        // A new tenant id: nothing loaded or cached under the old one can be served for it.
        self.directory.write().insert(record.clone());
        tracing::info!(
            server_name = %record.server_name,
            archive_created_ts,
            replaced = existing.is_some(),
            "tenant imported"
        );
        Ok(record)
    }

    /// The id of the tenant an import of `server_name` on `hosts` would replace: `Conflict`
    /// when there is one and not `replace`, or when another tenant serves one of the hosts.
    fn import_target(
        &self,
        server_name: &str,
        hosts: &[String],
        replace: bool,
    ) -> Result<Option<String>> {
        let directory = self.directory.read();
        let existing = directory.by_server_name.get(server_name).cloned();
        if existing.is_some() && !replace {
            return Err(Error::Conflict(format!(
                "Tenant {server_name} already exists; import with replace to overwrite it"
            )));
        }
        if let Some(host) = directory.taken_host(hosts, existing.as_deref()) {
            return Err(Error::Conflict(format!(
                "Host {host} is served by another tenant"
            )));
        }
        Ok(existing)
    }

    /// Opens (migrates) a new tenant database and writes the archive's rows into it as they
    /// are read, and its media into the blob store under the new tenant id, committing once
    /// the archive ended well and agreed with itself. On failure the caller removes both
    /// (`discard_import`).
    async fn fill_imported(
        &self,
        record: &TenantInfo,
        reader: &mut ArchiveReader<'_>,
    ) -> Result<()> {
        let store = self.backend.open_tenant(&record.tenant_id).await?;
        let result = async {
            let mut import = store.begin_import().await?;
            let target = ImportTarget {
                import: import.as_mut(),
                runtime: &self.runtime,
                record,
            };
            match copy_archive(reader, target).await {
                Ok(()) => import.commit().await.map_err(Error::from),
                Err(e) => {
                    import.abort().await;
                    Err(e)
                }
            }
        }
        .await;
        store.close().await;
        result
    }

    /// Removes the storage and the media of an import that failed; it never had a record or a
    /// handle.
    async fn discard_import(&self, tenant_id: &str) {
        if let Err(e) = self.backend.destroy_tenant(tenant_id).await {
            tracing::error!(tenant_id, error = %e, "could not remove a failed import");
        }
        self.remove_media(tenant_id).await;
    }

    /// Removes the tenant's references in the blob store, and the bytes no one else holds.
    async fn remove_media(&self, tenant_id: &str) {
        let removed = match self.runtime.blobs() {
            Ok(blobs) => blobs.remove_tenant(tenant_id).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::error!(tenant_id, error = %e, "could not delete tenant media");
        }
    }

    async fn remove_data(&self, tenant_id: &str) {
        if let Some((_, cell)) = self.loaded.remove(tenant_id)
            && let Some(tenant) = cell.get()
        {
            tenant.store().close().await;
        }
        if let Err(e) = self.backend.control().delete_tenant(tenant_id).await {
            tracing::error!(tenant_id, error = %e, "could not delete tenant record");
        }
        if let Err(e) = self.backend.destroy_tenant(tenant_id).await {
            tracing::error!(tenant_id, error = %e, "could not delete tenant data");
        }
        self.remove_media(tenant_id).await;
    }

    /// Drops the handles of tenants unused for the configured idle period, closing their
    /// databases: an idle tenant costs only its directory entry.
    pub async fn unload_idle(&self) -> usize {
        let idle_ms = i64::try_from(self.config.tenants.idle_unload_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(idle_ms);
        let idle: Vec<String> = self
            .loaded
            .iter()
            .filter(|e| e.value().get().is_some_and(|t| t.last_used_ms() < cutoff))
            .map(|e| e.key().clone())
            .collect();
        let mut unloaded = 0;
        for id in idle {
            let removed = self.loaded.remove_if(&id, |_, cell| {
                cell.get().is_some_and(|t| t.last_used_ms() < cutoff)
            });
            // Dropping the handle closes its database once requests still holding it finish.
            if removed.is_some() {
                unloaded += 1;
            }
        }
        let limits = self.config.rate_limits.clone();
        self.runtime
            .limiter()
            .prune(|key| match key.split('/').nth(1) {
                Some("register") => Some(limits.register_per_ip),
                Some("login-ip") => Some(limits.login_per_ip),
                Some("login-user") => Some(limits.login_per_user),
                _ => None,
            });
        unloaded
    }

    /// Unloads the least recently used tenants when the loaded ones are at the limit, so
    /// loading one more can't exhaust the open files. A sixteenth of the limit goes at once,
    /// so a stream of new tenants doesn't scan the loaded ones for every load.
    fn make_room(&self) {
        if self.loaded.len() < self.max_loaded {
            return;
        }
        let excess = self.loaded.len() + 1 - self.max_loaded + self.max_loaded / 16;
        let mut by_use: Vec<(i64, String)> = self
            .loaded
            .iter()
            .filter_map(|e| e.value().get().map(|t| (t.last_used_ms(), e.key().clone())))
            .collect();
        by_use.sort_unstable();
        for (last_used, id) in by_use.into_iter().take(excess) {
            // Dropping the handle closes its database once requests still holding it finish.
            self.loaded.remove_if(&id, |_, cell| {
                cell.get().is_some_and(|t| t.last_used_ms() == last_used)
            });
        }
        tracing::debug!(
            loaded = self.loaded.len(),
            "unloaded least recently used tenants"
        );
    }

    /// The handles of the tenants loaded now.
    pub(crate) fn loaded_handles(&self) -> Vec<Tenant> {
        self.loaded
            .iter()
            .filter_map(|e| e.value().get().cloned())
            .collect()
    }

    /// Number of tenants whose handle is loaded now.
    pub fn loaded_tenants(&self) -> usize {
        self.loaded.len()
    }

    /// Tells long-polling requests (`/sync`) to answer now with what they have, and those that
    /// start later not to wait: the process is shutting down and should not wait out their
    /// timeouts. Everything else carries on until `shutdown`.
    pub fn begin_shutdown(&self) {
        self.runtime.begin_shutdown();
    }

    /// What the tenants share to federate; the binary installs its transports.
    pub fn federation(&self) -> &crate::federation::Federation {
        self.runtime.federation()
    }

    /// The settings of the tenant answering on `name`, one of its hosts or its server name,
    /// without loading it: a TLS handshake picks the tenant's certificate by it, and must not
    /// wait for a database.
    pub fn settings_for_name(&self, name: &str) -> Option<TenantSettings> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let directory = self.directory.read();
        let id = directory
            .by_host
            .get(&name)
            .or_else(|| directory.by_server_name.get(&name))?;
        directory.records.get(id).map(|r| r.settings.clone())
    }

    /// Whether a tenant of this process has `server_name`, loaded or not.
    pub fn serves_server_name(&self, server_name: &str) -> bool {
        self.directory
            .read()
            .by_server_name
            .contains_key(&server_name.to_ascii_lowercase())
    }

    /// Gives the tenant a new signing key; the old one stays published as expired, so what
    /// it signed still verifies. Returns the new key's id.
    pub async fn rotate_signing_key(&self, server_name: &str) -> Result<String> {
        let _operator = self.operator_lock.lock().await;
        let tenant = self.tenant_by_server_name(server_name).await?;
        tenant.rotate_signing_key().await
    }

    /// Closes every database cleanly; the platform can't serve afterwards.
    pub async fn shutdown(&self) {
        // The in-process transport holds the HTTP router, which holds the platform.
        self.runtime.federation().transports().clear();
        let cells: Vec<_> = self.loaded.iter().map(|e| e.value().clone()).collect();
        self.loaded.clear();
        for cell in cells {
            if let Some(tenant) = cell.get() {
                tenant.store().close().await;
            }
        }
        self.backend.close().await;
    }
}

/// The soft limit on open files of this process, as `/proc/self/limits` shows it (Linux);
/// `None` when unknown or unlimited.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn spawn_reaper(platform: Weak<Platform>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(REAPER_INTERVAL);
        interval.tick().await;
        loop {
            interval.tick().await;
            let Some(platform) = platform.upgrade() else {
                return;
            };
            let unloaded = platform.unload_idle().await;
            if unloaded > 0 {
                tracing::debug!(unloaded, "unloaded idle tenants");
            }
        }
    });
}

/// Where an import writes: the new tenant's database transaction, and the blob store.
struct ImportTarget<'a> {
    import: &'a mut dyn TableImport,
    runtime: &'a Runtime,
    record: &'a TenantInfo,
}

/// Every chunk of the archive, checked and written, and every blob, checked and kept as the
/// new tenant's; the archive's refusals as they are, the store's refusal of rows as "does not
/// fit".
async fn copy_archive(reader: &mut ArchiveReader<'_>, target: ImportTarget<'_>) -> Result<()> {
    let ImportTarget {
        import,
        runtime,
        record,
    } = target;
    let mut consistency = Consistency::new(&record.server_name);
    let refused = loop {
        let chunk = match reader.next().await? {
            None => break consistency.finish(),
            Some(Entry::Chunk(chunk)) => chunk,
            Some(Entry::Blob(sha256)) => {
                // Only blobs the imported records name, each once, and only as many bytes as
                // they say: the media tables come before any blob.
                let kept = match consistency.blob(&sha256) {
                    Ok(size) => {
                        import_blob(reader, runtime, &record.tenant_id, &sha256, size).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = kept {
                    break Err(e);
                }
                continue;
            }
        };
        if let Err(e) = consistency.chunk(&chunk) {
            break Err(e);
        }
        if let Err(e) = import.write(&chunk).await {
            break Err(match e {
                StoreError::Corrupt(m) => {
                    Error::InvalidParam(format!("The archive does not fit this server: {m}"))
                }
                other => other.into(),
            });
        }
    };
    match refused {
        // Rows refused, or an archive disagreeing with itself, midway: a damaged line (which
        // the checksum only shows at the end) is the likelier cause and the more useful answer,
        // so the rest is read to tell.
        Err(e @ Error::InvalidParam(_)) => {
            reader.check_rest().await?;
            Err(e)
        }
        other => other,
    }
}

/// Receives one blob of the archive and makes it the new tenant's. Kept before the import
/// commits, as its records are written: if the import fails, `discard_import` removes the
/// tenant's blobs with its database.
async fn import_blob(
    reader: &mut ArchiveReader<'_>,
    runtime: &Runtime,
    tenant_id: &str,
    sha256: &str,
    size: u64,
) -> Result<()> {
    let blobs = runtime.blobs()?;
    let received = receive_blob(reader, blobs, sha256, size).await?;
    blobs.keep(tenant_id, received).await?;
    Ok(())
}

fn conflict(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(what) => Error::Conflict(format!("Already taken: {what}")),
        other => other.into(),
    }
}

fn normalize_hosts(hosts: Vec<String>) -> Result<Vec<String>> {
    let mut normalized: Vec<String> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let host = normalize_host(&host)?;
        if !normalized.contains(&host) {
            normalized.push(host);
        }
    }
    if normalized.is_empty() {
        return Err(Error::InvalidParam(
            "A tenant needs at least one host".into(),
        ));
    }
    Ok(normalized)
}

fn check_settings(settings: &TenantSettings) -> Result<()> {
    if let Some(url) = &settings.client_base_url {
        check_client_base_url(url)?;
    }
    if let Some(server) = &settings.federation_server {
        parse_server_name(server)?;
    }
    // The first admin is a user too, so 0 could never hold; closing registration is the
    // way to stop new users.
    if settings.media.max_upload_bytes == Some(0) {
        return Err(Error::InvalidParam(
            "media max_upload_bytes must be at least 1".into(),
        ));
    }
    if settings.quotas.max_messages_per_second == Some(0) {
        return Err(Error::InvalidParam(
            "max_messages_per_second must be at least 1; suspend the tenant to stop it".into(),
        ));
    }
    if settings.max_users == Some(0) {
        return Err(Error::InvalidParam(
            "max_users must be at least 1 (the admin counts); set registration to closed to stop new users".into(),
        ));
    }
    Ok(())
}

/// The homeserver URL clients are sent to (`m.homeserver.base_url`): an absolute http(s) URL
/// with a host, and nothing a client would drop or misread (credentials, query, fragment).
fn check_client_base_url(raw: &str) -> Result<()> {
    let invalid = |why: &str| {
        Error::InvalidParam(format!(
            "client_base_url {raw:?} {why}; expected e.g. https://matrix.example.org"
        ))
    };
    let url = url::Url::parse(raw).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("is not an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not hold credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    Ok(())
}

fn apply_settings(settings: &mut TenantSettings, update: TenantUpdate) {
    apply_media_settings(&mut settings.media, &update);
    if let Some(forget) = update.forget_empty_rooms {
        settings.rooms.forget_empty_rooms = forget;
    }
    if let Some(secs) = update.forget_empty_rooms_after_secs {
        settings.rooms.forget_empty_rooms_after_secs = secs;
    }
    if let Some(registration) = update.registration {
        settings.registration = registration;
    }
    if let Some(suspended) = update.suspended {
        settings.suspended = suspended;
    }
    if let Some(allow_guests) = update.allow_guests {
        settings.allow_guests = allow_guests;
    }
    if let Some(max_users) = update.max_users {
        settings.max_users = max_users;
    }
    if let Some(max) = update.max_rooms {
        settings.quotas.max_rooms = max;
    }
    if let Some(max) = update.max_storage_bytes {
        settings.quotas.max_storage_bytes = max;
    }
    if let Some(max) = update.max_messages_per_second {
        settings.quotas.max_messages_per_second = max;
    }
    if let Some(url) = update.client_base_url {
        settings.client_base_url = url;
    }
    if let Some(server) = update.federation_server {
        settings.federation_server = server;
    }
    if let Some(certificate) = update.tls_certificate {
        settings.tls_certificate = certificate;
    }
    if let Some(key) = update.tls_key {
        settings.tls_key = key;
    }
}

fn apply_media_settings(media: &mut crate::tenants::MediaSettings, update: &TenantUpdate) {
    if let Some(bytes) = update.media_max_upload_bytes {
        media.max_upload_bytes = bytes;
    }
    if let Some(bytes) = update.media_quota_bytes {
        media.quota_bytes = bytes;
    }
    if let Some(bytes) = update.media_user_quota_bytes {
        media.user_quota_bytes = bytes;
    }
    if let Some(on) = update.url_previews {
        media.url_previews = on;
    }
    match update.freeze_unauthenticated_media {
        Some(true) if media.unauthenticated_frozen_ts.is_none() => {
            media.unauthenticated_frozen_ts = Some(now_ms());
        }
        Some(false) => media.unauthenticated_frozen_ts = None,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut TenantSettings)) -> Result<()> {
        let mut settings = TenantSettings::default();
        edit(&mut settings);
        check_settings(&settings)
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        assert!(with(|_| ()).is_ok());
        assert!(with(|s| s.max_users = Some(1)).is_ok());
        assert!(with(|s| s.max_users = Some(0)).is_err());
        for good in [
            "https://matrix.example.org",
            "http://127.0.0.1:8008/",
            "https://example.org/matrix",
        ] {
            assert!(
                with(|s| s.client_base_url = Some(good.into())).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "http://",
            "https://:443/",
            "https://a b.test",
            "matrix.example.org",
            "ftp://example.org",
            "https://user:pw@example.org",
            "https://example.org/?x=1",
        ] {
            let result = with(|s| s.client_base_url = Some(bad.into()));
            assert!(
                matches!(&result, Err(Error::InvalidParam(m)) if m.contains("client_base_url")),
                "{bad}: {result:?}"
            );
        }
    }
}
