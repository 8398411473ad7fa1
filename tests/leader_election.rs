//! Leader election against a sandbox API server: of two operator replicas
//! competing for one Lease, exactly one does the work at any time, and the
//! other takes over when the leader goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use modelfleet_operator::leader::LeaderElection;
use modelfleet_sandbox::api::ApiServer;

fn election(identity: &str) -> LeaderElection {
    LeaderElection {
        lease_name: "modelfleet-operator".into(),
        namespace: "default".into(),
        identity: identity.into(),
        lease_seconds: 3,
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

fn replica(server: &ApiServer, board: &Arc<Board>, index: usize) -> tokio::task::JoinHandle<()> {
    let client = server.client();
    let board = board.clone();
    tokio::spawn(async move {
        let election = election(&format!("operator-{index}"));
        let work = || {
            let board = board.clone();
            async move {
                board.start(index);
                let _working = Working(&board, index);
                std::future::pending::<()>().await;
            }
        };
        election.run(client, work).await.expect("election runs");
    })
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
    let replicas = [replica(&server, &board, 0), replica(&server, &board, 1)];

    let first = wait_for_leader(&board, None).await;
    // Several lease periods: renewals and the follower's attempts must
    // never let both work at once.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(board.leader(), Some(first), "the leader kept its lease");
    assert_eq!(board.most_at_once.load(Ordering::SeqCst), 1);

    let leases: Api<Lease> = Api::namespaced(server.client(), "default");
    let lease = leases.get("modelfleet-operator").await.unwrap();
    let holder = lease.spec.unwrap().holder_identity;
    assert_eq!(
        holder.as_deref(),
        Some(format!("operator-{first}").as_str())
    );

    // The leader's process goes away; the other replica takes over once
    // the lease runs out, and still never alongside it.
    replicas[first].abort();
    let second = wait_for_leader(&board, Some(first)).await;
    assert_ne!(second, first);
    assert_eq!(board.most_at_once.load(Ordering::SeqCst), 1);
    let lease = leases.get("modelfleet-operator").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some(format!("operator-{second}").as_str())
    );
}
