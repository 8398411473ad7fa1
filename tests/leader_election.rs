//! Leader election against a sandbox API server: of two operator replicas
//! competing for one Lease, exactly one does the work at any time, and the
//! other takes over when the leader goes away (when its lease runs out).
//! A replica told to stop finishes its work and releases the Lease, so a
//! replica started after it (a rolling update's next pod) leads at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use modelfleet_operator::leader::LeaderElection;
use modelfleet_sandbox::api::ApiServer;
use tokio::sync::watch;

fn election(identity: &str, lease_seconds: u64) -> LeaderElection {
    LeaderElection {
        lease_name: "modelfleet-operator".into(),
        namespace: "default".into(),
        identity: identity.into(),
        lease_seconds,
        grace_seconds: 1,
    }
}

/// Who is working now, by replica; the work runs until the test stops it.
#[derive(Default)]
struct Board {
    working: [AtomicUsize; 2],
    /// The most replicas ever seen working at once.
    most_at_once: AtomicUsize,
}

impl Board {
    fn start(&self, replica: usize) {
        self.working[replica].store(1, Ordering::SeqCst);
        let now = self.working.iter().map(|w| w.load(Ordering::SeqCst)).sum();
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
    }

    fn leader(&self) -> Option<usize> {
        (0..2).find(|&i| self.working[i].load(Ordering::SeqCst) == 1)
    }
}

/// Marks `replica` as working while the future lives.
struct Working<'a>(&'a Board, usize);

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.working[self.1].store(0, Ordering::SeqCst);
    }
}

/// One replica competing for the lease; its work runs until `stop` fires.
/// The task ends with what the election returned: whether it led when
/// it was stopped.
fn replica(
    server: &ApiServer,
    board: &Arc<Board>,
    index: usize,
    lease_seconds: u64,
) -> (tokio::task::JoinHandle<Option<()>>, watch::Sender<bool>) {
    let client = server.client();
    let board = board.clone();
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(async move {
        let election = election(&format!("operator-{index}"), lease_seconds);
        let work = || {
            let board = board.clone();
            let mut stop = stop.clone();
            async move {
                board.start(index);
                let _working = Working(&board, index);
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        election
            .run(client, stop.clone(), work)
            .await
            .expect("election runs")
    });
    (task, stop_tx)
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    let lease = leases.get("modelfleet-operator").await.unwrap();
    lease.spec.and_then(|s| s.holder_identity)
}

async fn wait_for_leader(board: &Board, not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(leader) = board.leader().filter(|l| Some(*l) != not) {
            return leader;
        }
        assert!(Instant::now() < deadline, "no replica took the lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_replica_leads_and_the_other_takes_over() {
    let server = ApiServer::new();
    let board = Arc::new(Board::default());
    let replicas = [
        replica(&server, &board, 0, 3),
        replica(&server, &board, 1, 3),
    ];

    let first = wait_for_leader(&board, None).await;
    // Several lease periods: renewals and the follower's attempts must
    // never let both work at once.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(board.leader(), Some(first), "the leader kept its lease");
    assert_eq!(board.most_at_once.load(Ordering::SeqCst), 1);

    let leases: Api<Lease> = Api::namespaced(server.client(), "default");
    assert_eq!(holder(&leases).await, Some(format!("operator-{first}")));

    // The leader's process goes away; the other replica takes over once
    // the lease runs out, and still never alongside it.
    replicas[first].0.abort();
    let second = wait_for_leader(&board, Some(first)).await;
    assert_ne!(second, first);
    assert_eq!(board.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(holder(&leases).await, Some(format!("operator-{second}")));
}

#[tokio::test]
async fn a_leader_told_to_stop_finishes_its_work_and_releases_the_lease() {
    // A lease far longer than the test waits: a replica that starts after
    // the leader stopped (the next pod of a rolling update) can only lead
    // in time if the stopping leader released it.
    const LEASE_SECONDS: u64 = 300;
    let server = ApiServer::new();
    let board = Arc::new(Board::default());
    let (task, stop) = replica(&server, &board, 0, LEASE_SECONDS);
    assert_eq!(wait_for_leader(&board, None).await, 0);
    let leases: Api<Lease> = Api::namespaced(server.client(), "default");
    assert_eq!(holder(&leases).await.as_deref(), Some("operator-0"));

    stop.send_replace(true);
    let outcome = task.await.expect("the stopping leader returns");
    assert_eq!(outcome, Some(()), "it returns what its work returned");
    assert_eq!(board.working[0].load(Ordering::SeqCst), 0);
    assert_eq!(
        holder(&leases).await,
        None,
        "a stopped leader holds nothing"
    );

    let (next, next_stop) = replica(&server, &board, 1, LEASE_SECONDS);
    assert_eq!(wait_for_leader(&board, Some(0)).await, 1);
    assert_eq!(board.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(holder(&leases).await.as_deref(), Some("operator-1"));
    next_stop.send_replace(true);
    assert_eq!(next.await.unwrap(), Some(()));
    assert_eq!(holder(&leases).await, None);
}

#[tokio::test]
async fn a_standby_told_to_stop_returns_without_working() {
    let server = ApiServer::new();
    let board = Arc::new(Board::default());
    let (leader_task, leader_stop) = replica(&server, &board, 0, 300);
    wait_for_leader(&board, None).await;
    let (standby, stop) = replica(&server, &board, 1, 300);
    stop.send_replace(true);
    assert_eq!(standby.await.unwrap(), None, "it never led");
    assert_eq!(board.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(board.leader(), Some(0), "the leader is undisturbed");
    leader_stop.send_replace(true);
    assert_eq!(leader_task.await.unwrap(), Some(()));
}
