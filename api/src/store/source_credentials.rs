//! Source credentials a tenant keeps in the hub: the keys `modelfleet fetch`
//! reads (`AWS_ACCESS_KEY_ID`, `HF_TOKEN`, …), sealed with the keyring as
//! one JSON object. What may be shown of them (each key's name and, for
//! identifiers and tokens, their last four characters) is kept beside the
//! sealed value, so listing them never opens one. Every change is audited
//! with its transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelfleet_core::contract::tenancy::{
    self, SOURCE_CREDENTIAL_KEYS, SOURCE_CREDENTIAL_SETTINGS,
};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::{CredentialId, TenantId};
use crate::secret::{Keyring, Sealed, Secret};

/// The shortest value accepted: no access key or token is shorter.
const MIN_VALUE_LEN: usize = 8;
/// The longest value accepted (a session token is about 1,000 bytes).
const MAX_VALUE_LEN: usize = 4096;
/// The most credentials one tenant keeps.
pub const MAX_CREDENTIALS: i64 = 50;
/// Keys shown only as set: their last characters are part of the secret.
const SECRET_KEYS: [&str; 2] = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// One key of a credential, as it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyHint {
    /// The variable, e.g. `AWS_ACCESS_KEY_ID`.
    pub name: String,
    /// Its last four characters (`…ABCD`), as `modelfleet fetch` names the
    /// credentials it used in its errors; none for secret keys and
    /// settings.
    pub last4: Option<String>,
    /// The whole value of a setting (`AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `HF_ENDPOINT`, `MODELSCOPE_ENDPOINT`), which is not secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A source credential without its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceCredential {
    pub id: CredentialId,
    pub tenant: TenantId,
    pub name: String,
    pub keys: Vec<KeyHint>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SourceCredential {
    /// The Secret a ModelDeployment names to fetch with it.
    pub fn secret_name(&self) -> String {
        tenancy::source_credential_secret_name(&self.name)
    }
}

/// Where the hub wrote a credential's Secret: a cluster and a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialPlace {
    pub cluster: String,
    pub namespace: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: CredentialId,
    tenant_id: TenantId,
    name: String,
    keys: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_credential(self) -> Result<SourceCredential, StoreError> {
        let keys = serde_json::from_str(&self.keys).map_err(|e| {
            let _ = e;
            StoreError::Corrupt("a source credential's key list")
        })?;
        Ok(SourceCredential {
            id: self.id,
            tenant: self.tenant_id,
            name: self.name,
            keys,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! select_credentials {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, name, keys, created_at, updated_at FROM source_credentials ",
            $tail
        )
    };
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn context(tenant: TenantId, name: &str) -> String {
    format!("source-credential:{tenant}:{name}")
}

/// Checks a credential's name and values: only the variables fetch reads,
/// each a plausible key (printable, no spaces, 8 to 4,096 characters), an
/// access key only with its secret, a session token only with both.
pub fn check(name: &str, values: &BTreeMap<String, Secret>) -> Result<(), StoreError> {
    tenancy::check_source_credential_name(name).map_err(|reason| invalid("name", reason))?;
    if values.is_empty() {
        return Err(invalid(
            "keys",
            format!("give at least one of {}", SOURCE_CREDENTIAL_KEYS.join(", ")),
        ));
    }
    for (key, value) in values {
        if SOURCE_CREDENTIAL_SETTINGS.contains(&key.as_str()) {
            check_setting(key, value.expose())?;
            continue;
        }
        if !SOURCE_CREDENTIAL_KEYS.contains(&key.as_str()) {
            let shown: String = key.chars().take(64).collect();
            return Err(invalid(
                "keys",
                format!(
                    "{shown:?} is not a key modelfleet fetch reads; use {}, and for a store \
                     the cloud's defaults do not reach {}",
                    SOURCE_CREDENTIAL_KEYS.join(", "),
                    SOURCE_CREDENTIAL_SETTINGS.join(", ")
                ),
            ));
        }
        let v = value.expose();
        if !(MIN_VALUE_LEN..=MAX_VALUE_LEN).contains(&v.len()) {
            return Err(invalid(
                "keys",
                format!(
                    "{key} must be {MIN_VALUE_LEN} to {MAX_VALUE_LEN} characters; paste the \
                     whole key"
                ),
            ));
        }
        if !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "keys",
                format!(
                    "{key} holds spaces, line breaks or characters no key has; paste the key \
                     alone"
                ),
            ));
        }
    }
    if !values
        .keys()
        .any(|k| SOURCE_CREDENTIAL_KEYS.contains(&k.as_str()))
    {
        return Err(invalid(
            "keys",
            format!(
                "settings alone are no credential: give at least one of {}",
                SOURCE_CREDENTIAL_KEYS.join(", ")
            ),
        ));
    }
    let has = |k: &str| values.contains_key(k);
    if has("AWS_ACCESS_KEY_ID") != has("AWS_SECRET_ACCESS_KEY") {
        return Err(invalid(
            "keys",
            "an object store's key is a pair: give AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
             together",
        ));
    }
    if has("AWS_SESSION_TOKEN") && !has("AWS_ACCESS_KEY_ID") {
        return Err(invalid(
            "keys",
            "AWS_SESSION_TOKEN belongs to temporary keys: give AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY with it",
        ));
    }
    Ok(())
}

/// A setting's value: an endpoint is an `http(s)://` URL with a host and
/// no user, query or fragment (the values are shown to the tenant, and a
/// URL's userinfo or query would be a credential); a region is a cloud's
/// region name.
fn check_setting(key: &str, value: &str) -> Result<(), StoreError> {
    if key == "AWS_REGION" {
        let region = !value.is_empty()
            && value.len() <= 40
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        return if region {
            Ok(())
        } else {
            Err(invalid(
                "keys",
                "AWS_REGION must be a region name such as us-east-1 or cn-hangzhou",
            ))
        };
    }
    let url = reqwest::Url::parse(value).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| !h.is_empty())
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
            && u.fragment().is_none()
            && value.len() <= 2048
    });
    match url {
        Some(_) => Ok(()),
        None => Err(invalid(
            "keys",
            format!(
                "{key} must be an http:// or https:// URL with a host and no user, password, \
                 query or fragment, such as https://minio.example.com:9000"
            ),
        )),
    }
}

fn hints(values: &BTreeMap<String, Secret>) -> Vec<KeyHint> {
    values
        .iter()
        .map(|(name, value)| {
            let v = value.expose();
            let setting = SOURCE_CREDENTIAL_SETTINGS.contains(&name.as_str());
            KeyHint {
                name: name.clone(),
                last4: (!setting && !SECRET_KEYS.contains(&name.as_str()))
                    .then(|| format!("…{}", &v[v.len().saturating_sub(4)..])),
                value: setting.then(|| v.to_owned()),
            }
        })
        .collect()
}

impl Store {
    /// A tenant's source credentials, by name, without their values.
    pub async fn source_credentials(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<Vec<SourceCredential>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select_credentials!("WHERE tenant_id = $1 ORDER BY name"))
            .bind(tenant).fetch_all(c).await)?;
        rows.into_iter().map(Row::into_credential).collect()
    }

    /// One of a tenant's source credentials, without its values.
    pub async fn source_credential(
        &self,
        scope: Scope,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<SourceCredential>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select_credentials!("WHERE tenant_id = $1 AND name = $2"))
            .bind(tenant).bind(name).fetch_optional(c).await)?;
        row.map(Row::into_credential).transpose()
    }

    /// A credential's values, opened, for writing its Secret into a
    /// cluster: the hub's own use, never an answer to a caller.
    pub async fn open_source_credential(
        &self,
        keyring: &Keyring,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Secret>>, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<(Vec<u8>,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT sealed FROM source_credentials WHERE tenant_id = $1 AND name = $2")
            .bind(tenant).bind(name).fetch_optional(c).await)?;
        let Some((sealed,)) = row else {
            return Ok(None);
        };
        let opened = keyring.open(&Sealed::from_stored(sealed)?, &context(tenant, name))?;
        let values: BTreeMap<String, String> = serde_json::from_str(opened.expose())
            .map_err(|_| StoreError::Corrupt("a source credential's sealed keys"))?;
        Ok(Some(
            values
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
        ))
    }

    /// The names of a tenant's live deployments that fetch with `name`.
    pub async fn deployments_using_credential(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<(String,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT name FROM deployments WHERE tenant_id = $1 AND source_credential = $2 \
             AND deleted_at IS NULL ORDER BY name")
            .bind(tenant).bind(name).fetch_all(c).await)?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// Every cluster and namespace the hub placed a deployment of the
    /// tenant's fetching with `name` in (live or `live` false: ever), where
    /// its Secret is.
    pub async fn credential_places(
        &self,
        tenant: TenantId,
        name: &str,
        live: bool,
    ) -> Result<Vec<CredentialPlace>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<(String, String)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT DISTINCT cluster, namespace FROM deployments WHERE tenant_id = $1 \
             AND source_credential = $2 AND ($3 = FALSE OR deleted_at IS NULL) \
             ORDER BY cluster, namespace")
            .bind(tenant).bind(name).bind(live).fetch_all(c).await)?;
        Ok(rows
            .into_iter()
            .map(|(cluster, namespace)| CredentialPlace { cluster, namespace })
            .collect())
    }
}

impl Tx {
    /// Adds or replaces a tenant's source credential `name`. Tenant admins
    /// of the tenant, and platform admins. Returns it, and whether it was
    /// new.
    pub async fn put_source_credential(
        &mut self,
        keyring: &Keyring,
        tenant: TenantId,
        name: &str,
        values: &BTreeMap<String, Secret>,
    ) -> Result<(SourceCredential, bool), StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "source credential"))?;
        check(name, values)?;
        self.tenant_name(tenant).await?;
        let (others,): (i64,) = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM source_credentials WHERE tenant_id = $1 AND name <> $2")
            .bind(tenant).bind(name).fetch_one(c).await)?;
        if others >= MAX_CREDENTIALS {
            return Err(invalid(
                "name",
                format!(
                    "a tenant keeps at most {MAX_CREDENTIALS} source credentials; remove one it \
                     no longer uses, or replace one"
                ),
            ));
        }
        let plain: BTreeMap<&str, &str> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        let json = Secret::new(
            serde_json::to_string(&plain)
                .map_err(|e| invalid("keys", format!("cannot be encoded: {e}")))?,
        );
        let sealed = keyring.seal(&json, &context(tenant, name))?;
        let keys = serde_json::to_string(&hints(values))
            .map_err(|e| invalid("keys", format!("cannot be encoded: {e}")))?;
        let at = now();
        let id = CredentialId::new();
        let row: Row = on_conn!(self.conn(), c => sqlx::query_as(
            "INSERT INTO source_credentials (id, tenant_id, name, sealed, keys, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET sealed = excluded.sealed, \
             keys = excluded.keys, updated_at = excluded.updated_at \
             RETURNING id, tenant_id, name, keys, created_at, updated_at")
            .bind(id).bind(tenant).bind(name).bind(sealed.as_bytes()).bind(&keys).bind(at)
            .fetch_one(c).await)?;
        let credential = row.into_credential()?;
        let created = credential.id == id;
        self.note(
            if created { "create" } else { "update" },
            "source-credentials",
            Some(tenant),
            credential.id.0,
            name,
        );
        Ok((credential, created))
    }

    /// Removes a tenant's source credential, unless a live deployment
    /// fetches with it. Returns it, if there was one.
    pub async fn delete_source_credential(
        &mut self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<SourceCredential>, StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "source credential"))?;
        let users: Vec<(String,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT name FROM deployments WHERE tenant_id = $1 AND source_credential = $2 \
             AND deleted_at IS NULL ORDER BY name LIMIT 5")
            .bind(tenant).bind(name).fetch_all(c).await)?;
        if !users.is_empty() {
            let names: Vec<String> = users.into_iter().map(|(n,)| n).collect();
            return Err(StoreError::InUse {
                kind: "source credential",
                name: name.to_owned(),
                reason: format!(
                    "deployments {} fetch their weights with it; delete them first, or replace \
                     the credential's keys instead",
                    names.join(", ")
                ),
            });
        }
        let row: Option<Row> = on_conn!(self.conn(), c => sqlx::query_as(
            "DELETE FROM source_credentials WHERE tenant_id = $1 AND name = $2 \
             RETURNING id, tenant_id, name, keys, created_at, updated_at")
            .bind(tenant).bind(name).fetch_optional(c).await)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let credential = row.into_credential()?;
        self.note(
            "delete",
            "source-credentials",
            Some(tenant),
            credential.id.0,
            name,
        );
        Ok(Some(credential))
    }

    /// Records that deployment `id` of `tenant` fetches with the tenant's
    /// credential `name`, which must exist: in the transaction that admits
    /// the deployment, so the credential cannot be removed from under it.
    pub async fn use_source_credential(
        &mut self,
        tenant: TenantId,
        id: crate::ids::DeploymentId,
        name: &str,
    ) -> Result<(), StoreError> {
        let found: Option<(CredentialId,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT id FROM source_credentials WHERE tenant_id = $1 AND name = $2")
            .bind(tenant).bind(name).fetch_optional(c).await)?;
        if found.is_none() {
            return Err(invalid(
                "sourceCredential",
                format!(
                    "the tenant keeps no source credential named {name:?}; add it first (PUT \
                     /api/v1/tenants/{tenant}/source-credentials/{name}, or Source credentials \
                     in the console)"
                ),
            ));
        }
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET source_credential = $2 WHERE id = $1")
            .bind(id).bind(name).execute(c).await.map(drop))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
            .collect()
    }

    #[test]
    fn only_keys_fetch_reads_in_whole_pairs_are_kept() {
        let pair = [
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE0000ABCD"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"),
        ];
        assert!(check("store", &values(&pair)).is_ok());
        assert!(check("hub", &values(&[("HF_TOKEN", "hf_abcdefgh1234")])).is_ok());
        let refused = |name: &str, pairs: &[(&str, &str)]| match check(name, &values(pairs)) {
            Err(StoreError::Invalid { reason, .. }) => reason,
            other => panic!("{pairs:?} was not refused: {other:?}"),
        };
        assert!(refused("store", &[]).contains("at least one"));
        assert!(refused("store", &[pair[0]]).contains("together"));
        assert!(refused("store", &[("PATH", "/usr/local/bin")]).contains("not a key"));
        assert!(refused("store", &[("HF_TOKEN", "short")]).contains("8 to 4096"));
        assert!(refused("store", &[("HF_TOKEN", "hf_abc defgh")]).contains("spaces"));
        assert!(refused("store", &[("HF_TOKEN", "hf_abcdefgh\n")]).contains("spaces"));
        assert!(
            refused("store", &[("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEJr")]).contains("temporary")
        );
        assert!(refused("Store", &[pair[0], pair[1]]).contains("lower-case"));
        let minio = [
            pair[0],
            pair[1],
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ];
        assert!(check("store", &values(&minio)).is_ok());
        assert!(
            check(
                "store",
                &values(&[pair[0], pair[1], ("AWS_REGION", "cn-hangzhou")])
            )
            .is_ok()
        );
        for bad in [
            "ftp://minio:9000",
            "https://user:pw@minio:9000",
            "https://minio:9000/?X-Amz-Signature=abc",
            "minio:9000",
        ] {
            let says = refused("store", &[pair[0], pair[1], ("AWS_ENDPOINT_URL", bad)]);
            assert!(says.contains("http:// or https:// URL"), "{bad}: {says}");
            assert!(!says.contains("pw@") && !says.contains("abc"), "{says}");
        }
        assert!(
            refused("store", &[pair[0], pair[1], ("AWS_REGION", "US East")]).contains("region")
        );
        assert!(
            refused("store", &[("HF_ENDPOINT", "https://hf-mirror.com")])
                .contains("settings alone")
        );
    }

    #[test]
    fn hints_show_identifiers_and_tokens_never_secret_keys() {
        let shown = hints(&values(&[
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE0000ABCD"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"),
            ("HF_TOKEN", "hf_abcdefghwxyz"),
            ("HF_ENDPOINT", "https://hf-mirror.com"),
        ]));
        let last4: Vec<(&str, Option<&str>, Option<&str>)> = shown
            .iter()
            .map(|h| (h.name.as_str(), h.last4.as_deref(), h.value.as_deref()))
            .collect();
        assert_eq!(
            last4,
            [
                ("AWS_ACCESS_KEY_ID", Some("…ABCD"), None),
                ("AWS_SECRET_ACCESS_KEY", None, None),
                ("HF_ENDPOINT", None, Some("https://hf-mirror.com")),
                ("HF_TOKEN", Some("…wxyz"), None),
            ]
        );
    }
}
