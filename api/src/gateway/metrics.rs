//! The gateway's Prometheus metrics, per tenant, deployment and
//! operation: requests by status, tokens by kind, failures by reason, the
//! time to an answer's first byte and to its end. Labels are deployment
//! ids and tenant ids, never what a client sent.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::stream::Usage;
use crate::store::Deployment;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Target {
    tenant: String,
    deployment: String,
    operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    tenant: String,
    deployment: String,
    operation: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Tokens {
    tenant: String,
    deployment: String,
    operation: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failed {
    tenant: String,
    deployment: String,
    operation: String,
    reason: &'static str,
}

fn seconds() -> Histogram {
    // 5 ms to about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

type Seconds = Family<Target, Histogram, fn() -> Histogram>;

/// The gateway's metric families; clones share them.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    requests: Family<Answered, Counter>,
    tokens: Family<Tokens, Counter>,
    failures: Family<Failed, Counter>,
    first_byte: Seconds,
    duration: Seconds,
}

impl GatewayMetrics {
    /// The families, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = GatewayMetrics {
            requests: Family::default(),
            tokens: Family::default(),
            failures: Family::default(),
            first_byte: Family::new_with_constructor(seconds),
            duration: Family::new_with_constructor(seconds),
        };
        registry.register(
            "gateway_requests",
            "Inference requests answered, by tenant, deployment, operation and status",
            metrics.requests.clone(),
        );
        registry.register(
            "gateway_tokens",
            "Tokens the engines reported (kind: prompt or completion)",
            metrics.tokens.clone(),
        );
        registry.register(
            "gateway_failures",
            "Inference requests the gateway could not complete, by reason",
            metrics.failures.clone(),
        );
        registry.register(
            "gateway_time_to_first_byte_seconds",
            "From a request's arrival to the first byte of a streamed answer",
            metrics.first_byte.clone(),
        );
        registry.register(
            "gateway_request_duration_seconds",
            "From a request's arrival to the end of its answer",
            metrics.duration.clone(),
        );
        metrics
    }
}

/// One request's labels, with the families they count in.
#[derive(Debug, Clone)]
pub struct Labels {
    metrics: GatewayMetrics,
    target: Target,
}

impl Labels {
    pub fn new(metrics: &GatewayMetrics, deployment: &Deployment, operation: &str) -> Self {
        Labels {
            metrics: metrics.clone(),
            target: Target {
                tenant: deployment.tenant.to_string(),
                deployment: deployment.id.to_string(),
                operation: operation.to_owned(),
            },
        }
    }

    /// An answer went out whole (or as far as the client read it).
    pub fn answered(
        &self,
        status: u16,
        usage: Option<Usage>,
        took: Duration,
        first_byte: Option<Duration>,
    ) {
        let t = &self.target;
        self.metrics
            .requests
            .get_or_create(&Answered {
                tenant: t.tenant.clone(),
                deployment: t.deployment.clone(),
                operation: t.operation.clone(),
                status,
            })
            .inc();
        if let Some(usage) = usage {
            for (kind, n) in [
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
            ] {
                self.metrics
                    .tokens
                    .get_or_create(&Tokens {
                        tenant: t.tenant.clone(),
                        deployment: t.deployment.clone(),
                        operation: t.operation.clone(),
                        kind,
                    })
                    .inc_by(n);
            }
        }
        self.metrics
            .duration
            .get_or_create(t)
            .observe(took.as_secs_f64());
        if let Some(first) = first_byte {
            self.metrics
                .first_byte
                .get_or_create(t)
                .observe(first.as_secs_f64());
        }
    }

    /// The gateway gave up on a request.
    pub fn failed(&self, reason: &'static str) {
        let t = &self.target;
        self.metrics
            .failures
            .get_or_create(&Failed {
                tenant: t.tenant.clone(),
                deployment: t.deployment.clone(),
                operation: t.operation.clone(),
                reason,
            })
            .inc();
    }
}
