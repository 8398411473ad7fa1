//! An S3-compatible server on loopback for the end-to-end tests (and the
//! hub's, `api/tests/models.rs`): s3s-fs over a temporary directory, with
//! one access key, counting the connections it takes and the GETs it
//! answers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result};

/// s3s-fs, counting GETs.
struct Counted {
    inner: s3s_fs::FileSystem,
    gets: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl S3 for Counted {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_object(req).await
    }
}

pub struct LocalS3 {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub port: u16,
    gets: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    _root: tempfile::TempDir,
}

/// Gives each of `keys` in `bucket` under `root` an ETag, kept beside it as
/// an upload would have left it: s3s-fs otherwise hashes a whole object on
/// every request, which for a checkpoint's sparse shards is gigabytes of
/// holes.
pub fn keep_etags(root: &Path, bucket: &str, keys: &[String]) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for (i, key) in keys.iter().enumerate() {
        let info = root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            b64(bucket),
            b64(key)
        ));
        std::fs::write(info, format!("{{\"e_tag\": \"{i:032x}\"}}")).unwrap();
    }
}

impl LocalS3 {
    /// Serves `files` (`bucket/key` → bytes) to `access_key`/`secret_key`.
    pub async fn start(access_key: &str, secret_key: &str, files: &[(&str, &[u8])]) -> LocalS3 {
        let root = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            let file = root.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, bytes).unwrap();
        }
        LocalS3::over(root, access_key, secret_key).await
    }

    /// Serves `files` in `bucket` (key, first bytes, length: zeros past
    /// the bytes given, sparse on disk) to `access_key`/`secret_key`.
    pub async fn sparse(
        access_key: &str,
        secret_key: &str,
        bucket: &str,
        files: &[(String, Vec<u8>, u64)],
    ) -> LocalS3 {
        let root = tempfile::tempdir().unwrap();
        for (key, head, len) in files {
            let path = root.path().join(bucket).join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let file = std::fs::File::create(&path).unwrap();
            std::io::Write::write_all(&mut &file, head).unwrap();
            file.set_len(*len).unwrap();
        }
        let keys: Vec<String> = files.iter().map(|(key, ..)| key.clone()).collect();
        keep_etags(root.path(), bucket, &keys);
        LocalS3::over(root, access_key, secret_key).await
    }

    /// Serves what `root` holds (`bucket/key` paths, and s3s-fs's own
    /// object metadata files) to `access_key`/`secret_key`.
    pub async fn over(root: tempfile::TempDir, access_key: &str, secret_key: &str) -> LocalS3 {
        let gets = Arc::new(AtomicUsize::new(0));
        let service = {
            let mut b = S3ServiceBuilder::new(Counted {
                inner: s3s_fs::FileSystem::new(root.path()).unwrap(),
                gets: gets.clone(),
            });
            b.set_auth(SimpleAuth::from_single(access_key, secret_key));
            b.build()
        };
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        LocalS3 {
            endpoint: format!("http://{addr}"),
            port: addr.port(),
            gets,
            connections,
            _root: root,
        }
    }

    /// How many connections it has taken.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// How many GETs of objects it has answered.
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    pub fn root(&self) -> &Path {
        self._root.path()
    }
}
