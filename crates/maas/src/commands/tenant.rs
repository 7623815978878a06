//! `maas tenant …`: create, list, show, set, suspend, resume, delete, export and import tenants
//! through the operator API, and the readable rendering of tenant objects.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::output::{fields, size, table, timestamp, yes_no};
use super::{Ctx, tenant_path};
use crate::cli::{
    CountSetting, SizeSetting, Switch, TenantCommand, TenantCreateArgs, TenantSetArgs,
    TenantSharedSecretArgs,
};

/// The operator API's tenant object, as far as the CLI shows it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Tenant {
    pub tenant_id: String,
    pub server_name: String,
    pub hosts: Vec<String>,
    pub registration: String,
    pub suspended: bool,
    pub allow_guests: bool,
    pub max_users: Option<u64>,
    pub client_base_url: Option<String>,
    pub federation_server: Option<String>,
    /// Files of the certificate the federation listener presents for the tenant.
    pub tls_certificate: Option<String>,
    pub tls_key: Option<String>,
    pub created_ts: i64,
    pub user_count: u64,
    /// The id of the key signing for the tenant now.
    pub signing_key: String,
    /// Absent from servers older than the content repository; nothing is shown then.
    pub media: Option<TenantMedia>,
    /// Absent from servers older than the setting; nothing is shown then.
    pub forget_empty_rooms: Option<bool>,
    pub forget_empty_rooms_after_secs: Option<u64>,
    /// Absent from servers older than quotas; nothing is shown then.
    pub quotas: Option<TenantQuotas>,
    pub usage: Option<TenantUsage>,
    /// Present only in the answer to a create.
    pub admin: Option<CreatedAdmin>,
}

/// The tenant's content repository settings and what its users store.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TenantMedia {
    /// The limit in force: the tenant's own, or the platform's when lower or unset.
    pub max_upload_bytes: u64,
    pub quota_bytes: Option<u64>,
    pub user_quota_bytes: Option<u64>,
    pub url_previews: bool,
    pub unauthenticated_frozen_ts: Option<i64>,
    pub usage_bytes: u64,
}

/// The tenant's quotas besides users and media; `None`: no quota.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TenantQuotas {
    pub max_rooms: Option<u64>,
    pub max_storage_bytes: Option<u64>,
    pub max_messages_per_second: Option<u64>,
}

/// What the tenant holds (measured at most seconds ago).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TenantUsage {
    pub users: u64,
    pub rooms: u64,
    pub database_bytes: u64,
    pub media_bytes: u64,
    pub storage_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreatedAdmin {
    pub user_id: String,
    pub password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TenantList {
    tenants: Vec<Tenant>,
}

pub async fn run(ctx: &Ctx, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create(args) => create(ctx, args).await,
        TenantCommand::List => list(ctx).await,
        TenantCommand::Show(args) => show(ctx, &args.server_name).await,
        TenantCommand::Set(args) => set(ctx, args).await,
        TenantCommand::Suspend(args) => set_suspended(ctx, &args.server_name, true).await,
        TenantCommand::Resume(args) => set_suspended(ctx, &args.server_name, false).await,
        // `--yes` was checked before connecting.
        TenantCommand::Delete(args) => delete(ctx, &args.server_name).await,
        TenantCommand::RotateKey(args) => rotate_key(ctx, &args.server_name).await,
        TenantCommand::SharedSecret(args) => shared_secret(ctx, args).await,
        TenantCommand::Export(args) => super::archive::export(ctx, args).await,
        TenantCommand::Import(args) => super::archive::import(ctx, args).await,
    }
}

async fn create(ctx: &Ctx, args: TenantCreateArgs) -> anyhow::Result<()> {
    let answer = ctx.client.post("/tenants", &create_body(args)).await?;
    ctx.print(&answer, |tenant: Tenant| render_created(&tenant))
}

fn create_body(args: TenantCreateArgs) -> Value {
    let mut body = Map::new();
    body.insert("server_name".into(), json!(args.server_name));
    if !args.hosts.is_empty() {
        body.insert("hosts".into(), json!(args.hosts));
    }
    insert_some(
        &mut body,
        "registration",
        args.registration.map(|r| json!(r)),
    );
    insert_some(&mut body, "max_users", args.max_users.map(|n| json!(n)));
    if args.allow_guests {
        body.insert("allow_guests".into(), json!(true));
    }
    insert_some(
        &mut body,
        "admin_localpart",
        args.admin_localpart.map(|s| json!(s)),
    );
    insert_some(
        &mut body,
        "client_base_url",
        args.client_base_url.map(|s| json!(s)),
    );
    insert_some(
        &mut body,
        "federation_server",
        args.federation_server.map(|s| json!(s)),
    );
    Value::Object(body)
}

fn insert_some(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        body.insert(key.into(), value);
    }
}

/// Same wording as the first start of `maas serve`, so both read alike.
fn render_created(tenant: &Tenant) -> String {
    let mut out = format!(
        "Created tenant {} (hosts: {}), {} registration\n",
        tenant.server_name,
        tenant.hosts.join(", "),
        tenant.registration
    );
    if let Some(admin) = &tenant.admin {
        out.push_str(&format!(
            "Admin user: {}\nAdmin password: {}\n",
            admin.user_id, admin.password
        ));
    }
    out
}

async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.get("/tenants").await?;
    ctx.print(&answer, |list: TenantList| render_list(&list.tenants))
}

fn render_list(tenants: &[Tenant]) -> String {
    if tenants.is_empty() {
        return "No tenants.\n".into();
    }
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.server_name.clone(),
                t.hosts.join(","),
                t.registration.clone(),
                users_of(t),
                status_of(t).into(),
                timestamp(t.created_ts),
            ]
        })
        .collect();
    table(
        &[
            "SERVER NAME",
            "HOSTS",
            "REGISTRATION",
            "USERS",
            "STATUS",
            "CREATED",
        ],
        &rows,
    )
}

fn users_of(tenant: &Tenant) -> String {
    match tenant.max_users {
        Some(max) => format!("{}/{max}", tenant.user_count),
        None => tenant.user_count.to_string(),
    }
}

fn status_of(tenant: &Tenant) -> &'static str {
    if tenant.suspended {
        "suspended"
    } else {
        "active"
    }
}

async fn show(ctx: &Ctx, server_name: &str) -> anyhow::Result<()> {
    let answer = ctx.client.get(&tenant_path(server_name)).await?;
    ctx.print(&answer, |tenant: Tenant| render_tenant(&tenant))
}

/// The tenant's certificate files, or that the platform's default is presented.
fn tls_of(tenant: &Tenant) -> String {
    match (&tenant.tls_certificate, &tenant.tls_key) {
        (Some(certificate), Some(key)) => format!("{certificate} (key {key})"),
        _ => "(platform default)".into(),
    }
}

pub fn render_tenant(tenant: &Tenant) -> String {
    let or_default = |value: &Option<String>| value.clone().unwrap_or_else(|| "(default)".into());
    let mut pairs = vec![
        ("Server name", tenant.server_name.clone()),
        ("Tenant id", tenant.tenant_id.clone()),
        ("Hosts", tenant.hosts.join(", ")),
        ("Registration", tenant.registration.clone()),
        ("Status", status_of(tenant).into()),
        ("Guests allowed", yes_no(tenant.allow_guests)),
        ("Users", users_of(tenant)),
        ("Client base URL", or_default(&tenant.client_base_url)),
        ("Federation server", or_default(&tenant.federation_server)),
        ("TLS certificate", tls_of(tenant)),
        ("Signing key", tenant.signing_key.clone()),
        ("Created", timestamp(tenant.created_ts)),
    ];
    if let Some(forget) = tenant.forget_empty_rooms {
        let after = tenant.forget_empty_rooms_after_secs.unwrap_or_default();
        let shown = if forget {
            format!("forgotten {after} s after their last member left")
        } else {
            "kept".into()
        };
        pairs.push(("Empty rooms", shown));
    }
    if let (Some(quotas), Some(usage)) = (&tenant.quotas, &tenant.usage) {
        pairs.extend(quota_fields(quotas, usage));
    }
    if let Some(media) = &tenant.media {
        pairs.extend(media_fields(media));
    }
    fields(&pairs)
}

/// Usage against the quotas (users are shown with `max_users` above).
fn quota_fields(quotas: &TenantQuotas, usage: &TenantUsage) -> [(&'static str, String); 3] {
    let rooms = match quotas.max_rooms {
        Some(max) => format!("{} of {max}", usage.rooms),
        None => usage.rooms.to_string(),
    };
    let stored = format!(
        "{} (database {}, media {})",
        size(usage.storage_bytes),
        size(usage.database_bytes),
        size(usage.media_bytes)
    );
    let storage = match quotas.max_storage_bytes {
        Some(max) => format!("{stored} of {}", size(max)),
        None => stored,
    };
    let rate = quotas
        .max_messages_per_second
        .map_or_else(|| "no limit".into(), |n| format!("{n} per second"));
    [
        ("Rooms", rooms),
        ("Storage", storage),
        ("Message rate", rate),
    ]
}

fn media_fields(media: &TenantMedia) -> [(&'static str, String); 6] {
    let quota = |bytes: Option<u64>| bytes.map_or_else(|| "none".into(), size);
    let usage = match media.quota_bytes {
        Some(quota) => format!("{} of {}", size(media.usage_bytes), size(quota)),
        None => size(media.usage_bytes),
    };
    let frozen = match media.unauthenticated_frozen_ts {
        Some(ts) => format!("frozen: only media stored before {}", timestamp(ts)),
        None => "served (not frozen)".into(),
    };
    [
        ("Media stored", usage),
        ("Max upload size", size(media.max_upload_bytes)),
        ("Media quota", quota(media.quota_bytes)),
        ("User media quota", quota(media.user_quota_bytes)),
        ("URL previews", on_off(media.url_previews)),
        ("Unauthenticated media", frozen),
    ]
}

/// The spelling of the `on|off` flags that set it.
fn on_off(value: bool) -> String {
    if value { "on".into() } else { "off".into() }
}

async fn set(ctx: &Ctx, args: TenantSetArgs) -> anyhow::Result<()> {
    let server_name = args.server_name.clone();
    let body = patch_body(args);
    if body.is_empty() {
        anyhow::bail!("nothing to change; see `maas tenant set --help`");
    }
    let answer = ctx
        .client
        .patch(&tenant_path(&server_name), &Value::Object(body))
        .await?;
    print_warnings(&answer);
    ctx.print(&answer, |tenant: Tenant| render_tenant(&tenant))
}

/// The API's `warnings` (a change it made but the operator may not have meant), on stderr so
/// that `--json` output stays the answer alone.
fn print_warnings(answer: &Value) {
    let warnings = answer.get("warnings").and_then(Value::as_array);
    for warning in warnings.into_iter().flatten().filter_map(Value::as_str) {
        eprintln!("warning: {warning}");
    }
}

/// Only the settings given on the command line; clearing flags send `null`.
fn patch_body(args: TenantSetArgs) -> Map<String, Value> {
    let mut body = Map::new();
    if !args.hosts.is_empty() {
        body.insert("hosts".into(), json!(args.hosts));
    }
    insert_some(
        &mut body,
        "registration",
        args.registration.map(|r| json!(r)),
    );
    insert_some(
        &mut body,
        "max_users",
        clearable(args.max_users.map(|n| json!(n)), args.no_max_users),
    );
    if args.allow_guests || args.no_guests {
        body.insert("allow_guests".into(), json!(args.allow_guests));
    }
    let base_url = clearable(
        args.client_base_url.map(|s| json!(s)),
        args.no_client_base_url,
    );
    insert_some(&mut body, "client_base_url", base_url);
    let federation = clearable(
        args.federation_server.map(|s| json!(s)),
        args.no_federation_server,
    );
    insert_some(&mut body, "federation_server", federation);
    if args.no_tls_certificate {
        body.insert("tls_certificate".into(), Value::Null);
        body.insert("tls_key".into(), Value::Null);
    }
    // clap requires both files or neither.
    if let (Some(certificate), Some(key)) = (&args.tls_certificate, &args.tls_key) {
        body.insert("tls_certificate".into(), json!(absolute(certificate)));
        body.insert("tls_key".into(), json!(absolute(key)));
    }
    let sizes = [
        ("media_max_upload_bytes", args.max_upload_size),
        ("media_quota_bytes", args.media_quota),
        ("media_user_quota_bytes", args.user_media_quota),
        ("max_storage_bytes", args.storage_quota),
    ];
    for (key, setting) in sizes {
        insert_some(&mut body, key, setting.map(size_value));
    }
    let counts = [
        ("max_rooms", args.max_rooms),
        ("max_messages_per_second", args.max_messages_per_second),
    ];
    for (key, setting) in counts {
        insert_some(&mut body, key, setting.map(count_value));
    }
    let switches = [
        ("url_previews", args.url_previews),
        (
            "freeze_unauthenticated_media",
            args.freeze_unauthenticated_media,
        ),
        ("forget_empty_rooms", args.forget_empty_rooms),
    ];
    for (key, switch) in switches {
        insert_some(&mut body, key, switch.map(|s| json!(Switch::is_on(s))));
    }
    body
}

/// A count, or `null` for `none`.
fn count_value(setting: CountSetting) -> Value {
    match setting {
        CountSetting::Count(n) => json!(n),
        CountSetting::Unset => Value::Null,
    }
}

/// A size, or `null` for `default`/`none`: the API's "no setting of the tenant's own".
fn size_value(setting: SizeSetting) -> Value {
    match setting {
        SizeSetting::Bytes(bytes) => json!(bytes),
        SizeSetting::Unset => Value::Null,
    }
}

/// The server reads the files, maybe from another working directory: a path relative to ours
/// is sent as the absolute path it means here.
fn absolute(path: &Path) -> String {
    let path = std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path));
    path.to_string_lossy().into_owned()
}

/// A new value, `null` when cleared, or nothing when neither flag was given.
fn clearable(value: Option<Value>, clear: bool) -> Option<Value> {
    if clear { Some(Value::Null) } else { value }
}

async fn set_suspended(ctx: &Ctx, server_name: &str, suspended: bool) -> anyhow::Result<()> {
    let body = json!({ "suspended": suspended });
    let answer = ctx.client.patch(&tenant_path(server_name), &body).await?;
    ctx.print(&answer, |tenant: Tenant| {
        if suspended {
            format!(
                "Suspended tenant {}: its client API answers 403 M_FORBIDDEN, its data is kept.\n",
                tenant.server_name
            )
        } else {
            format!("Resumed tenant {}.\n", tenant.server_name)
        }
    })
}

async fn rotate_key(ctx: &Ctx, server_name: &str) -> anyhow::Result<()> {
    let path = format!("{}/rotate_key", tenant_path(server_name));
    let answer = ctx
        .client
        .post(&path, &Value::Object(Default::default()))
        .await?;
    ctx.print(&answer, |rotated: Value| {
        let key = rotated["signing_key"].as_str().unwrap_or_default();
        format!(
            "{server_name} now signs with {key}; its previous keys stay published as expired.\n"
        )
    })
}

/// Shows, replaces (`--rotate`) or removes (`--disable`) the tenant's registration secret.
async fn shared_secret(ctx: &Ctx, args: TenantSharedSecretArgs) -> anyhow::Result<()> {
    let path = format!("{}/shared_secret", tenant_path(&args.server_name));
    let answer = if args.rotate {
        ctx.client
            .post(&path, &Value::Object(Default::default()))
            .await?
    } else if args.disable {
        ctx.client.delete(&path).await?
    } else {
        ctx.client.get(&path).await?
    };
    let server_name = args.server_name;
    ctx.print(&answer, |shown: Value| {
        match shown["registration_shared_secret"].as_str() {
            Some(secret) => format!("{secret}\n"),
            None => format!("{server_name} has no registration shared secret: shared-secret registration is off.\n"),
        }
    })
}

async fn delete(ctx: &Ctx, server_name: &str) -> anyhow::Result<()> {
    let answer = ctx.client.delete(&tenant_path(server_name)).await?;
    ctx.print(&answer, |_: Value| {
        format!("Deleted tenant {server_name} and all its data.\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Registration;

    fn set_args() -> TenantSetArgs {
        TenantSetArgs {
            server_name: "x.test".into(),
            hosts: vec![],
            registration: None,
            max_users: None,
            no_max_users: false,
            allow_guests: false,
            no_guests: false,
            client_base_url: None,
            no_client_base_url: false,
            federation_server: None,
            no_federation_server: false,
            tls_certificate: None,
            tls_key: None,
            no_tls_certificate: false,
            max_upload_size: None,
            media_quota: None,
            user_media_quota: None,
            max_rooms: None,
            storage_quota: None,
            max_messages_per_second: None,
            url_previews: None,
            freeze_unauthenticated_media: None,
            forget_empty_rooms: None,
        }
    }

    #[test]
    fn quotas_are_sent_as_numbers_or_null() {
        let args = TenantSetArgs {
            max_rooms: Some(CountSetting::Count(0)),
            storage_quota: Some(SizeSetting::Bytes(1 << 30)),
            max_messages_per_second: Some(CountSetting::Unset),
            ..set_args()
        };
        assert_eq!(
            Value::Object(patch_body(args)),
            json!({
                "max_rooms": 0,
                "max_storage_bytes": 1_073_741_824,
                "max_messages_per_second": null,
            })
        );
    }

    #[test]
    fn show_reads_usage_against_quotas() {
        let tenant: Tenant = serde_json::from_value(json!({
            "server_name": "x.test",
            "quotas": {"max_rooms": 10, "max_storage_bytes": 1_073_741_824,
                       "max_messages_per_second": null},
            "usage": {"users": 2, "rooms": 3, "database_bytes": 1024,
                      "media_bytes": 512, "storage_bytes": 1536},
            "forget_empty_rooms": true, "forget_empty_rooms_after_secs": 300,
        }))
        .expect("tenant");
        let out = render_tenant(&tenant);
        for line in [
            "Rooms:             3 of 10\n",
            "Storage:           1.5 KiB (database 1 KiB, media 512 B) of 1 GiB\n",
            "Message rate:      no limit\n",
            "Empty rooms:       forgotten 300 s after their last member left\n",
        ] {
            assert!(out.contains(line), "{line:?} missing:\n{out}");
        }
    }

    #[test]
    fn media_settings_are_sent_as_bytes_or_null() {
        let args = TenantSetArgs {
            max_upload_size: Some(SizeSetting::Bytes(1 << 20)),
            media_quota: Some(SizeSetting::Unset),
            user_media_quota: Some(SizeSetting::Bytes(0)),
            url_previews: Some(Switch::On),
            freeze_unauthenticated_media: Some(Switch::Off),
            ..set_args()
        };
        assert_eq!(
            Value::Object(patch_body(args)),
            json!({
                "media_max_upload_bytes": 1_048_576,
                "media_quota_bytes": null,
                "media_user_quota_bytes": 0,
                "url_previews": true,
                "freeze_unauthenticated_media": false,
            })
        );
        let args = TenantSetArgs {
            max_upload_size: Some(SizeSetting::Unset),
            ..set_args()
        };
        assert_eq!(
            Value::Object(patch_body(args)),
            json!({"media_max_upload_bytes": null})
        );
    }

    #[test]
    fn show_reads_media_sizes_in_units() {
        let tenant: Tenant = serde_json::from_value(json!({
            "server_name": "x.test",
            "media": {
                "max_upload_bytes": 52_428_800, "quota_bytes": 1_073_741_824,
                "user_quota_bytes": null, "url_previews": false,
                "unauthenticated_frozen_ts": 0, "usage_bytes": 1536
            }
        }))
        .expect("tenant");
        let out = render_tenant(&tenant);
        for line in [
            "Media stored:          1.5 KiB of 1 GiB\n",
            "Max upload size:       50 MiB\n",
            "Media quota:           1 GiB\n",
            "User media quota:      none\n",
            "URL previews:          off\n",
            "Unauthenticated media: frozen: only media stored before 1970-01-01 00:00 UTC\n",
        ] {
            assert!(out.contains(line), "{line:?} missing:\n{out}");
        }
        // An answer without `media` (an older server) shows the rest.
        let tenant: Tenant =
            serde_json::from_value(json!({"server_name": "x.test"})).expect("tenant");
        assert!(!render_tenant(&tenant).contains("Media"));
    }

    #[test]
    fn patch_sends_only_given_settings() {
        assert!(patch_body(set_args()).is_empty());
        let args = TenantSetArgs {
            registration: Some(Registration::Token),
            no_max_users: true,
            no_guests: true,
            ..set_args()
        };
        assert_eq!(
            Value::Object(patch_body(args)),
            json!({"registration": "token", "max_users": null, "allow_guests": false})
        );
    }

    #[test]
    fn certificate_files_are_sent_together_as_absolute_paths() {
        let args = TenantSetArgs {
            tls_certificate: Some("certs/a.crt".into()),
            tls_key: Some("/etc/maas/a.key".into()),
            ..set_args()
        };
        let body = patch_body(args);
        let certificate = body["tls_certificate"].as_str().expect("certificate");
        assert!(Path::new(certificate).is_absolute(), "{certificate}");
        assert!(certificate.ends_with("certs/a.crt"), "{certificate}");
        assert_eq!(body["tls_key"], "/etc/maas/a.key");
        let cleared = patch_body(TenantSetArgs {
            no_tls_certificate: true,
            ..set_args()
        });
        assert_eq!(
            Value::Object(cleared),
            json!({"tls_certificate": null, "tls_key": null})
        );
    }

    #[test]
    fn create_sends_defaults_as_absent() {
        let args = TenantCreateArgs {
            server_name: "example.test".into(),
            hosts: vec![],
            registration: Some(Registration::Open),
            max_users: None,
            allow_guests: false,
            admin_localpart: None,
            client_base_url: None,
            federation_server: None,
        };
        assert_eq!(
            create_body(args),
            json!({"server_name": "example.test", "registration": "open"})
        );
    }

    #[test]
    fn created_tenant_reads_like_the_first_start() {
        let tenant: Tenant = serde_json::from_value(json!({
            "server_name": "localhost", "hosts": ["localhost", "127.0.0.1"], "registration": "open",
            "admin": {"user_id": "@admin:localhost", "password": "pw"}
        }))
        .expect("tenant");
        assert_eq!(
            render_created(&tenant),
            "Created tenant localhost (hosts: localhost, 127.0.0.1), open registration\n\
             Admin user: @admin:localhost\nAdmin password: pw\n"
        );
    }

    #[test]
    fn forgetting_empty_rooms_is_switched_on_and_off() {
        for (switch, on) in [(Switch::On, true), (Switch::Off, false)] {
            let args = TenantSetArgs {
                forget_empty_rooms: Some(switch),
                ..set_args()
            };
            assert_eq!(
                Value::Object(patch_body(args)),
                json!({ "forget_empty_rooms": on })
            );
        }
    }
}
