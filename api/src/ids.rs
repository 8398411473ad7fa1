//! Typed ids for the hub's rows. Each is a UUID (v4): PostgreSQL stores it
//! as a native `uuid`, SQLite as hyphenated `TEXT` so the database stays
//! readable with the `sqlite3` shell. The sqlx impls below are the only
//! place that difference is spelled out; the queries bind ids the same way
//! on both backends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                $name(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <Uuid as Type<Postgres>>::type_info()
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <Uuid as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
            }
        }

        impl Decode<'_, Postgres> for $name {
            fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
                <Uuid as Decode<'_, Postgres>>::decode(value).map($name)
            }
        }

        impl Type<Sqlite> for $name {
            fn type_info() -> SqliteTypeInfo {
                <Hyphenated as Type<Sqlite>>::type_info()
            }

            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <Hyphenated as Type<Sqlite>>::compatible(ty)
            }
        }

        impl Encode<'_, Sqlite> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut SqliteArgumentsBuffer,
            ) -> Result<IsNull, BoxDynError> {
                <Hyphenated as Encode<'_, Sqlite>>::encode(self.0.hyphenated(), buf)
            }
        }

        impl Decode<'_, Sqlite> for $name {
            fn decode(value: SqliteValueRef<'_>) -> Result<Self, BoxDynError> {
                <Hyphenated as Decode<'_, Sqlite>>::decode(value).map(|h| $name(h.into_uuid()))
            }
        }
    };
}

id_type!(
    /// A tenant: an organisation that deploys models and is billed.
    TenantId
);
id_type!(
    /// A person who signs in (platform staff have no tenant).
    UserId
);
id_type!(
    /// A tenant's API key.
    ApiKeyId
);
id_type!(
    /// A model deployment of one tenant.
    DeploymentId
);
id_type!(
    /// A registered Kubernetes cluster.
    ClusterId
);
id_type!(
    /// One request through the inference gateway: the key of its metered
    /// tokens, so they are counted once however often they are written.
    RequestId
);
id_type!(
    /// A signed-in user's session.
    SessionId
);
id_type!(
    /// One replica's (pod's) device interval, as cluster sync recorded it.
    IntervalId
);
id_type!(
    /// Something that happened to a deployment (a failover step).
    EventId
);
id_type!(
    /// One request's id in the audit trail (`auditID`): every record the
    /// request causes carries it.
    AuditId
);
id_type!(
    /// One export of audit records to object storage.
    ExportId
);
id_type!(
    /// A source credential a tenant keeps in the hub.
    CredentialId
);
id_type!(
    /// One price of the catalog (rows are never changed).
    PriceId
);
id_type!(
    /// A tenant's invoice for one month and currency: derived from those
    /// three (see `InvoiceId::of`), so a draft and the final invoice share it.
    InvoiceId
);
id_type!(
    /// A credit or correction on a month's invoice.
    AdjustmentId
);
id_type!(
    /// A budget alert.
    AlertId
);
