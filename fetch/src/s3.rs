//! The S3 protocol side: a client for one store, listing a prefix, and a
//! ranged GET of one object pinned to the ETag it was listed with.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use aws_credential_types::provider::SharedCredentialsProvider;
use modelfleet_core::crd::SourceScheme;

use crate::endpoint::Endpoint;
use crate::guard::ConnectGuard;
use crate::identity::PodIdentity;
use crate::store::{Body, CredentialSource, Failure, advice};
use crate::{Env, FetchError, Object};

pub(crate) const S3_DENIED_FIX: &str = "check that they may list and read it (s3:ListBucket, \
                             s3:GetObject), or give the deployment a source Secret that may";

/// Static keys from the standard environment variables (a ModelDeployment
/// gets them from its source Secret), else the pod's identity
/// ([`identity`](crate::identity)) for `scheme` in `region`.
pub(crate) async fn credentials(
    scheme: SourceScheme,
    env: &Env,
    region: &str,
) -> Result<(SharedCredentialsProvider, CredentialSource), FetchError> {
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    match (set(&env.access_key_id), set(&env.secret_access_key)) {
        (Some(id), Some(secret)) => {
            let source = CredentialSource::of("AWS_ACCESS_KEY_ID", &id);
            let keys = Credentials::new(id, secret, set(&env.session_token), None, "environment");
            Ok((SharedCredentialsProvider::new(keys), source))
        }
        (Some(_), None) => Err(FetchError::Credentials(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both".into(),
        )),
        _ => match PodIdentity::of(scheme, env, region)? {
            Some((identity, source)) => {
                // Exchanged now, so that a refusal is the fetch's one line.
                identity.credentials().await.map_err(|e| {
                    FetchError::Credentials(format!("no keys from {}: {e}", source.0))
                })?;
                Ok((SharedCredentialsProvider::new(identity), source))
            }
            None => Err(FetchError::Credentials(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a \
                 ModelDeployment passes them from its source Secret), or run the pod with an \
                 identity (EKS IRSA or Pod Identity for s3://, ACK RRSA for oss://, CCE \
                 workload identity for obs://, TKE pod identity for cos://)"
                    .into(),
            )),
        },
    }
}

/// A client for `endpoint`'s store; with `guard`, one that connects only
/// where the guard allows ([`crate::guard`]).
pub(crate) fn client(
    endpoint: &Endpoint,
    credentials: SharedCredentialsProvider,
    guard: Option<&ConnectGuard>,
) -> Result<aws_sdk_s3::Client, FetchError> {
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .build();
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(endpoint.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(endpoint.path_style)
        .timeout_config(timeouts)
        // OSS, OBS and COS do not all speak the newest checksum headers;
        // sizes are checked here and ranged reads are pinned by ETag.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // Retries are this module's own (per chunk, resuming mid-chunk).
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    if let Some(url) = &endpoint.url {
        if let Some(guard) = guard {
            guard.check_endpoint(url)?;
        }
        config = config.endpoint_url(url);
    }
    if let Some(guard) = guard {
        config = config.http_client(guard.http_client());
    }
    Ok(aws_sdk_s3::Client::from_conf(config.build()))
}

fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(detail) = crate::guard::refusal(e) {
        return Failure {
            transient: false,
            detail,
        };
    }
    match e {
        SdkError::ServiceError(service) => {
            let status = service_status(e);
            let code = service.err().code().unwrap_or("").to_owned();
            let transient = matches!(status, Some(408 | 429 | 500..=599))
                || matches!(
                    code.as_str(),
                    "SlowDown" | "InternalError" | "RequestTimeout"
                );
            let detail = match (status, code.as_str()) {
                (Some(403), _)
                | (_, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                    let status = status.map_or_else(|| "?".to_owned(), |s| s.to_string());
                    format!("access denied (HTTP {status} {code})")
                }
                (_, "NoSuchBucket") => "no such bucket".to_owned(),
                (_, "NoSuchKey") | (Some(404), _) => "no such object".to_owned(),
                (Some(412), _) | (_, "PreconditionFailed") => {
                    "the object changed while it was being fetched".to_owned()
                }
                _ => DisplayErrorContext(e).to_string(),
            };
            Failure { transient, detail }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure {
                transient: true,
                detail: DisplayErrorContext(e).to_string(),
            }
        }
        _ => Failure {
            transient: false,
            detail: DisplayErrorContext(e).to_string(),
        },
    }
}

fn service_status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Every object under `prefix` (the prefix itself when it names one
/// object), with its path relative to it.
pub(crate) async fn list(
    client: &aws_sdk_s3::Client,
    uri: &str,
    bucket: &str,
    prefix: &str,
    credentials: &CredentialSource,
) -> Result<Vec<Object>, FetchError> {
    let dir_prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    let mut objects = Vec::new();
    let mut token = None;
    loop {
        let mut request = client.list_objects_v2().bucket(bucket).prefix(&dir_prefix);
        if let Some(t) = token.take() {
            request = request.continuation_token(t);
        }
        let page = request.send().await.map_err(|e| {
            let f = classify(&e);
            FetchError::Source(advice(
                &f.detail,
                &format!("cannot list {uri}"),
                credentials,
                S3_DENIED_FIX,
            ))
        })?;
        for o in page.contents() {
            let (Some(key), Some(size)) = (o.key(), o.size()) else {
                continue;
            };
            // Folder markers some consoles create.
            if key.ends_with('/') && size == 0 {
                continue;
            }
            objects.push(Object {
                key: key.to_owned(),
                relative: key[dir_prefix.len()..].to_owned(),
                size: u64::try_from(size).unwrap_or(0),
                etag: o.e_tag().map(str::to_owned),
                sha256: None,
            });
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => break,
        }
    }
    if objects.is_empty() && !prefix.is_empty() && !prefix.ends_with('/') {
        // A single file named by the source itself.
        if let Ok(head) = client.head_object().bucket(bucket).key(prefix).send().await {
            let name = prefix.rsplit('/').next().unwrap_or(prefix).to_owned();
            objects.push(Object {
                key: prefix.to_owned(),
                relative: name,
                size: head
                    .content_length()
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or(0),
                etag: head.e_tag().map(str::to_owned),
                sha256: None,
            });
        }
    }
    Ok(objects)
}

/// Opens bytes `start..=end` of `object`, only as the version listed.
pub(crate) async fn open(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    object: &Object,
    start: u64,
    end: u64,
) -> Result<Body, Failure> {
    let mut request = client
        .get_object()
        .bucket(bucket)
        .key(&object.key)
        .range(format!("bytes={start}-{end}"));
    if let Some(etag) = &object.etag {
        request = request.if_match(etag);
    }
    match request.send().await {
        Ok(output) => Ok(Body::S3(output.body)),
        Err(e) => Err(classify(&e)),
    }
}
