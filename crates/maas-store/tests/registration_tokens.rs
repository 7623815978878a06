//! The admin API's changes of registration tokens on both backends: limits set, cleared or
//! left as they are, and tokens deleted (the rest of their story is in `accounts`).

use maas_store::TenantStore;

mod support;
use support::{on_both_backends, reg_token};

on_both_backends!(token_limits_are_changed_field_by_field);
on_both_backends!(tokens_are_deleted);

async fn token_limits_are_changed_field_by_field(store: &dyn TenantStore) {
    store
        .insert_registration_token(&reg_token("tok", Some(3), Some(9_000)))
        .await
        .unwrap();
    store
        .insert_registration_token(&reg_token("other", Some(1), None))
        .await
        .unwrap();
    let read = async |token: &str| {
        let record = store.registration_token(token).await.unwrap().unwrap();
        (record.uses_allowed, record.expiry_time)
    };

    // Nothing to change: found, and unchanged.
    assert!(
        store
            .update_registration_token("tok", None, None)
            .await
            .unwrap()
    );
    assert_eq!(read("tok").await, (Some(3), Some(9_000)));
    assert!(
        store
            .update_registration_token("tok", Some(Some(0)), None)
            .await
            .unwrap()
    );
    assert_eq!(read("tok").await, (Some(0), Some(9_000)));
    assert!(
        store
            .update_registration_token("tok", None, Some(None))
            .await
            .unwrap()
    );
    assert_eq!(read("tok").await, (Some(0), None));
    assert!(
        store
            .update_registration_token("tok", Some(None), Some(Some(7)))
            .await
            .unwrap()
    );
    assert_eq!(read("tok").await, (None, Some(7)));
    // Another token is untouched; an unknown one is not found.
    assert_eq!(read("other").await, (Some(1), None));
    assert!(
        !store
            .update_registration_token("nope", Some(Some(1)), None)
            .await
            .unwrap()
    );
    assert_eq!(store.registration_token("nope").await.unwrap(), None);
}

async fn tokens_are_deleted(store: &dyn TenantStore) {
    for token in ["a", "b"] {
        store
            .insert_registration_token(&reg_token(token, None, None))
            .await
            .unwrap();
    }
    assert!(store.delete_registration_token("a").await.unwrap());
    assert!(!store.delete_registration_token("a").await.unwrap());
    assert!(!store.delete_registration_token("nope").await.unwrap());
    let left: Vec<String> = store
        .registration_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token)
        .collect();
    assert_eq!(left, ["b"]);
    // Its name is free again.
    store
        .insert_registration_token(&reg_token("a", Some(1), None))
        .await
        .unwrap();
}
