//! `cargo bench --bench gateway` (or `scripts/bench-gateway`, which first
//! installs LiteLLM): the inference gateway against the LiteLLM proxy, both
//! in front of one fast mock upstream on loopback, driven at concurrency 64
//! with plain and streamed chat completions. Prints, per proxy and kind of
//! request: requests per second, the proxy process's CPU time per request,
//! and its added p50/p99 latency (the proxy's latency minus that of the
//! same load sent straight to the upstream). docs/benchmarks.md explains
//! the figures.
//!
//! Four processes, so each one's CPU is its own: this one (the load
//! generator), the mock upstream and the hub with its gateway (this binary
//! again, with `GATEWAY_BENCH_ROLE` set to `mock` or `gateway`), and
//! LiteLLM (`GATEWAY_BENCH_LITELLM` names its `litellm` command; without
//! it, LiteLLM is skipped and the reason printed).
//!
//! The hub is the one `modelfleet serve` runs (`RunningHub`, SQLite in a
//! temporary directory, one sandbox cluster with its operator): a tenant
//! deploys a model through the API and it becomes Ready on the sandbox's
//! simulated engine; then the cluster's engine addresses are routed to the
//! mock, so the gateway lists the Ready replica as always and connects to
//! the mock instead of the simulated engine.
//!
//! Each kind of request runs twice: at full load (each of the 64
//! connections sends its next request as soon as the last is answered)
//! and paced (`GATEWAY_BENCH_RATE` requests a second in all, 250 by
//! default). `GATEWAY_BENCH_SECONDS` (10) is the length of each run,
//! `GATEWAY_BENCH_CONCURRENCY` (64) the number of connections.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does
//! nothing: it is a measurement, not a test.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use hyper_util::rt::TokioIo;

/// The allocator `modelfleet` runs with (src/main.rs), since this binary is
/// the hub the gateway is measured in.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The answer's text, which tells that a proxy reached the mock.
const MOCK_TEXT: &str = "The sea is wide.";
/// The model the mock serves.
const MOCK_MODEL: &str = "bench-model";
/// The deployment's name (the gateway's `model`) and LiteLLM's model name.
const PROXIED_MODEL: &str = "bench";
/// The sandbox cluster the hub runs.
const CLUSTER: &str = "bench";
/// LiteLLM's master key: both proxies check a key on every request.
const LITELLM_KEY: &str = "sk-gateway-bench";
const WARMUP: Duration = Duration::from_secs(2);
const IDLE_SAMPLE: Duration = Duration::from_secs(3);

fn main() {
    match std::env::var("GATEWAY_BENCH_ROLE").as_deref() {
        Ok("mock") => return mock::main(),
        Ok("gateway") => return gateway::main(),
        _ => {}
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "gateway bench: a measurement, run by `cargo bench --bench gateway`; nothing to do here"
        );
        return;
    }
    bench::main();
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// Where the children write their logs.
fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("modelfleet-gateway-bench");
    std::fs::create_dir_all(&dir).expect("a log directory in the temporary directory");
    dir
}

/// Waits until the process's first line on standard output, which says it
/// is ready; the rest of its output goes on being read (and dropped).
fn first_line(child: &mut Child, what: &str, log: &Path) -> String {
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    if read.is_err() || line.is_empty() {
        panic!("{what} stopped before it was ready; see {}", log.display());
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    line.trim().to_owned()
}

/// A child of this binary in another role; it stops when its standard
/// input closes.
struct Role {
    child: Child,
    stdin: Option<ChildStdin>,
    line: String,
}

impl Role {
    fn start(role: &str, env: &[(&str, String)]) -> Role {
        let log = log_dir().join(format!("{role}.log"));
        let mut command = Command::new(std::env::current_exe().expect("this binary"));
        command
            .env("GATEWAY_BENCH_ROLE", role)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"));
        let mut child = command.spawn().expect("this binary starts again");
        let stdin = child.stdin.take();
        let line = first_line(&mut child, role, &log);
        Role { child, stdin, line }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines a child reads until its standard input closes, then returns.
fn wait_for_stdin_to_close() {
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
}

/// The fast upstream: a fixed chat completion with `usage`, or a short
/// stream of events (role, four pieces of text, the finish, the usage when
/// asked for, `[DONE]`), at once.
mod mock {
    use super::*;

    fn completion() -> Bytes {
        let body = serde_json::json!({
            "id": "chatcmpl-benchmock",
            "object": "chat.completion",
            "created": 1_765_000_000,
            "model": MOCK_MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": MOCK_TEXT},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
        });
        Bytes::from(body.to_string())
    }

    fn chunk(delta: serde_json::Value, finish: Option<&str>) -> Bytes {
        let chunk = serde_json::json!({
            "id": "chatcmpl-benchmock",
            "object": "chat.completion.chunk",
            "created": 1_765_000_000,
            "model": MOCK_MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    /// The events of a streamed answer, without and with the usage chunk.
    fn events() -> (Vec<Bytes>, Vec<Bytes>) {
        let mut events = vec![chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        )];
        for piece in ["The", " sea", " is", " wide."] {
            events.push(chunk(serde_json::json!({"content": piece}), None));
        }
        events.push(chunk(serde_json::json!({}), Some("stop")));
        let usage = serde_json::json!({
            "id": "chatcmpl-benchmock",
            "object": "chat.completion.chunk",
            "created": 1_765_000_000,
            "model": MOCK_MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
        });
        let done = Bytes::from_static(b"data: [DONE]\n\n");
        let mut with_usage = events.clone();
        with_usage.push(Bytes::from(format!("data: {usage}\n\n")));
        with_usage.push(done.clone());
        events.push(done);
        (events, with_usage)
    }

    #[derive(Clone)]
    struct Answers {
        whole: Bytes,
        stream: Arc<Vec<Bytes>>,
        stream_with_usage: Arc<Vec<Bytes>>,
    }

    async fn answer(
        axum::extract::State(answers): axum::extract::State<Answers>,
        body: Bytes,
    ) -> axum::response::Response {
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut response = if request["stream"] == true {
            let events = if request["stream_options"]["include_usage"] == true {
                answers.stream_with_usage
            } else {
                answers.stream
            };
            let mut response =
                axum::response::Response::new(Body::from_stream(futures::stream::iter(
                    (0..events.len()).map(move |i| Ok::<_, std::io::Error>(events[i].clone())),
                )));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/event-stream"),
            );
            response
        } else {
            let mut response = axum::response::Response::new(Body::from(answers.whole));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        };
        *response.status_mut() = StatusCode::OK;
        response
    }

    pub fn main() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (stream, stream_with_usage) = events();
            let answers = Answers {
                whole: completion(),
                stream: Arc::new(stream),
                stream_with_usage: Arc::new(stream_with_usage),
            };
            let app = axum::Router::new()
                .route("/v1/chat/completions", axum::routing::post(answer))
                .route("/chat/completions", axum::routing::post(answer))
                .with_state(answers);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("{}", listener.local_addr().unwrap());
            let stopped = tokio::task::spawn_blocking(wait_for_stdin_to_close);
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    }
}

/// The hub as `modelfleet serve` runs it, with one Ready deployment whose
/// replica's address is the mock's.
mod gateway {
    use super::*;
    use modelfleet::hub::{HubOptions, RunningHub};
    use modelfleet_api::ApiSettings;
    use modelfleet_core::fleet::Fleet;

    async fn chat(http: &reqwest::Client, url: &str, key: &str) -> Option<String> {
        let answer = http
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&serde_json::json!({
                "model": PROXIED_MODEL,
                "messages": [{"role": "user", "content": "hello"}]
            }))
            .send()
            .await
            .ok()?;
        if answer.status() != StatusCode::OK {
            return None;
        }
        answer.text().await.ok()
    }

    pub fn main() {
        // Logs as `serve` writes them (info), to the log file.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
        let upstream: SocketAddr = std::env::var("GATEWAY_BENCH_UPSTREAM")
            .expect("GATEWAY_BENCH_UPSTREAM")
            .parse()
            .expect("an address");
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        // The hub keeps its sealing key there: its owner's alone, whatever
        // the umask.
        std::fs::set_permissions(
            data_dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("the data directory made private");
        // As `modelfleet serve` runs: a multi-threaded runtime on every core.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let fleet = Fleet::from_yaml(&format!(
                "pools:\n- {{cloud: aws, region: us-east-1, cluster: {CLUSTER}, name: l40s, \
                 accelerator: l40s, devicesPerNode: 4, nodesTotal: 2, nodesFree: 2, \
                 pricePerDeviceHour: \"1.80 USD\"}}\n"
            ))
            .unwrap();
            let mut options =
                HubOptions::new(data_dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
            options.fleet = fleet;
            options.time_factor = 0.001;
            options.requeue = Duration::from_millis(500);
            // The bench sends far more than a key's default rates, of
            // requests and of tokens.
            options.settings = ApiSettings {
                gateway_key_requests_per_minute: 0,
                gateway_tenant_requests_per_minute: 0,
                gateway_key_tokens_per_minute: 0,
                gateway_tenant_tokens_per_minute: 0,
                ..ApiSettings::default()
            };
            let hub = RunningHub::start(options).await.expect("the hub starts");
            let key = hub
                .initial_credentials
                .as_ref()
                .and_then(|c| c.demo.as_ref())
                .expect("a first start makes the demo tenant")
                .api_key
                .expose()
                .to_owned();
            let http = reqwest::Client::new();
            let deployed = http
                .post(format!("{}/api/v1/deployments", hub.url))
                .bearer_auth(&key)
                .json(&serde_json::json!({
                    "name": PROXIED_MODEL, "model": "llama-3.1-8b", "replicas": 1
                }))
                .send()
                .await
                .expect("the hub answers");
            assert_eq!(
                deployed.status(),
                StatusCode::ACCEPTED,
                "{}",
                deployed.text().await.unwrap_or_default()
            );
            // Ready on the simulated engine first ...
            let give_up = Instant::now() + Duration::from_secs(300);
            while chat(&http, &hub.url, &key).await.is_none() {
                assert!(Instant::now() < give_up, "the deployment never answered");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // ... then its replica answers at the mock's address (once the
            // gateway lists it again, within two seconds).
            hub.state.registry().route_engines(
                CLUSTER,
                Arc::new(move |_pod_ip: &str, _port: u16| Some(upstream)),
            );
            loop {
                if chat(&http, &hub.url, &key)
                    .await
                    .is_some_and(|text| text.contains(MOCK_TEXT))
                {
                    break;
                }
                assert!(
                    Instant::now() < give_up,
                    "the gateway never reached the mock"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            println!("{} {key}", hub.url);
            tokio::task::spawn_blocking(wait_for_stdin_to_close)
                .await
                .unwrap();
            hub.shutdown().await;
        });
        drop(data_dir);
    }
}

/// The load generator and the table.
mod bench {
    use super::*;

    /// Where requests go.
    #[derive(Debug, Clone)]
    pub struct Target {
        pub name: &'static str,
        pub addr: SocketAddr,
        pub key: String,
        pub model: &'static str,
        /// The process whose CPU is measured (none for the upstream itself).
        pub pid: Option<u32>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Plain,
        Streamed,
    }

    impl Kind {
        fn label(self) -> &'static str {
            match self {
                Kind::Plain => "plain",
                Kind::Streamed => "streamed",
            }
        }
    }

    fn body(kind: Kind, model: &str) -> Bytes {
        let mut body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "Tell me about the sea in one sentence."}],
            "max_tokens": 16
        });
        if kind == Kind::Streamed {
            body["stream"] = true.into();
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
        Bytes::from(body.to_string())
    }

    /// One connection's requests, one after the other, until `until`.
    async fn connection(
        target: Arc<Target>,
        body: Bytes,
        until: Instant,
        every: Option<Duration>,
    ) -> (Vec<u32>, u64, Option<String>) {
        let mut latencies = Vec::new();
        let mut next = Instant::now();
        let mut errors = 0u64;
        let mut first_error = None;
        let mut sender = None;
        let host = target.addr.to_string();
        let authorization = format!("Bearer {}", target.key);
        while Instant::now() < until {
            if sender.is_none() {
                match connect(target.addr).await {
                    Ok(s) => sender = Some(s),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(format!("connecting: {e}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
            if let Some(every) = every {
                // Paced: one request every `every`, late ones at once.
                tokio::time::sleep_until(next.into()).await;
                next += every;
                if Instant::now() >= until {
                    break;
                }
            }
            let s = sender.as_mut().expect("connected");
            let request = Request::post("/v1/chat/completions")
                .header(header::HOST, &host)
                .header(header::AUTHORIZATION, &authorization)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let sent = Instant::now();
            let outcome = async {
                s.ready().await.map_err(|e| e.to_string())?;
                let response = s.send_request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let mut data = Body::new(response.into_body()).into_data_stream();
                let mut last = Bytes::new();
                while let Some(chunk) = data.next().await {
                    last = chunk.map_err(|e| e.to_string())?;
                }
                if status != StatusCode::OK {
                    return Err(format!("{status}: {}", String::from_utf8_lossy(&last)));
                }
                Ok(())
            }
            .await;
            match outcome {
                Ok(()) => {
                    latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX))
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                    sender = None;
                }
            }
        }
        (latencies, errors, first_error)
    }

    async fn connect(
        addr: SocketAddr,
    ) -> Result<hyper::client::conn::http1::SendRequest<Body>, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// What one run measured.
    #[derive(Debug)]
    pub struct Run {
        pub requests: usize,
        pub seconds: f64,
        /// Sorted, in microseconds.
        pub latencies: Vec<u32>,
        pub errors: u64,
        pub first_error: Option<String>,
        /// CPU seconds of the proxy's processes, less what they spend idle.
        pub cpu: Option<f64>,
    }

    impl Run {
        pub fn per_second(&self) -> f64 {
            self.requests as f64 / self.seconds
        }

        /// A percentile of the latencies, in milliseconds.
        pub fn percentile(&self, p: usize) -> f64 {
            if self.latencies.is_empty() {
                return f64::NAN;
            }
            let i = (self.latencies.len() * p / 100).min(self.latencies.len() - 1);
            f64::from(self.latencies[i]) / 1000.0
        }

        /// CPU milliseconds per request.
        pub fn cpu_per_request(&self) -> Option<f64> {
            Some(self.cpu? * 1000.0 / self.requests.max(1) as f64)
        }
    }

    /// Sends `kind` requests to `target` from `concurrency` connections for
    /// `seconds`, after a warm-up: each as soon as the last one came back,
    /// or at `rate` requests per second in all; `idle` is the CPU seconds
    /// per second the proxy spends with no load.
    pub async fn run(
        target: &Target,
        kind: Kind,
        concurrency: usize,
        rate: Option<u64>,
        seconds: Duration,
        idle: f64,
    ) -> Run {
        let every = rate.map(|r| {
            Duration::from_secs(1) * u32::try_from(concurrency).unwrap()
                / u32::try_from(r.max(1)).unwrap()
        });
        let target = Arc::new(target.clone());
        let body = body(kind, target.model);
        let load = |length: Duration| {
            let until = Instant::now() + length;
            let tasks: Vec<_> = (0..concurrency)
                .map(|i| {
                    // Paced connections start spread over one interval.
                    let offset = every.map_or(Duration::ZERO, |e| {
                        e * u32::try_from(i).unwrap() / u32::try_from(concurrency).unwrap()
                    });
                    let (target, body) = (target.clone(), body.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(offset).await;
                        connection(target, body, until, every).await
                    })
                })
                .collect();
            async move {
                let mut all = (Vec::new(), 0, None);
                for task in tasks {
                    let (latencies, errors, first_error) = task.await.unwrap();
                    all.0.extend(latencies);
                    all.1 += errors;
                    if all.2.is_none() {
                        all.2 = first_error;
                    }
                }
                all
            }
        };
        load(WARMUP).await;
        let profiling = profile(&target, kind, rate, seconds);
        let cpu_before = target.pid.map(cpu::tree_seconds);
        let started = Instant::now();
        let (mut latencies, errors, first_error) = load(seconds).await;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_before
            .zip(target.pid.map(cpu::tree_seconds))
            .map(|(before, after)| (after - before - idle * elapsed).max(0.0));
        latencies.sort_unstable();
        if let Some(mut perf) = profiling {
            let _ = perf.wait();
        }
        Run {
            requests: latencies.len(),
            seconds: elapsed,
            latencies,
            errors,
            first_error,
            cpu,
        }
    }

    /// With `GATEWAY_BENCH_PERF` set, `perf record` samples the gateway's
    /// process through its run of plain requests at full load, into
    /// `gateway.perf.data` in the log directory (`perf report -i` it). It
    /// takes CPU of its own, so that run's figures are not the ones to quote.
    fn profile(target: &Target, kind: Kind, rate: Option<u64>, seconds: Duration) -> Option<Child> {
        std::env::var_os("GATEWAY_BENCH_PERF")?;
        if target.name != "modelfleet gateway" || kind != Kind::Plain || rate.is_some() {
            return None;
        }
        let out = log_dir().join("gateway.perf.data");
        let perf = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-p"])
            .arg(target.pid?.to_string())
            .arg("-o")
            .arg(&out)
            .args(["--", "sleep"])
            .arg(seconds.as_secs().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match perf {
            Ok(child) => {
                eprintln!("   perf record into {}", out.display());
                Some(child)
            }
            Err(e) => {
                eprintln!("   perf does not start ({e}): apt-get install linux-perf");
                None
            }
        }
    }

    /// One request of `kind`: does it come back 200 with the mock's text?
    pub async fn check(target: &Target, kind: Kind) -> Result<(), String> {
        let mut sender = connect(target.addr).await?;
        let request = Request::post("/v1/chat/completions")
            .header(header::HOST, target.addr.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {}", target.key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body(kind, target.model)))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&bytes);
        let text_ok = match kind {
            Kind::Plain => text.contains(MOCK_TEXT),
            Kind::Streamed => text.contains(" wide.") && text.contains("[DONE]"),
        };
        if status != StatusCode::OK || !text_ok {
            return Err(format!("{status}: {text}"));
        }
        Ok(())
    }

    /// LiteLLM's proxy on loopback in front of the mock, with a master key.
    fn start_litellm(litellm: &Path, upstream: SocketAddr) -> Result<(Child, SocketAddr), String> {
        let dir = log_dir();
        let config = dir.join("litellm.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n\
                 \x20 - model_name: {PROXIED_MODEL}\n\
                 \x20   litellm_params:\n\
                 \x20     model: openai/{MOCK_MODEL}\n\
                 \x20     api_base: http://{upstream}/v1\n\
                 \x20     api_key: sk-upstream\n\
                 general_settings:\n\
                 \x20 master_key: {LITELLM_KEY}\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log = dir.join("litellm.log");
        let child = Command::new(litellm)
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--num_workers", "1"])
            // The cost map ships in the package: no fetch from the internet.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_LOG", "ERROR")
            .env("LITELLM_TELEMETRY", "False")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .map_err(|e| e.to_string())?,
            )
            .spawn()
            .map_err(|e| format!("{} does not start: {e}", litellm.display()))?;
        Ok((child, SocketAddr::from(([127, 0, 0, 1], port))))
    }

    /// One line of the table.
    #[derive(Debug)]
    struct Row {
        kind: Kind,
        /// Paced at this many requests a second, or as fast as answered.
        rate: Option<u64>,
        through: &'static str,
        per_second: f64,
        cpu: Option<f64>,
        p50: f64,
        p99: f64,
        added_p50: Option<f64>,
        added_p99: Option<f64>,
        errors: u64,
    }

    fn cell(value: Option<f64>, digits: usize) -> String {
        match value {
            Some(v) if v.is_finite() => format!("{v:.digits$}"),
            _ => "-".to_owned(),
        }
    }

    pub fn main() {
        let concurrency = usize::try_from(env_number("GATEWAY_BENCH_CONCURRENCY", 64)).unwrap();
        let seconds = Duration::from_secs(env_number("GATEWAY_BENCH_SECONDS", 10));
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        eprintln!(
            "== starting the mock upstream and the hub (logs in {})",
            log_dir().display()
        );
        let mock = Role::start("mock", &[]);
        let upstream: SocketAddr = mock.line.parse().expect("the mock's address");
        let started = Instant::now();
        let gateway = Role::start(
            "gateway",
            &[("GATEWAY_BENCH_UPSTREAM", upstream.to_string())],
        );
        let (url, key) = gateway.line.split_once(' ').expect("url and key");
        let gateway_addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .expect("the hub's address");
        eprintln!(
            "== the hub is up, its deployment Ready and routed to the mock ({:.0?})",
            started.elapsed()
        );

        let mut litellm = None;
        let mut skipped = std::env::var("GATEWAY_BENCH_LITELLM_SKIPPED").ok();
        if skipped.is_none() {
            match std::env::var_os("GATEWAY_BENCH_LITELLM") {
                None => {
                    skipped = Some(
                        "GATEWAY_BENCH_LITELLM does not name a litellm command \
                         (scripts/bench-gateway installs one)"
                            .to_owned(),
                    )
                }
                Some(path) => match start_litellm(Path::new(&path), upstream) {
                    Ok(started) => litellm = Some(started),
                    Err(e) => skipped = Some(e),
                },
            }
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut targets = vec![
            Target {
                name: "upstream (direct)",
                addr: upstream,
                key: "sk-upstream".to_owned(),
                model: MOCK_MODEL,
                pid: None,
            },
            Target {
                name: "modelfleet gateway",
                addr: gateway_addr,
                key: key.to_owned(),
                model: PROXIED_MODEL,
                pid: Some(gateway.pid()),
            },
        ];
        runtime.block_on(async {
            if let Some((child, addr)) = &mut litellm {
                let target = Target {
                    name: "LiteLLM proxy",
                    addr: *addr,
                    key: LITELLM_KEY.to_owned(),
                    model: PROXIED_MODEL,
                    pid: Some(child.id()),
                };
                let give_up = Instant::now() + Duration::from_secs(180);
                loop {
                    if let Ok(Some(status)) = child.try_wait() {
                        skipped = Some(format!(
                            "LiteLLM exited ({status}) before it answered; see {}",
                            log_dir().join("litellm.log").display()
                        ));
                        break;
                    }
                    let last = match check(&target, Kind::Plain).await {
                        Ok(()) => {
                            targets.push(target);
                            break;
                        }
                        Err(e) => e,
                    };
                    if Instant::now() > give_up {
                        skipped = Some(format!("LiteLLM did not answer within 180 s: {last}"));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            for target in &targets {
                for kind in [Kind::Plain, Kind::Streamed] {
                    if let Err(e) = check(target, kind).await {
                        panic!(
                            "{} does not answer a {} request: {e}",
                            target.name,
                            kind.label()
                        );
                    }
                }
            }
        });

        // What each proxy spends with nothing to do (the hub's loops, the
        // sandbox cluster, LiteLLM's schedulers), taken off its figures.
        let idle: Vec<f64> = targets
            .iter()
            .map(|t| t.pid.map_or(0.0, |pid| cpu::idle_rate(pid, IDLE_SAMPLE)))
            .collect();

        let rate = env_number("GATEWAY_BENCH_RATE", 250);
        let mut rows = Vec::new();
        for kind in [Kind::Plain, Kind::Streamed] {
            // GATEWAY_BENCH_RATE=0: no paced runs.
            let loads = std::iter::once(None).chain((rate > 0).then_some(Some(rate)));
            for paced in loads {
                let mut direct: Option<Run> = None;
                for (target, idle) in targets.iter().zip(&idle) {
                    eprintln!(
                        "== {} requests to {}, {}",
                        kind.label(),
                        target.name,
                        paced.map_or_else(
                            || "as fast as they come back".to_owned(),
                            |r| format!("{r} a second")
                        )
                    );
                    let run =
                        runtime.block_on(run(target, kind, concurrency, paced, seconds, *idle));
                    if run.errors > 0 {
                        eprintln!(
                            "   {} errors; the first: {}",
                            run.errors,
                            run.first_error.as_deref().unwrap_or("?")
                        );
                    }
                    let added = |p: usize| {
                        direct
                            .as_ref()
                            .filter(|_| target.pid.is_some())
                            .map(|d| run.percentile(p) - d.percentile(p))
                    };
                    rows.push(Row {
                        kind,
                        rate: paced,
                        through: target.name,
                        per_second: run.per_second(),
                        cpu: run.cpu_per_request(),
                        p50: run.percentile(50),
                        p99: run.percentile(99),
                        added_p50: added(50),
                        added_p99: added(99),
                        errors: run.errors,
                    });
                    if target.pid.is_none() {
                        direct = Some(run);
                    }
                }
            }
        }

        let mut out = String::new();
        out.push_str(&format!(
            "\nInference gateway: {concurrency} connections, {} s per run, {cores} cores, \
             one mock upstream on loopback; load \"max\": each connection sends its next request \
             when the last is answered; \"{rate}/s\": paced at {rate} requests a second in all\n\n",
            seconds.as_secs()
        ));
        out.push_str(
            "| requests | load   | through            |  req/s | CPU ms/req | p50 ms | p99 ms | added p50 ms | added p99 ms | errors |\n\
             | -------- | ------ | ------------------ | -----: | ---------: | -----: | -----: | -----------: | -----------: | -----: |\n",
        );
        for r in &rows {
            out.push_str(&format!(
                "| {:<8} | {:<6} | {:<18} | {:>6.0} | {:>10} | {:>6.2} | {:>6.2} | {:>12} | {:>12} | {:>6} |\n",
                r.kind.label(),
                r.rate.map_or_else(|| "max".to_owned(), |r| format!("{r}/s")),
                r.through,
                r.per_second,
                cell(r.cpu, 3),
                r.p50,
                r.p99,
                cell(r.added_p50, 2),
                cell(r.added_p99, 2),
                r.errors
            ));
        }
        if let Some(why) = &skipped {
            out.push_str(&format!("\nLiteLLM skipped: {why}\n"));
        }
        let gateway_row = |rate: Option<u64>| {
            rows.iter().find(|r| {
                r.kind == Kind::Plain && r.rate == rate && r.through == "modelfleet gateway"
            })
        };
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        if let Some(r) = gateway_row(None) {
            out.push_str(&format!(
                "\nGoal: at most 0.100 ms of gateway CPU per plain request: {} ({} ms)\n",
                met(r.cpu.is_some_and(|c| c <= 0.1)),
                cell(r.cpu, 3),
            ));
            for r in [gateway_row(None), gateway_row(Some(rate))]
                .into_iter()
                .flatten()
            {
                out.push_str(&format!(
                    "Goal: under 1 ms added p99 at concurrency {concurrency}, load {}: {} ({} ms)\n",
                    r.rate.map_or_else(|| "max".to_owned(), |r| format!("{r}/s")),
                    met(r.added_p99.is_some_and(|a| a < 1.0)),
                    cell(r.added_p99, 2),
                ));
            }
        }
        println!("{out}");
        let _ = std::io::stdout().flush();

        if let Some((mut child, _)) = litellm {
            let _ = child.kill();
            let _ = child.wait();
        }
        gateway.stop();
        mock.stop();
    }
}

/// CPU time from /proc: a process and everything it started.
mod cpu {
    use super::*;

    /// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
    fn ticks_per_second() -> f64 {
        static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        *TICKS.get_or_init(|| {
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(100.0)
        })
    }

    /// `(ppid, utime + stime in ticks)` of a process, from /proc/PID/stat
    /// (the fields after the command's name, which may hold spaces).
    fn stat(pid: u32) -> Option<(u32, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(0) ppid(1) ... utime(11) stime(12).
        let ppid = fields.get(1)?.parse().ok()?;
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((ppid, utime + stime))
    }

    /// CPU seconds used so far by `pid` and its descendants (all their
    /// threads, those that ended included).
    pub fn tree_seconds(pid: u32) -> f64 {
        let mut processes = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                if let Some(p) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                    && let Some((ppid, ticks)) = stat(p)
                {
                    processes.push((p, ppid, ticks));
                }
            }
        }
        let mut tree = vec![pid];
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(
                processes
                    .iter()
                    .filter(|(_, ppid, _)| *ppid == parent)
                    .map(|(p, _, _)| *p),
            );
            i += 1;
        }
        let ticks: u64 = processes
            .iter()
            .filter(|(p, _, _)| tree.contains(p))
            .map(|(_, _, t)| t)
            .sum();
        ticks as f64 / ticks_per_second()
    }

    /// CPU seconds per second that `pid`'s tree spends with no requests.
    pub fn idle_rate(pid: u32, over: Duration) -> f64 {
        let before = tree_seconds(pid);
        let started = Instant::now();
        std::thread::sleep(over);
        (tree_seconds(pid) - before) / started.elapsed().as_secs_f64()
    }
}
