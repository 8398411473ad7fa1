//! A hub for tests: the real router over a throwaway database, with one
//! sandbox cluster (the example fleet's `aws-use1-prod` pools) registered
//! in-process, a platform admin signed in, and helpers to call the API
//! through `tower::ServiceExt::oneshot`, without a socket.

#![allow(dead_code)]

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
    Actor, ApiSettings, AppState, ClusterRegistry, Keyring, Role, Secret, SecretKey, Store, router,
};
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_core::money::{Currency, Rate};
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
    _cluster: ClusterHandle,
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

    pub async fn start_with(db: TestDb, fleet: Fleet) -> Hub {
        let keyring = Arc::new(Keyring::new(SecretKey::generate().unwrap()));
        let settings = ApiSettings {
            exchange_rates: vec![(Currency::Cny, Rate::parse("0.14").unwrap())],
            // Tests change the cluster and look again at once.
            pool_max_age_seconds: 0,
            ..ApiSettings::default()
        };
        let state = AppState::new(db.store.clone(), keyring, ClusterRegistry::new(), settings);

        let server = ApiServer::new();
        let kube = server.client();
        let crds: Api<CustomResourceDefinition> = Api::all(kube.clone());
        crds.create(&PostParams::default(), &ModelDeployment::crd())
            .await
            .expect("the sandbox takes the ModelDeployment CRD");
        let options = ClusterOptions::default().time_factor(0.001);
        let cluster = SimulatedCluster::start(kube.clone(), &fleet, options)
            .await
            .expect("the sandbox cluster starts");
        state
            .register_sandbox_cluster(CLUSTER, Cloud::Aws, "us-east-1", kube.clone())
            .await
            .unwrap();

        let password = Secret::new(ADMIN_PASSWORD);
        let mut tx = db.store.begin(&Actor::system("test")).await.unwrap();
        tx.create_user(NewUser {
            tenant: None,
            username: "root".into(),
            display_name: "Platform admin".into(),
            password: PasswordHash::new("root", &password).await.unwrap(),
            role: Role::PlatformAdmin,
            expires_at: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let mut hub = Hub {
            router: router(state.clone()),
            state,
            store: db.store,
            kube,
            admin: String::new(),
            _cluster: cluster,
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

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
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
