use chrono::{TimeDelta, Utc};
use modelfleet_core::quota::Quota;

use super::{member, platform, tenant};
use crate::identity::password::PasswordHash;
use crate::identity::{Origin, Role, Scope};
use crate::ids::TenantId;
use crate::secret::{Keyring, Secret, SecretKey};
use crate::store::testing::TestDb;
use crate::store::{
    KeyAuthError, LoginError, LoginPolicy, NewApiKey, NewUser, Store, StoreError, User,
};

const PASSWORD: &str = "Correct-horse-42";

async fn user(store: &Store, tenant: Option<TenantId>, name: &str, role: Role) -> User {
    let mut tx = store.begin(&platform()).await.unwrap();
    let user = tx
        .create_user(NewUser {
            tenant,
            username: name.into(),
            display_name: name.to_uppercase(),
            password: PasswordHash::new(name, &Secret::new(PASSWORD))
                .await
                .unwrap(),
            role,
            expires_at: None,
            must_change_password: false,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    user
}

async fn users_belong_to_their_tenant(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::nothing()).await;
    let b = tenant(store, "globex", Quota::nothing()).await;
    let root = user(store, None, "root", Role::PlatformAdmin).await;
    let ana = user(store, Some(a.id), "ana", Role::TenantAdmin).await;
    let bob = user(store, Some(b.id), "bob", Role::Developer).await;

    assert_eq!(store.user(Scope::Tenant(a.id), ana.id).await.unwrap(), ana);
    for hidden in [bob.id, root.id] {
        assert!(matches!(
            store.user(Scope::Tenant(a.id), hidden).await,
            Err(StoreError::NotFound("user"))
        ));
    }
    assert_eq!(
        store.users(Scope::Tenant(a.id)).await.unwrap(),
        vec![ana.clone()]
    );
    assert_eq!(store.users(Scope::All).await.unwrap().len(), 3);

    // A tenant admin creates users of their own tenant only, with tenant roles.
    let hash = PasswordHash::new("carl", &Secret::new(PASSWORD))
        .await
        .unwrap();
    let new = |tenant, role| NewUser {
        tenant,
        username: "carl".into(),
        display_name: "Carl".into(),
        password: hash.clone(),
        role,
        expires_at: None,
        must_change_password: false,
    };
    let mut tx = store.begin(&member(a.id, Role::TenantAdmin)).await.unwrap();
    assert!(matches!(
        tx.create_user(new(Some(b.id), Role::Developer)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        tx.create_user(new(None, Role::PlatformAdmin)).await,
        Err(StoreError::Forbidden)
    ));
    assert!(matches!(
        tx.create_user(new(Some(a.id), Role::PlatformAdmin)).await,
        Err(StoreError::Invalid { field: "role", .. })
    ));
    tx.create_user(new(Some(a.id), Role::Viewer)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin(&platform()).await.unwrap();
    assert!(matches!(
        tx.create_user(new(Some(a.id), Role::Viewer)).await,
        Err(StoreError::Conflict { kind: "user", .. })
    ));
}

async fn login_counts_failures_and_locks_out(db: TestDb) {
    let store = db.store.clone().with_login_policy(LoginPolicy {
        max_failures: 3,
        lockout: TimeDelta::hours(1),
    });
    let a = tenant(&store, "acme", Quota::nothing()).await;
    let ana = user(&store, Some(a.id), "ana", Role::Developer).await;
    let origin = Origin::default();
    let right = Secret::new(PASSWORD);
    let wrong = Secret::new("Wrong-horse-42");

    let signed_in = store.login(&origin, "ana", &right).await.unwrap();
    assert_eq!(signed_in.id, ana.id);
    assert!(signed_in.last_login_at.is_some());
    assert!(matches!(
        store.login(&origin, "nobody", &right).await,
        Err(LoginError::Invalid)
    ));
    for n in 1..=2 {
        assert!(matches!(
            store.login(&origin, "ana", &wrong).await,
            Err(LoginError::Invalid)
        ));
        assert_eq!(
            store.user(Scope::All, ana.id).await.unwrap().failed_logins,
            n
        );
    }
    // A success resets the count…
    store.login(&origin, "ana", &right).await.unwrap();
    assert_eq!(
        store.user(Scope::All, ana.id).await.unwrap().failed_logins,
        0
    );
    // …three failures in a row lock, and then even the right password is refused.
    for _ in 0..3 {
        assert!(matches!(
            store.login(&origin, "ana", &wrong).await,
            Err(LoginError::Invalid)
        ));
    }
    let locked = store.user(Scope::All, ana.id).await.unwrap();
    let until = locked.locked_until.expect("locked");
    assert!(until > Utc::now() + TimeDelta::minutes(59));
    match store.login(&origin, "ana", &right).await {
        Err(LoginError::Locked { until: reported }) => assert_eq!(reported, until),
        other => panic!("expected Locked, got {other:?}"),
    }
}

async fn expired_accounts_cannot_sign_in(db: TestDb) {
    let store = &db.store;
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.create_user(NewUser {
        tenant: None,
        username: "temp-auditor".into(),
        display_name: "Temp".into(),
        password: PasswordHash::new("temp-auditor", &Secret::new(PASSWORD))
            .await
            .unwrap(),
        role: Role::Auditor,
        expires_at: Some(Utc::now() - TimeDelta::seconds(1)),
        must_change_password: false,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(
        store
            .login(&Origin::default(), "temp-auditor", &Secret::new(PASSWORD))
            .await,
        Err(LoginError::Expired)
    ));
}

async fn api_keys_authenticate_until_revoked_or_expired(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::nothing()).await;
    let b = tenant(store, "globex", Quota::nothing()).await;
    let admin_a = member(a.id, Role::TenantAdmin);

    let mut tx = store.begin(&admin_a).await.unwrap();
    let created = tx
        .create_api_key(
            a.id,
            NewApiKey {
                name: "ci".into(),
                role: Role::Developer,
                inference_only: false,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let short = tx
        .create_api_key(
            a.id,
            NewApiKey {
                name: "short".into(),
                role: Role::Viewer,
                inference_only: false,
                expires_at: Some(Utc::now() + TimeDelta::milliseconds(1500)),
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        tx.create_api_key(
            b.id,
            NewApiKey {
                name: "x".into(),
                role: Role::Viewer,
                inference_only: false,
                expires_at: None
            }
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();

    let token = created.token.expose().to_owned();
    assert!(token.starts_with(&format!("mf_{}_", created.key.prefix)));
    let auth = store.authenticate_api_key(&token).await.unwrap();
    assert_eq!(
        (auth.tenant, auth.role, auth.id),
        (a.id, Role::Developer, created.key.id)
    );
    let used = store
        .api_key(Scope::Tenant(a.id), created.key.id)
        .await
        .unwrap();
    assert!(used.last_used_at.is_some());

    // Right prefix, wrong secret; garbage; a well-formed unknown key.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        forged.as_str(),
        "Bearer nonsense",
        "mf_zzzzzzzz_0123456789abcdef0123456789abcdef",
    ] {
        assert!(
            matches!(
                store.authenticate_api_key(bad).await,
                Err(KeyAuthError::Unknown)
            ),
            "{bad}"
        );
    }

    // Another tenant's admin cannot see or revoke the key.
    let mut tx = store.begin(&member(b.id, Role::TenantAdmin)).await.unwrap();
    assert!(matches!(
        tx.revoke_api_key(created.key.id).await,
        Err(StoreError::NotFound("API key"))
    ));
    drop(tx);
    assert!(
        store
            .api_key(Scope::Tenant(b.id), created.key.id)
            .await
            .is_err()
    );
    assert!(store.api_keys(Scope::Tenant(b.id), a.id).await.is_err());

    let mut tx = store.begin(&admin_a).await.unwrap();
    let revoked = tx.revoke_api_key(created.key.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(tx.changes().last().unwrap().verb, "revoke");
    tx.commit().await.unwrap();
    assert!(matches!(
        store.authenticate_api_key(&token).await,
        Err(KeyAuthError::Revoked)
    ));

    store
        .authenticate_api_key(short.token.expose())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert!(matches!(
        store.authenticate_api_key(short.token.expose()).await,
        Err(KeyAuthError::Expired)
    ));
    let listed = store.api_keys(Scope::Tenant(a.id), a.id).await.unwrap();
    assert_eq!(listed.len(), 2);
}

async fn secrets_are_stored_sealed(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::nothing()).await;
    let ana = user(store, Some(a.id), "ana", Role::TenantAdmin).await;
    let ring = Keyring::new(SecretKey::generate().unwrap());
    let seed = Secret::new("JBSWY3DPEHPK3PXP");
    let context = format!("user:{}:totp", ana.id);
    let sealed = ring.seal(&seed, &context).unwrap();

    let mut tx = store.begin(&member(a.id, Role::TenantAdmin)).await.unwrap();
    tx.set_totp(ana.id, Some(&sealed), true).await.unwrap();
    tx.commit().await.unwrap();

    let stored = store
        .totp_secret(Scope::Tenant(a.id), ana.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, sealed);
    assert_eq!(ring.open(&stored, &context).unwrap(), seed);
    assert!(store.user(Scope::All, ana.id).await.unwrap().totp_enabled);
    // The raw column holds no plaintext.
    let raw = raw_totp_column(store, ana.id).await;
    assert!(
        !raw.windows(seed.expose().len())
            .any(|w| w == seed.expose().as_bytes())
    );
    // Neither the token nor the password is ever stored as given.
    let mut tx = store.begin(&member(a.id, Role::TenantAdmin)).await.unwrap();
    let key = tx
        .create_api_key(
            a.id,
            NewApiKey {
                name: "k".into(),
                role: Role::Viewer,
                inference_only: false,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!dump_contains(store, key.token.expose()).await);
    assert!(!dump_contains(store, PASSWORD).await);
}

async fn raw_totp_column(store: &Store, id: crate::ids::UserId) -> Vec<u8> {
    let mut reader = store.reader().await.unwrap();
    let (bytes,): (Vec<u8>,) = crate::store::on_conn!(reader.conn(), c => sqlx::query_as(
        "SELECT totp_secret FROM users WHERE id = $1").bind(id).fetch_one(c).await)
    .unwrap();
    bytes
}

/// Whether any text column of users or api_keys contains `needle`.
async fn dump_contains(store: &Store, needle: &str) -> bool {
    let mut reader = store.reader().await.unwrap();
    let rows: Vec<(String,)> = crate::store::on_conn!(reader.conn(), c => sqlx::query_as(
        "SELECT username || password_hash || display_name FROM users \
         UNION ALL SELECT name || prefix FROM api_keys").fetch_all(c).await)
    .unwrap();
    rows.iter().any(|(text,)| text.contains(needle))
}

crate::store_tests!(
    users_belong_to_their_tenant,
    login_counts_failures_and_locks_out,
    expired_accounts_cannot_sign_in,
    api_keys_authenticate_until_revoked_or_expired,
    secrets_are_stored_sealed,
);
