//! Where exports go: a local directory (the embedded default) or an S3
//! bucket. AWS S3, Alibaba Cloud OSS, Huawei Cloud OBS and Tencent Cloud
//! COS all speak the S3 API, so one client reaches them all; only the
//! endpoint, region and addressing style differ.
//!
//! Objects are written in parts of [`PART_SIZE`] while their SHA-256 is
//! computed, so an export of any size holds a bounded amount in memory: to
//! S3 as a multipart upload (aborted if anything fails), to a directory
//! through a temporary file renamed into place once complete, so a reader
//! never sees half an object under its final name.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use sha2::{Digest, Sha256};

use super::object::{ObjectReader, ObjectWriter, Sink};
use super::storage::{StorageError, blocking, s3_error};
use crate::secret::Secret;

/// The size of each part written unless set otherwise: S3 requires at
/// least [`MIN_PART_SIZE`] for every part but the last. Two writers of this
/// size are most of an export's memory.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's smallest part (but the last) of a multipart upload.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Temporary files carry this in their name until renamed into place;
/// listings skip them.
pub(super) const PARTIAL_MARK: &str = ".partial-";

/// How to reach an S3-compatible store. The secret key is a [`Secret`]: it
/// prints as `<redacted>` and never reaches a log line or an error.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `https://oss-cn-hangzhou.aliyuncs.com`, `https://obs.cn-north-4.myhuaweicloud.com`,
    /// `https://cos.ap-guangzhou.myqcloud.com`; `None` for AWS S3 itself.
    pub endpoint: Option<String>,
    /// `us-east-1`, `cn-hangzhou`, `cn-north-4`, `ap-guangzhou`.
    pub region: String,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint`
    /// (needed by most self-hosted stores).
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub timeouts: S3Timeouts,
}

/// How long the S3 client waits, so that a store which takes the
/// connection and never answers fails an export instead of hanging it
/// (and with it the export loop) for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// From sending a request to the first byte of the answer; the upload
    /// of a part counts, so leave room for [`PART_SIZE`] on a slow link.
    pub read: Duration,
    /// One whole operation, its retries included.
    pub operation: Duration,
}

impl Default for S3Timeouts {
    /// 10 s to connect, 2 minutes for an answer, 10 minutes in all.
    fn default() -> Self {
        S3Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(DEFAULT_S3_READ_TIMEOUT_SECONDS),
            operation: Duration::from_secs(DEFAULT_S3_OPERATION_TIMEOUT_SECONDS),
        }
    }
}

/// [`S3Timeouts::read`] unless set otherwise.
pub const DEFAULT_S3_READ_TIMEOUT_SECONDS: u64 = 120;
/// [`S3Timeouts::operation`] unless set otherwise.
pub const DEFAULT_S3_OPERATION_TIMEOUT_SECONDS: u64 = 600;

/// Why a location or its settings are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "export location {location:?} is not valid: {reason}; use file:///dir or s3://bucket/prefix"
    )]
    BadLocation { location: String, reason: String },
    #[error(
        "export location {0} is an S3 bucket but no S3 settings were given; set the region and access keys"
    )]
    MissingS3Settings(String),
    #[error("invalid S3 settings: {0}")]
    BadS3Settings(String),
}

/// A parsed export location, without credentials: what export rows and
/// digests record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file:///abs/dir`.
    Dir(PathBuf),
    /// `s3://bucket/optional/prefix`; the prefix has no leading or
    /// trailing `/`.
    S3 { bucket: String, prefix: String },
}

impl std::str::FromStr for Location {
    type Err = TargetError;

    fn from_str(location: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| TargetError::BadLocation {
            location: location.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        if let Some(path) = location.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a file location needs an absolute path (file:///var/lib/modelfleet/audit)",
                ));
            }
            let path = Path::new(path);
            if path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
            {
                return Err(bad("the path must not contain `.` or `..`"));
            }
            return Ok(Location::Dir(path.to_owned()));
        }
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                })
                && bucket.as_bytes()[0].is_ascii_alphanumeric()
                && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
            if !valid_bucket {
                return Err(bad(
                    "the bucket name must be 3 to 63 lower-case letters, digits, '.' and '-'",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..")
                || prefix.contains("//")
                || prefix.chars().any(char::is_control)
            {
                return Err(bad(
                    "the prefix must be `/`-separated names without `.`, `..` or empty parts",
                ));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        Err(bad("unknown scheme"))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(path) => write!(f, "file://{}", path.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A location ready to read and write.
#[derive(Clone)]
pub struct ExportTarget {
    location: Location,
    backend: Backend,
    part_size: usize,
}

#[derive(Clone)]
enum Backend {
    Dir(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
}

impl fmt::Debug for ExportTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportTarget")
            .field("location", &self.location.to_string())
            .finish_non_exhaustive()
    }
}

impl ExportTarget {
    /// Parses `location`; an `s3://` location needs `s3` settings.
    pub fn new(location: &str, s3: Option<&S3Settings>) -> Result<ExportTarget, TargetError> {
        ExportTarget::open(location.parse()?, s3)
    }

    pub fn open(location: Location, s3: Option<&S3Settings>) -> Result<ExportTarget, TargetError> {
        let backend = match &location {
            Location::Dir(path) => Backend::Dir(path.clone()),
            Location::S3 { bucket, .. } => {
                let settings =
                    s3.ok_or_else(|| TargetError::MissingS3Settings(location.to_string()))?;
                Backend::S3 {
                    client: s3_client(settings)?,
                    bucket: bucket.clone(),
                }
            }
        };
        Ok(ExportTarget {
            location,
            backend,
            part_size: PART_SIZE,
        })
    }

    /// Writes objects in parts of `bytes` (at least [`MIN_PART_SIZE`]):
    /// smaller parts use less memory, larger ones fewer requests.
    pub fn with_part_size(mut self, bytes: usize) -> ExportTarget {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// A local directory.
    pub fn dir(path: impl Into<PathBuf>) -> Result<ExportTarget, TargetError> {
        let path = path.into();
        ExportTarget::new(&format!("file://{}", path.display()), None)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The full key of `name` under the location's prefix.
    pub fn key(&self, name: &str) -> String {
        match &self.location {
            Location::S3 { prefix, .. } if !prefix.is_empty() => format!("{prefix}/{name}"),
            _ => name.to_owned(),
        }
    }

    /// Starts writing the object `key` (a full key, see [`Self::key`]).
    pub(crate) async fn create(&self, key: &str) -> Result<ObjectWriter, StorageError> {
        let sink = match &self.backend {
            Backend::Dir(root) => {
                let dest = root.join(key);
                let dir = dest
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.clone());
                let name = dest
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = dir.join(format!(".{name}{PARTIAL_MARK}{}", uuid::Uuid::new_v4()));
                let file = {
                    let tmp = tmp.clone();
                    blocking(key, "create", move || {
                        std::fs::create_dir_all(&dir)?;
                        std::fs::File::create_new(&tmp)
                    })
                    .await?
                };
                Sink::File {
                    file: Some(file),
                    tmp,
                    dest,
                }
            }
            Backend::S3 { client, bucket } => Sink::S3 {
                client: client.clone(),
                bucket: bucket.clone(),
                upload_id: None,
                parts: Vec::new(),
            },
        };
        Ok(ObjectWriter {
            key: key.to_owned(),
            sha: Sha256::new(),
            size: 0,
            parts: 0,
            part_size: self.part_size,
            buf: Vec::with_capacity(self.part_size),
            sink,
        })
    }

    /// Writes a small object in one request.
    pub(crate) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let mut writer = self.create(key).await?;
        writer.write(&bytes).await?;
        writer.finish().await.map(|_| ())
    }

    /// Reads an object in chunks.
    pub(crate) async fn open_object(&self, key: &str) -> Result<ObjectReader, StorageError> {
        match &self.backend {
            Backend::Dir(root) => {
                let path = root.join(key);
                let file = blocking(key, "read", move || std::fs::File::open(path)).await?;
                Ok(ObjectReader::File {
                    key: key.to_owned(),
                    file: Some(file),
                })
            }
            Backend::S3 { client, bucket } => {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| s3_error(key, "read", e))?;
                Ok(ObjectReader::S3 {
                    key: key.to_owned(),
                    body: out.body,
                })
            }
        }
    }

    /// Reads a whole object that should be small, refusing one larger than
    /// `limit` bytes.
    pub(crate) async fn read_small(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<u8>, StorageError> {
        let mut reader = self.open_object(key).await?;
        let mut out = Vec::new();
        while let Some(chunk) = reader.chunk().await? {
            out.extend_from_slice(&chunk);
            if out.len() > limit {
                return Err(StorageError::new(
                    key,
                    "read",
                    format!("larger than {limit} bytes, which no object of this kind is"),
                ));
            }
        }
        Ok(out)
    }

    /// Deletes an object (an export undoing what it wrote).
    pub(crate) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Dir(root) => {
                let path = root.join(key);
                blocking(key, "delete", move || std::fs::remove_file(path)).await
            }
            Backend::S3 { client, bucket } => client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error(key, "delete", e)),
        }
    }

    /// The full keys of the objects directly in `folder` (a full key
    /// without the trailing `/`), sorted. A missing folder is empty.
    pub(crate) async fn list(&self, folder: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = match &self.backend {
            Backend::Dir(root) => {
                let dir = root.join(folder);
                let folder = folder.to_owned();
                blocking(&folder.clone(), "list", move || {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Ok(Vec::new());
                        }
                        Err(e) => return Err(e),
                    };
                    let mut keys = Vec::new();
                    for entry in entries {
                        let entry = entry?;
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if entry.file_type()?.is_file() && !name.contains(PARTIAL_MARK) {
                            keys.push(format!("{folder}/{name}"));
                        }
                    }
                    Ok(keys)
                })
                .await?
            }
            Backend::S3 { client, bucket } => {
                let prefix = format!("{folder}/");
                let mut keys = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let page = client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(&prefix)
                        .delimiter("/")
                        .set_continuation_token(token.take())
                        .send()
                        .await
                        .map_err(|e| s3_error(&prefix, "list", e))?;
                    keys.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key().map(str::to_owned)),
                    );
                    match page.next_continuation_token() {
                        Some(next) if page.is_truncated() == Some(true) => {
                            token = Some(next.to_owned());
                        }
                        _ => break,
                    }
                }
                keys
            }
        };
        keys.sort();
        Ok(keys)
    }
}

fn s3_client(settings: &S3Settings) -> Result<aws_sdk_s3::Client, TargetError> {
    if settings.region.trim().is_empty() {
        return Err(TargetError::BadS3Settings(
            "the region is empty; set the bucket's region (e.g. us-east-1, cn-hangzhou)".into(),
        ));
    }
    if settings.access_key_id.trim().is_empty() || settings.secret_access_key.expose().is_empty() {
        return Err(TargetError::BadS3Settings(
            "the access key id or secret access key is empty".into(),
        ));
    }
    let credentials = Credentials::new(
        settings.access_key_id.trim(),
        settings.secret_access_key.expose(),
        None,
        None,
        "modelfleet-audit-export",
    );
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.region.trim().to_owned()))
        .credentials_provider(credentials)
        .force_path_style(settings.path_style)
        // Stores other than AWS itself often lack the newer checksum
        // headers; ask for them only where the API requires them.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // The SDK waits for ever unless told otherwise.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.timeouts.connect)
                .read_timeout(settings.timeouts.read)
                .operation_timeout(settings.timeouts.operation)
                .build(),
        );
    if let Some(endpoint) = &settings.endpoint {
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(TargetError::BadS3Settings(format!(
                "the endpoint {:?} must be an http:// or https:// URL",
                endpoint.chars().take(200).collect::<String>()
            )));
        }
        config = config.endpoint_url(endpoint.trim_end_matches('/'));
    }
    Ok(aws_sdk_s3::Client::from_conf(config.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            "file:///var/lib/mf/audit".parse::<Location>().unwrap(),
            Location::Dir(PathBuf::from("/var/lib/mf/audit"))
        );
        assert_eq!(
            "s3://audit-bucket/hub/eu/".parse::<Location>().unwrap(),
            Location::S3 {
                bucket: "audit-bucket".into(),
                prefix: "hub/eu".into()
            }
        );
        let bare = "s3://audit-bucket".parse::<Location>().unwrap();
        assert_eq!(bare.to_string(), "s3://audit-bucket");
        for bad in [
            "file://relative/dir",
            "file:///a/../b",
            "s3://UPPER",
            "s3://ab",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "gs://bucket",
            "/plain/path",
        ] {
            let err = bad.parse::<Location>().unwrap_err().to_string();
            assert!(
                err.contains("use file:///dir or s3://bucket/prefix"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn s3_needs_settings_and_never_prints_the_secret() {
        let err = ExportTarget::new("s3://audit-bucket", None).unwrap_err();
        assert!(matches!(err, TargetError::MissingS3Settings(_)));
        let settings = S3Settings {
            endpoint: Some("https://oss-cn-hangzhou.aliyuncs.com".into()),
            region: "cn-hangzhou".into(),
            path_style: false,
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("very-secret-key"),
            timeouts: S3Timeouts::default(),
        };
        let target = ExportTarget::new("s3://audit-bucket/p", Some(&settings)).unwrap();
        assert_eq!(target.key("audit/x.json"), "p/audit/x.json");
        let printed = format!("{settings:?} {target:?}");
        assert!(!printed.contains("very-secret-key"), "{printed}");
        let bad = S3Settings {
            endpoint: Some("oss-cn-hangzhou.aliyuncs.com".into()),
            ..settings
        };
        assert!(matches!(
            ExportTarget::new("s3://audit-bucket", Some(&bad)),
            Err(TargetError::BadS3Settings(_))
        ));
    }
}
