//! Condition types and reasons on a ModelDeployment's status. The operator
//! sets them; the hub reads them (sync records `Unschedulable` workloads,
//! and failover moves those that stay so); `kubectl wait
//! --for=condition=Ready` reads `Ready`.

/// A plan was found (`True`), or the planner's reason why not (`False`).
pub const PLANNED: &str = "Planned";
/// The Deployment or LeaderWorkerSet has all its replicas ready.
pub const WORKLOAD_READY: &str = "WorkloadReady";
/// The model answers at `status.endpoint`.
pub const READY: &str = "Ready";
/// Set only by an operator that requires admission by the hub
/// (with an admission key): `True` once admitted, `Unknown` while
/// waiting, `False` (reason `QuotaExceeded`, `NoTenant`, …) when
/// rejected.
pub const ADMITTED: &str = "Admitted";

/// The reasons the operator gives, one CamelCase word each.
pub mod reason {
    /// `Planned=False`: the spec cannot be planned whatever the cluster.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `Planned=False`: no pool of the cluster can run it as asked.
    pub const NO_FEASIBLE_PLAN: &str = "NoFeasiblePlan";
    /// `Planned=True`.
    pub const PLAN_CHOSEN: &str = "PlanChosen";

    /// `WorkloadReady`: `spec.replicas` is 0.
    pub const SCALED_TO_ZERO: &str = "ScaledToZero";
    /// `WorkloadReady=True`.
    pub const ALL_REPLICAS_READY: &str = "AllReplicasReady";
    /// `WorkloadReady=False`: a pod failed or keeps crashing.
    pub const POD_FAILED: &str = "PodFailed";
    /// `WorkloadReady=False`: the scheduler cannot place a pod. The hub
    /// fails a deployment over to another pool when this lasts.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// `WorkloadReady=False`: some replicas are ready, not all.
    pub const REPLICAS_NOT_READY: &str = "ReplicasNotReady";
    /// `WorkloadReady=False`: pods are placed, the model is loading.
    pub const LOADING: &str = "Loading";
    /// `WorkloadReady=False`: no pod is placed yet.
    pub const WAITING_FOR_PODS: &str = "WaitingForPods";

    /// `Ready=True`.
    pub const SERVING: &str = "Serving";
    /// `Ready=False`: the operator may not write the workload in this
    /// namespace (its workload role is not bound there).
    pub const NOT_PERMITTED: &str = "NotPermitted";

    /// `Admitted=True`.
    pub const ADMITTED: &str = "Admitted";
    /// `Admitted=Unknown`: the hub has not decided yet.
    pub const AWAITING_ADMISSION: &str = "AwaitingAdmission";
}

/// The condition on a Pod that the operator reads to tell why a replica
/// waits: Kubernetes' scheduler writes it (and so does the sandbox's).
pub mod pod {
    /// The pod condition type.
    pub const SCHEDULED: &str = "PodScheduled";
    /// Its reason when no node fits the pod.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
}
