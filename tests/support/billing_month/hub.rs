//! The hub as a `modelfleet serve` subprocess on the simulated clock, what
//! its database says, and waiting for it.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use modelfleet::embedded::EmbeddedCluster;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;

use super::clusters::{ALIYUN, AWS, TIME_FACTOR, pod_summary};
use super::start;

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

/// `modelfleet serve` on a data directory, killed when dropped.
pub struct Hub {
    data_dir: PathBuf,
    fleet_file: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    base: String,
    http: reqwest::Client,
    starts: u32,
    /// When the first start began, for progress lines.
    born: Instant,
}

impl Hub {
    pub async fn start(data_dir: &Path) -> Hub {
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
            child: None,
            log: PathBuf::new(),
            base: String::new(),
            http: reqwest::Client::new(),
            starts: 0,
            born: Instant::now(),
        };
        hub.spawn().await;
        hub
    }

    /// Starts the subprocess (again) and waits until it answers.
    async fn spawn(&mut self) {
        self.starts += 1;
        let port = free_port();
        self.base = format!("http://127.0.0.1:{port}");
        self.log = self.data_dir.join(format!("hub-{}.log", self.starts));
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_modelfleet"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--fleet")
            .arg(&self.fleet_file)
            .arg("--time-factor")
            .arg(TIME_FACTOR.to_string())
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
            .env(modelfleet_clock::SIMULATED_CLOCK_ENV, &clock().path)
            .env(
                "MODELFLEET_SECRET_KEY",
                super::clusters::hub_secret_key().to_base64().expose(),
            )
            .env_remove("MODELFLEET_DATABASE_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("modelfleet serve starts");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("the hub exited with {status}:\n{}", self.log_tail());
            }
            let last = match self.http.get(format!("{}/healthz", self.base)).send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => format!("status {}", r.status()),
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for start {} of the hub to answer /healthz; last saw {last}\n{}",
                self.starts,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL, then a start on the same data directory.
    pub async fn kill_and_restart(&mut self, when: &str) {
        eprintln!("SIGKILL to the hub {when}");
        let mut child = self.child.take().expect("the hub runs");
        child.kill().expect("SIGKILL is sent");
        child.wait().expect("the killed hub is reaped");
        self.spawn().await;
        // The clusters were registered through the API: the hub must
        // connect to them again from its database.
        let admin = self.admin().await;
        let admin = &admin;
        let this: &Hub = self;
        wait_for(
            "the restarted hub to reconnect to the clusters registered before it was killed",
            Some(this),
            || async move {
                let (status, list) = this
                    .call(reqwest::Method::GET, "/api/v1/clusters", admin, None)
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
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn credentials(&self) -> std::collections::BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.data_dir.join(modelfleet::hub::CREDENTIALS_FILE))
            .expect("the first start wrote its credentials");
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
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

    /// The hub's database, opened read-only for each look.
    async fn db(&self) -> sqlx::SqliteConnection {
        let url = format!(
            "sqlite://{}?mode=ro",
            self.data_dir.join(modelfleet::hub::DATABASE_FILE).display()
        );
        sqlx::SqliteConnection::connect(&url)
            .await
            .expect("the hub's database opens read-only")
    }

    /// Every replica interval the hub recorded, in a stable order.
    pub async fn intervals(&self) -> Vec<Interval> {
        let mut db = self.db().await;
        let rows: Vec<IntervalRow> = sqlx::query_as(
            "SELECT d.name, i.cluster, i.pool, i.devices, i.allocated_at, i.released_at \
                 FROM replica_intervals i JOIN deployments d ON d.id = i.deployment_id",
        )
        .fetch_all(&mut db)
        .await
        .expect("replica_intervals reads");
        let _ = db.close().await;
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
        let row: (String, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT cluster, unschedulable_since FROM deployments \
             WHERE name = $1 AND deleted_at IS NULL",
        )
        .bind(deployment)
        .fetch_one(&mut db)
        .await
        .expect("the deployment's row reads");
        let _ = db.close().await;
        row
    }

    /// What the hub's database says of placements and failovers, for a
    /// failure message.
    pub async fn history(&self) -> String {
        let mut db = self.db().await;
        let rows: Vec<DeploymentRow> = sqlx::query_as(
            "SELECT name, cluster, unschedulable_since, phase, deleted_at FROM deployments",
        )
        .fetch_all(&mut db)
        .await
        .unwrap_or_default();
        let events: Vec<(String, String, String)> =
            sqlx::query_as("SELECT at, kind, reason FROM deployment_events ORDER BY at")
                .fetch_all(&mut db)
                .await
                .unwrap_or_default();
        let _ = db.close().await;
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
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
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
