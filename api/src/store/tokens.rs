//! Metered tokens: one row per request the inference gateway answered,
//! keyed by its request id. The gateway writes them in batches
//! ([`Store::record_tokens`]), and a batch written again — its first
//! attempt committed but the acknowledgement was lost, or a restarted
//! gateway replays its spool — adds nothing, so each request is counted
//! exactly once. Rows are facts the platform measured, not changes a user
//! made, so they carry no audit record (like replica intervals).

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::quotas::db_int;
use super::{Backend, Store, StoreError, on_conn, visible};
use crate::identity::{Actor, Scope};
use crate::ids::{ApiKeyId, DeploymentId, RequestId, TenantId};

/// The most rows one statement writes (14 parameters each, far below
/// either database's limit on parameters).
pub const MAX_TOKEN_BATCH: usize = 500;

/// One answered request's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub request: RequestId,
    pub tenant: TenantId,
    pub deployment: DeploymentId,
    /// The key that called; `None` for a signed-in user (the console).
    pub api_key: Option<ApiKeyId>,
    /// The catalog model the deployment serves.
    pub model: String,
    pub cluster: String,
    /// `chat`, `completion` or `embedding`.
    pub operation: String,
    /// The status the client got (499 when it went away first).
    pub status: u16,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub at: DateTime<Utc>,
    /// From arrival to the first event carrying choices (streamed answers).
    #[serde(default)]
    pub first_token_ms: Option<u32>,
    /// From arrival to the answer's end; `None` in records spooled by a
    /// gateway older than the field.
    #[serde(default)]
    pub duration_ms: Option<u32>,
}

/// The hour `at` falls in: what rows are summed by.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// What to sum: one tenant's (or, for platform readers, every tenant's)
/// tokens in `[from, to)`, optionally one deployment's or one key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFilter {
    pub tenant: Option<TenantId>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub deployment: Option<DeploymentId>,
    pub api_key: Option<ApiKeyId>,
}

/// The tokens of one deployment, key and model in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenTotal {
    pub tenant: TenantId,
    pub deployment: DeploymentId,
    pub deployment_name: String,
    pub api_key: Option<ApiKeyId>,
    /// The key's name, when a key called.
    pub api_key_name: Option<String>,
    pub model: String,
    pub hour: DateTime<Utc>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What a deployment's gateway traffic looked like over a window: the
/// console's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traffic {
    pub requests: u64,
    /// Requests answered with a status of 400 or more (499: the client
    /// left first).
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Time to first token of streamed answers, in milliseconds.
    pub ttft_ms: Option<Percentiles>,
    /// Time per output token after the first, in milliseconds, of
    /// streamed answers with at least two output tokens.
    pub tpot_ms: Option<Percentiles>,
}

/// Nearest-rank percentiles of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Percentiles {
    /// The percentiles of `values`, or `None` when there are none.
    pub fn of(mut values: Vec<f64>) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            // Nearest rank: the smallest value with at least p of the
            // sample at or below it.
            let n = values.len();
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            values[i]
        };
        Some(Percentiles {
            samples: values.len() as u64,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
        })
    }
}

/// The most recent requests of a window whose timings the percentiles
/// are taken from: enough for a stable p99, bounded for a busy one.
pub const TRAFFIC_SAMPLE: i64 = 20_000;

type TotalRow = (
    TenantId,
    DeploymentId,
    String,
    Option<ApiKeyId>,
    Option<String>,
    String,
    DateTime<Utc>,
    i64,
    i64,
    i64,
);

fn count(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(what))
}

impl Store {
    /// Writes `records` (at most [`MAX_TOKEN_BATCH`] per statement) in one
    /// transaction; a request id already there is left as it is. Returns
    /// how many rows were new.
    pub async fn record_tokens(&self, records: &[TokenRecord]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin(&Actor::system("gateway")).await?;
        const COLUMNS: usize = 14;
        // SQLite takes positional `?`s: with `$n`, each parameter's number
        // is looked up by a linear scan of the statement's names (sqlx
        // asks for every one's name), quadratic in a batch's 7,000
        // parameters — most of the gateway's CPU before this.
        let numbered = self.backend() == Backend::Postgres;
        let mut added = 0;
        for batch in records.chunks(MAX_TOKEN_BATCH) {
            let mut sql = String::from(
                "INSERT INTO token_usage (request_id, tenant_id, deployment_id, api_key_id, \
                 model, cluster, operation, status, input_tokens, output_tokens, at, hour, \
                 first_token_ms, duration_ms) VALUES ",
            );
            for i in 0..batch.len() {
                let b = i * COLUMNS;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for c in 1..=COLUMNS {
                    if c > 1 {
                        sql.push_str(", ");
                    }
                    if numbered {
                        sql.push('$');
                        sql.push_str(&(b + c).to_string());
                    } else {
                        sql.push('?');
                    }
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
            let mut rows = Vec::with_capacity(batch.len());
            for r in batch {
                rows.push((
                    db_int(r.input_tokens, "input_tokens")?,
                    db_int(r.output_tokens, "output_tokens")?,
                ));
            }
            added += on_conn!(tx.conn(), c => {
                // Only placeholders are added to the text; every value is bound.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for (r, (input, output)) in batch.iter().zip(&rows) {
                    q = q
                        .bind(r.request)
                        .bind(r.tenant)
                        .bind(r.deployment)
                        .bind(r.api_key)
                        .bind(&r.model)
                        .bind(&r.cluster)
                        .bind(&r.operation)
                        .bind(i32::from(r.status))
                        .bind(*input)
                        .bind(*output)
                        .bind(r.at)
                        .bind(hour_of(r.at))
                        .bind(r.first_token_ms.map(i64::from))
                        .bind(r.duration_ms.map(i64::from));
                }
                q.execute(c).await.map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Tokens summed by deployment, key, model and hour, in that order.
    pub async fn token_totals(
        &self,
        scope: Scope,
        filter: &TokenFilter,
    ) -> Result<Vec<TokenTotal>, StoreError> {
        match filter.tenant {
            Some(tenant) => visible(scope, tenant, "tenant")?,
            None if scope == Scope::All => {}
            None => return Err(StoreError::NotFound("tenant")),
        }
        let mut reader = self.reader().await?;
        let rows: Vec<TotalRow> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT u.tenant_id, u.deployment_id, d.name, u.api_key_id, k.name, u.model, u.hour, \
             COUNT(*), CAST(SUM(u.input_tokens) AS BIGINT), CAST(SUM(u.output_tokens) AS BIGINT) \
             FROM token_usage u JOIN deployments d ON d.id = u.deployment_id \
             LEFT JOIN api_keys k ON k.id = u.api_key_id \
             WHERE ($1 IS NULL OR u.tenant_id = $1) AND u.at >= $2 AND u.at < $3 \
             AND ($4 IS NULL OR u.deployment_id = $4) AND ($5 IS NULL OR u.api_key_id = $5) \
             GROUP BY u.tenant_id, u.deployment_id, d.name, u.api_key_id, k.name, u.model, u.hour \
             ORDER BY u.tenant_id, u.deployment_id, u.api_key_id, u.model, u.hour",
        )
        .bind(filter.tenant)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.deployment)
        .bind(filter.api_key)
        .fetch_all(c).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(TokenTotal {
                    tenant: r.0,
                    deployment: r.1,
                    deployment_name: r.2,
                    api_key: r.3,
                    api_key_name: r.4,
                    model: r.5,
                    hour: r.6,
                    requests: count(r.7, "token requests")?,
                    input_tokens: count(r.8, "input tokens")?,
                    output_tokens: count(r.9, "output tokens")?,
                })
            })
            .collect()
    }

    /// One deployment's traffic in `[from, to)`: counts over every
    /// request, timings over the newest [`TRAFFIC_SAMPLE`].
    pub async fn deployment_traffic(
        &self,
        scope: Scope,
        deployment: DeploymentId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Traffic, StoreError> {
        // Visibility is the deployment's: another tenant's is not found.
        self.deployment(scope, deployment).await?;
        let mut reader = self.reader().await?;
        let (requests, errors, input, output): (i64, i64, i64, i64) = on_conn!(reader.conn(), c => sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) \
                 FROM token_usage WHERE deployment_id = $1 AND at >= $2 AND at < $3",
            )
            .bind(deployment)
            .bind(from)
            .bind(to)
            .fetch_one(c).await)?;
        let timings: Vec<(i64, i64, i64)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT first_token_ms, duration_ms, output_tokens FROM token_usage \
             WHERE deployment_id = $1 AND at >= $2 AND at < $3 \
             AND first_token_ms IS NOT NULL AND duration_ms IS NOT NULL AND status < 400 \
             ORDER BY at DESC LIMIT $4",
        )
        .bind(deployment)
        .bind(from)
        .bind(to)
        .bind(TRAFFIC_SAMPLE)
        .fetch_all(c).await)?;
        let ttft = timings.iter().map(|t| t.0 as f64).collect();
        let tpot = timings
            .iter()
            .filter(|t| t.2 > 1 && t.1 >= t.0)
            .map(|t| (t.1 - t.0) as f64 / (t.2 - 1) as f64)
            .collect();
        Ok(Traffic {
            requests: count(requests, "token requests")?,
            errors: count(errors, "token errors")?,
            input_tokens: count(input, "input tokens")?,
            output_tokens: count(output, "output tokens")?,
            ttft_ms: Percentiles::of(ttft),
            tpot_ms: Percentiles::of(tpot),
        })
    }
}
