//! The hub API's settings, as a clap struct so that `modelfleet serve
//! --help` and `modelfleet api --help` are the reference; every field can
//! also come from the environment.

use std::time::Duration;

use modelfleet_core::money::{Currency, ExchangeRates, MoneyError, Rate};

use crate::audit::{
    DEFAULT_S3_OPERATION_TIMEOUT_SECONDS, DEFAULT_S3_READ_TIMEOUT_SECONDS, ExportTarget, Location,
    S3Settings, S3Timeouts, TargetError,
};
use crate::secret::Secret;

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_SESSION_MINUTES: u32 = 60;
pub const DEFAULT_IDEMPOTENCY_HOURS: u32 = 24;
/// Roles that must use a second factor unless the platform says otherwise.
pub const DEFAULT_SECOND_FACTOR_ROLES: [crate::identity::Role; 2] = [
    crate::identity::Role::PlatformAdmin,
    crate::identity::Role::Auditor,
];
pub const DEFAULT_POOL_MAX_AGE_SECONDS: u64 = 10;
pub const DEFAULT_MODEL_SOURCE: &str = "s3://models/{model}";
pub const DEFAULT_FAILOVER_AFTER_SECONDS: u64 = 300;
/// How long a cluster may stay unreachable before the hub takes it as lost.
pub const DEFAULT_CLUSTER_LOST_AFTER_SECONDS: u64 = 300;
/// Six calendar months can be 184 days: the least China's Cybersecurity Law
/// (Article 21) allows network logs to be kept.
pub const MIN_AUDIT_RETENTION_DAYS: u32 = 184;
pub const DEFAULT_AUDIT_EXPORT_EVERY_HOURS: u32 = 24;
/// Sign-ins from one address: 10 at once, then one every 6 s.
pub const DEFAULT_SIGN_IN_BURST: u32 = 10;
pub const DEFAULT_SIGN_IN_REFILL_SECONDS: u32 = 6;
/// Failed sign-ins to one account from addresses that never signed in to
/// it: 4 at once (fewer than the lockout's 5), then one every 3 minutes
/// (the lockout's 15 minutes over its 5 failures).
pub const DEFAULT_SIGN_IN_ACCOUNT_BURST: u32 = 4;
pub const DEFAULT_SIGN_IN_ACCOUNT_REFILL_SECONDS: u32 = 180;
/// Refused credentials from one address: 30 at once, then one a second.
pub const DEFAULT_AUTH_FAILURE_BURST: u32 = 30;
pub const DEFAULT_AUTH_FAILURE_REFILL_SECONDS: u32 = 1;
/// Refusals from one address are recorded one per minute, with a count.
pub const DEFAULT_REFUSAL_WINDOW_SECONDS: u32 = 60;
/// Inference requests one API key may make per minute (a burst of this
/// many, refilled evenly), and a whole tenant.
pub const DEFAULT_GATEWAY_KEY_REQUESTS_PER_MINUTE: u32 = 600;
pub const DEFAULT_GATEWAY_TENANT_REQUESTS_PER_MINUTE: u32 = 3000;
/// The largest inference request body: a 128K-token context in a few
/// messages, with room.
pub const DEFAULT_GATEWAY_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Requests one replica may have in flight through a hub: vLLM's own
/// default `--max-num-seqs`.
pub const DEFAULT_GATEWAY_REPLICA_CONCURRENCY: u32 = 256;
pub const DEFAULT_GATEWAY_KEY_TOKENS_PER_MINUTE: u64 = 1_000_000;
pub const DEFAULT_GATEWAY_TENANT_TOKENS_PER_MINUTE: u64 = 5_000_000;

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ApiSettings {
    /// Largest request body the API accepts, in bytes; larger ones get 413.
    #[arg(long = "api-max-body-bytes", env = "MODELFLEET_API_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// How long a session token from `POST /api/v1/sessions` stays valid, in minutes.
    #[arg(long = "session-minutes", env = "MODELFLEET_SESSION_MINUTES", default_value_t = DEFAULT_SESSION_MINUTES,
          value_parser = clap::value_parser!(u32).range(1..=24 * 60))]
    pub session_minutes: u32,

    /// How long responses are kept for `Idempotency-Key` retries, in hours
    /// (at most 24: a key is a retry's, not a record's).
    #[arg(long = "idempotency-hours", env = "MODELFLEET_IDEMPOTENCY_HOURS", default_value_t = DEFAULT_IDEMPOTENCY_HOURS,
          value_parser = clap::value_parser!(u32).range(1..=24))]
    pub idempotency_hours: u32,

    /// Node pools discovered longer ago than this are listed again from
    /// their cluster before a plan or a deployment, in seconds.
    #[arg(long = "pool-max-age-seconds", env = "MODELFLEET_POOL_MAX_AGE_SECONDS", default_value_t = DEFAULT_POOL_MAX_AGE_SECONDS)]
    pub pool_max_age_seconds: u64,

    /// Where a deployment's weights are when its request names no `source`;
    /// `{model}` becomes the model id (e.g. `s3://models/llama-3.1-70b`).
    #[arg(long = "default-model-source", env = "MODELFLEET_DEFAULT_MODEL_SOURCE", default_value = DEFAULT_MODEL_SOURCE)]
    pub default_model_source: String,

    /// The Hugging Face Hub, or a mirror of it, that the hub reads `hf://`
    /// models' config.json and safetensors headers from to size models the
    /// catalog does not know (public models only: the hub sends no token)
    /// [default: https://huggingface.co].
    #[arg(long = "hf-endpoint", env = "HF_ENDPOINT")]
    pub hf_endpoint: Option<String>,

    /// ModelScope, or a mirror of it, for `modelscope://` models, as
    /// `--hf-endpoint` [default: https://www.modelscope.cn].
    #[arg(long = "modelscope-endpoint", env = "MODELSCOPE_ENDPOINT")]
    pub modelscope_endpoint: Option<String>,

    /// The currency plans priced in different currencies are ranked in.
    #[arg(
        long = "reference-currency",
        env = "MODELFLEET_REFERENCE_CURRENCY",
        default_value = "USD"
    )]
    pub reference_currency: Currency,

    /// What one unit of a currency is worth in the reference currency, as
    /// CURRENCY=RATE (e.g. `CNY=0.14`); repeat or separate with commas.
    /// Used only to rank plans, never to bill.
    #[arg(long = "exchange-rate", env = "MODELFLEET_EXCHANGE_RATES", value_delimiter = ',', value_parser = parse_rate)]
    pub exchange_rates: Vec<(Currency, Rate)>,

    /// How long a deployment's pods may stay unschedulable before failover
    /// moves it to the next-best pool of another cluster, in seconds.
    #[arg(long = "failover-after-seconds", env = "MODELFLEET_FAILOVER_AFTER_SECONDS", default_value_t = DEFAULT_FAILOVER_AFTER_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub failover_after_seconds: u64,

    /// How long a cluster may stay unreachable (its API server not
    /// answering cluster sync) before the hub takes it as lost, in
    /// seconds: its open replica intervals are closed at the last time the
    /// hub saw them, its deployments stop counting as running, and those
    /// the hub placed fail over once `--failover-after-seconds` more have
    /// passed. Measured by the hub holding cluster sync, from when it
    /// took it (a hub restart does not make clusters lost).
    #[arg(long = "cluster-lost-after-seconds", env = "MODELFLEET_CLUSTER_LOST_AFTER_SECONDS", default_value_t = DEFAULT_CLUSTER_LOST_AFTER_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub cluster_lost_after_seconds: u64,

    /// Roles whose people must sign in with a second factor (TOTP). Until
    /// such a person enrols, their session can only enrol and sign out.
    /// Comma-separated: platform-admin, tenant-admin, developer, auditor,
    /// viewer.
    /// `none` turns the requirement off (e.g. behind a single sign-on
    /// proxy that enforces its own); the compliance report then says so.
    #[arg(
        long = "second-factor-roles",
        env = "MODELFLEET_SECOND_FACTOR_ROLES",
        default_value = "platform-admin,auditor"
    )]
    pub second_factor_roles: SecondFactorRoles,

    /// Engine images a ModelDeployment may name in `serving.image`
    /// (exactly; comma-separated). By default the pinned vLLM and
    /// vllm-ascend images; anything else is refused at admission.
    #[arg(
        long = "engine-images",
        env = "MODELFLEET_ENGINE_IMAGES",
        value_delimiter = ',',
        default_values_t = modelfleet_core::contract::engine::DEFAULT_IMAGES.map(str::to_owned)
    )]
    pub engine_images: Vec<String>,

    /// `vllm serve` flags a ModelDeployment may pass in
    /// `serving.extraArgs` (comma-separated). By default scheduling,
    /// caching, logging and chat flags; never code-running or
    /// network-facing ones unless listed here.
    #[arg(
        long = "engine-flags",
        env = "MODELFLEET_ENGINE_FLAGS",
        value_delimiter = ',',
        default_values_t = modelfleet_core::contract::engine::DEFAULT_FLAGS.map(str::to_owned)
    )]
    pub engine_flags: Vec<String>,

    /// Proxies in front of the hub whose `X-Forwarded-For` is believed, as
    /// CIDRs (`10.0.0.0/8,192.168.1.10/32`). A request from one of them is
    /// recorded as coming from the last address in the header that is not
    /// itself a trusted proxy; the header is ignored from anyone else.
    #[arg(
        long = "trusted-proxies",
        env = "MODELFLEET_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Let registered clusters' kubeconfigs reach their API server over
    /// plain http:// or without verifying its TLS certificate. For labs;
    /// off by default.
    #[arg(
        long = "allow-insecure-clusters",
        env = "MODELFLEET_ALLOW_INSECURE_CLUSTERS"
    )]
    pub allow_insecure_clusters: bool,

    /// Let budget webhooks post to loopback, private and link-local
    /// addresses. Off by default: tenant admins choose webhook URLs, and
    /// the hub must not be made to call its own network.
    #[arg(
        long = "webhook-allow-private-addresses",
        env = "MODELFLEET_WEBHOOK_ALLOW_PRIVATE_ADDRESSES"
    )]
    pub webhook_allow_private_addresses: bool,

    /// Let the hub read models from object stores (`s3://`, `oss://`,
    /// `obs://`, `cos://`, with a source credential a tenant keeps) at
    /// loopback, private and link-local addresses: for stores inside the
    /// platform's own network (on-premise MinIO) and tests. Off by
    /// default: tenants name the endpoint, and the hub must not be made to
    /// call its own network.
    #[arg(
        long = "source-allow-private-addresses",
        env = "MODELFLEET_SOURCE_ALLOW_PRIVATE_ADDRESSES"
    )]
    pub source_allow_private_addresses: bool,

    /// How long audit records stay in the database, in days (at least 184,
    /// six months). Older records are removed only once exported.
    #[arg(long = "audit-retention-days", env = "MODELFLEET_AUDIT_RETENTION_DAYS", default_value_t = MIN_AUDIT_RETENTION_DAYS,
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_AUDIT_RETENTION_DAYS)..=36_500))]
    pub audit_retention_days: u32,

    /// Where audit records are exported: `s3://bucket/prefix` (AWS S3,
    /// Alibaba OSS, Huawei OBS, Tencent COS) or `file:///dir`. `serve`
    /// defaults to a directory in its data directory.
    #[arg(
        long = "audit-export",
        env = "MODELFLEET_AUDIT_EXPORT",
        value_name = "LOCATION"
    )]
    pub audit_export: Option<String>,

    /// How often the audit trail is exported (and then pruned), in hours.
    #[arg(long = "audit-export-every-hours", env = "MODELFLEET_AUDIT_EXPORT_EVERY_HOURS", default_value_t = DEFAULT_AUDIT_EXPORT_EVERY_HOURS,
          value_parser = clap::value_parser!(u32).range(1..=24 * 7))]
    pub audit_export_every_hours: u32,

    /// The S3-compatible endpoint of an `s3://` export location, e.g.
    /// `https://oss-cn-hangzhou.aliyuncs.com`; AWS S3 itself when absent.
    /// Credentials come from `MODELFLEET_AUDIT_S3_ACCESS_KEY_ID` and
    /// `MODELFLEET_AUDIT_S3_SECRET_ACCESS_KEY` (never a flag, so they stay
    /// out of process listings).
    #[arg(
        long = "audit-s3-endpoint",
        env = "MODELFLEET_AUDIT_S3_ENDPOINT",
        value_name = "URL"
    )]
    pub audit_s3_endpoint: Option<String>,

    /// The region of an `s3://` export location (`us-east-1`,
    /// `cn-hangzhou`, `cn-north-4`, `ap-guangzhou`).
    #[arg(
        long = "audit-s3-region",
        env = "MODELFLEET_AUDIT_S3_REGION",
        default_value = "us-east-1"
    )]
    pub audit_s3_region: String,

    /// Address buckets as `endpoint/bucket` (most self-hosted stores)
    /// rather than `bucket.endpoint`.
    #[arg(long = "audit-s3-path-style", env = "MODELFLEET_AUDIT_S3_PATH_STYLE")]
    pub audit_s3_path_style: bool,

    /// How long an `s3://` export waits for the store to answer one
    /// request, a part's upload included, in seconds.
    #[arg(long = "audit-s3-read-timeout-seconds", env = "MODELFLEET_AUDIT_S3_READ_TIMEOUT_SECONDS",
          default_value_t = DEFAULT_S3_READ_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub audit_s3_read_timeout_seconds: u64,

    /// How long one request of an `s3://` export may take with its
    /// retries, in seconds; then the export fails and is tried again later.
    #[arg(long = "audit-s3-operation-timeout-seconds", env = "MODELFLEET_AUDIT_S3_OPERATION_TIMEOUT_SECONDS",
          default_value_t = DEFAULT_S3_OPERATION_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..=24 * 3600))]
    pub audit_s3_operation_timeout_seconds: u64,

    /// Sign-ins (`POST /api/v1/sessions`, the console's form) one client
    /// address may make at once; then 429 with `Retry-After`. 0: no limit.
    #[arg(long = "sign-in-burst", env = "MODELFLEET_SIGN_IN_BURST", default_value_t = DEFAULT_SIGN_IN_BURST)]
    pub sign_in_burst: u32,

    /// Seconds after which one more sign-in from that address is allowed.
    #[arg(long = "sign-in-refill-seconds", env = "MODELFLEET_SIGN_IN_REFILL_SECONDS", default_value_t = DEFAULT_SIGN_IN_REFILL_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub sign_in_refill_seconds: u32,

    /// Failed sign-ins to one account, from addresses that have not signed
    /// in to it before, before further attempts get 429. 0: no limit.
    #[arg(long = "sign-in-account-burst", env = "MODELFLEET_SIGN_IN_ACCOUNT_BURST", default_value_t = DEFAULT_SIGN_IN_ACCOUNT_BURST)]
    pub sign_in_account_burst: u32,

    /// Seconds after which one more failed sign-in to that account is allowed.
    #[arg(long = "sign-in-account-refill-seconds", env = "MODELFLEET_SIGN_IN_ACCOUNT_REFILL_SECONDS", default_value_t = DEFAULT_SIGN_IN_ACCOUNT_REFILL_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub sign_in_account_refill_seconds: u32,

    /// Requests with a wrong API key, session token or session cookie one
    /// client address may send; then every request with credentials from
    /// it gets 429 with `Retry-After`, before any lookup. 0: no limit.
    #[arg(long = "auth-failure-burst", env = "MODELFLEET_AUTH_FAILURE_BURST", default_value_t = DEFAULT_AUTH_FAILURE_BURST)]
    pub auth_failure_burst: u32,

    /// Seconds after which one more refused credential from that address is allowed.
    #[arg(long = "auth-failure-refill-seconds", env = "MODELFLEET_AUTH_FAILURE_REFILL_SECONDS", default_value_t = DEFAULT_AUTH_FAILURE_REFILL_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub auth_failure_refill_seconds: u32,

    /// Refusals before authentication (401, 429) from one address are
    /// recorded in the audit trail one per this many seconds: the first at
    /// once, then one record with the count of the rest. 0: record every one.
    #[arg(long = "audit-refusal-window-seconds", env = "MODELFLEET_AUDIT_REFUSAL_WINDOW_SECONDS", default_value_t = DEFAULT_REFUSAL_WINDOW_SECONDS,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub refusal_window_seconds: u32,

    /// Inference requests (`/v1/…`) one API key may make per minute, a
    /// burst of this many refilled evenly; then 429 with `Retry-After`.
    /// Per hub process. 0: no limit.
    #[arg(long = "gateway-key-requests-per-minute", env = "MODELFLEET_GATEWAY_KEY_REQUESTS_PER_MINUTE",
          default_value_t = DEFAULT_GATEWAY_KEY_REQUESTS_PER_MINUTE)]
    pub gateway_key_requests_per_minute: u32,

    /// Inference requests all of one tenant's keys may make per minute.
    /// Per hub process. 0: no limit.
    #[arg(long = "gateway-tenant-requests-per-minute", env = "MODELFLEET_GATEWAY_TENANT_REQUESTS_PER_MINUTE",
          default_value_t = DEFAULT_GATEWAY_TENANT_REQUESTS_PER_MINUTE)]
    pub gateway_tenant_requests_per_minute: u32,

    /// The largest inference request body, in bytes (413 beyond).
    #[arg(long = "gateway-max-body-bytes", env = "MODELFLEET_GATEWAY_MAX_BODY_BYTES",
          default_value_t = DEFAULT_GATEWAY_MAX_BODY_BYTES)]
    pub gateway_max_body_bytes: usize,

    /// Requests a deployment may have in flight through this hub, per
    /// Ready replica; more get 429 with `Retry-After` instead of queueing
    /// without end in the engines. 0: no limit.
    #[arg(long = "gateway-replica-concurrency", env = "MODELFLEET_GATEWAY_REPLICA_CONCURRENCY",
          default_value_t = DEFAULT_GATEWAY_REPLICA_CONCURRENCY)]
    pub gateway_replica_concurrency: u32,

    /// Tokens (prompt and completion) one API key's requests may use per
    /// minute, refilled evenly; a key in debt gets 429 with `Retry-After`
    /// until the refill pays it back. Per hub process. 0: no limit.
    #[arg(long = "gateway-key-tokens-per-minute", env = "MODELFLEET_GATEWAY_KEY_TOKENS_PER_MINUTE",
          default_value_t = DEFAULT_GATEWAY_KEY_TOKENS_PER_MINUTE)]
    pub gateway_key_tokens_per_minute: u64,

    /// Tokens all of one tenant's requests may use per minute. Per hub
    /// process. 0: no limit.
    #[arg(long = "gateway-tenant-tokens-per-minute", env = "MODELFLEET_GATEWAY_TENANT_TOKENS_PER_MINUTE",
          default_value_t = DEFAULT_GATEWAY_TENANT_TOKENS_PER_MINUTE)]
    pub gateway_tenant_tokens_per_minute: u64,

    /// A directory where the gateway appends each answered request's
    /// tokens before they reach the database, so a gateway that crashes or
    /// is killed loses none: at start it writes what an earlier run left
    /// there. One directory per gateway process (an emptyDir in a pod).
    /// Unset: kept in memory until written (at most a second), and written
    /// when the process stops cleanly.
    #[arg(long = "gateway-spool-dir", env = "MODELFLEET_GATEWAY_SPOOL_DIR")]
    pub gateway_spool_dir: Option<std::path::PathBuf>,
}

/// Where the credentials of an `s3://` audit export location come from.
pub const AUDIT_S3_ACCESS_KEY_ENV: &str = "MODELFLEET_AUDIT_S3_ACCESS_KEY_ID";
pub const AUDIT_S3_SECRET_KEY_ENV: &str = "MODELFLEET_AUDIT_S3_SECRET_ACCESS_KEY";

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            session_minutes: DEFAULT_SESSION_MINUTES,
            idempotency_hours: DEFAULT_IDEMPOTENCY_HOURS,
            pool_max_age_seconds: DEFAULT_POOL_MAX_AGE_SECONDS,
            default_model_source: DEFAULT_MODEL_SOURCE.to_owned(),
            hf_endpoint: None,
            modelscope_endpoint: None,
            reference_currency: Currency::Usd,
            exchange_rates: Vec::new(),
            failover_after_seconds: DEFAULT_FAILOVER_AFTER_SECONDS,
            cluster_lost_after_seconds: DEFAULT_CLUSTER_LOST_AFTER_SECONDS,
            second_factor_roles: SecondFactorRoles(DEFAULT_SECOND_FACTOR_ROLES.to_vec()),
            trusted_proxies: Vec::new(),
            engine_images: modelfleet_core::contract::engine::DEFAULT_IMAGES
                .map(str::to_owned)
                .to_vec(),
            engine_flags: modelfleet_core::contract::engine::DEFAULT_FLAGS
                .map(str::to_owned)
                .to_vec(),
            allow_insecure_clusters: false,
            webhook_allow_private_addresses: false,
            source_allow_private_addresses: false,
            audit_retention_days: MIN_AUDIT_RETENTION_DAYS,
            audit_export: None,
            audit_export_every_hours: DEFAULT_AUDIT_EXPORT_EVERY_HOURS,
            audit_s3_endpoint: None,
            audit_s3_region: "us-east-1".to_owned(),
            audit_s3_path_style: false,
            audit_s3_read_timeout_seconds: DEFAULT_S3_READ_TIMEOUT_SECONDS,
            audit_s3_operation_timeout_seconds: DEFAULT_S3_OPERATION_TIMEOUT_SECONDS,
            sign_in_burst: DEFAULT_SIGN_IN_BURST,
            sign_in_refill_seconds: DEFAULT_SIGN_IN_REFILL_SECONDS,
            sign_in_account_burst: DEFAULT_SIGN_IN_ACCOUNT_BURST,
            sign_in_account_refill_seconds: DEFAULT_SIGN_IN_ACCOUNT_REFILL_SECONDS,
            auth_failure_burst: DEFAULT_AUTH_FAILURE_BURST,
            auth_failure_refill_seconds: DEFAULT_AUTH_FAILURE_REFILL_SECONDS,
            refusal_window_seconds: DEFAULT_REFUSAL_WINDOW_SECONDS,
            gateway_key_requests_per_minute: DEFAULT_GATEWAY_KEY_REQUESTS_PER_MINUTE,
            gateway_tenant_requests_per_minute: DEFAULT_GATEWAY_TENANT_REQUESTS_PER_MINUTE,
            gateway_max_body_bytes: DEFAULT_GATEWAY_MAX_BODY_BYTES,
            gateway_replica_concurrency: DEFAULT_GATEWAY_REPLICA_CONCURRENCY,
            gateway_key_tokens_per_minute: DEFAULT_GATEWAY_KEY_TOKENS_PER_MINUTE,
            gateway_tenant_tokens_per_minute: DEFAULT_GATEWAY_TENANT_TOKENS_PER_MINUTE,
            gateway_spool_dir: None,
        }
    }
}

impl ApiSettings {
    pub fn exchange_rates(&self) -> ExchangeRates {
        ExchangeRates {
            reference: Some(self.reference_currency),
            rates: self.exchange_rates.iter().copied().collect(),
        }
    }

    /// The audit export target `--audit-export` names, if any, with S3
    /// credentials from the environment for an `s3://` location.
    pub fn audit_target(&self) -> Result<Option<ExportTarget>, TargetError> {
        let Some(location) = &self.audit_export else {
            return Ok(None);
        };
        let location: Location = location.parse()?;
        let s3 = match &location {
            Location::S3 { .. } => {
                let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
                let (Some(access_key_id), Some(secret)) =
                    (var(AUDIT_S3_ACCESS_KEY_ENV), var(AUDIT_S3_SECRET_KEY_ENV))
                else {
                    return Err(TargetError::MissingS3Settings(format!(
                        "{location} (set {AUDIT_S3_ACCESS_KEY_ENV} and {AUDIT_S3_SECRET_KEY_ENV})"
                    )));
                };
                Some(S3Settings {
                    endpoint: self.audit_s3_endpoint.clone(),
                    region: self.audit_s3_region.clone(),
                    path_style: self.audit_s3_path_style,
                    access_key_id,
                    secret_access_key: Secret::new(secret),
                    timeouts: S3Timeouts {
                        read: Duration::from_secs(self.audit_s3_read_timeout_seconds),
                        operation: Duration::from_secs(self.audit_s3_operation_timeout_seconds),
                        ..S3Timeouts::default()
                    },
                })
            }
            Location::Dir(_) => None,
        };
        ExportTarget::open(location, s3.as_ref()).map(Some)
    }

    /// The weights of `model` when the request names none.
    pub fn model_source(&self, model: &str) -> String {
        self.default_model_source.replace("{model}", model)
    }
}

fn parse_rate(text: &str) -> Result<(Currency, Rate), String> {
    let (currency, rate) = text.split_once('=').ok_or_else(|| {
        format!("{text:?}: write an exchange rate as CURRENCY=RATE, e.g. CNY=0.14")
    })?;
    let currency: Currency = currency.parse().map_err(|e: MoneyError| e.to_string())?;
    let rate = Rate::parse(rate.trim()).map_err(|e| e.to_string())?;
    Ok((currency, rate))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiSettings,
    }

    #[test]
    fn defaults_match_and_rates_parse() {
        let cli = Cli::parse_from(["hub"]);
        assert_eq!(cli.api, ApiSettings::default());
        let cli = Cli::parse_from([
            "hub",
            "--exchange-rate",
            "CNY=0.14",
            "--default-model-source",
            "hf://{model}",
        ]);
        assert_eq!(cli.api.exchange_rates().rates.len(), 1);
        assert_eq!(cli.api.model_source("m"), "hf://m");
        assert!(Cli::try_parse_from(["hub", "--exchange-rate", "EUR=1"]).is_err());
        let cli = Cli::parse_from(["hub", "--failover-after-seconds", "30"]);
        assert_eq!(cli.api.failover_after_seconds, 30);
        assert!(Cli::try_parse_from(["hub", "--failover-after-seconds", "0"]).is_err());
        let cli = Cli::parse_from(["hub", "--cluster-lost-after-seconds", "60"]);
        assert_eq!(cli.api.cluster_lost_after_seconds, 60);
        assert!(Cli::try_parse_from(["hub", "--cluster-lost-after-seconds", "0"]).is_err());
        // Retention below six months is refused, not quietly raised.
        assert!(Cli::try_parse_from(["hub", "--audit-retention-days", "90"]).is_err());
        let cli = Cli::parse_from(["hub", "--audit-retention-days", "400"]);
        assert_eq!(cli.api.audit_retention_days, 400);
    }
}

/// The roles that must use a second factor: a comma-separated list of
/// role names, or `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactorRoles(pub Vec<crate::identity::Role>);

impl SecondFactorRoles {
    pub fn none() -> Self {
        SecondFactorRoles(Vec::new())
    }

    pub fn contains(&self, role: crate::identity::Role) -> bool {
        self.0.contains(&role)
    }
}

impl std::str::FromStr for SecondFactorRoles {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "none" {
            return Ok(SecondFactorRoles::none());
        }
        text.split(',')
            .map(|name| {
                name.parse()
                    .map_err(|e: crate::identity::UnknownRole| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(SecondFactorRoles)
            .map_err(|e| format!("{e}, or `none`"))
    }
}

impl std::fmt::Display for SecondFactorRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|r| r.name()).collect();
        f.write_str(&names.join(","))
    }
}
