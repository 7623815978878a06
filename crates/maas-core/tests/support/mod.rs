//! What core's integration tests share: a platform on a real SQLite backend in a temporary
//! directory, its `localhost` tenant, and users to act as.
#![allow(dead_code)]

use std::sync::Arc;

use maas_core::accounts::AuthedUser;
use maas_core::config::Config;
use maas_core::{Platform, Tenant};
use maas_store::sqlite::SqliteBackend;
use ruma::{OwnedDeviceId, UserId};

/// A running platform and its first tenant; the directory lives as long as it.
pub struct Platformed {
    pub dir: tempfile::TempDir,
    pub platform: Arc<Platform>,
    pub tenant: Tenant,
}

/// A platform on a fresh data directory, with its `localhost` tenant; cheap password hashing.
pub async fn platform() -> Platformed {
    platform_with(|_| {}).await
}

/// [`platform`] with its configuration changed by `configure`.
pub async fn platform_with(configure: impl FnOnce(&mut Config)) -> Platformed {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.operator.token = Some("operator-token".into());
    config.passwords.memory_kib = 1024;
    config.passwords.iterations = 1;
    configure(&mut config);
    let backend = SqliteBackend::open(dir.path()).await.expect("backend");
    let platform = Platform::start(config, Arc::new(backend))
        .await
        .expect("platform");
    platform.bootstrap_default_tenant().await.expect("tenant");
    let tenant = platform
        .tenant_by_server_name("localhost")
        .await
        .expect("tenant");
    Platformed {
        dir,
        platform,
        tenant,
    }
}

/// A new user of `tenant` (with display name `name`), as a request of theirs would be.
pub async fn authed(tenant: &Tenant, localpart: &str, name: Option<&str>) -> AuthedUser {
    tenant
        .accounts()
        .create_user(localpart, Some("pw-long-enough-1"), false, name)
        .await
        .expect("user");
    AuthedUser {
        user_id: UserId::parse(format!("@{localpart}:localhost")).expect("user id"),
        localpart: localpart.to_owned(),
        device_id: OwnedDeviceId::from("DEVICE"),
        admin: false,
        guest: false,
    }
}
