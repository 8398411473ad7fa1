//! What a hub does the first time it starts on an empty database: create a
//! platform admin and a demo tenant whose quota fits a 70B model, with a
//! tenant admin who signs in to the console with a password alone (platform
//! admins must enrol a second factor first) and an API key, so a newcomer
//! can sign in and deploy at once.
//!
//! A hub installed on a cluster (`modelfleet api`) creates the platform
//! admin alone, with the first password it is given (a mounted Secret) or
//! one generated here: a platform team's hub has no demo tenant.
//!
//! The credentials are generated here and handed to a `keep` callback
//! before the transaction commits: if they cannot be kept (written to a
//! file, say), nothing is created and the next start tries again.

use modelfleet_core::quota::Quota;

use crate::identity::Role;
use crate::identity::password::{PasswordHash, check_policy};
use crate::store::{NewApiKey, NewTenant, NewUser, Store, StoreError};
use crate::{Actor, Scope, Secret};

pub const ADMIN_USER: &str = "admin";
pub const DEMO_TENANT: &str = "demo";
pub const DEMO_USER: &str = "demo-admin";

/// Sign-in details created on first start. Shown once; only hashes are kept.
pub struct InitialCredentials {
    pub admin_user: String,
    pub admin_password: Secret,
    /// The demo tenant, where one was created (`serve`).
    pub demo: Option<DemoCredentials>,
}

/// The demo tenant's sign-in details.
pub struct DemoCredentials {
    pub tenant: String,
    /// The demo tenant's admin, for the console.
    pub tenant_user: String,
    pub tenant_password: Secret,
    pub api_key: Secret,
}

impl std::fmt::Debug for InitialCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialCredentials")
            .field("admin_user", &self.admin_user)
            .field("demo", &self.demo)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DemoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCredentials")
            .field("tenant", &self.tenant)
            .field("tenant_user", &self.tenant_user)
            .finish_non_exhaustive()
    }
}

impl InitialCredentials {
    /// `name=value` lines: `admin_user`, `admin_password`, and with a demo
    /// tenant `tenant`, `tenant_user`, `tenant_password`, `api_key`.
    pub fn to_file_text(&self) -> String {
        let mut text = format!(
            "admin_user={}\nadmin_password={}\n",
            self.admin_user,
            self.admin_password.expose()
        );
        if let Some(demo) = &self.demo {
            text.push_str(&format!(
                "tenant={}\ntenant_user={}\ntenant_password={}\napi_key={}\n",
                demo.tenant,
                demo.tenant_user,
                demo.tenant_password.expose(),
                demo.api_key.expose()
            ));
        }
        text
    }
}

/// What a first start creates besides the platform admin.
#[derive(Debug, Default)]
pub struct FirstStart {
    /// The admin's first password (they choose their own at first sign-in);
    /// generated when `None`.
    pub admin_password: Option<Secret>,
    /// A demo tenant with a quota, a tenant admin and an API key (`serve`).
    pub demo_tenant: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a password: {0}")]
    Password(String),
    #[error("cannot keep the initial credentials: {0}")]
    Keep(#[source] std::io::Error),
    #[error("the initial admin password is refused: {0}")]
    WeakPassword(String),
}

/// The demo tenant's quota: room for one 70B model (four H100s in bf16, two
/// H200s, eight A100 40GB) and a small one beside it.
pub fn demo_quota() -> Quota {
    Quota {
        total_devices: Some(12),
        deployments: Some(4),
        ..Quota::unlimited()
    }
}

/// Creates the platform admin, the demo tenant and its API key when the
/// store has no platform admin yet, calling `keep` with the credentials
/// before committing. Returns `None` when there was already an admin.
pub async fn first_start(
    store: &Store,
    keep: impl FnOnce(&InitialCredentials) -> std::io::Result<()>,
) -> Result<Option<InitialCredentials>, BootstrapError> {
    let what = FirstStart {
        admin_password: None,
        demo_tenant: true,
    };
    first_start_with(store, what, keep).await
}

/// [`first_start`] creating what `what` says.
pub async fn first_start_with(
    store: &Store,
    what: FirstStart,
    keep: impl FnOnce(&InitialCredentials) -> std::io::Result<()>,
) -> Result<Option<InitialCredentials>, BootstrapError> {
    let users = store.users(Scope::All).await?;
    if users.iter().any(|u| u.role == Role::PlatformAdmin) {
        return Ok(None);
    }
    let admin_password = match what.admin_password {
        Some(given) => {
            check_policy(ADMIN_USER, &given).map_err(|e| {
                BootstrapError::WeakPassword(format!(
                    "{e} (give a longer random one, e.g. `head -c 24 /dev/urandom | base64`)"
                ))
            })?;
            given
        }
        None => generate_password(ADMIN_USER)?,
    };
    let mut tx = store.begin(&Actor::system("bootstrap")).await?;
    tx.create_user(NewUser {
        tenant: None,
        username: ADMIN_USER.to_owned(),
        display_name: "Platform admin".to_owned(),
        password: PasswordHash::new(ADMIN_USER, &admin_password)
            .await
            .map_err(|e| BootstrapError::Password(e.to_string()))?,
        role: Role::PlatformAdmin,
        expires_at: None,
        // A password shown in a file is a first step, not a credential:
        // the admin chooses their own at first sign-in.
        must_change_password: true,
    })
    .await?;
    let demo = if what.demo_tenant {
        Some(create_demo_tenant(&mut tx).await?)
    } else {
        None
    };
    let credentials = InitialCredentials {
        admin_user: ADMIN_USER.to_owned(),
        admin_password,
        demo,
    };
    if let Err(e) = keep(&credentials) {
        tx.rollback().await?;
        return Err(BootstrapError::Keep(e));
    }
    tx.commit().await?;
    Ok(Some(credentials))
}

async fn create_demo_tenant(tx: &mut crate::store::Tx) -> Result<DemoCredentials, BootstrapError> {
    let tenant = tx
        .create_tenant(NewTenant {
            name: DEMO_TENANT.to_owned(),
            display_name: "Demo tenant".to_owned(),
            quota: demo_quota(),
        })
        .await?;
    let tenant_password = generate_password(DEMO_USER)?;
    tx.create_user(NewUser {
        tenant: Some(tenant.id),
        username: DEMO_USER.to_owned(),
        display_name: "Demo tenant admin".to_owned(),
        password: PasswordHash::new(DEMO_USER, &tenant_password)
            .await
            .map_err(|e| BootstrapError::Password(e.to_string()))?,
        role: Role::TenantAdmin,
        expires_at: None,
        // The demo account stays quick to try.
        must_change_password: false,
    })
    .await?;
    let key = tx
        .create_api_key(
            tenant.id,
            NewApiKey {
                name: "initial".to_owned(),
                role: Role::TenantAdmin,
                inference_only: false,
                expires_at: None,
            },
        )
        .await?;
    Ok(DemoCredentials {
        tenant: tenant.name,
        tenant_user: DEMO_USER.to_owned(),
        tenant_password,
        api_key: key.token,
    })
}

/// 24 random characters behind a fixed `Mf1-`, which gives every class
/// the password policy counts.
fn generate_password(username: &str) -> Result<Secret, BootstrapError> {
    use base64::Engine as _;
    loop {
        let mut bytes = [0u8; 18];
        getrandom::fill(&mut bytes).map_err(|e| BootstrapError::Password(e.to_string()))?;
        let text = format!(
            "Mf1-{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let password = Secret::new(text);
        if check_policy(username, &password).is_ok() {
            return Ok(password);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_start_creates_an_admin_and_a_demo_tenant_once() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let mut kept = String::new();
        let created = first_start(&store, |c| {
            kept = c.to_file_text();
            Ok(())
        })
        .await
        .unwrap()
        .expect("an empty store gets an admin");
        let demo = created
            .demo
            .as_ref()
            .expect("serve's first start has a demo");
        assert!(kept.contains(&format!("api_key={}", demo.api_key.expose())));
        assert!(!format!("{created:?}").contains(created.admin_password.expose()));
        assert!(!format!("{created:?}").contains(demo.tenant_password.expose()));
        assert!(kept.contains(&format!(
            "tenant_password={}",
            demo.tenant_password.expose()
        )));

        let mut users = store.users(Scope::All).await.unwrap();
        users.sort_by_key(|u| u.username.clone());
        let roles: Vec<_> = users
            .iter()
            .map(|u| (u.username.as_str(), u.role))
            .collect();
        assert_eq!(
            roles,
            [
                (ADMIN_USER, Role::PlatformAdmin),
                (DEMO_USER, Role::TenantAdmin)
            ]
        );
        let tenant = store.tenant_by_name(Scope::All, DEMO_TENANT).await.unwrap();
        assert_eq!(
            store.quota(Scope::All, tenant.id).await.unwrap(),
            demo_quota()
        );

        let again = first_start(&store, |_| panic!("nothing new to keep"))
            .await
            .unwrap();
        assert!(again.is_none());
    }

    #[tokio::test]
    async fn credentials_that_cannot_be_kept_create_nothing() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let failed = first_start(&store, |_| Err(std::io::Error::other("the disk is full"))).await;
        assert!(matches!(failed, Err(BootstrapError::Keep(_))));
        assert!(store.users(Scope::All).await.unwrap().is_empty());
        assert!(store.tenants(Scope::All).await.unwrap().is_empty());
    }

    /// `modelfleet api`'s first start: the admin alone, with the password
    /// from its Secret, which must pass the password policy.
    #[tokio::test]
    async fn an_installed_hub_creates_the_admin_alone_with_the_given_password() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let weak = FirstStart {
            admin_password: Some(Secret::new("admin".to_owned())),
            demo_tenant: false,
        };
        let refused = first_start_with(&store, weak, |_| Ok(()))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, BootstrapError::WeakPassword(why) if why.contains("urandom")),
            "{refused}"
        );
        assert!(store.users(Scope::All).await.unwrap().is_empty());

        let given = "Installed-hub-first-9f3Kq2".to_owned();
        let what = FirstStart {
            admin_password: Some(Secret::new(given.clone())),
            demo_tenant: false,
        };
        let mut kept = String::new();
        let created = first_start_with(&store, what, |c| {
            kept = c.to_file_text();
            Ok(())
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(created.admin_password.expose(), given);
        assert!(created.demo.is_none());
        assert_eq!(kept, format!("admin_user=admin\nadmin_password={given}\n"));
        let users = store.users(Scope::All).await.unwrap();
        assert_eq!(users.len(), 1);
        assert!(users[0].must_change_password);
        assert!(store.tenants(Scope::All).await.unwrap().is_empty());
    }
}
