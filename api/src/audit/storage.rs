//! What reading and writing export objects share, whatever the store: the
//! error that names the object and what was being done to it, and running
//! blocking file I/O off the async threads. Both [`super::target`] (a
//! location) and [`super::object`] (one object in it) build on it.

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStreamError;

/// A read or write of one object that failed, naming the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} {key}: {detail}")]
pub struct StorageError {
    /// The object (or folder) key.
    pub key: String,
    pub action: &'static str,
    pub detail: String,
}

impl StorageError {
    pub(super) fn new(key: &str, action: &'static str, detail: impl Into<String>) -> StorageError {
        StorageError {
            key: key.to_owned(),
            action,
            detail: detail.into(),
        }
    }
}

/// The SDK's error with its causes (the service's code and message), and
/// what to check when the store did not answer in time. The SDK never puts
/// credentials in its errors.
pub(super) fn s3_error<E: std::error::Error + MayTimeOut>(
    key: &str,
    action: &'static str,
    e: E,
) -> StorageError {
    let detail = if e.timed_out() {
        format!(
            "the object store did not answer before the timeout ({}); check that the endpoint is \
             up and reachable from the hub",
            DisplayErrorContext(e)
        )
    } else {
        DisplayErrorContext(e).to_string()
    };
    StorageError::new(key, action, detail)
}

/// An S3 client error that may be a timeout.
pub(super) trait MayTimeOut {
    fn timed_out(&self) -> bool;
}

impl<E, R> MayTimeOut for SdkError<E, R> {
    fn timed_out(&self) -> bool {
        match self {
            SdkError::TimeoutError(_) => true,
            SdkError::DispatchFailure(failure) => failure.is_timeout(),
            _ => false,
        }
    }
}

impl MayTimeOut for ByteStreamError {
    fn timed_out(&self) -> bool {
        false
    }
}

/// Runs blocking file I/O off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    key: &str,
    action: &'static str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StorageError::new(key, action, e.to_string())),
        Err(e) => Err(StorageError::new(
            key,
            action,
            format!("I/O task failed: {e}"),
        )),
    }
}
