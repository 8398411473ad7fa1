//! Prometheus metrics of the controller: reconciles, errors by a bounded
//! reason, reconcile duration, and deployments by phase.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    /// A bounded label: each error kind's `metric_label()`, never a message.
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// Cheap to clone; every clone records into the same registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    phases: Family<PhaseLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("modelfleet_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        // 1 ms to about 16 s.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let phases = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles of ModelDeployments",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register("deployments", "ModelDeployments by phase", phases.clone());
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            reconciles,
            errors,
            duration,
            phases,
        }
    }

    /// One reconcile: how long it took and, if it failed, the error's label.
    pub fn reconciled(&self, took: Duration, error: Option<&'static str>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.errors.get_or_create(&ErrorLabels { reason }).inc();
        }
    }

    /// Replaces the per-phase counts; phases absent from `counts` read 0.
    pub fn set_phases(&self, all_phases: &[&'static str], counts: &BTreeMap<&'static str, i64>) {
        for phase in all_phases {
            let n = counts.get(phase).copied().unwrap_or(0);
            self.phases.get_or_create(&PhaseLabels { phase }).set(n);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_errors_durations_and_phases() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(3), None);
        m.reconciled(Duration::from_millis(40), Some("apply"));
        let counts = BTreeMap::from([("Ready", 2), ("Pending", 1)]);
        m.set_phases(&["Pending", "Ready", "Failed"], &counts);
        let text = m.render();
        for line in [
            "modelfleet_operator_reconciles_total 2",
            "modelfleet_operator_reconcile_errors_total{reason=\"apply\"} 1",
            "modelfleet_operator_reconcile_duration_seconds_count 2",
            "modelfleet_operator_deployments{phase=\"Ready\"} 2",
            "modelfleet_operator_deployments{phase=\"Failed\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
