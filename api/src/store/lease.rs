//! Background loops that run on one hub at a time.
//!
//! Hubs that share one PostgreSQL all serve requests, but each background
//! loop (cluster sync, failover, billing, audit exports, …) must run on
//! exactly one of them: two sync loops would both close a replica
//! interval, two failover loops would move a deployment twice. Each loop
//! is therefore held through a PostgreSQL session-level advisory lock of
//! its own, on a connection of its own:
//!
//! - Every hub tries to take every loop's lock every [`RETRY_EVERY`]
//!   (with jitter); the one that gets it runs the loop.
//! - The holder checks its connection every [`CHECK_EVERY`]. If the check
//!   fails or takes longer than [`CHECK_TIMEOUT`], it stops the loop at
//!   once (aborting what is in flight after [`LOST_GRACE`]): it can no
//!   longer prove it holds the lock.
//! - A holder killed outright loses its connection with its process; the
//!   server ends the session and frees the lock at once, and another hub
//!   takes it on its next try. When the network rather than the process
//!   dies, the server notices through TCP keepalives set on the lock's
//!   session (dead after about [`SERVER_NOTICES_WITHIN`]) — later than the
//!   holder notices its own failed check, so the old holder has stopped
//!   before a new one starts.
//! - A hub that stops (SIGTERM) stops the loop, waits for its iteration
//!   to end, and unlocks, so the next holder starts within a retry.
//!
//! That ordering rests on timing, not on a fencing token carried into
//! every write: what makes it safe is that the loops' writes are each one
//! transaction that re-reads what it changes (an interval closed twice is
//! closed once; an invoice issued twice is issued once), so a deposed
//! holder's last write is harmless.
//!
//! SQLite has one hub per file ([`super::HubLock`]), so there every loop
//! simply runs.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{Connection as _, Row as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::Backend;

/// How often a hub tries to take a loop it does not hold.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How often the holder checks that it still holds its loop.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// A check slower than this counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a loop whose lock was lost may finish its iteration before it
/// is aborted.
pub const LOST_GRACE: Duration = Duration::from_secs(2);
/// How long a loop may take to finish its iteration when the hub stops.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// When the PostgreSQL server ends the session of a holder it no longer
/// hears from (keepalives: 5 s idle, then 3 probes 2 s apart).
pub const SERVER_NOTICES_WITHIN: Duration = Duration::from_secs(11);

/// The lock key of loop `name`: FNV-1a of `modelfleet:loop:<name>`, so that
/// every hub (of any version) maps a loop to the same lock.
pub fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"modelfleet:loop:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_le_bytes(hash.to_le_bytes())
}

/// The `application_name` of a hub's lock sessions: who holds what shows
/// in `pg_stat_activity` joined with `pg_locks`.
pub fn application_name(identity: &str, name: &str) -> String {
    // PostgreSQL keeps the first 63 bytes.
    let mut text = format!("modelfleet-hub {identity} {name}");
    while text.len() > 63 {
        text.pop();
    }
    text
}

/// Runs background loops on one hub of a database at a time.
#[derive(Debug, Clone)]
pub struct Elector {
    /// `None`: the database has one hub, which runs every loop.
    postgres: Option<String>,
    identity: String,
}

impl Elector {
    /// An elector for the hub whose database is `url`, known to other
    /// hubs as `identity` (its pod's name, or host and process id).
    pub fn new(url: &str, identity: &str) -> Result<Self, super::StoreError> {
        let postgres = match Backend::of_url(url)? {
            Backend::Postgres => Some(url.to_owned()),
            Backend::Sqlite => None,
        };
        Ok(Elector {
            postgres,
            identity: identity.to_owned(),
        })
    }

    /// This hub's name in the lock sessions.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs `body` (a loop that returns once the receiver it is given
    /// turns `true`) while this hub holds loop `name`, until `stop`.
    pub fn spawn<F, Fut>(
        &self,
        name: &'static str,
        stop: watch::Receiver<bool>,
        body: F,
    ) -> JoinHandle<()>
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match &self.postgres {
            None => tokio::spawn(body(stop)),
            Some(url) => tokio::spawn(hold_and_run(
                url.clone(),
                application_name(&self.identity, name),
                name,
                stop,
                body,
            )),
        }
    }
}

/// Why a held loop ended.
enum Ended {
    Stopping,
    Lost(String),
    Returned,
}

async fn hold_and_run<F, Fut>(
    url: String,
    application: String,
    name: &'static str,
    mut stop: watch::Receiver<bool>,
    body: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = lock_key(name);
    loop {
        if *stop.borrow() {
            return;
        }
        let mut connection = match try_take(&url, &application, key).await {
            Ok(Some(connection)) => connection,
            Ok(None) => {
                if wait_or_stop(&mut stop, jittered(RETRY_EVERY)).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                warn!(%name, error = %e, "cannot try to take a background loop");
                if wait_or_stop(&mut stop, jittered(RETRY_EVERY)).await {
                    return;
                }
                continue;
            }
        };
        info!(%name, "this hub runs the loop now");
        let (loop_stop, loop_stopped) = watch::channel(false);
        let mut task = tokio::spawn(body(loop_stopped));
        let ended = loop {
            let stopping = async { stop.wait_for(|s| *s).await.is_ok() };
            tokio::select! {
                () = tokio::time::sleep(CHECK_EVERY) => {
                    if let Err(why) = check(&mut connection).await {
                        break Ended::Lost(why);
                    }
                }
                _ = stopping => break Ended::Stopping,
                result = &mut task => {
                    if let Err(e) = result {
                        warn!(%name, error = %e, "the loop failed; letting another hub take it");
                    }
                    break Ended::Returned;
                }
            }
        };
        let _ = loop_stop.send(true);
        match ended {
            Ended::Stopping => {
                finish(name, &mut task, STOP_GRACE).await;
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut connection)
                    .await;
                let _ = connection.close().await;
                info!(%name, "stopped the loop and let it go");
                return;
            }
            Ended::Lost(why) => {
                warn!(%name, %why, "lost the loop's lock: stopping it here");
                finish(name, &mut task, LOST_GRACE).await;
                drop(connection);
            }
            Ended::Returned => {
                let _ = connection.close().await;
            }
        }
        if wait_or_stop(&mut stop, jittered(RETRY_EVERY)).await {
            return;
        }
    }
}

/// Connects and tries the lock once: the connection while it holds it.
async fn try_take(
    url: &str,
    application: &str,
    key: i64,
) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut connection = PgConnection::connect(url).await?;
    // The server ends the session (and frees the lock) of a holder whose
    // host stops answering.
    sqlx::query(
        "SELECT set_config('application_name', $1, false), \
                set_config('tcp_keepalives_idle', '5', false), \
                set_config('tcp_keepalives_interval', '2', false), \
                set_config('tcp_keepalives_count', '3', false)",
    )
    .bind(application)
    .execute(&mut connection)
    .await?;
    let held: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut connection)
        .await?
        .get(0);
    if held {
        Ok(Some(connection))
    } else {
        let _ = connection.close().await;
        Ok(None)
    }
}

/// Whether the session that holds the lock is still there.
async fn check(connection: &mut PgConnection) -> Result<(), String> {
    match tokio::time::timeout(
        CHECK_TIMEOUT,
        sqlx::query("SELECT 1").execute(&mut *connection),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// Waits up to `grace` for the loop to end, then aborts it.
async fn finish(name: &str, task: &mut JoinHandle<()>, grace: Duration) {
    if task.is_finished() {
        return;
    }
    if tokio::time::timeout(grace, &mut *task).await.is_err() {
        warn!(%name, ?grace, "the loop did not end in time; aborted");
        task.abort();
    }
}

/// Sleeps `wait`; `true` when `stop` turned true meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(wait) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

/// `base` plus up to a quarter more, so that hubs do not all try at once.
fn jittered(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let spread = if getrandom::fill(&mut byte).is_ok() {
        u32::from(byte[0])
    } else {
        128
    };
    base + base / 4 * spread / 255
}

/// Held while a hub starts on a PostgreSQL database that other hubs may be
/// starting on too: one at a time migrates, creates the first admin and
/// seeds prices. Nothing on SQLite (one hub per file).
#[derive(Debug)]
pub struct StartupLock(Option<PgConnection>);

/// The startup lock's key: "mfhub" in ASCII.
const STARTUP_KEY: i64 = 0x6d_6668_7562;

impl StartupLock {
    /// Waits (up to a minute) for other hubs to finish starting.
    pub async fn take(url: &str) -> Result<StartupLock, super::StoreError> {
        match Backend::of_url(url)? {
            Backend::Sqlite => Ok(StartupLock(None)),
            Backend::Postgres => {
                let mut connection = PgConnection::connect(url).await?;
                sqlx::query("SELECT set_config('lock_timeout', '60s', false)")
                    .execute(&mut connection)
                    .await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(STARTUP_KEY)
                    .execute(&mut connection)
                    .await?;
                Ok(StartupLock(Some(connection)))
            }
        }
    }

    /// Lets the next hub start.
    pub async fn release(self) {
        if let Some(connection) = self.0 {
            let _ = connection.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;
    use crate::store::testing::{TestDb, run};

    /// FNV-1a of `modelfleet:loop:failover`, worked out apart from
    /// [`lock_key`].
    const PINNED_FAILOVER_KEY: i64 = -1_419_138_742_149_553_306;

    #[test]
    fn every_loop_has_its_own_stable_key() {
        let names = [
            "cluster-sync",
            "failover",
            "billing",
            "audit-export",
            "audit-prune",
            "session-purge",
        ];
        let keys: std::collections::BTreeSet<i64> = names.iter().map(|n| lock_key(n)).collect();
        assert_eq!(keys.len(), names.len());
        assert!(!keys.contains(&STARTUP_KEY));
        // Fixed forever: hubs of different versions must agree.
        assert_eq!(lock_key("failover"), PINNED_FAILOVER_KEY);
    }

    #[test]
    fn application_names_fit_postgres() {
        let name = application_name(&"x".repeat(100), "cluster-sync");
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("modelfleet-hub xxx"));
    }

    /// Who ran the loop, in order, and how many ran it at once at most.
    #[derive(Default)]
    struct Runs {
        order: Vec<String>,
        running: u32,
        most_at_once: u32,
    }

    fn start(elector: &Elector, runs: &Arc<Mutex<Runs>>) -> (watch::Sender<bool>, JoinHandle<()>) {
        let (stop, stopped) = watch::channel(false);
        let who = elector.identity().to_owned();
        let runs = runs.clone();
        let task = elector.spawn("test-loop", stopped, move |mut stop| {
            let (who, runs) = (who.clone(), runs.clone());
            async move {
                {
                    let mut r = runs.lock().unwrap();
                    r.order.push(who);
                    r.running += 1;
                    r.most_at_once = r.most_at_once.max(r.running);
                }
                let _ = stop.wait_for(|s| *s).await;
                runs.lock().unwrap().running -= 1;
            }
        });
        (stop, task)
    }

    async fn wait_for_runs(runs: &Arc<Mutex<Runs>>, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let order = runs.lock().unwrap().order.clone();
            if order.len() >= count {
                return order;
            }
            assert!(
                Instant::now() < deadline,
                "the loop ran {order:?}, waited for {count} runs"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Hubs on one PostgreSQL: one runs the loop; when it stops, or its
    /// session is ended under it, another takes over within the 15 s the
    /// platform promises.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_hub_runs_a_loop_and_another_takes_it_over() {
        run(Backend::Postgres, |db: TestDb| async move {
            let runs = Arc::new(Mutex::new(Runs::default()));
            let a = Elector::new(&db.url, "hub-a").unwrap();
            let b = Elector::new(&db.url, "hub-b").unwrap();
            let (stop_a, task_a) = start(&a, &runs);
            let first = wait_for_runs(&runs, 1, Duration::from_secs(15)).await;
            assert_eq!(first, ["hub-a"]);
            let (stop_b, task_b) = start(&b, &runs);
            // b keeps trying but cannot run it while a holds it.
            tokio::time::sleep(RETRY_EVERY * 2).await;
            assert_eq!(runs.lock().unwrap().order, ["hub-a"]);

            // a stops (SIGTERM): it lets go and b takes over.
            stop_a.send(true).unwrap();
            task_a.await.unwrap();
            let order = wait_for_runs(&runs, 2, Duration::from_secs(15)).await;
            assert_eq!(order, ["hub-a", "hub-b"]);
            assert_eq!(runs.lock().unwrap().most_at_once, 1, "never two at once");

            // a comes back; b's session is ended by the server (as when b's
            // process dies): b stops the loop, a takes it over.
            let (stop_a, task_a) = start(&a, &runs);
            let mut admin = PgConnection::connect(&db.url).await.unwrap();
            let ended: i64 = sqlx::query(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1) t",
            )
            .bind(application_name("hub-b", "test-loop"))
            .fetch_one(&mut admin)
            .await
            .unwrap()
            .get(0);
            assert_eq!(ended, 1, "b held the loop through its own session");
            let order = wait_for_runs(&runs, 3, Duration::from_secs(15)).await;
            assert_eq!(order, ["hub-a", "hub-b", "hub-a"]);
            // b noticed and stopped its loop.
            let deadline = Instant::now() + CHECK_EVERY + CHECK_TIMEOUT + LOST_GRACE * 2;
            while runs.lock().unwrap().running > 1 {
                assert!(Instant::now() < deadline, "b went on running the loop");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for (stop, task) in [(stop_a, task_a), (stop_b, task_b)] {
                stop.send(true).unwrap();
                task.await.unwrap();
            }
            assert_eq!(runs.lock().unwrap().running, 0);
            let _ = admin.close().await;
        })
        .await;
    }

    #[tokio::test]
    async fn on_sqlite_the_one_hub_runs_every_loop() {
        let runs = Arc::new(Mutex::new(Runs::default()));
        let elector = Elector::new("sqlite::memory:", "only").unwrap();
        let (stop, task) = start(&elector, &runs);
        assert_eq!(
            wait_for_runs(&runs, 1, Duration::from_secs(5)).await,
            ["only"]
        );
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
