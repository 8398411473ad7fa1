//! The gateway's Prometheus metrics, per tenant, deployment, cluster and
//! operation: requests by status, tokens by kind, failures by reason, the
//! time to an answer's first byte, first token and end, and the time per
//! output token. Labels are ids and cluster names, never what a client
//! sent.

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
    cluster: String,
    operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    tenant: String,
    deployment: String,
    cluster: String,
    operation: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Tokens {
    tenant: String,
    deployment: String,
    cluster: String,
    operation: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failed {
    tenant: String,
    deployment: String,
    cluster: String,
    operation: String,
    reason: &'static str,
}

fn seconds() -> Histogram {
    // 5 ms to about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn per_token() -> Histogram {
    // 1 ms to about 1 s: a token takes a few to a few hundred milliseconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 11))
}

type Seconds = Family<Target, Histogram, fn() -> Histogram>;

/// The gateway's metric families; clones share them.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    requests: Family<Answered, Counter>,
    tokens: Family<Tokens, Counter>,
    failures: Family<Failed, Counter>,
    first_byte: Seconds,
    first_token: Seconds,
    per_output_token: Seconds,
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
            first_token: Family::new_with_constructor(seconds),
            per_output_token: Family::new_with_constructor(per_token),
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
            "gateway_time_to_first_token_seconds",
            "From a request's arrival to the first streamed event carrying choices (TTFT)",
            metrics.first_token.clone(),
        );
        registry.register(
            "gateway_time_per_output_token_seconds",
            "A streamed answer's time from its first token to its end, per output token after the first (TPOT)",
            metrics.per_output_token.clone(),
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
                cluster: deployment.cluster.clone(),
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
        first_token: Option<Duration>,
    ) {
        let t = &self.target;
        self.metrics
            .requests
            .get_or_create(&Answered {
                tenant: t.tenant.clone(),
                deployment: t.deployment.clone(),
                cluster: t.cluster.clone(),
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
                        cluster: t.cluster.clone(),
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
        if let Some(first) = first_token {
            self.metrics
                .first_token
                .get_or_create(t)
                .observe(first.as_secs_f64());
            let after_first = usage.map_or(0, |u| u.completion_tokens).saturating_sub(1);
            if after_first > 0 {
                let decoding = took.saturating_sub(first).as_secs_f64();
                self.metrics
                    .per_output_token
                    .get_or_create(t)
                    .observe(decoding / after_first as f64);
            }
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
                cluster: t.cluster.clone(),
                operation: t.operation.clone(),
                reason,
            })
            .inc();
    }
}
