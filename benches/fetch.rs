//! `cargo bench --bench fetch`: `modelfleet fetch` against the AWS CLI
//! (`aws s3 cp --recursive`) and boto3's `download_file` (what KServe's
//! storage initializer calls), each downloading the same model — 4 shards
//! of 1 GiB — from an S3 server on loopback, as a child process: wall
//! time, throughput, CPU seconds and peak RSS (from GNU time,
//! `/usr/bin/time`).
//!
//! The server is this file's own small S3 implementation on s3s (list,
//! head, ranged get), reading files 1 MiB at a time: stock s3s-fs reads 4
//! KiB at a time and caps every client near 250–280 MB/s, which would hide
//! the difference between them. The AWS CLI and boto3 come from PyPI
//! (`pip install awscli boto3`); a tool that is not installed is skipped.
//!
//! Without `--bench` (as `cargo test` runs it) it fetches a few MiB with
//! `modelfleet fetch` alone and checks the bytes. `FETCH_BENCH_MODELFLEET`
//! names another `modelfleet` binary to measure (a release build's).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const ACCESS_KEY: &str = "AKIDFETCHBENCH";
const SECRET_KEY: &str = "fetch-bench-secret";
const BUCKET: &str = "bench";
const PREFIX: &str = "model";
const READ_CHUNK: usize = 1024 * 1024;

/// Files under `root/<bucket>/<key>`, served in 1 MiB reads.
struct Files {
    root: PathBuf,
}

impl Files {
    fn path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        if bucket != BUCKET || key.split('/').any(|p| p.is_empty() || p == "..") {
            return Err(s3_error!(NoSuchKey));
        }
        Ok(self.root.join(bucket).join(key))
    }

    fn etag(meta: &std::fs::Metadata) -> ETag {
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        ETag::Strong(format!("{:x}-{:x}", meta.len(), modified))
    }
}

#[async_trait::async_trait]
impl S3 for Files {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let prefix = req.input.prefix.unwrap_or_default();
        let dir = self.path(&req.input.bucket, PREFIX)?;
        let mut contents = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|_| s3_error!(NoSuchBucket))?;
        for entry in entries.flatten() {
            let key = format!("{PREFIX}/{}", entry.file_name().to_string_lossy());
            let meta = entry.metadata().map_err(|_| s3_error!(InternalError))?;
            if key.starts_with(&prefix) {
                contents.push(Object {
                    key: Some(key),
                    size: Some(meta.len() as i64),
                    e_tag: Some(Files::etag(&meta)),
                    last_modified: meta.modified().ok().map(Timestamp::from),
                    ..Default::default()
                });
            }
        }
        contents.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(req.input.bucket),
            prefix: Some(prefix),
            key_count: Some(contents.len() as i32),
            is_truncated: Some(false),
            contents: Some(contents),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let path = self.path(&req.input.bucket, &req.input.key)?;
        let meta = std::fs::metadata(&path).map_err(|_| s3_error!(NoSuchKey))?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(meta.len() as i64),
            e_tag: Some(Files::etag(&meta)),
            last_modified: meta.modified().ok().map(Timestamp::from),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let path = self.path(&req.input.bucket, &req.input.key)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| s3_error!(NoSuchKey))?;
        let meta = file
            .metadata()
            .await
            .map_err(|_| s3_error!(InternalError))?;
        let len = meta.len();
        let (range, content_range) = match &req.input.range {
            Some(r) => {
                let range = r.check(len)?;
                let shown = format!("bytes {}-{}/{len}", range.start, range.end - 1);
                (range, Some(shown))
            }
            None => (0..len, None),
        };
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(|_| s3_error!(InternalError))?;
        let remaining = range.end - range.start;
        let body = futures::stream::unfold((file, remaining), |(mut file, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buffer = vec![0u8; READ_CHUNK.min(left as usize)];
            match file.read_exact(&mut buffer).await {
                Ok(_) => Some((
                    Ok(Bytes::from(buffer)),
                    (file, left - READ_CHUNK.min(left as usize) as u64),
                )),
                Err(e) => Some((Err(e), (file, 0))),
            }
        });
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(remaining as i64),
            content_range,
            e_tag: Some(Files::etag(&meta)),
            last_modified: meta.modified().ok().map(Timestamp::from),
            ..Default::default()
        }))
    }
}

async fn serve(root: PathBuf) -> String {
    let service = {
        let mut b = S3ServiceBuilder::new(Files { root });
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        b.build()
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Writes `shards` files of `size` pseudo-random bytes.
fn write_model(dir: &Path, shards: usize, size: usize) -> u64 {
    use std::io::Write;
    std::fs::create_dir_all(dir).expect("the model's directory");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 8 * 1024 * 1024];
    for shard in 1..=shards {
        let name = format!("model-{shard:05}-of-{shards:05}.safetensors");
        let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
        let mut left = size;
        while left > 0 {
            for chunk in block.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            let n = left.min(block.len());
            file.write_all(&block[..n]).unwrap();
            left -= n;
        }
        file.flush().unwrap();
    }
    (shards * size) as u64
}

fn dir_bytes(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

/// Runs `program args` to its end under GNU time (`/usr/bin/time`, the
/// Debian package `time`): its wall time, CPU time and peak RSS.
fn measure(
    program: &str,
    args: &[String],
    endpoint: &str,
    scratch: &Path,
) -> Result<Measured, String> {
    let report = scratch.join("time.out");
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args);
    credentials(&mut command, endpoint);
    let status = command
        .status()
        .map_err(|e| format!("cannot run /usr/bin/time (apt-get install time): {e}"))?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    let text = std::fs::read_to_string(&report).map_err(|e| e.to_string())?;
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [seconds, user, system, max_rss_kib] = fields[..] else {
        return Err(format!("cannot read GNU time's report: {text:?}"));
    };
    Ok(Measured {
        seconds,
        cpu_seconds: user + system,
        peak_rss_mib: max_rss_kib / 1024.0,
    })
}

fn credentials(command: &mut Command, endpoint: &str) {
    command
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
}

const BOTO3: &str = r#"
import os, sys, boto3
bucket, prefix, dest, endpoint = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint)
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for o in page.get("Contents", []):
        path = os.path.join(dest, o["Key"][len(prefix) + 1:])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, o["Key"], path)
"#;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (shards, size) = if full {
        (4, 1024 * 1024 * 1024)
    } else {
        (2, 3 * 1024 * 1024 + 7)
    };
    let work =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))
            .expect("a scratch directory");
    let total = write_model(&work.path().join(BUCKET).join(PREFIX), shards, size);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let endpoint = runtime.block_on(serve(work.path().to_owned()));
    let _guard = runtime.enter();
    let source = format!("s3://{BUCKET}/{PREFIX}");

    let dest = |name: &str| work.path().join(format!("out-{name}"));
    let text = |p: PathBuf| p.to_string_lossy().into_owned();
    // The binary built with this bench (release under `cargo bench`), or
    // one named by FETCH_BENCH_MODELFLEET (an image's, a release build's).
    let modelfleet = std::env::var("FETCH_BENCH_MODELFLEET")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_modelfleet").to_owned());
    let modelfleet = modelfleet.as_str();
    let mut tools: Vec<(&str, PathBuf, &str, Vec<String>)> = vec![(
        "modelfleet fetch",
        dest("modelfleet"),
        modelfleet,
        vec![
            "fetch".into(),
            "--source".into(),
            source.clone(),
            "--dest".into(),
            text(dest("modelfleet")),
        ],
    )];
    if !full {
        // As `cargo test` runs it: the fetch alone, its bytes checked.
        let mut command = Command::new(modelfleet);
        command.args(&tools[0].3);
        credentials(&mut command, &endpoint);
        let status = command.status().expect("modelfleet runs");
        assert!(status.success(), "modelfleet fetch: {status}");
        let kept = std::fs::read(
            work.path()
                .join(BUCKET)
                .join(PREFIX)
                .join("model-00001-of-00002.safetensors"),
        )
        .unwrap();
        let got =
            std::fs::read(dest("modelfleet").join("model-00001-of-00002.safetensors")).unwrap();
        assert!(kept == got, "the fetched shard differs from the object");
        assert_eq!(dir_bytes(&dest("modelfleet")), total);
        return;
    }
    tools.push((
        "aws s3 cp --recursive",
        dest("aws"),
        "aws",
        vec![
            "s3".into(),
            "cp".into(),
            "--recursive".into(),
            "--only-show-errors".into(),
            format!("{source}/"),
            text(dest("aws")),
            "--endpoint-url".into(),
            endpoint.clone(),
        ],
    ));
    tools.push((
        "boto3 download_file",
        dest("boto3"),
        "python3",
        vec![
            "-c".into(),
            BOTO3.into(),
            BUCKET.into(),
            PREFIX.into(),
            text(dest("boto3")),
            endpoint.clone(),
        ],
    ));

    println!(
        "{shards} shards, {:.2} GiB in all, from an S3 server on loopback (1 MiB reads)\n",
        total as f64 / (1u64 << 30) as f64
    );
    println!("| tool | seconds | MB/s | CPU seconds | peak RSS (MiB) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, out, program, args) in tools {
        match measure(program, &args, &endpoint, work.path()) {
            Ok(m) => {
                let got = dir_bytes(&out);
                assert_eq!(got, total, "{name} wrote {got} bytes of {total}");
                println!(
                    "| {name} | {:.1} | {:.0} | {:.1} | {:.0} |",
                    m.seconds,
                    total as f64 / m.seconds / 1e6,
                    m.cpu_seconds,
                    m.peak_rss_mib
                );
            }
            Err(e) if name == "modelfleet fetch" => panic!("modelfleet fetch failed: {e}"),
            Err(e) => println!("| {name} | not run: {e} (pip install awscli boto3) | | | |"),
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}
