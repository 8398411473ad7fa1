//! Models not in the catalog, sized from their own files: the hub reads a
//! model's `config.json` and safetensors headers (never the weights) on a
//! tenant's behalf.
//!
//! - `hf://` and `modelscope://`: only from the model hubs the platform
//!   configured (`--hf-endpoint`, `--modelscope-endpoint`; a credential's
//!   own mirror is for its pods, never followed by the hub), with no token
//!   of the hub's own — public models, or gated and private ones with a
//!   token the tenant keeps as a source credential. A tenant names a
//!   repository, never a host.
//! - `s3://`, `oss://`, `obs://`, `cos://`: only with the keys of a source
//!   credential the tenant keeps, at its `AWS_ENDPOINT_URL` (or the
//!   cloud's endpoint for its `AWS_REGION`), as the tenant's pods read it.
//!   There the tenant does name the host, so the hub connects only to
//!   public addresses ([`crate::net::is_public`]), checked as the name is
//!   resolved and pinned for the connection, through no proxy
//!   ([`modelfleet_fetch::ConnectGuard`]), unless the platform allows
//!   private ones (`--source-allow-private-addresses`). Never with the
//!   hub's own identity: without the tenant's keys nothing is read.
//!
//! What one tenant may make the hub fetch is bounded: a token bucket per
//! tenant (or staff member), and the answers kept for a while by source.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use modelfleet_core::checkpoint::id_from_source;
use modelfleet_core::contract::tenancy;
use modelfleet_core::crd::{ModelSource, SourceScheme};
use modelfleet_core::model::ModelArch;
use modelfleet_fetch::endpoint::Environment;
use modelfleet_fetch::{ConnectGuard, Env, FetchError};

use super::throttle::{Limit, Limiter};
use super::{Caller, Error, Hub, PlanRequest, Result};
use crate::identity::Permission;
use crate::ids::TenantId;

/// Inspections one tenant may start at once, and how fast that refills.
const BURST: u32 = 10;
const REFILL: Duration = Duration::from_secs(6);
/// How long an answer is reused, and how many are kept.
const KEEP_FOR: Duration = Duration::from_secs(600);
const KEEP_AT_MOST: usize = 512;
/// The longest one read may take: under the 30 s a proxy in front of the
/// hub, or a client, commonly waits.
const READ_WITHIN: Duration = Duration::from_secs(25);

/// A model read from its source.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectedModel {
    pub architecture: ModelArch,
    /// Safetensors shards whose headers were read.
    pub shards: usize,
    /// Bytes requested, of `listed_bytes` under the source.
    pub read_bytes: u64,
    pub listed_bytes: u64,
}

/// The inspections' limiter and answers, shared by the hub's clones.
#[derive(Debug)]
pub struct Inspections {
    limiter: Limiter<String>,
    kept: Mutex<HashMap<String, (Instant, InspectedModel)>>,
}

impl Default for Inspections {
    fn default() -> Self {
        Inspections {
            limiter: Limiter::new(
                Limit {
                    burst: BURST,
                    refill: REFILL,
                },
                super::throttle::MAX_KEYS,
            ),
            kept: Mutex::new(HashMap::new()),
        }
    }
}

impl Inspections {
    fn kept(&self, source: &str) -> Option<InspectedModel> {
        let kept = self.kept.lock().ok()?;
        kept.get(source)
            .filter(|(at, _)| at.elapsed() < KEEP_FOR)
            .map(|(_, model)| model.clone())
    }

    fn keep(&self, source: &str, model: &InspectedModel) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        kept.retain(|_, (at, _)| at.elapsed() < KEEP_FOR);
        if kept.len() >= KEEP_AT_MOST
            && let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            kept.remove(&oldest);
        }
        kept.insert(source.to_owned(), (Instant::now(), model.clone()));
    }
}

/// What the hub reads a source from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// A model hub the platform configured.
    ModelHub,
    /// An object store, with a tenant's kept keys only.
    ObjectStore,
}

/// Whether the hub reads `source` itself, and from what.
fn hub_readable(source: &str) -> Result<Reach> {
    let parsed = ModelSource::parse(source).map_err(|e| Error::invalid("source", e.to_string()))?;
    match parsed.scheme {
        SourceScheme::HuggingFace | SourceScheme::ModelScope => Ok(Reach::ModelHub),
        SourceScheme::S3 | SourceScheme::Oss | SourceScheme::Obs | SourceScheme::Cos => {
            Ok(Reach::ObjectStore)
        }
        SourceScheme::Pvc | SourceScheme::Https => Err(Error::invalid(
            "source",
            format!(
                "{source} is not a model's directory the hub can read; describe the model \
                 with `architecture` (`modelfleet model --source` prints it from a directory \
                 holding config.json and the safetensors shards)"
            ),
        )),
    }
}

/// What the hub says when it is asked to read an object store without a
/// credential to read it with.
fn credential_needed(source: &str) -> Error {
    Error::invalid(
        "sourceCredential",
        format!(
            "the hub reads {source} only with your own keys: keep them as a source credential \
             (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_ENDPOINT_URL and AWS_REGION \
             for where the store answers) and name it as sourceCredential, or run `modelfleet \
             model --source {source}` where your storage credentials are and send the \
             architecture it prints as `architecture`"
        ),
    )
}

/// The keys and settings of the credential `name` for reading the object
/// store at `source`, as its pods would read them (`AWS_*`); what it
/// lacks is named.
fn object_store_env(
    source: &str,
    name: &str,
    value: impl Fn(&str) -> Option<String>,
) -> Result<Env> {
    let (Some(access_key_id), Some(secret_access_key)) =
        (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"))
    else {
        return Err(Error::invalid(
            "sourceCredential",
            format!(
                "the source credential {name:?} holds no object-store keys: keep \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in it to read {source}"
            ),
        ));
    };
    let endpoint_url = value("AWS_ENDPOINT_URL");
    let region = value("AWS_REGION");
    // The clouds' own endpoints are the region's; a store of one's own is
    // addressed by its URL (SigV4 then signs for us-east-1 unless told).
    if region.is_none() && endpoint_url.is_none() {
        return Err(Error::invalid(
            "sourceCredential",
            format!(
                "the source credential {name:?} says neither where {source} answers nor in \
                 which region: keep AWS_REGION in it (the bucket's region, such as us-east-1 \
                 or cn-hangzhou), and AWS_ENDPOINT_URL for a store other than the cloud's own"
            ),
        ));
    }
    Ok(Env {
        endpoint: Environment {
            endpoint_url,
            region,
        },
        access_key_id: Some(access_key_id),
        secret_access_key: Some(secret_access_key),
        session_token: value("AWS_SESSION_TOKEN"),
        ..Env::default()
    })
}

/// Allows every address: the platform has allowed private ones.
fn any_address(_: std::net::IpAddr) -> bool {
    true
}

impl Hub {
    /// Reads the model at `source` and sizes it; the architecture's id
    /// comes from the source's name. With `credential` (a tenant and the
    /// name of a source credential it keeps), a model hub's source is read
    /// with its Hugging Face or ModelScope token, an object store with its
    /// keys, at its endpoint and region; an object store is read with
    /// nothing else.
    pub async fn inspect_model(
        &self,
        caller: &Caller,
        source: &str,
        credential: Option<(TenantId, &str)>,
    ) -> Result<InspectedModel> {
        caller.require(Permission::Read)?;
        let reach = hub_readable(source)?;
        if reach == Reach::ObjectStore && credential.is_none() {
            return Err(credential_needed(source));
        }
        // A model read with a tenant's token is that tenant's to see: its
        // answer is kept apart from the public one.
        let kept_as = match credential {
            None => source.to_owned(),
            Some((tenant, name)) => format!("{tenant}\n{name}\n{source}"),
        };
        if let Some(kept) = self.inspections.kept(&kept_as) {
            return Ok(kept);
        }
        let mut env = Env {
            hf_endpoint: self.settings.hf_endpoint.clone(),
            modelscope_endpoint: self.settings.modelscope_endpoint.clone(),
            ..Env::default()
        };
        if let Some((tenant, name)) = credential {
            self.store.tenant(caller.scope(), tenant).await?;
            let values = self
                .store
                .open_source_credential(&self.keyring, tenant, name)
                .await?
                .ok_or_else(|| {
                    Error::invalid(
                        "sourceCredential",
                        format!("the tenant keeps no source credential named {name:?}"),
                    )
                })?;
            let value = |key: &str| values.get(key).map(|v| v.expose().to_owned());
            match reach {
                Reach::ModelHub => {
                    env.hf_token = value("HF_TOKEN");
                    env.modelscope_token = value("MODELSCOPE_API_TOKEN");
                }
                Reach::ObjectStore => {
                    env = object_store_env(source, name, value)?;
                    let allows: fn(std::net::IpAddr) -> bool =
                        if self.settings.source_allow_private_addresses {
                            any_address
                        } else {
                            crate::net::is_public
                        };
                    env.connect_guard = Some(ConnectGuard::new(
                        allows,
                        "not a public address; the hub reads a tenant's object store only at \
                         public addresses",
                    ));
                }
            }
        }
        // Platform staff share one budget.
        let who = caller
            .actor
            .tenant
            .map_or_else(|| "staff".to_owned(), |t| t.to_string());
        self.inspections
            .limiter
            .take(&who, None, Instant::now())
            .map_err(|wait| {
                let seconds = u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX);
                Error::too_many_requests(
                    format!(
                        "too many models read from their sources; retry after {seconds} seconds"
                    ),
                    seconds,
                )
            })?;
        let endpoint = Default::default();
        let read = modelfleet_fetch::inspect(source, &endpoint, &env);
        let inspected = tokio::time::timeout(READ_WITHIN, read)
            .await
            .map_err(|_| {
                Error::invalid(
                    "source",
                    format!(
                        "{source} could not be read within {} s; try again later",
                        READ_WITHIN.as_secs()
                    ),
                )
            })?
            .map_err(|e| match e {
                FetchError::BadSource(reason) => Error::invalid("source", reason),
                other => match credential {
                    None => Error::invalid(
                        "source",
                        format!(
                            "{other} (the hub reads public models only, with no token of its \
                             own: for a gated or private model, keep your token as a source \
                             credential and name it as sourceCredential, or run `modelfleet \
                             model --source {source}` with your token and send the \
                             architecture it prints)"
                        ),
                    ),
                    Some((_, name)) => Error::invalid(
                        "source",
                        format!("{other} (read with the source credential {name:?})"),
                    ),
                },
            })?;
        let architecture = inspected
            .checkpoint
            .architecture(&id_from_source(source), "")
            .map_err(|e| Error::invalid("source", format!("{source}: {e}")))?;
        let model = InspectedModel {
            architecture,
            shards: inspected.shards,
            read_bytes: inspected.read_bytes,
            listed_bytes: inspected.listed_bytes,
        };
        self.inspections.keep(&kept_as, &model);
        Ok(model)
    }

    /// A request for a model the catalog does not know, with no
    /// architecture, from a source the hub can read: the architecture
    /// read from the source, named as the request names the model.
    pub(crate) async fn describe_from_source(
        &self,
        caller: &Caller,
        request: &mut PlanRequest,
    ) -> Result<()> {
        if request.architecture.is_some() || ModelArch::find(&request.model).is_ok() {
            return Ok(());
        }
        let Some(source) = request.source.clone() else {
            return Ok(());
        };
        // Not the catalog's, not described, and not readable here: say
        // how to describe it.
        hub_readable(&source)?;
        // Read with the credential the deployment fetches with, when the
        // hub keeps it; a Secret of the tenant's own it cannot read.
        let credential = match request
            .source_secret
            .as_deref()
            .and_then(tenancy::source_credential_of)
        {
            None => None,
            Some(name) => {
                let tenant = caller.actor.tenant.or(request.tenant).ok_or_else(|| {
                    Error::invalid(
                        "tenant",
                        "name the tenant whose source credential reads the model",
                    )
                })?;
                Some((tenant, name))
            }
        };
        let mut architecture = self
            .inspect_model(caller, &source, credential)
            .await?
            .architecture;
        architecture.id = request.model.clone();
        request.architecture = Some(architecture);
        Ok(())
    }
}
