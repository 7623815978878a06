//! The control plane and its tenants, on both backends: tenants and their hosts (CRUD, conflicts,
//! updates, corrupt rows), isolation between tenants, destroying a tenant and reopening. How each
//! backend lays tenants out is in `sqlite_only` and `postgres_only`.

use maas_store::{Backend, RegistrationPolicy, StoreError, TenantInfo, TenantSettings};

mod support;
use support::{Connections, Fixture, TENANT, device, on_both_backends, reg_token, token, user};

on_both_backends!(tenants_crud);
on_both_backends!(tenant_conflicts);
on_both_backends!(update_tenant_replaces_hosts_and_settings);
on_both_backends!(corrupt_settings_are_reported);
on_both_backends!(tenants_are_isolated, multi_thread);
on_both_backends!(a_destroyed_tenant_starts_empty_when_opened_again);
on_both_backends!(data_survives_reopening);
on_both_backends!(federation_pending_marks);

fn tenant(id: &str, server_name: &str, hosts: &[&str]) -> TenantInfo {
    TenantInfo {
        tenant_id: id.to_owned(),
        server_name: server_name.to_owned(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        settings: TenantSettings::default(),
        created_ts: 1_000,
    }
}

async fn tenants_crud(backend: &dyn Backend) {
    let control = backend.control();
    let mut acme = tenant(
        "acme",
        "acme.example",
        &["matrix.acme.example", "acme.example"],
    );
    acme.settings.registration = RegistrationPolicy::Token;
    acme.settings.max_users = Some(10);
    control.insert_tenant(&acme).await.unwrap();
    let other = tenant("other", "other.example", &["other.example"]);
    control.insert_tenant(&other).await.unwrap();
    let bare = tenant("bare", "bare.example", &[]);
    control.insert_tenant(&bare).await.unwrap();

    assert_eq!(control.tenant("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(
        control.tenant_by_server_name("acme.example").await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(control.tenant("bare").await.unwrap(), Some(bare.clone()));
    assert_eq!(control.tenant("nobody").await.unwrap(), None);
    assert_eq!(
        control
            .tenant_by_server_name("nobody.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        control.tenants().await.unwrap(),
        vec![acme.clone(), bare.clone(), other.clone()]
    );

    control.delete_tenant("other").await.unwrap();
    control.delete_tenant("bare").await.unwrap();
    assert_eq!(control.tenants().await.unwrap(), vec![acme.clone()]);
    assert!(matches!(
        control.delete_tenant("other").await,
        Err(StoreError::NotFound(_))
    ));

    // The hosts of a deleted tenant are free again.
    control
        .insert_tenant(&tenant("again", "again.example", &["other.example"]))
        .await
        .unwrap();
    backend.close().await;
}

async fn tenant_conflicts(backend: &dyn Backend) {
    let control = backend.control();
    control
        .insert_tenant(&tenant("a", "a.example", &["a.example", "www.a.example"]))
        .await
        .unwrap();

    let same_id = tenant("a", "z.example", &[]);
    let same_name = tenant("b", "a.example", &["b.example"]);
    let same_host = tenant("c", "c.example", &["c.example", "www.a.example"]);
    let host_twice = tenant("d", "d.example", &["d.example", "d.example"]);
    for conflicting in [same_id, same_name, same_host, host_twice] {
        let err = control.insert_tenant(&conflicting).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // Nothing of a refused tenant stays behind.
        if conflicting.tenant_id != "a" {
            assert_eq!(control.tenant(&conflicting.tenant_id).await.unwrap(), None);
        }
    }
    let err = control
        .insert_tenant(&tenant("a", "z.example", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("tenant a")),
        "{err:?}"
    );
    let err = control
        .insert_tenant(&tenant("b", "a.example", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("server name")),
        "{err:?}"
    );
    let err = control
        .insert_tenant(&tenant("c", "c.example", &["a.example"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("host")),
        "{err:?}"
    );
    assert_eq!(control.tenants().await.unwrap().len(), 1);
    // The refused hosts were rolled back with their tenants: they are free.
    control
        .insert_tenant(&tenant("c", "c.example", &["c.example", "d.example"]))
        .await
        .unwrap();
}

async fn update_tenant_replaces_hosts_and_settings(backend: &dyn Backend) {
    let control = backend.control();
    let mut a = tenant("a", "a.example", &["a.example", "old.a.example"]);
    control.insert_tenant(&a).await.unwrap();
    control
        .insert_tenant(&tenant("b", "b.example", &["b.example"]))
        .await
        .unwrap();

    a.hosts = vec!["new.a.example".to_owned(), "a.example".to_owned()];
    a.settings.suspended = true;
    a.settings.client_base_url = Some("https://a.example".to_owned());
    control.update_tenant(&a).await.unwrap();
    let stored = control.tenant("a").await.unwrap().unwrap();
    assert_eq!(stored, a);
    assert_eq!(
        stored.hosts[0], "new.a.example",
        "the first host stays first"
    );

    // The host dropped by the update is free for another tenant.
    control
        .insert_tenant(&tenant("c", "c.example", &["old.a.example"]))
        .await
        .unwrap();

    // A host of another tenant is refused and the update leaves nothing half done.
    let mut taken = a.clone();
    taken.hosts.push("b.example".to_owned());
    taken.settings.suspended = false;
    let err = control.update_tenant(&taken).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what.contains("host")),
        "{err:?}"
    );
    assert_eq!(control.tenant("a").await.unwrap(), Some(a.clone()));

    let missing = tenant("zzz", "zzz.example", &[]);
    assert!(matches!(
        control.update_tenant(&missing).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn corrupt_settings_are_reported(fixture: &Fixture) {
    let control = fixture.backend().await.control();
    control
        .insert_tenant(&tenant("a", "a.example", &[]))
        .await
        .unwrap();

    // Settings that no longer parse (a bad manual edit, a downgrade) are reported, not skipped.
    let damaged = fixture
        .raw_control()
        .await
        .execute(
            "UPDATE tenants SET settings = '{not json' WHERE tenant_id = 'a'",
            &[],
        )
        .await;
    assert_eq!(damaged, 1);
    assert!(matches!(
        control.tenant("a").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        control.tenants().await,
        Err(StoreError::Corrupt(_))
    ));
}

async fn tenants_are_isolated(fixture: &Fixture) {
    // Few connections, so that on PostgreSQL both tenants keep getting the same pooled ones.
    let backend = fixture
        .open_backend_with(Connections {
            total: 2,
            per_tenant: 2,
        })
        .await;
    let a = backend.open_tenant("a").await.unwrap();
    let b = backend.open_tenant("b").await.unwrap();
    a.insert_user(&user("alice"), None).await.unwrap();
    a.start_session(&device("alice", "D", None), &token("h", "alice", "D"))
        .await
        .unwrap();
    assert_eq!(b.user("alice").await.unwrap(), None);
    assert_eq!(b.access_token("h").await.unwrap(), None);
    b.insert_user(&user("alice"), None).await.unwrap();
    assert_eq!(b.access_token("h").await.unwrap(), None);

    // Interleaved (on shared connections, on PostgreSQL), each tenant sees only its own rows.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (mine, theirs, name) = if i % 2 == 0 {
                (a.clone(), b.clone(), format!("a{i}"))
            } else {
                (b.clone(), a.clone(), format!("b{i}"))
            };
            tokio::spawn(async move {
                mine.insert_user(&user(&name), None).await.unwrap();
                assert!(mine.user(&name).await.unwrap().is_some());
                assert!(theirs.user(&name).await.unwrap().is_none());
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(a.count_users().await.unwrap(), 21);
    assert_eq!(b.count_users().await.unwrap(), 21);
    let users = a.users(None, 100).await.unwrap();
    assert!(users.iter().all(|u| u.localpart.starts_with('a')));
}

async fn a_destroyed_tenant_starts_empty_when_opened_again(backend: &dyn Backend) {
    let store = backend.open_tenant("gone").await.unwrap();
    store.insert_user(&user("alice"), None).await.unwrap();
    store.close().await;
    // Untouched by its neighbour's end.
    let kept = backend.open_tenant("kept").await.unwrap();
    kept.insert_user(&user("alice"), None).await.unwrap();

    backend.destroy_tenant("gone").await.unwrap();
    // Destroying is idempotent: a retry after a crash half-way must not fail.
    backend.destroy_tenant("gone").await.unwrap();

    let store = backend.open_tenant("gone").await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    store.insert_user(&user("alice"), None).await.unwrap();
    assert_eq!(kept.count_users().await.unwrap(), 1);
}

async fn data_survives_reopening(fixture: &Fixture) {
    let acme = tenant("acme", "acme.example", &["acme.example", "m.acme.example"]);
    {
        let backend = fixture.open_backend().await;
        let store = backend.open_tenant(TENANT).await.unwrap();
        backend.control().insert_tenant(&acme).await.unwrap();
        store.insert_user(&user("alice"), None).await.unwrap();
        store
            .start_session(
                &device("alice", "D", Some("Phone")),
                &token("h", "alice", "D"),
            )
            .await
            .unwrap();
        store
            .insert_registration_token(&reg_token("tok", Some(1), None))
            .await
            .unwrap();
        store.close().await;
        backend.close().await;
    }
    // Reopening runs the migrations again, which must find nothing to do.
    for _ in 0..2 {
        let backend = fixture.open_backend().await;
        let store = backend.open_tenant(TENANT).await.unwrap();
        assert_eq!(
            backend.control().tenant("acme").await.unwrap(),
            Some(acme.clone())
        );
        assert_eq!(store.user("alice").await.unwrap(), Some(user("alice")));
        assert_eq!(
            store.access_token("h").await.unwrap(),
            Some(token("h", "alice", "D"))
        );
        assert!(store.registration_token("tok").await.unwrap().is_some());
        store.close().await;
        backend.close().await;
    }
}

async fn federation_pending_marks(backend: &dyn Backend) {
    let control = backend.control();
    control
        .insert_tenant(&tenant("one", "one.example", &["one.example"]))
        .await
        .unwrap();
    control
        .insert_tenant(&tenant("two", "two.example", &["two.example"]))
        .await
        .unwrap();
    assert!(control.federation_pending().await.unwrap().is_empty());
    control.set_federation_pending("two", true).await.unwrap();
    control.set_federation_pending("one", true).await.unwrap();
    // Marking twice is marking once; a tenant that doesn't exist is left alone.
    control.set_federation_pending("one", true).await.unwrap();
    control.set_federation_pending("gone", true).await.unwrap();
    assert_eq!(control.federation_pending().await.unwrap(), ["one", "two"]);
    control.set_federation_pending("one", false).await.unwrap();
    control.set_federation_pending("one", false).await.unwrap();
    assert_eq!(control.federation_pending().await.unwrap(), ["two"]);
    // The mark goes with its tenant.
    control.delete_tenant("two").await.unwrap();
    assert!(control.federation_pending().await.unwrap().is_empty());
}
