//! A hub for tests: the real router over a throwaway database, with one
//! sandbox cluster (the example fleet's `aws-use1-prod` pools) registered
//! in-process, a platform admin signed in, and helpers to call the API
//! through `tower::ServiceExt::oneshot`, without a socket.
//!
//! [`Hub::start_clusters`] starts several sandbox clusters instead, each
//! optionally with the real operator reconciling in it, and
//! [`Hub::background`] runs cluster sync and failover.

#![allow(dead_code)]

pub mod two_clouds;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use modelfleet_api::identity::password::PasswordHash;
use modelfleet_api::store::NewUser;
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::{
    Actor, ApiSettings, AppState, ClusterRegistry, Keyring, Role, SecondFactorRoles, Secret,
    SecretKey, Store, router,
};
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_core::money::{Currency, Rate};
use modelfleet_operator::controller::Settings;
use modelfleet_operator::runner::{self, Options, Shutdown};
use modelfleet_sandbox::ApiServer;
use modelfleet_sandbox::cluster::{ClusterHandle, ClusterOptions, SimulatedCluster};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const CLUSTER: &str = "aws-use1-prod";
pub const ADMIN_PASSWORD: &str = "Platform-admin-42!";

pub struct Hub {
    pub router: Router,
    pub state: AppState,
    pub store: Store,
    /// The sandbox cluster's API, to look at what the hub wrote.
    pub kube: kube::Client,
    /// A platform admin's session token.
    pub admin: String,
    /// The sandbox clusters, in the order they were asked for.
    pub sandboxes: Vec<Sandbox>,
}

/// One sandbox cluster of a test hub.
pub struct Sandbox {
    pub name: String,
    pub kube: kube::Client,
    /// Its API server, to serve over HTTP for the real `kubectl`.
    pub server: ApiServer,
    pub nodes: ClusterHandle,
    operator: Option<Shutdown>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = &self.operator {
            stop.trigger();
        }
    }
}

/// What [`Hub::start_clusters`] starts.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub name: &'static str,
    pub cloud: Cloud,
    pub region: &'static str,
    pub fleet: Fleet,
    /// Run the operator in it; `Some(true)` requires the hub's admission.
    pub operator: Option<bool>,
}

/// Cluster sync and failover running for a test hub.
pub struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Stops both loops and waits until they have.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Polls `check` until it returns `Some`, and returns that. Gives up (and
/// fails the test, naming `what`) only after a generous minute, so a slow
/// machine is never mistaken for a bug.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A response, its body parsed as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts a problem document with `status` and returns its detail.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{:#}",
            self.body
        );
        for member in ["type", "title", "status", "detail", "instance"] {
            assert!(
                !self.body[member].is_null(),
                "problem lacks {member}: {:#}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
        self.body["detail"].as_str().unwrap().to_owned()
    }
}

/// The example fleet's pools of one AWS cluster.
pub fn fleet() -> Fleet {
    let mut fleet = Fleet::example();
    fleet.pools.retain(|p| p.cluster == CLUSTER);
    fleet
}

impl Hub {
    pub async fn start(db: TestDb) -> Hub {
        Self::start_with(db, fleet()).await
    }

    /// A hub over the usual cluster with `settings`.
    pub async fn start_with_settings(db: TestDb, settings: ApiSettings) -> Hub {
        let spec = SandboxSpec {
            name: CLUSTER,
            cloud: Cloud::Aws,
            region: "us-east-1",
            fleet: fleet(),
            operator: None,
        };
        Self::start_clusters(db, vec![spec], settings).await
    }

    pub async fn start_with(db: TestDb, fleet: Fleet) -> Hub {
        let spec = SandboxSpec {
            name: CLUSTER,
            cloud: Cloud::Aws,
            region: "us-east-1",
            fleet,
            operator: None,
        };
        Self::start_clusters(db, vec![spec], test_settings()).await
    }

    /// A hub over several sandbox clusters, each registered under its name.
    pub async fn start_clusters(db: TestDb, specs: Vec<SandboxSpec>, settings: ApiSettings) -> Hub {
        let keyring = Arc::new(Keyring::new(SecretKey::generate().unwrap()));
        let state = AppState::new(db.store.clone(), keyring, ClusterRegistry::new(), settings);
        let mut sandboxes = Vec::new();
        for spec in specs {
            sandboxes.push(start_sandbox(&state, spec).await);
        }

        let password = Secret::new(ADMIN_PASSWORD);
        let mut tx = db.store.begin(&Actor::system("test")).await.unwrap();
        tx.create_user(NewUser {
            tenant: None,
            username: "root".into(),
            display_name: "Platform admin".into(),
            password: PasswordHash::new("root", &password).await.unwrap(),
            role: Role::PlatformAdmin,
            expires_at: None,
            must_change_password: false,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let mut hub = Hub {
            router: router(state.clone()),
            state,
            store: db.store,
            kube: sandboxes[0].kube.clone(),
            admin: String::new(),
            sandboxes,
        };
        let reply = hub
            .call(
                Method::POST,
                "/api/v1/sessions",
                None,
                Some(json!({"username": "root", "password": ADMIN_PASSWORD})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        hub.admin = reply.body["token"].as_str().unwrap().to_owned();
        hub
    }

    /// Starts cluster sync and failover, as `modelfleet serve` does.
    pub fn background(&self) -> Background {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = vec![
            modelfleet_api::sync::spawn(self.state.hub().clone(), stopped.clone()),
            modelfleet_api::failover::spawn(self.state.hub().clone(), stopped),
        ];
        Background { stop, tasks }
    }

    /// Cluster sync alone.
    pub fn sync_only(&self) -> Background {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = vec![modelfleet_api::sync::spawn(
            self.state.hub().clone(),
            stopped,
        )];
        Background { stop, tasks }
    }

    pub fn sandbox(&self, name: &str) -> &Sandbox {
        self.sandboxes
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no sandbox {name}"))
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    /// Sends raw bytes as a JSON body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: impl Into<Body>,
    ) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    /// A POST with an `Idempotency-Key`.
    pub async fn post_with_key(&self, path: &str, token: &str, key: &str, body: &Value) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// A GET whose body is kept as bytes (CSV, PDF).
    pub async fn download(&self, path: &str, token: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let request = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Signs in with a password; the session's token.
    pub async fn sign_in(&self, username: &str, password: &str) -> String {
        let reply = self.sign_in_reply(username, password).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    /// `POST /sessions` with a password, as answered.
    pub async fn sign_in_reply(&self, username: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// A tenant with `quota`, and a tenant-admin API key for it:
    /// `(tenant id, token)`.
    pub async fn tenant(&self, name: &str, quota: Value) -> (String, String) {
        let reply = self
            .post(
                "/api/v1/tenants",
                &self.admin,
                json!({"name": name, "quota": quota}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        let id = reply.body["id"].as_str().unwrap().to_owned();
        let reply = self
            .post(
                "/api/v1/api-keys",
                &self.admin,
                json!({"name": "admin", "role": "tenant-admin", "tenant": id}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        (id, reply.body["token"].as_str().unwrap().to_owned())
    }
}

/// A quota that fits a 70B model on one 8-GPU node.
pub fn roomy() -> Value {
    json!({"totalDevices": 32, "deployments": 10})
}

/// A hub over one AWS cluster, `aws-a`, with a pool of two 4-GPU L40S
/// nodes and an operator that requires the hub's admission: what the
/// billing, admission and budget tests run against.
pub async fn l40s_hub(db: TestDb) -> Hub {
    l40s_hub_with(db, test_settings()).await
}

/// [`l40s_hub`] with other settings.
pub async fn l40s_hub_with(db: TestDb, settings: ApiSettings) -> Hub {
    let fleet = Fleet::from_yaml(
        "pools:\n\
         - {cloud: aws, region: us-east-1, cluster: aws-a, name: l40s, accelerator: l40s, \
            devicesPerNode: 4, nodesTotal: 2, nodesFree: 2, pricePerDeviceHour: \"1.80 USD\"}\n",
    )
    .unwrap();
    let spec = SandboxSpec {
        name: "aws-a",
        cloud: Cloud::Aws,
        region: "us-east-1",
        fleet,
        operator: Some(true),
    };
    Hub::start_clusters(db, vec![spec], settings).await
}

/// The settings every test hub starts with.
pub fn test_settings() -> ApiSettings {
    ApiSettings {
        exchange_rates: vec![(Currency::Cny, Rate::parse("0.14").unwrap())],
        // Tests change the cluster and look again at once.
        pool_max_age_seconds: 0,
        // The harness's platform admin signs in with a password alone;
        // tests/security_second_factor.rs checks the platform's default.
        second_factor_roles: SecondFactorRoles::none(),
        // Every request here comes from one unknown address; the limits
        // and the refusal windows have tests/security_throttle.rs.
        sign_in_burst: 0,
        sign_in_account_burst: 0,
        auth_failure_burst: 0,
        refusal_window_seconds: 0,
        ..ApiSettings::default()
    }
}

async fn start_sandbox(state: &AppState, spec: SandboxSpec) -> Sandbox {
    let SandboxSpec {
        name,
        cloud,
        region,
        fleet,
        operator,
    } = spec;
    let server = ApiServer::new();
    let kube = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(kube.clone());
    crds.create(&PostParams::default(), &ModelDeployment::crd())
        .await
        .expect("the sandbox takes the ModelDeployment CRD");
    let options = ClusterOptions::default()
        .time_factor(0.001)
        .pod_logs(server.pod_logs());
    let nodes = SimulatedCluster::start(kube.clone(), &fleet, options)
        .await
        .expect("the sandbox cluster starts");
    // The hub and the operator act with the rights manifests/ gives them,
    // as in a real cluster; the test itself is the cluster's admin.
    let identities = modelfleet_sandbox::install::modelfleet_rbac(&server, &kube)
        .await
        .expect("modelfleet's RBAC installs");
    state
        .register_sandbox_cluster(name, cloud, region, identities.hub.clone())
        .await
        .unwrap();
    // The gateway reaches the sandbox's engines where they listen.
    let engines = nodes.engine_addresses();
    state.registry().route_engines(
        name,
        Arc::new(move |pod_ip: &str, port: u16| engines.resolve(pod_ip, port)),
    );
    let operator = operator.map(|require_admission| {
        let mut settings = Settings::new(name);
        settings.converging_requeue = std::time::Duration::from_millis(200);
        settings.unplannable_requeue = std::time::Duration::from_secs(1);
        settings.admission =
            require_admission.then(|| state.registry().admission_key(name).unwrap());
        let (stop, stopped) = Shutdown::channel();
        let options = Options {
            settings,
            probe_addr: None,
            leader_election: None,
        };
        let client = identities.operator.clone();
        tokio::spawn(async move {
            runner::run(client, options, stopped)
                .await
                .expect("the operator runs");
        });
        stop
    });
    Sandbox {
        name: name.to_owned(),
        kube,
        server,
        nodes,
        operator,
    }
}

/// Runs the real `kubectl` with `kubeconfig`: whether it succeeded, and
/// what it printed (both streams).
pub fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs (apt-get install kubectl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Enrols a TOTP second factor for the person `session` signs in as, as
/// they would with an authenticator app; returns the secret.
pub async fn enrol_totp(hub: &Hub, session: &str) -> Vec<u8> {
    let begun = hub
        .call(Method::POST, "/api/v1/users/me/totp", Some(session), None)
        .await;
    assert_eq!(begun.status, StatusCode::CREATED, "{:#}", begun.body);
    let secret =
        modelfleet_api::identity::totp::from_base32(begun.body["secret"].as_str().unwrap())
            .unwrap();
    let code = modelfleet_api::identity::totp::code_at(
        &secret,
        chrono::DateTime::<chrono::Utc>::from(modelfleet_clock::now()).timestamp(),
    );
    let confirmed = hub
        .call(
            Method::POST,
            "/api/v1/users/me/totp/confirm",
            Some(session),
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:#}", confirmed.body);
    secret
}
