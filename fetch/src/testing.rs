//! For other crates' tests: a server on loopback speaking the Hugging Face
//! Hub's API (`/api/models/<repo>/revision/<rev>` and
//! `/<repo>/resolve/<commit>/<path>` with `Range`), serving files held in
//! memory — a shard may be its header alone, the rest read as zeros, so a
//! checkpoint of real shapes costs no memory. Repos may be gated (a 401
//! without [`GATED_TOKEN`] as a Bearer token, as the hub answers); every
//! request and every byte of file content served is counted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelfleet_core::checkpoint::fixtures;
use modelfleet_core::model::{ModelArch, ParamCount};
use serde_json::json;

/// The commit every revision resolves to.
pub const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";
/// The token that opens gated repos.
pub const GATED_TOKEN: &str = "hf_fakehub_gated_access_0001";

/// One file: its first bytes, and its length (zeros past them).
#[derive(Debug, Clone)]
pub struct File {
    pub head: Vec<u8>,
    pub len: u64,
}

impl File {
    pub fn whole(bytes: Vec<u8>) -> File {
        File {
            len: bytes.len() as u64,
            head: bytes,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Repo {
    pub files: BTreeMap<String, File>,
    pub gated: bool,
}

impl Repo {
    /// `model`'s checkpoint in the Llama layout: its config.json and
    /// `shards` safetensors files of its real shapes, the data zeros.
    pub fn llama(model: &ModelArch, shards: usize) -> Repo {
        let mut files = BTreeMap::from([(
            "config.json".to_owned(),
            File::whole(fixtures::llama_config(model)),
        )]);
        let parts = fixtures::shards(&fixtures::llama_tensors(model), shards);
        for (i, shard) in parts.iter().enumerate() {
            let name = format!("model-{:05}-of-{:05}.safetensors", i + 1, parts.len());
            let file = File {
                head: shard.head.clone(),
                len: shard.file_len(),
            };
            files.insert(name, file);
        }
        Repo {
            files,
            gated: false,
        }
    }
}

/// A small Llama-style model that is in no catalog: 4 layers, untied
/// head, its parameter count what its shapes add up to.
pub fn tiny_model(id: &str) -> ModelArch {
    let mut m: ModelArch = serde_json::from_value(json!({
        "id": id, "layers": 4, "hiddenSize": 512, "attentionHeads": 8,
        "kvHeads": 2, "headDim": 64, "ffnSize": 1536, "vocabSize": 32000,
        "totalParams": 1, "maxContext": 8192,
    }))
    .expect("the tiny model's fields are a model's");
    let count = fixtures::llama_tensors(&m)
        .iter()
        .map(|t| t.2.iter().product::<u64>())
        .sum();
    m.total_params = ParamCount(count);
    m
}

#[derive(Clone)]
struct Served {
    repos: Arc<BTreeMap<String, Repo>>,
    counts: Arc<Counts>,
}

/// What the hub was asked for.
#[derive(Debug, Default)]
pub struct Counts {
    pub listings: AtomicU64,
    pub bytes: AtomicU64,
}

/// A running hub.
#[derive(Debug)]
pub struct FakeHub {
    pub endpoint: String,
    pub counts: Arc<Counts>,
}

impl FakeHub {
    /// Serves `repos` (`org/name` → files) on a loopback port, on the
    /// current Tokio runtime.
    pub async fn start(repos: BTreeMap<String, Repo>) -> FakeHub {
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route("/api/models/{org}/{name}/revision/{revision}", get(info))
            .route("/{org}/{name}/resolve/{commit}/{*path}", get(resolve))
            .with_state(Served {
                repos: Arc::new(repos),
                counts: counts.clone(),
            });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeHub {
            endpoint: format!("http://{addr}"),
            counts,
        }
    }

    pub fn listings(&self) -> u64 {
        self.counts.listings.load(Ordering::SeqCst)
    }

    pub fn bytes_served(&self) -> u64 {
        self.counts.bytes.load(Ordering::SeqCst)
    }
}

/// The repo, or the hub's refusal.
fn repo<'a>(
    served: &'a Served,
    org: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<&'a Repo, (StatusCode, String)> {
    let opened = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == format!("Bearer {GATED_TOKEN}").as_bytes());
    match served.repos.get(&format!("{org}/{name}")) {
        None => Err((StatusCode::NOT_FOUND, "Repository not found".to_owned())),
        Some(r) if r.gated && !opened => Err((
            StatusCode::UNAUTHORIZED,
            format!("Access to model {org}/{name} is restricted"),
        )),
        Some(r) => Ok(r),
    }
}

async fn info(
    State(served): State<Served>,
    Path((org, name, _revision)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    served.counts.listings.fetch_add(1, Ordering::SeqCst);
    let repo = match repo(&served, &org, &name, &headers) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let siblings: Vec<_> = repo
        .files
        .iter()
        .map(|(path, file)| json!({"rfilename": path, "size": file.len}))
        .collect();
    axum::Json(json!({"id": format!("{org}/{name}"), "sha": COMMIT, "siblings": siblings}))
        .into_response()
}

async fn resolve(
    State(served): State<Served>,
    Path((org, name, commit, path)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let repo = match repo(&served, &org, &name, &headers) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(file) = repo.files.get(&path).filter(|_| commit == COMMIT) else {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok()?.strip_prefix("bytes=")?.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let (start, end) = match range {
        Some((start, end)) if start < file.len && start <= end => (start, end.min(file.len - 1)),
        Some(_) => return StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
        None if file.len == 0 => return (StatusCode::OK, Vec::new()).into_response(),
        None => (0, file.len - 1),
    };
    let bytes: Vec<u8> = (start..=end)
        .map(|i| file.head.get(i as usize).copied().unwrap_or(0))
        .collect();
    served
        .counts
        .bytes
        .fetch_add(bytes.len() as u64, Ordering::SeqCst);
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    (
        status,
        [(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{}", file.len),
        )],
        bytes,
    )
        .into_response()
}
