//! What a fetch reads from, whatever speaks behind it: an object store
//! over the S3 protocol, a model hub (Hugging Face, ModelScope) or a plain
//! HTTPS server. Each lists its objects and opens a byte range of one; the
//! download loop ([`crate::download`]) is the same for all.

use bytes::Bytes;
use modelfleet_core::crd::{ModelSource, SourceScheme};

use crate::https::Https;
use crate::hub::Hub;
use crate::modelscope::ModelScope;
use crate::{FetchError, FetchOptions, Object, endpoint, https, hub, modelscope, s3};

pub(crate) enum Store {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    Hub(Hub),
    ModelScope(ModelScope),
    Https(Https),
}

/// Where a source's objects come from, decided from its URI alone (no
/// I/O), so that a bad source is refused before anything is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    S3(ModelSource),
    Hub {
        repo: String,
        revision: String,
    },
    ModelScope {
        org: String,
        model: String,
        revision: String,
    },
    Https {
        host: String,
        path: String,
    },
}

impl Plan {
    pub(crate) fn of(uri: &str) -> Result<Plan, FetchError> {
        let source = ModelSource::parse(uri).map_err(|e| {
            // The core speaks of the ModelDeployment's field.
            FetchError::BadSource(e.to_string().replacen("spec.source ", "source ", 1))
        })?;
        Ok(match source.scheme {
            SourceScheme::Pvc => {
                return Err(FetchError::BadSource(format!(
                    "{uri} is a PersistentVolumeClaim: it is mounted, not fetched"
                )));
            }
            SourceScheme::HuggingFace => {
                let (repo, revision) = hub::repo_and_revision(&source.root, &source.path)
                    .ok_or_else(|| {
                        FetchError::BadSource(format!(
                            "{uri} is not hf://org/model or hf://org/model@revision"
                        ))
                    })?;
                Plan::Hub { repo, revision }
            }
            SourceScheme::ModelScope => {
                let (model, revision) = modelscope::model_and_revision(&source.path);
                Plan::ModelScope {
                    org: source.root,
                    model,
                    revision,
                }
            }
            SourceScheme::Https => Plan::Https {
                host: source.root,
                path: source.path,
            },
            SourceScheme::S3 | SourceScheme::Oss | SourceScheme::Obs | SourceScheme::Cos => {
                Plan::S3(source)
            }
        })
    }

    /// Reaches the store and lists the source's objects.
    pub(crate) async fn connect(
        self,
        options: &FetchOptions,
    ) -> Result<(Store, Vec<Object>, CredentialSource), FetchError> {
        let (uri, env) = (options.source.as_str(), &options.env);
        Ok(match self {
            Plan::Hub { repo, revision } => {
                let (hub, objects, from) = hub::connect(uri, repo, &revision, env).await?;
                (Store::Hub(hub), objects, from)
            }
            Plan::ModelScope {
                org,
                model,
                revision,
            } => {
                let (source, objects, from) =
                    modelscope::connect(uri, &org, &model, &revision, env).await?;
                (Store::ModelScope(source), objects, from)
            }
            Plan::Https { host, path } => {
                let chunk = options.tuning.chunk_size;
                let (source, objects, from) = https::connect(uri, &host, &path, chunk, env).await?;
                (Store::Https(source), objects, from)
            }
            Plan::S3(source) => {
                let environment = env.identity.with_region(source.scheme, &env.endpoint);
                let endpoint = endpoint::resolve(source.scheme, &options.endpoint, &environment)?;
                let (credentials, from) =
                    s3::credentials(source.scheme, env, &endpoint.region).await?;
                let client = s3::client(&endpoint, credentials, env.connect_guard.as_ref())?;
                let objects = s3::list(&client, uri, &source.root, &source.path, &from).await?;
                let store = Store::S3 {
                    client,
                    bucket: source.root,
                };
                (store, objects, from)
            }
        })
    }
}

/// The bytes of one range, as they arrive.
pub(crate) enum Body {
    S3(aws_sdk_s3::primitives::ByteStream),
    Http(reqwest::Response),
}

impl Body {
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, String>> {
        match self {
            Body::S3(stream) => stream
                .next()
                .await
                .map(|r| r.map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())),
            Body::Http(response) => response
                .chunk()
                .await
                .map_err(|e| e.to_string())
                .transpose(),
        }
    }
}

/// What went wrong with one request, and whether trying again may help.
pub(crate) struct Failure {
    pub transient: bool,
    pub detail: String,
}

/// Where the credentials come from, as errors name it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource(pub String);

impl CredentialSource {
    /// `name …last4` of a key or token, or `none` words.
    pub(crate) fn of(name: &str, value: &str) -> CredentialSource {
        let tail: String = value
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        CredentialSource(format!("{name} …{tail}"))
    }
}

impl Store {
    /// Opens bytes `start..=end` of `object`.
    pub(crate) async fn open(
        &self,
        object: &Object,
        start: u64,
        end: u64,
    ) -> Result<Body, Failure> {
        match self {
            Store::S3 { client, bucket } => s3::open(client, bucket, object, start, end).await,
            Store::Hub(hub) => hub.open(object, start, end).await,
            Store::ModelScope(source) => source.open(object, start, end).await,
            Store::Https(source) => source.open(object, start, end).await,
        }
    }

    /// What to do when the store refuses for want of rights.
    pub(crate) fn denied_fix(&self) -> &'static str {
        match self {
            Store::S3 { .. } => s3::S3_DENIED_FIX,
            Store::Hub(_) => hub::HUB_DENIED_FIX,
            Store::ModelScope(_) => modelscope::MODELSCOPE_DENIED_FIX,
            Store::Https(_) => https::HTTPS_DENIED_FIX,
        }
    }
}

/// One line saying what was refused and what to do about it.
pub(crate) fn advice(
    detail: &str,
    what: &str,
    credentials: &CredentialSource,
    fix: &str,
) -> String {
    if detail.starts_with("access denied") {
        format!(
            "{what}: {detail} with credentials from {}; {fix}",
            credentials.0
        )
    } else if detail == "no such bucket" {
        format!(
            "{what}: {detail}; check the bucket's name and the region or endpoint (a bucket \
             lives in one region; COS bucket names end in -<APPID>)"
        )
    } else if detail.starts_with("no such") {
        format!("{what}: {detail}; check the source")
    } else {
        format!("{what}: {detail}")
    }
}
