//! The S3 protocol side: a client for one store, listing a prefix, and one
//! chunk fetched with a ranged GET — retried on transient errors and when
//! the connection stalls, refused with one clear line on the others.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::endpoint::Endpoint;
use crate::{Env, FetchError, Object, Tuning};

/// Where the credentials come from, as errors name it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource(pub String);

/// Static keys from the standard environment variables (a ModelDeployment
/// gets them from its source Secret).
pub(crate) fn credentials(env: &Env) -> Result<(Credentials, CredentialSource), FetchError> {
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    match (set(&env.access_key_id), set(&env.secret_access_key)) {
        (Some(id), Some(secret)) => {
            let tail: String = id
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let source = CredentialSource(format!("AWS_ACCESS_KEY_ID …{tail}"));
            Ok((
                Credentials::new(id, secret, set(&env.session_token), None, "environment"),
                source,
            ))
        }
        (Some(_), None) => Err(FetchError::Credentials(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both".into(),
        )),
        _ => Err(FetchError::Credentials(
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a ModelDeployment \
             passes them from its source Secret); pod identities (EKS IRSA, ACK RRSA) are not \
             supported by this version of modelfleet fetch"
                .into(),
        )),
    }
}

pub(crate) fn client(endpoint: &Endpoint, credentials: Credentials) -> aws_sdk_s3::Client {
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
        config = config.endpoint_url(url);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// What went wrong with one request, and whether trying again may help.
struct Failure {
    transient: bool,
    detail: String,
}

fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
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

/// What to do about a request refused for good.
fn advice(detail: &str, what: &str, credentials: &CredentialSource) -> String {
    if detail.starts_with("access denied") {
        format!(
            "{what}: {detail} with credentials from {}; check that they may list and read it \
             (s3:ListBucket, s3:GetObject), or give the deployment a source Secret that may",
            credentials.0
        )
    } else if detail == "no such bucket" {
        format!(
            "{what}: {detail}; check the bucket's name and the region or endpoint (a bucket \
             lives in one region; COS bucket names end in -<APPID>)"
        )
    } else if detail == "no such object" {
        format!("{what}: {detail}; check the source path")
    } else {
        format!("{what}: {detail}")
    }
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
            });
        }
    }
    Ok(objects)
}

/// Downloads bytes `[offset, offset + len)` of `object` into `path` at
/// the same offset, then syncs them. Resumes mid-chunk after a transient
/// error or a stall, with backoff and jitter; `done` counts every byte
/// written, for progress.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn chunk(
    client: &aws_sdk_s3::Client,
    uri: &str,
    bucket: &str,
    object: &Object,
    path: &Path,
    offset: u64,
    len: u64,
    tuning: &Tuning,
    credentials: &CredentialSource,
    done: &Arc<AtomicU64>,
) -> Result<(), FetchError> {
    let what = || format!("cannot read {uri} (object {})", object.key);
    let mut got = 0u64;
    let mut failures = 0u32;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await
        .map_err(|e| FetchError::Io(format!("cannot open {}: {e}", path.display())))?;
    while got < len {
        let start = offset + got;
        let mut request = client
            .get_object()
            .bucket(bucket)
            .key(&object.key)
            .range(format!("bytes={start}-{}", offset + len - 1));
        if let Some(etag) = &object.etag {
            request = request.if_match(etag);
        }
        let before = got;
        let error = match request.send().await {
            Ok(output) => {
                let mut body = output.body;
                file.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(|e| FetchError::Io(format!("cannot seek {}: {e}", path.display())))?;
                let mut error = None;
                while got < len {
                    match tokio::time::timeout(tuning.stall_after, body.next()).await {
                        Err(_) => {
                            error = Some(format!(
                                "no bytes for {} s (stalled)",
                                tuning.stall_after.as_secs()
                            ));
                            break;
                        }
                        Ok(None) => {
                            error = Some("the connection ended early".to_owned());
                            break;
                        }
                        Ok(Some(Err(e))) => {
                            error = Some(DisplayErrorContext(e).to_string());
                            break;
                        }
                        Ok(Some(Ok(bytes))) => {
                            let n = (bytes.len() as u64).min(len - got);
                            file.write_all(&bytes[..n as usize]).await.map_err(|e| {
                                FetchError::Io(format!("cannot write {}: {e}", path.display()))
                            })?;
                            got += n;
                            done.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                }
                error
            }
            Err(e) => {
                let f = classify(&e);
                if !f.transient {
                    return Err(FetchError::Source(advice(&f.detail, &what(), credentials)));
                }
                Some(f.detail)
            }
        };
        if let Some(detail) = error {
            // Progress made resets the count: a slow but moving download
            // is not given up on.
            failures = if got > before { 1 } else { failures + 1 };
            if failures > tuning.attempts {
                return Err(FetchError::Source(format!(
                    "{}: {detail} ({} attempts without progress)",
                    what(),
                    tuning.attempts
                )));
            }
            tokio::time::sleep(backoff(failures, tuning.backoff)).await;
        }
    }
    file.flush()
        .await
        .map_err(|e| FetchError::Io(format!("cannot write {}: {e}", path.display())))?;
    file.sync_data()
        .await
        .map_err(|e| FetchError::Io(format!("cannot sync {}: {e}", path.display())))
}

/// Exponential backoff from `base`, at most 30 s, with up to half again of
/// jitter so that many pods retrying at once spread out.
fn backoff(failures: u32, base: Duration) -> Duration {
    let exp = base
        .saturating_mul(1 << failures.min(10))
        .min(Duration::from_secs(30));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = exp.mul_f64(f64::from(nanos % 500) / 1000.0);
    exp + jitter
}
