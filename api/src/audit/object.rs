//! One object being written or read: written in parts while its SHA-256
//! is computed (a multipart upload to S3, or a temporary file renamed into
//! place), read back in chunks. [`ExportTarget`](super::ExportTarget) opens
//! them.

use std::io::{Read, Write};
use std::path::PathBuf;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::storage::{StorageError, blocking, s3_error};

/// How much a read of a local object asks for at once.
const READ_CHUNK: usize = 1024 * 1024;

/// What was written: an object's key, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenObject {
    pub key: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// Parts uploaded (1 for an object written in one request or to a
    /// directory in one buffer).
    pub parts: u32,
}

/// An object being written. Call [`ObjectWriter::finish`] to make it
/// visible, or [`ObjectWriter::abort`] to leave nothing behind.
pub(crate) struct ObjectWriter {
    pub(super) key: String,
    pub(super) sha: Sha256,
    pub(super) size: u64,
    pub(super) parts: u32,
    pub(super) part_size: usize,
    pub(super) buf: Vec<u8>,
    pub(super) sink: Sink,
}

pub(super) enum Sink {
    File {
        /// `None` only while a write runs on the blocking pool.
        file: Option<std::fs::File>,
        tmp: PathBuf,
        dest: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// Started with the first full part.
        upload_id: Option<String>,
        parts: Vec<CompletedPart>,
    },
}

impl ObjectWriter {
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.sha.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.part_size {
            self.flush_part().await?;
        }
        Ok(())
    }

    /// Sends the buffered bytes as the next part.
    async fn flush_part(&mut self) -> Result<(), StorageError> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        self.parts += 1;
        let number = self.parts;
        match &mut self.sink {
            Sink::File { file, .. } => {
                let Some(mut f) = file.take() else {
                    return Err(StorageError::new(
                        &self.key,
                        "write",
                        "an earlier write failed",
                    ));
                };
                let f = blocking(&self.key, "write", move || {
                    f.write_all(&data)?;
                    Ok(f)
                })
                .await?;
                *file = Some(f);
            }
            Sink::S3 {
                client,
                bucket,
                upload_id,
                parts,
            } => {
                let id = match upload_id {
                    Some(id) => id.clone(),
                    None => {
                        let out = client
                            .create_multipart_upload()
                            .bucket(bucket.as_str())
                            .key(&self.key)
                            .send()
                            .await
                            .map_err(|e| s3_error(&self.key, "start uploading", e))?;
                        let id = out.upload_id().ok_or_else(|| {
                            StorageError::new(
                                &self.key,
                                "start uploading",
                                "the store returned no upload id",
                            )
                        })?;
                        *upload_id = Some(id.to_owned());
                        id.to_owned()
                    }
                };
                let part_number = i32::try_from(number).map_err(|_| {
                    StorageError::new(&self.key, "upload", "more parts than S3 allows")
                })?;
                let out = client
                    .upload_part()
                    .bucket(bucket.as_str())
                    .key(&self.key)
                    .upload_id(&id)
                    .part_number(part_number)
                    .body(ByteStream::from(data))
                    .send()
                    .await
                    .map_err(|e| s3_error(&self.key, "upload a part of", e))?;
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .part_number(part_number)
                        .build(),
                );
            }
        }
        Ok(())
    }

    /// Writes what is buffered and makes the object visible under its key;
    /// on failure, leaves nothing behind (see [`Self::abort`]).
    pub(crate) async fn finish(mut self) -> Result<WrittenObject, StorageError> {
        match self.complete().await {
            Ok(()) => {
                let sha = std::mem::take(&mut self.sha);
                Ok(WrittenObject {
                    key: self.key.clone(),
                    size: self.size,
                    sha256: modelfleet_core::audit::hex(&sha.finalize()),
                    parts: self.parts,
                })
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn complete(&mut self) -> Result<(), StorageError> {
        let multipart = matches!(
            &self.sink,
            Sink::S3 {
                upload_id: Some(_),
                ..
            }
        );
        if (matches!(self.sink, Sink::File { .. }) || multipart)
            && (!self.buf.is_empty() || self.parts == 0)
        {
            self.flush_part().await?;
        }
        match &mut self.sink {
            Sink::File { file, tmp, dest } => {
                let Some(f) = file.take() else {
                    return Err(StorageError::new(
                        &self.key,
                        "write",
                        "an earlier write failed",
                    ));
                };
                let (tmp, dest) = (tmp.clone(), dest.clone());
                blocking(&self.key, "write", move || {
                    f.sync_all()?;
                    drop(f);
                    std::fs::rename(&tmp, &dest)?;
                    // Make the rename itself durable.
                    if let Some(dir) = dest.parent() {
                        std::fs::File::open(dir)?.sync_all()?;
                    }
                    Ok(())
                })
                .await?;
            }
            Sink::S3 {
                client,
                bucket,
                upload_id,
                parts,
            } => match upload_id {
                Some(id) => {
                    client
                        .complete_multipart_upload()
                        .bucket(bucket.as_str())
                        .key(&self.key)
                        .upload_id(id.as_str())
                        .multipart_upload(
                            CompletedMultipartUpload::builder()
                                .set_parts(Some(std::mem::take(parts)))
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| s3_error(&self.key, "complete the upload of", e))?;
                }
                None => {
                    // Smaller than one part: a single PUT.
                    let data = std::mem::take(&mut self.buf);
                    client
                        .put_object()
                        .bucket(bucket.as_str())
                        .key(&self.key)
                        .body(ByteStream::from(data))
                        .send()
                        .await
                        .map_err(|e| s3_error(&self.key, "write", e))?;
                    self.parts = 1;
                }
            },
        }
        Ok(())
    }

    /// Leaves nothing behind: removes the temporary file, or aborts the
    /// multipart upload (so the store does not keep, and bill for, its
    /// parts). Best effort: a failure here is logged, not returned, so the
    /// error that caused the abort is the one reported.
    pub(crate) async fn abort(self) {
        match self.sink {
            Sink::File { file, tmp, .. } => {
                drop(file);
                if let Err(e) = tokio::task::spawn_blocking(move || std::fs::remove_file(tmp)).await
                {
                    tracing::warn!(key = %self.key, error = %e, "could not remove a partial export file");
                }
            }
            Sink::S3 {
                client,
                bucket,
                upload_id: Some(id),
                ..
            } => {
                if let Err(e) = client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(&self.key)
                    .upload_id(id)
                    .send()
                    .await
                {
                    tracing::warn!(key = %self.key, error = %DisplayErrorContext(e), "could not abort a multipart upload; the bucket's lifecycle rule for incomplete uploads will remove it");
                }
            }
            Sink::S3 {
                upload_id: None, ..
            } => {}
        }
    }
}

/// An object being read, in chunks.
pub(crate) enum ObjectReader {
    File {
        key: String,
        /// `None` only while a read runs on the blocking pool.
        file: Option<std::fs::File>,
    },
    S3 {
        key: String,
        body: ByteStream,
    },
}

impl ObjectReader {
    /// The next chunk, `None` at the end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, StorageError> {
        match self {
            ObjectReader::File { key, file } => {
                let Some(mut f) = file.take() else {
                    return Err(StorageError::new(key, "read", "an earlier read failed"));
                };
                let (f, buf) = blocking(key, "read", move || {
                    let mut buf = vec![0u8; READ_CHUNK];
                    let n = f.read(&mut buf)?;
                    buf.truncate(n);
                    Ok((f, buf))
                })
                .await?;
                *file = Some(f);
                Ok((!buf.is_empty()).then(|| Bytes::from(buf)))
            }
            ObjectReader::S3 { key, body } => match body.next().await {
                None => Ok(None),
                Some(Ok(bytes)) => Ok(Some(bytes)),
                Some(Err(e)) => Err(s3_error(key, "read", e)),
            },
        }
    }
}
