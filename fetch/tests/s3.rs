//! `modelfleet fetch` against a real S3 implementation: s3s-fs serving a
//! temporary directory on a loopback port, behind a wrapper that counts
//! the ranged GETs it serves and can fail them, as a flaky store would.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use modelfleet_fetch::endpoint::{EndpointOverrides, Environment};
use modelfleet_fetch::journal::MARKER;
use modelfleet_fetch::{Env, FetchError, FetchOptions, fetch};
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use support::{MIB, content, refusal};
use tempfile::TempDir;
use tokio::net::TcpListener;

const ACCESS_KEY: &str = "AKIDFETCHTEST0001";
const SECRET_KEY: &str = "fetch-test-secret-key";
const BUCKET: &str = "weights";

/// s3s-fs, counting GETs and failing those past `fail_after`.
struct Counting {
    inner: s3s_fs::FileSystem,
    gets: Arc<AtomicUsize>,
    fail_after: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl S3 for Counting {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.inner.put_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

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
        let n = self.gets.fetch_add(1, Ordering::SeqCst) + 1;
        if n > self.fail_after.load(Ordering::SeqCst) {
            return Err(s3_error!(InternalError, "injected failure"));
        }
        self.inner.get_object(req).await
    }
}

struct Server {
    endpoint: String,
    gets: Arc<AtomicUsize>,
    fail_after: Arc<AtomicUsize>,
    _root: TempDir,
}

async fn start() -> Server {
    let root = tempfile::tempdir().unwrap();
    let gets = Arc::new(AtomicUsize::new(0));
    let fail_after = Arc::new(AtomicUsize::new(usize::MAX));
    let s3 = Counting {
        inner: s3s_fs::FileSystem::new(root.path()).unwrap(),
        gets: gets.clone(),
        fail_after: fail_after.clone(),
    };
    let service = {
        let mut b = S3ServiceBuilder::new(s3);
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        b.build()
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
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
    Server {
        endpoint: format!("http://{addr}"),
        gets,
        fail_after,
        _root: root,
    }
}

/// A small model: a config, two shards (one not a whole number of
/// chunks), an index and a file in a subdirectory.
fn model() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "config.json",
            br#"{"architectures": ["LlamaForCausalLM"]}"#.to_vec(),
        ),
        ("model-00001-of-00002.safetensors", content(1, 5 * MIB)),
        (
            "model-00002-of-00002.safetensors",
            content(2, 3 * MIB + 12_345),
        ),
        (
            "model.safetensors.index.json",
            br#"{"weight_map": {}}"#.to_vec(),
        ),
        ("tokenizer/tokenizer.json", content(3, 70_000)),
    ]
}

impl Server {
    fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    async fn upload(&self, prefix: &str) {
        let client = self.client();
        let _ = client.create_bucket().bucket(BUCKET).send().await;
        for (name, bytes) in model() {
            client
                .put_object()
                .bucket(BUCKET)
                .key(format!("{prefix}/{name}"))
                .body(ByteStream::from(bytes))
                .send()
                .await
                .unwrap();
        }
    }

    fn options(&self, source: &str, dest: &Path) -> FetchOptions {
        FetchOptions {
            source: source.to_owned(),
            dest: dest.to_owned(),
            endpoint: EndpointOverrides::default(),
            tuning: support::tuning(),
            env: Env {
                endpoint: Environment {
                    endpoint_url: Some(self.endpoint.clone()),
                    region: Some("us-east-1".into()),
                },
                access_key_id: Some(ACCESS_KEY.into()),
                secret_access_key: Some(SECRET_KEY.into()),
                ..Env::default()
            },
        }
    }

    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

fn assert_model_in(dest: &Path) {
    for (name, bytes) in model() {
        let got = std::fs::read(dest.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == bytes, "{name} differs from the object");
    }
}

/// Ranged GETs the model takes at 1 MiB chunks.
fn chunks() -> usize {
    model().iter().map(|(_, b)| b.len().div_ceil(MIB)).sum()
}

#[tokio::test]
async fn a_model_arrives_whole_in_ranged_chunks_and_a_second_fetch_does_nothing() {
    let server = start().await;
    server.upload("models/llama").await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("llama");
    let options = server.options("s3://weights/models/llama", &dest);

    let reports = std::sync::Mutex::new(Vec::new());
    let fetched = fetch(&options, Duration::from_millis(1), |p| {
        reports.lock().unwrap().push(p)
    })
    .await
    .unwrap();
    assert_model_in(&dest);
    let total: u64 = model().iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!((fetched.files, fetched.bytes), (5, total));
    assert!(!fetched.already_there);
    assert_eq!(server.gets(), chunks(), "one ranged GET per chunk");
    let last = *reports.lock().unwrap().last().unwrap();
    assert_eq!((last.done, last.total), (total, total));
    // Published whole: no partial directory beside it, a marker inside.
    assert!(!out.path().join("llama.partial").exists());
    assert!(dest.join(MARKER).exists());

    // A restarted pod: the weights are there, nothing is fetched.
    let again = fetch(&options, Duration::from_secs(1), |_| {})
        .await
        .unwrap();
    assert!(again.already_there);
    assert_eq!(server.gets(), chunks());
}

#[tokio::test]
async fn an_interrupted_fetch_continues_where_it_stopped() {
    let server = start().await;
    server.upload("m").await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("m");
    let options = server.options("oss://weights/m", &dest);

    // The store fails every GET after the fifth: the fetch gives up,
    // leaving nothing at the destination.
    server.fail_after.store(5, Ordering::SeqCst);
    let e = fetch(&options, Duration::from_secs(1), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Source(_)), "{e}");
    assert!(e.to_string().contains("injected failure"), "{e}");
    assert!(!dest.exists(), "nothing is published half-done");
    let served_before = server.gets();

    // Healed: the chunks already on disk are not fetched again.
    server.fail_after.store(usize::MAX, Ordering::SeqCst);
    let fetched = fetch(&options, Duration::from_secs(1), |_| {})
        .await
        .unwrap();
    assert_model_in(&dest);
    assert!(fetched.resumed_bytes > 0, "{fetched:?}");
    let refetched = server.gets() - served_before;
    assert!(
        refetched < chunks(),
        "{refetched} GETs after the restart; a fresh fetch takes {}",
        chunks()
    );
    assert_eq!(
        fetched.resumed_chunks + refetched,
        chunks(),
        "every chunk either kept or fetched once"
    );
}

#[tokio::test]
async fn refusals_say_what_was_refused_and_what_to_do() {
    let server = start().await;
    server.upload("m").await;
    let out = tempfile::tempdir().unwrap();

    let mut wrong_key = server.options("s3://weights/m", &out.path().join("a"));
    wrong_key.env.secret_access_key = Some("not-the-secret".into());
    let e = refusal(&wrong_key).await;
    assert!(e.contains("cannot list s3://weights/m"), "{e}");
    assert!(e.contains("access denied"), "{e}");
    assert!(e.contains("AWS_ACCESS_KEY_ID …0001"), "names the key: {e}");
    assert!(!e.contains("not-the-secret"), "never the secret: {e}");

    let missing = server.options("s3://no-such-bucket/m", &out.path().join("b"));
    let e = refusal(&missing).await;
    assert!(e.contains("no such bucket"), "{e}");

    let empty = server.options("s3://weights/nothing-here", &out.path().join("c"));
    let e = refusal(&empty).await;
    assert!(e.contains("holds no files"), "{e}");

    let mut no_keys = server.options("cos://weights/m", &out.path().join("d"));
    no_keys.env.access_key_id = None;
    no_keys.env.secret_access_key = None;
    let e = refusal(&no_keys).await;
    assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");

    for dir in ["a", "b", "c", "d"] {
        assert!(!out.path().join(dir).exists(), "{dir} was created");
    }
}

#[tokio::test]
async fn a_destination_that_is_not_a_complete_fetch_is_left_alone() {
    let server = start().await;
    server.upload("m").await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("m");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("mine.txt"), b"keep me").unwrap();
    let e = refusal(&server.options("s3://weights/m", &dest)).await;
    assert!(e.contains("is not a complete fetch"), "{e}");
    assert_eq!(std::fs::read(dest.join("mine.txt")).unwrap(), b"keep me");
    assert_eq!(server.gets(), 0);
}

#[tokio::test]
async fn a_file_gone_from_the_source_between_two_runs_is_not_published() {
    let server = start().await;
    server.upload("m").await;
    let client = server.client();
    client
        .put_object()
        .bucket(BUCKET)
        .key("m/old-shard.bin")
        .body(ByteStream::from(content(5, 2 * MIB)))
        .send()
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("m");
    let options = server.options("s3://weights/m", &dest);
    server.fail_after.store(4, Ordering::SeqCst);
    fetch(&options, Duration::from_secs(1), |_| {})
        .await
        .unwrap_err();

    // The source drops a file; the next run fetches what it lists now.
    client
        .delete_object()
        .bucket(BUCKET)
        .key("m/old-shard.bin")
        .send()
        .await
        .unwrap();
    server.fail_after.store(usize::MAX, Ordering::SeqCst);
    fetch(&options, Duration::from_secs(1), |_| {})
        .await
        .unwrap();
    assert_model_in(&dest);
    assert!(
        !dest.join("old-shard.bin").exists(),
        "a file no longer listed was published"
    );
}

// Pod identities: keys exchanged for the pod's token, no keys set.

const ROLE: &str = "arn:aws:iam::111122223333:role/model-reader";
const POD_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.pod-token.sig";

/// An STS (AWS's `AssumeRoleWithWebIdentity`, Alibaba Cloud's
/// `AssumeRoleWithOIDC`) and an EKS Pod Identity agent on loopback, which
/// hand out the S3 server's keys for the pod's token.
#[derive(Clone, Default)]
struct Sts {
    calls: Arc<AtomicUsize>,
}

fn in_an_hour() -> String {
    aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now() + Duration::from_secs(3600))
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap()
}

async fn sts_answer(
    axum::extract::State(sts): axum::extract::State<Sts>,
    axum::extract::Form(form): axum::extract::Form<std::collections::BTreeMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    sts.calls.fetch_add(1, Ordering::SeqCst);
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    match field("Action").as_str() {
        "AssumeRoleWithWebIdentity" if field("RoleArn") != ROLE => (
            axum::http::StatusCode::FORBIDDEN,
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not \
             authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>",
        )
            .into_response(),
        "AssumeRoleWithWebIdentity" if field("WebIdentityToken") == POD_TOKEN => format!(
            "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
             <AccessKeyId>{ACCESS_KEY}</AccessKeyId><SecretAccessKey>{SECRET_KEY}</SecretAccessKey>\
             <SessionToken>session-token</SessionToken><Expiration>{}</Expiration></Credentials>\
             </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
            in_an_hour()
        )
        .into_response(),
        "AssumeRoleWithOIDC" if field("OIDCToken") == POD_TOKEN && field("Format") == "JSON" => {
            axum::Json(serde_json::json!({"RequestId": "r", "Credentials": {
                "AccessKeyId": ACCESS_KEY, "AccessKeySecret": SECRET_KEY,
                "SecurityToken": "security-token", "Expiration": in_an_hour()}}))
            .into_response()
        }
        _ => (axum::http::StatusCode::BAD_REQUEST, "unexpected request").into_response(),
    }
}

async fn agent_answer(
    axum::extract::State(sts): axum::extract::State<Sts>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    sts.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(POD_TOKEN) {
        return (axum::http::StatusCode::UNAUTHORIZED, "no token").into_response();
    }
    axum::Json(
        serde_json::json!({"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY,
        "Token": "pod-identity-token", "Expiration": in_an_hour()}),
    )
    .into_response()
}

const TKE_ROLE: &str = "qcs::cam::uin/100000000001:roleName/model-reader";
const CCE_PROJECT: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const FEDERATED: &str = "MIIfederated-token";

/// Tencent Cloud's STS: API 3.0 JSON, the action in a header, unsigned;
/// a refusal is HTTP 200 with `Response.Error`.
async fn tencent_answer(
    axum::extract::State(sts): axum::extract::State<Sts>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::Json<serde_json::Value> {
    sts.calls.fetch_add(1, Ordering::SeqCst);
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let well_formed = header("x-tc-action") == "AssumeRoleWithWebIdentity"
        && header("x-tc-version") == "2018-08-13"
        && header("authorization") == "SKIP"
        && body["ProviderId"] == "tke-oidc"
        && body["WebIdentityToken"] == POD_TOKEN;
    if !well_formed || body["RoleArn"] != TKE_ROLE {
        return axum::Json(serde_json::json!({"Response": {"Error": {
            "Code": "InvalidParameter.WebIdentityTokenError",
            "Message": "role not trusted for this token"}, "RequestId": "r"}}));
    }
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    axum::Json(serde_json::json!({"Response": {
        "Credentials": {"TmpSecretId": ACCESS_KEY, "TmpSecretKey": SECRET_KEY, "Token": "t"},
        "ExpiredTime": expires, "Expiration": in_an_hour(), "RequestId": "r"}}))
}

/// Huawei Cloud IAM: the ID token for a federated token (in
/// `X-Subject-Token`), that token for temporary keys.
async fn huawei_token(
    axum::extract::State(sts): axum::extract::State<Sts>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    sts.calls.fetch_add(1, Ordering::SeqCst);
    let auth = &body["auth"];
    if headers.get("x-idp-id").and_then(|v| v.to_str().ok()) != Some("cce-idp")
        || auth["id_token"]["id"] != POD_TOKEN
        || auth["scope"]["project"]["id"] != CCE_PROJECT
    {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(
                serde_json::json!({"error": {"code": 401, "title": "Unauthorized",
                "message": "The request you have made requires authentication."}}),
            ),
        )
            .into_response();
    }
    (
        axum::http::StatusCode::CREATED,
        [("X-Subject-Token", FEDERATED)],
        axum::Json(serde_json::json!({"token": {"methods": ["mapped"]}})),
    )
        .into_response()
}

async fn huawei_keys(
    axum::extract::State(sts): axum::extract::State<Sts>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    sts.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("x-auth-token").and_then(|v| v.to_str().ok()) != Some(FEDERATED) {
        return (axum::http::StatusCode::UNAUTHORIZED, "no token").into_response();
    }
    // IAM's own form: microseconds.
    let expires = in_an_hour();
    (
        axum::http::StatusCode::CREATED,
        axum::Json(serde_json::json!({"credential": {"access": ACCESS_KEY,
            "secret": SECRET_KEY, "securitytoken": "st", "expires_at": expires}})),
    )
        .into_response()
}

async fn start_sts() -> (String, Sts) {
    let sts = Sts::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(sts_answer))
        .route("/tencent/", axum::routing::post(tencent_answer))
        .route(
            "/huawei/v3.0/OS-AUTH/id-token/tokens",
            axum::routing::post(huawei_token),
        )
        .route(
            "/huawei/v3.0/OS-CREDENTIAL/securitytokens",
            axum::routing::post(huawei_keys),
        )
        .route("/v1/credentials", axum::routing::get(agent_answer))
        .with_state(sts.clone());
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), sts)
}

/// `server.options` without keys, the pod's token in a file.
fn keyless(server: &Server, source: &str, dest: &Path, token_dir: &Path) -> (FetchOptions, String) {
    let mut options = server.options(source, dest);
    options.env.access_key_id = None;
    options.env.secret_access_key = None;
    let token_file = token_dir.join("token");
    std::fs::write(&token_file, format!("{POD_TOKEN}\n")).unwrap();
    (options, token_file.display().to_string())
}

#[tokio::test]
async fn an_eks_pod_with_irsa_or_pod_identity_fetches_with_no_keys_set() {
    let server = start().await;
    server.upload("m").await;
    let (sts_url, sts) = start_sts().await;
    let out = tempfile::tempdir().unwrap();

    let (mut irsa, token_file) =
        keyless(&server, "s3://weights/m", &out.path().join("a"), out.path());
    irsa.env.identity.aws_role_arn = Some(ROLE.into());
    irsa.env.identity.aws_web_identity_token_file = Some(token_file.clone());
    irsa.env.identity.aws_sts_endpoint = Some(sts_url.clone());
    fetch(&irsa, Duration::from_secs(1), |_| {}).await.unwrap();
    assert_model_in(&out.path().join("a"));
    assert_eq!(
        sts.calls.load(Ordering::SeqCst),
        1,
        "one exchange, its keys reused"
    );

    let (mut pod_identity, _) =
        keyless(&server, "s3://weights/m", &out.path().join("b"), out.path());
    pod_identity.env.identity.aws_container_credentials_full_uri =
        Some(format!("{sts_url}/v1/credentials"));
    pod_identity
        .env
        .identity
        .aws_container_authorization_token_file = Some(token_file.clone());
    fetch(&pod_identity, Duration::from_secs(1), |_| {})
        .await
        .unwrap();
    assert_model_in(&out.path().join("b"));

    // A role the STS refuses: one line naming the role and what STS said.
    let (mut denied, _) = keyless(&server, "s3://weights/m", &out.path().join("c"), out.path());
    denied.env.identity.aws_role_arn = Some("arn:aws:iam::111122223333:role/other".into());
    denied.env.identity.aws_web_identity_token_file = Some(token_file);
    denied.env.identity.aws_sts_endpoint = Some(sts_url);
    let e = refusal(&denied).await;
    assert!(e.contains("role/other (EKS IRSA)"), "{e}");
    assert!(e.contains("AccessDenied: Not authorized"), "{e}");
    assert!(e.contains("trust policy"), "{e}");
    assert!(!e.contains(POD_TOKEN), "never the token: {e}");
    assert!(!out.path().join("c").exists());
}

#[tokio::test]
async fn an_ack_pod_with_rrsa_fetches_from_oss_with_no_keys_set() {
    let server = start().await;
    server.upload("m").await;
    let (sts_url, sts) = start_sts().await;
    let out = tempfile::tempdir().unwrap();
    let (mut rrsa, token_file) = keyless(
        &server,
        "oss://weights/m",
        &out.path().join("a"),
        out.path(),
    );
    rrsa.env.identity.alibaba_role_arn = Some("acs:ram::1234567890123456:role/model-reader".into());
    rrsa.env.identity.alibaba_oidc_provider_arn =
        Some("acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1".into());
    rrsa.env.identity.alibaba_oidc_token_file = Some(token_file.clone());
    rrsa.env.identity.alibaba_sts_endpoint = Some(sts_url);
    fetch(&rrsa, Duration::from_secs(1), |_| {}).await.unwrap();
    assert_model_in(&out.path().join("a"));
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);

    // Half of RRSA's variables is a mistake, said as one.
    let (mut half, _) = keyless(
        &server,
        "oss://weights/m",
        &out.path().join("b"),
        out.path(),
    );
    half.env.identity.alibaba_role_arn = Some("acs:ram::1:role/x".into());
    let e = refusal(&half).await;
    assert!(e.contains("go together"), "{e}");
    // IRSA's variables say nothing to an OSS source.
    let (mut wrong_cloud, _) = keyless(
        &server,
        "oss://weights/m",
        &out.path().join("c"),
        out.path(),
    );
    wrong_cloud.env.identity.aws_role_arn = Some(ROLE.into());
    wrong_cloud.env.identity.aws_web_identity_token_file = Some(token_file);
    let e = refusal(&wrong_cloud).await;
    assert!(e.contains("ACK RRSA for oss://"), "{e}");
}

#[tokio::test]
async fn a_tke_pod_fetches_from_cos_with_no_keys_set() {
    let server = start().await;
    server.upload("m").await;
    let (sts_url, sts) = start_sts().await;
    let out = tempfile::tempdir().unwrap();
    let tke = |dest: &str, role: &str| {
        let (mut options, token_file) = keyless(
            &server,
            "cos://weights/m",
            &out.path().join(dest),
            out.path(),
        );
        let id = &mut options.env.identity;
        id.tencent_role_arn = Some(role.into());
        id.tencent_provider_id = Some("tke-oidc".into());
        id.tencent_token_file = Some(token_file);
        id.tencent_region = Some("ap-guangzhou".into());
        id.tencent_sts_endpoint = Some(format!("{sts_url}/tencent"));
        options
    };
    fetch(&tke("a", TKE_ROLE), Duration::from_secs(1), |_| {})
        .await
        .unwrap();
    assert_model_in(&out.path().join("a"));
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1, "one exchange");

    // STS says no in a 200: still one line naming the role and the reason.
    let e = refusal(&tke("b", "qcs::cam::uin/1:roleName/other")).await;
    assert!(e.contains("roleName/other (TKE pod identity)"), "{e}");
    assert!(
        e.contains("InvalidParameter.WebIdentityTokenError: role not trusted"),
        "{e}"
    );
    assert!(!e.contains(POD_TOKEN), "never the token: {e}");
    assert!(!out.path().join("b").exists());

    let mut half = tke("c", TKE_ROLE);
    half.env.identity.tencent_provider_id = None;
    let e = refusal(&half).await;
    assert!(e.contains("go together"), "{e}");
}

#[tokio::test]
async fn a_cce_pod_fetches_from_obs_with_no_keys_set() {
    let server = start().await;
    server.upload("m").await;
    let (sts_url, sts) = start_sts().await;
    let out = tempfile::tempdir().unwrap();
    let cce = |dest: &str, idp: &str| {
        let (mut options, token_file) = keyless(
            &server,
            "obs://weights/m",
            &out.path().join(dest),
            out.path(),
        );
        let id = &mut options.env.identity;
        id.huawei_idp_id = Some(idp.into());
        id.huawei_token_file = Some(token_file);
        id.huawei_project_id = Some(CCE_PROJECT.into());
        id.huawei_iam_endpoint = Some(format!("{sts_url}/huawei"));
        options
    };
    fetch(&cce("a", "cce-idp"), Duration::from_secs(1), |_| {})
        .await
        .unwrap();
    assert_model_in(&out.path().join("a"));
    assert_eq!(
        sts.calls.load(Ordering::SeqCst),
        2,
        "a federated token, then keys for it"
    );

    let e = refusal(&cce("b", "other-idp")).await;
    assert!(e.contains("other-idp (CCE workload identity)"), "{e}");
    assert!(e.contains("HTTP 401 Unauthorized 401: The request"), "{e}");
    assert!(e.contains("audience"), "{e}");
    assert!(!e.contains(POD_TOKEN), "never the token: {e}");
    assert!(!out.path().join("b").exists());

    // TKE's variables say nothing to an OBS source.
    let (mut wrong_cloud, token_file) = keyless(
        &server,
        "obs://weights/m",
        &out.path().join("c"),
        out.path(),
    );
    wrong_cloud.env.identity.tencent_role_arn = Some(TKE_ROLE.into());
    wrong_cloud.env.identity.tencent_provider_id = Some("tke-oidc".into());
    wrong_cloud.env.identity.tencent_token_file = Some(token_file);
    let e = refusal(&wrong_cloud).await;
    assert!(e.contains("CCE workload identity for obs://"), "{e}");
}
