//! What a fetch reads from, whatever speaks behind it: an object store
//! over the S3 protocol, or a model hub over HTTP. Each lists its objects
//! and opens a byte range of one; the download loop ([`crate::download`])
//! is the same for both.

use bytes::Bytes;

use crate::Object;
use crate::hub::Hub;

pub(crate) enum Store {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    Hub(Hub),
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
            Store::S3 { client, bucket } => {
                crate::s3::open(client, bucket, object, start, end).await
            }
            Store::Hub(hub) => hub.open(object, start, end).await,
        }
    }

    /// What to do when the store refuses for want of rights.
    pub(crate) fn denied_fix(&self) -> &'static str {
        match self {
            Store::S3 { .. } => crate::s3::S3_DENIED_FIX,
            Store::Hub(_) => crate::hub::HUB_DENIED_FIX,
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
