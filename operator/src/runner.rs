//! Runs the whole operator: probe and metrics endpoints, leader election
//! when asked, and the controller while this replica leads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::fetch::ClusterView;
use crate::controller::{self, Context, Settings};
use crate::leader::{LeaderElection, LeaderError};
use crate::metrics::Metrics;
use crate::probes::{self, Readiness};

#[derive(Debug, Clone)]
pub struct Options {
    pub settings: Settings,
    /// Where `/metrics`, `/healthz` and `/readyz` listen; none in-process.
    pub probe_addr: Option<SocketAddr>,
    /// Compete for a Lease so that one of several replicas acts.
    pub leader_election: Option<LeaderElection>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr} for probes and metrics: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// How long after a stop the operator may take to finish its in-flight
/// reconciles and release its Lease: inside Kubernetes' default 30 s
/// termination grace period, with room for the process to exit.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// A handle that stops a running operator.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    pub fn channel() -> (Shutdown, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (Shutdown(tx), rx)
    }

    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone: nobody can stop us any more, so
    // treat it as a stop too.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Runs until `stop` fires.
pub async fn run(
    client: Client,
    options: Options,
    stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    if let Some(addr) = options.probe_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, source })?;
        let router = probes::router(metrics.clone(), readiness.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(stopped(stop));
            if let Err(e) = served.await {
                tracing::error!(error = %e, "probe server stopped");
            }
        });
        info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    let lws = controller::lws_installed(&client).await;
    let (view, _caches) = ClusterView::cached(&client).await;
    let ctx =
        Arc::new(Context::new(client.clone(), options.settings, metrics, lws).with_view(view));
    readiness.set_ready(true);
    let run_controller = || controller::run(ctx.clone(), stopped(stop.clone()));
    let running = async {
        match options.leader_election {
            Some(election) => election
                .run(client, stop.clone(), run_controller)
                .await
                .map(|_| ()),
            None => {
                run_controller().await;
                Ok(())
            }
        }
    };
    // Once told to stop, in-flight reconciles finish and the Lease is
    // released; a reconcile stuck on an unanswering API server does not
    // hold the process past the deadline.
    let deadline = async {
        stopped(stop.clone()).await;
        tokio::time::sleep(SHUTDOWN_DEADLINE).await;
    };
    tokio::select! {
        result = running => result?,
        () = deadline => warn!(
            seconds = SHUTDOWN_DEADLINE.as_secs(),
            "in-flight reconciles did not finish in time after the stop; stopping anyway"
        ),
    }
    Ok(())
}
