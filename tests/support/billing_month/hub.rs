//! The hub as subprocesses on the simulated clock — one `modelfleet serve`
//! on SQLite, or three `modelfleet api` on one PostgreSQL — what its
//! database says, and waiting for it.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use modelfleet::embedded::EmbeddedCluster;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;

use super::clusters::{ALIYUN, AWS, TIME_FACTOR, pod_summary};
use super::loops::{holders, until_all_held};
use super::start;

/// A connection to the hub's database, whichever it is.
enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    async fn close(self) {
        let _ = match self {
            Db::Sqlite(c) => c.close().await,
            Db::Postgres(c) => c.close().await,
        };
    }
}

/// Runs the same query on either connection (each arm its own types).
macro_rules! on {
    ($db:expr, |$c:ident| $query:expr) => {
        match &mut $db {
            Db::Sqlite($c) => $query,
            Db::Postgres($c) => $query,
        }
    };
}

/// How many `modelfleet api` processes share the PostgreSQL database.
pub const API_HUBS: usize = 3;

/// How the hub runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One `modelfleet serve` on SQLite in its data directory.
    Serve,
    /// [`API_HUBS`] `modelfleet api` processes on this PostgreSQL database;
    /// requests go to each in turn.
    Api { database_url: String },
}

/// One hub process.
struct Process {
    child: Child,
    base: String,
    log: PathBuf,
}

/// How long any one wait may take in wall time before the test gives up.
const WAIT: Duration = Duration::from_secs(90);
/// The hub's `--failover-after-seconds`: simulated seconds a deployment may
/// stay unschedulable; small, so that failover looks every half second.
pub const FAILOVER_AFTER_SECONDS: u64 = 4;

struct Clock {
    path: PathBuf,
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let path = dir.join("clock");
        modelfleet_clock::set(&path, start().into()).expect("the clock file is written");
        modelfleet_clock::simulate(&path).expect("this process reads the simulated clock");
        Clock { path }
    })
}

pub fn set_clock(to: DateTime<Utc>) {
    modelfleet_clock::set(&clock().path, to.into()).expect("the clock file is written");
}

/// The scenarios share the process's clock: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `look` until it returns `Ok`, or fails saying what it waited for
/// and what it last saw (`Err` carries that).
pub async fn wait_for<T, F, Fut>(what: &str, hub: Option<&Hub>, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match look().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() > deadline {
            let log = hub.map(Hub::log_tail).unwrap_or_default();
            panic!(
                "waited {WAIT:?} for {what}; last saw:\n{last}\n\
                 the hub's log ends with:\n{log}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The hub's processes on a data directory, killed when dropped.
pub struct Hub {
    data_dir: PathBuf,
    fleet_file: PathBuf,
    mode: Mode,
    processes: Vec<Process>,
    /// Which process the next request goes to.
    next: AtomicUsize,
    http: reqwest::Client,
    starts: u32,
    /// When the first start began, for progress lines.
    born: Instant,
    /// `api` creates no demo tenant: the one the scenario uses, made
    /// through the API, and its key.
    tenant_key: Option<String>,
    /// After each kill of a loop holder: how long each loop took to run
    /// again on a live hub.
    pub moves: Vec<(String, BTreeMap<String, Duration>)>,
}

impl Hub {
    pub async fn start(data_dir: &Path, mode: Mode) -> Hub {
        // Its owner's alone, as `serve` requires of a data directory.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .unwrap();
        // `serve` runs one sandbox cluster per cluster of its fleet and
        // refuses an empty one: a single H100 node of a third cloud, which
        // alpha and bravo (L40S only) never land on.
        let fleet_file = data_dir.join("hub-fleet.yaml");
        std::fs::write(
            &fleet_file,
            "pools:\n\
             - {cloud: tencentcloud, region: ap-guangzhou, cluster: hub-local, name: h100, \
                accelerator: h100-80gb, devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, \
                pricePerDeviceHour: \"6.00 USD\"}\n",
        )
        .unwrap();
        let mut hub = Hub {
            data_dir: data_dir.to_owned(),
            fleet_file,
            mode: mode.clone(),
            processes: Vec::new(),
            next: AtomicUsize::new(0),
            http: reqwest::Client::new(),
            starts: 0,
            born: Instant::now(),
            tenant_key: None,
            moves: Vec::new(),
        };
        match mode {
            Mode::Serve => {
                let process = hub.spawn().await;
                hub.processes.push(process);
            }
            Mode::Api { .. } => {
                // The first makes the platform admin; then the others.
                for _ in 0..API_HUBS {
                    let process = hub.spawn().await;
                    hub.processes.push(process);
                }
                hub.tenant_key = Some(hub.make_demo_tenant().await);
            }
        }
        hub
    }

    /// What `serve`'s first start makes, through the API: the demo tenant
    /// with the demo quota, and a tenant-admin API key. Returns the key.
    async fn make_demo_tenant(&self) -> String {
        let admin = self.admin().await;
        let tenant = self
            .expect(
                reqwest::Method::POST,
                "/api/v1/tenants",
                &admin,
                Some(json!({"name": "demo", "displayName": "Demo tenant",
                            "quota": {"totalDevices": 12, "deployments": 4}})),
                StatusCode::CREATED,
            )
            .await;
        let key = self
            .expect(
                reqwest::Method::POST,
                "/api/v1/api-keys",
                &admin,
                Some(json!({"name": "initial", "role": "tenant-admin",
                            "tenant": tenant["id"]})),
                StatusCode::CREATED,
            )
            .await;
        key["token"].as_str().unwrap().to_owned()
    }

    /// Starts one hub process and waits until it answers.
    async fn spawn(&mut self) -> Process {
        self.starts += 1;
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log = self.data_dir.join(format!("hub-{}.log", self.starts));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_modelfleet"));
        match &self.mode {
            Mode::Serve => {
                command
                    .arg("serve")
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .arg("--fleet")
                    .arg(&self.fleet_file)
                    .arg("--time-factor")
                    .arg(TIME_FACTOR.to_string())
                    .env_remove("MODELFLEET_DATABASE_URL");
            }
            Mode::Api { database_url } => {
                // Each its own data directory, as each pod has its own;
                // the first start writes the admin's credentials in the
                // first one.
                let dir = self.data_dir.join(format!("api-{}", self.starts));
                std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
                command
                    .arg("api")
                    .arg("--data-dir")
                    .arg(&dir)
                    .arg("--database-url")
                    .arg(database_url)
                    .env_remove("MODELFLEET_SECRET_KEY_FILE");
            }
        }
        let child = command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--failover-after-seconds")
            .arg(FAILOVER_AFTER_SECONDS.to_string())
            .arg("--pool-max-age-seconds")
            .arg("1")
            // The month's admin signs in again after every restart, more
            // often than an authenticator app's code changes: this
            // platform asks no second factor (the security tests check
            // the default, which does).
            .arg("--second-factor-roles")
            .arg("none")
            // The tenant's webhook receiver listens on loopback.
            .arg("--webhook-allow-private-addresses")
            .env(modelfleet_clock::SIMULATED_CLOCK_ENV, &clock().path)
            .env(
                "MODELFLEET_SECRET_KEY",
                super::clusters::hub_secret_key().to_base64().expose(),
            )
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("modelfleet starts");
        let mut process = Process { child, base, log };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("the hub exited with {status}:\n{}", tail(&process.log, 40));
            }
            let last = match self
                .http
                .get(format!("{}/healthz", process.base))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return process,
                Ok(r) => format!("status {}", r.status()),
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for start {} of the hub to answer /healthz; last saw {last}\n{}",
                self.starts,
                tail(&process.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL, then a start on the same data directory (`serve`); or
    /// SIGKILL to the hub that runs cluster sync, a wait until every loop
    /// runs on one of the other two, and a replacement hub (`api`).
    pub async fn kill_and_restart(&mut self, when: &str) {
        match self.mode.clone() {
            Mode::Serve => {
                eprintln!("SIGKILL to the hub {when}");
                let mut process = self.processes.pop().expect("the hub runs");
                process.child.kill().expect("SIGKILL is sent");
                process.child.wait().expect("the killed hub is reaped");
                let process = self.spawn().await;
                self.processes.push(process);
            }
            Mode::Api { database_url } => {
                let mut db = sqlx::PgConnection::connect(&database_url)
                    .await
                    .expect("the hubs' database answers");
                let held = holders(&mut db).await;
                let holder = held["cluster-sync"];
                let index = self
                    .processes
                    .iter()
                    .position(|p| p.child.id() == holder)
                    .expect("cluster sync runs on one of the hubs");
                eprintln!("SIGKILL to hub {holder}, which holds {held:?}, {when}");
                let mut process = self.processes.remove(index);
                process.child.kill().expect("SIGKILL is sent");
                let killed = Instant::now();
                process.child.wait().expect("the killed hub is reaped");
                let alive: Vec<u32> = self.processes.iter().map(|p| p.child.id()).collect();
                let moved = until_all_held(&mut db, &alive, killed).await;
                eprintln!("  the loops moved: {moved:?}");
                self.moves.push((
                    when.to_owned(),
                    moved.into_iter().map(|(l, (_, took))| (l, took)).collect(),
                ));
                let _ = db.close().await;
                let process = self.spawn().await;
                self.processes.push(process);
            }
        }
        // The clusters were registered through the API: every hub must be
        // connected to them, from its database.
        let admin = self.admin().await;
        for process in &self.processes {
            self.wait_for_clusters(&process.base, &admin).await;
        }
    }

    async fn wait_for_clusters(&self, base: &str, admin: &str) {
        let this: &Hub = self;
        wait_for(
            "every hub to connect to the clusters registered before the kill",
            Some(this),
            || async move {
                let (status, list) = this
                    .call_at(base, reqwest::Method::GET, "/api/v1/clusters", admin, None)
                    .await;
                let reachable: Vec<(&str, bool)> = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default(),
                            c["reachable"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect();
                let connected = |name| reachable.contains(&(name, true));
                if status == StatusCode::OK && connected(AWS) && connected(ALIYUN) {
                    Ok(())
                } else {
                    Err(format!("{status} {list:#}"))
                }
            },
        )
        .await;
    }

    pub fn log_tail(&self) -> String {
        self.processes
            .iter()
            .map(|p| format!("== {}\n{}", p.log.display(), tail(&p.log, 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first start's credentials, and the demo tenant's key as
    /// `api_key`.
    pub fn credentials(&self) -> BTreeMap<String, String> {
        let dir = match self.mode {
            Mode::Serve => self.data_dir.clone(),
            Mode::Api { .. } => self.data_dir.join("api-1"),
        };
        let text = std::fs::read_to_string(dir.join(modelfleet::hub::CREDENTIALS_FILE))
            .expect("the first start wrote its credentials");
        let mut credentials: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let Some(key) = &self.tenant_key {
            credentials.insert("api_key".to_owned(), key.clone());
        }
        credentials
    }

    /// A request to the next hub in turn.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.processes.len();
        self.call_at(&self.processes[n].base, method, path, token, body)
            .await
    }

    async fn call_at(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the hub answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Value {
        let (status, body) = self.call(method.clone(), path, token, body).await;
        assert_eq!(status, want, "{method} {path}: {body:#}");
        body
    }

    /// A fresh admin session: sessions expire by the (simulated) clock.
    /// The first one chooses the admin's own password (the file's is only
    /// good for that), as a new platform admin must.
    pub async fn admin(&self) -> String {
        const OWN_PASSWORD: &str = "Platform-own-choice-2026";
        let creds = self.credentials();
        let user = &creds["admin_user"];
        let body = json!({"username": user, "password": OWN_PASSWORD});
        let (status, session) = self
            .call(reqwest::Method::POST, "/api/v1/sessions", "", Some(body))
            .await;
        if status == StatusCode::CREATED {
            return session["token"].as_str().unwrap().to_owned();
        }
        let body = json!({"username": user, "password": creds["admin_password"]});
        let session = self
            .expect(
                reqwest::Method::POST,
                "/api/v1/sessions",
                "",
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        let token = session["token"].as_str().unwrap().to_owned();
        let change =
            json!({"currentPassword": creds["admin_password"], "newPassword": OWN_PASSWORD});
        self.expect(
            reqwest::Method::POST,
            "/api/v1/users/me/password",
            &token,
            Some(change),
            StatusCode::OK,
        )
        .await;
        token
    }

    /// The hub's database, opened (read-only where it can be) for each look.
    async fn db(&self) -> Db {
        match &self.mode {
            Mode::Serve => {
                let url = format!(
                    "sqlite://{}?mode=ro",
                    self.data_dir.join(modelfleet::hub::DATABASE_FILE).display()
                );
                Db::Sqlite(
                    sqlx::SqliteConnection::connect(&url)
                        .await
                        .expect("the hub's database opens read-only"),
                )
            }
            Mode::Api { database_url } => Db::Postgres(
                sqlx::PgConnection::connect(database_url)
                    .await
                    .expect("the hubs' database answers"),
            ),
        }
    }

    /// Every replica interval the hub recorded, in a stable order.
    pub async fn intervals(&self) -> Vec<Interval> {
        let mut db = self.db().await;
        let rows: Vec<IntervalRow> = on!(db, |c| sqlx::query_as(
            "SELECT d.name, i.cluster, i.pool, i.devices, i.allocated_at, i.released_at \
                 FROM replica_intervals i JOIN deployments d ON d.id = i.deployment_id",
        )
        .fetch_all(c)
        .await
        .expect("replica_intervals reads"));
        db.close().await;
        let mut intervals: Vec<Interval> = rows
            .into_iter()
            .map(|(deployment, cluster, pool, devices, from, to)| Interval {
                deployment,
                cluster,
                pool,
                devices,
                from,
                to,
            })
            .collect();
        intervals.sort();
        intervals
    }

    /// When the hub recorded `deployment` unschedulable, and where it is.
    pub async fn placement(&self, deployment: &str) -> (String, Option<DateTime<Utc>>) {
        let mut db = self.db().await;
        let row: (String, Option<DateTime<Utc>>) = on!(db, |c| sqlx::query_as(
            "SELECT cluster, unschedulable_since FROM deployments \
             WHERE name = $1 AND deleted_at IS NULL",
        )
        .bind(deployment)
        .fetch_one(c)
        .await
        .expect("the deployment's row reads"));
        db.close().await;
        row
    }

    /// What the hub's database says of placements and failovers, for a
    /// failure message.
    pub async fn history(&self) -> String {
        let mut db = self.db().await;
        let rows: Vec<DeploymentRow> = on!(db, |c| sqlx::query_as(
            "SELECT name, cluster, CAST(unschedulable_since AS TEXT), phase, \
                    CAST(deleted_at AS TEXT) FROM deployments",
        )
        .fetch_all(c)
        .await
        .unwrap_or_default());
        let events: Vec<(String, String, String)> = on!(db, |c| sqlx::query_as(
            "SELECT CAST(at AS TEXT), kind, reason FROM deployment_events ORDER BY at"
        )
        .fetch_all(c)
        .await
        .unwrap_or_default());
        db.close().await;
        format!("deployments {rows:#?}\nevents {events:#?}")
    }

    /// Waits until the hub's intervals are exactly `want`.
    pub async fn wait_for_intervals(
        &self,
        step: &str,
        want: &[Interval],
        clusters: &[&EmbeddedCluster],
    ) {
        let mut want = want.to_vec();
        want.sort();
        let want = &want;
        wait_for(
            &format!("the replica intervals after {step} to be {want:#?}"),
            Some(self),
            || async move {
                let seen = self.intervals().await;
                if seen == *want {
                    Ok(())
                } else {
                    let mut pods = String::new();
                    for cluster in clusters {
                        pods.push_str(&pod_summary(cluster).await);
                    }
                    Err(format!(
                        "{seen:#?}\n{}\npods:\n{pods}",
                        self.history().await
                    ))
                }
            },
        )
        .await;
        eprintln!(
            "{:>8.1?}  {step}: {} intervals as planned",
            self.born.elapsed(),
            want.len()
        );
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// deployment, cluster, pool, devices, allocated_at, released_at.
type IntervalRow = (
    String,
    String,
    String,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);
/// name, cluster, unschedulable_since, phase, deleted_at.
type DeploymentRow = (String, String, Option<String>, String, Option<String>);

/// A replica interval as the hub recorded it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub deployment: String,
    pub cluster: String,
    pub pool: String,
    pub devices: i64,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

pub fn interval(
    deployment: &str,
    cluster: &str,
    pool: &str,
    devices: i64,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> Interval {
    Interval {
        deployment: deployment.to_owned(),
        cluster: cluster.to_owned(),
        pool: pool.to_owned(),
        devices,
        from,
        to,
    }
}
