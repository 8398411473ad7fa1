//! The gateway's Prometheus metrics, per tenant, deployment, cluster and
//! operation: requests by status, tokens by kind, failures by reason, the
//! time to an answer's first byte, first token and end, and the time per
//! output token. Labels are ids and cluster names, never what a client
//! sent.
//!
//! A request finds its deployment's metrics in a map keyed by the
//! deployment and operation, filled on the first request: counting then
//! builds no label set and hashes no strings (the gateway's benchmark
//! found both on its hot path). Label sets are built only for what is
//! rare: an answer other than 200, and failures.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::stream::Usage;
use crate::ids::{DeploymentId, TenantId};
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
    /// Each deployment's and operation's metrics, looked up once.
    handles: Arc<RwLock<HandlesByTarget>>,
}

/// Handles by deployment and operation.
type HandlesByTarget = HashMap<(DeploymentId, &'static str), Arc<Handles>>;

/// One deployment's and operation's metrics: the label set built once, and
/// the metrics a request counts in, taken from their families (they share
/// their values with them) when first counted, so that a series appears
/// only once it has something in it, as before.
#[derive(Debug)]
struct Handles {
    target: Target,
    families: GatewayMetrics,
    ok: OnceLock<Counter>,
    prompt_tokens: OnceLock<Counter>,
    completion_tokens: OnceLock<Counter>,
    first_byte: OnceLock<Histogram>,
    first_token: OnceLock<Histogram>,
    per_output_token: OnceLock<Histogram>,
    duration: OnceLock<Histogram>,
}

impl Handles {
    fn tokens(&self, kind: &'static str) -> Tokens {
        let t = &self.target;
        Tokens {
            tenant: t.tenant.clone(),
            deployment: t.deployment.clone(),
            cluster: t.cluster.clone(),
            operation: t.operation.clone(),
            kind,
        }
    }
}

impl Target {
    fn answered(&self, status: u16) -> Answered {
        Answered {
            tenant: self.tenant.clone(),
            deployment: self.deployment.clone(),
            cluster: self.cluster.clone(),
            operation: self.operation.clone(),
            status,
        }
    }
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
            handles: Arc::default(),
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

/// One request's metrics.
#[derive(Debug, Clone)]
pub struct Labels {
    handles: Arc<Handles>,
}

impl Labels {
    pub fn new(metrics: &GatewayMetrics, deployment: &Deployment, operation: &'static str) -> Self {
        Labels::of(
            metrics,
            (deployment.tenant, deployment.id),
            &deployment.cluster,
            operation,
        )
    }

    fn of(
        metrics: &GatewayMetrics,
        (tenant, deployment): (TenantId, DeploymentId),
        cluster: &str,
        operation: &'static str,
    ) -> Self {
        let key = (deployment, operation);
        let known = metrics
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|h| h.target.cluster == cluster)
            .cloned();
        if let Some(handles) = known {
            return Labels { handles };
        }
        // First seen, or moved to another cluster (failover): its label set
        // anew.
        let handles = Arc::new(Handles {
            target: Target {
                tenant: tenant.to_string(),
                deployment: deployment.to_string(),
                cluster: cluster.to_owned(),
                operation: operation.to_owned(),
            },
            // The families alone, not the map of handles (no cycle).
            families: GatewayMetrics {
                handles: Arc::default(),
                ..metrics.clone()
            },
            ok: OnceLock::new(),
            prompt_tokens: OnceLock::new(),
            completion_tokens: OnceLock::new(),
            first_byte: OnceLock::new(),
            first_token: OnceLock::new(),
            per_output_token: OnceLock::new(),
            duration: OnceLock::new(),
        });
        metrics
            .handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, handles.clone());
        Labels { handles }
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
        let h = &*self.handles;
        let f = &h.families;
        let t = &h.target;
        let seconds = |cell: &OnceLock<Histogram>, family: &Seconds, value: f64| {
            cell.get_or_init(|| family.get_or_create_owned(t))
                .observe(value);
        };
        if status == 200 {
            h.ok.get_or_init(|| f.requests.get_or_create_owned(&t.answered(200)))
                .inc();
        } else {
            f.requests.get_or_create(&t.answered(status)).inc();
        }
        if let Some(usage) = usage {
            h.prompt_tokens
                .get_or_init(|| f.tokens.get_or_create_owned(&h.tokens("prompt")))
                .inc_by(usage.prompt_tokens);
            h.completion_tokens
                .get_or_init(|| f.tokens.get_or_create_owned(&h.tokens("completion")))
                .inc_by(usage.completion_tokens);
        }
        seconds(&h.duration, &f.duration, took.as_secs_f64());
        if let Some(first) = first_byte {
            seconds(&h.first_byte, &f.first_byte, first.as_secs_f64());
        }
        if let Some(first) = first_token {
            seconds(&h.first_token, &f.first_token, first.as_secs_f64());
            let after_first = usage.map_or(0, |u| u.completion_tokens).saturating_sub(1);
            if after_first > 0 {
                let decoding = took.saturating_sub(first).as_secs_f64();
                seconds(
                    &h.per_output_token,
                    &f.per_output_token,
                    decoding / after_first as f64,
                );
            }
        }
    }

    /// The gateway gave up on a request.
    pub fn failed(&self, reason: &'static str) {
        let t = &self.handles.target;
        self.handles
            .families
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

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn exposition(registry: &Registry) -> Vec<String> {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn value(lines: &[String], family: &str, labels: &[&str]) -> Option<f64> {
        lines
            .iter()
            .find(|l| l.starts_with(family) && labels.iter().all(|want| l.contains(want)))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
    }

    #[test]
    fn each_request_counts_under_its_deployment_and_the_cluster_it_runs_in() {
        let mut registry = Registry::default();
        let metrics = GatewayMetrics::register(&mut registry);
        let ids = (TenantId::new(), DeploymentId::new());
        let usage = Usage {
            prompt_tokens: 12,
            completion_tokens: 5,
        };
        let second = Duration::from_secs(1);

        let plain = Labels::of(&metrics, ids, "aws-1", "chat");
        plain.answered(200, Some(usage), second, None, None);
        Labels::of(&metrics, ids, "aws-1", "chat").answered(200, Some(usage), second, None, None);
        Labels::of(&metrics, ids, "aws-1", "chat").answered(503, None, second, None, None);
        Labels::of(&metrics, ids, "aws-1", "chat").failed("timeout");
        // Failed over: the same deployment now answers from another cluster.
        Labels::of(&metrics, ids, "ali-1", "chat").answered(
            200,
            Some(usage),
            second,
            Some(second / 10),
            Some(second / 5),
        );

        let lines = exposition(&registry);
        let id = format!("deployment=\"{}\"", ids.1);
        let id = id.as_str();
        let at = |cluster: &'static str| format!("cluster=\"{cluster}\"");
        let (aws, ali) = (at("aws-1"), at("ali-1"));
        let requests = "gateway_requests_total{";
        assert_eq!(
            value(&lines, requests, &[id, &aws, "status=\"200\""]),
            Some(2.0)
        );
        assert_eq!(
            value(&lines, requests, &[id, &aws, "status=\"503\""]),
            Some(1.0)
        );
        assert_eq!(
            value(&lines, requests, &[id, &ali, "status=\"200\""]),
            Some(1.0)
        );
        let tokens = "gateway_tokens_total{";
        assert_eq!(
            value(&lines, tokens, &[id, &aws, "kind=\"prompt\""]),
            Some(24.0)
        );
        assert_eq!(
            value(&lines, tokens, &[id, &ali, "kind=\"completion\""]),
            Some(5.0)
        );
        assert_eq!(
            value(
                &lines,
                "gateway_failures_total{",
                &[id, &aws, "reason=\"timeout\""]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &lines,
                "gateway_request_duration_seconds_count{",
                &[id, &aws]
            ),
            Some(3.0)
        );
        // A series appears once it has something in it: the plain answers
        // of the first cluster have no time to a first token.
        assert_eq!(
            value(
                &lines,
                "gateway_time_to_first_token_seconds_count{",
                &[id, &aws]
            ),
            None
        );
        assert_eq!(
            value(
                &lines,
                "gateway_time_to_first_token_seconds_count{",
                &[id, &ali]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &lines,
                "gateway_time_per_output_token_seconds_count{",
                &[id, &ali]
            ),
            Some(1.0)
        );
    }
}
