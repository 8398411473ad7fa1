//! `GET /metrics`: the engine's counters in the Prometheus text format,
//! under vLLM's metric names and labels (`model_name`, and `engine="0"`
//! as vLLM's V1 engine adds), so whatever scrapes a vLLM replica (the
//! gateway's load signals, an autoscaler, a Grafana board) reads these.
//!
//! Latencies are the engine's own timeline: a token is observed when it
//! was due, and tokens are never sent before they are due.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::queue::Gauges;
use super::tokens::Finish;

/// vLLM's buckets for `vllm:time_to_first_token_seconds`.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's buckets for `vllm:time_per_output_token_seconds` and
/// `vllm:inter_token_latency_seconds`.
const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's buckets for `vllm:e2e_request_latency_seconds`.
const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug)]
struct Data {
    prompt_tokens: u64,
    generation_tokens: u64,
    /// Finished sequences by `finished_reason`.
    success: BTreeMap<&'static str, u64>,
    ttft: Histogram,
    tpot: Histogram,
    e2e: Histogram,
}

/// One engine's counters.
#[derive(Debug)]
pub struct Metrics {
    data: Mutex<Data>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            data: Mutex::new(Data {
                prompt_tokens: 0,
                generation_tokens: 0,
                success: BTreeMap::new(),
                ttft: Histogram::new(TTFT_BUCKETS),
                tpot: Histogram::new(TPOT_BUCKETS),
                e2e: Histogram::new(E2E_BUCKETS),
            }),
        }
    }
}

impl Metrics {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A sequence's prompt was prefilled and its first token came after
    /// `ttft` (from the request's arrival).
    pub fn first_token(&self, prompt_tokens: u64, ttft: Duration) {
        let mut data = self.data();
        data.prompt_tokens += prompt_tokens;
        data.generation_tokens += 1;
        data.ttft.observe(ttft);
    }

    /// Another token, `gap` after the previous one of its sequence.
    pub fn next_token(&self, gap: Duration) {
        let mut data = self.data();
        data.generation_tokens += 1;
        data.tpot.observe(gap);
    }

    /// Prompt tokens of a request that generates nothing (embeddings).
    pub fn prefilled(&self, prompt_tokens: u64) {
        self.data().prompt_tokens += prompt_tokens;
    }

    /// A sequence finished, `e2e` after its request arrived.
    pub fn finished(&self, reason: Option<Finish>, e2e: Duration) {
        let mut data = self.data();
        let reason = reason.map_or("stop", Finish::as_str);
        *data.success.entry(reason).or_default() += 1;
        data.e2e.observe(e2e);
    }

    /// A sequence whose client went away before it ended.
    pub fn aborted(&self) {
        *self.data().success.entry("abort").or_default() += 1;
    }

    /// Sequences that ran to their end (`stop` or `length`).
    pub fn requests_served(&self) -> u64 {
        self.data()
            .success
            .iter()
            .filter(|(reason, _)| **reason != "abort")
            .map(|(_, n)| n)
            .sum()
    }

    pub fn render(&self, model: &str, gauges: Gauges) -> String {
        let data = self.data();
        let model = model.replace('\\', "\\\\").replace('"', "\\\"");
        let labels = format!("engine=\"0\",model_name=\"{model}\"");
        let mut out = String::new();
        let usage = if gauges.kv_capacity == 0 {
            0.0
        } else {
            gauges.kv_tokens as f64 / gauges.kv_capacity as f64
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {value:?}\n"
            );
        };
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            f64::from(gauges.running),
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            f64::from(gauges.waiting),
        );
        gauge(
            &mut out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            usage,
        );
        gauge(
            &mut out,
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage. (deprecated: use vllm:kv_cache_usage_perc)",
            usage,
        );
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{labels}}} {:?}\n",
                value as f64
            );
        };
        counter(
            &mut out,
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            data.prompt_tokens,
        );
        counter(
            &mut out,
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            data.generation_tokens,
        );
        let name = "vllm:request_success_total";
        let _ = write!(
            out,
            "# HELP {name} Count of successfully processed requests.\n# TYPE {name} counter\n"
        );
        for reason in ["stop", "length", "abort"] {
            let value = data.success.get(reason).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}{{engine=\"0\",finished_reason=\"{reason}\",model_name=\"{model}\"}} {:?}",
                value as f64
            );
        }
        let histograms = [
            (
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                &data.ttft,
            ),
            (
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                &data.tpot,
            ),
            (
                "vllm:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                &data.tpot,
            ),
            (
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                &data.e2e,
            ),
        ];
        for (name, help, h) in histograms {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
            for (bound, count) in h.bounds.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels},le=\"{bound:?}\"}} {:?}",
                    *count as f64
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"+Inf\"}} {:?}",
                h.count as f64
            );
            let _ = writeln!(out, "{name}_count{{{labels}}} {:?}", h.count as f64);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {:?}", h.sum);
        }
        out
    }
}

/// The value of `name{…labels…}` in a Prometheus text exposition: the
/// first sample of that name whose labels contain every one of `labels`.
/// For tests and tools that read an engine's `/metrics`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            (metric == name).then_some((rest.trim_end_matches('}'), value))
        })
        .find(|(have, _)| {
            labels
                .iter()
                .all(|(k, v)| have.split(',').any(|pair| pair == format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, value)| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_vllms_names_and_labels() {
        let metrics = Metrics::default();
        metrics.first_token(12, Duration::from_millis(30));
        metrics.next_token(Duration::from_millis(9));
        metrics.next_token(Duration::from_millis(9));
        metrics.finished(Some(Finish::Length), Duration::from_millis(50));
        let gauges = Gauges {
            running: 3,
            waiting: 2,
            kv_tokens: 250,
            kv_capacity: 1000,
        };
        let text = metrics.render("llama", gauges);
        let model = [("model_name", "llama")];
        let get = |name| sample(&text, name, &model);
        assert_eq!(get("vllm:num_requests_running"), Some(3.0));
        assert_eq!(get("vllm:num_requests_waiting"), Some(2.0));
        assert_eq!(get("vllm:kv_cache_usage_perc"), Some(0.25));
        assert_eq!(get("vllm:gpu_cache_usage_perc"), Some(0.25));
        assert_eq!(get("vllm:prompt_tokens_total"), Some(12.0));
        assert_eq!(get("vllm:generation_tokens_total"), Some(3.0));
        assert_eq!(
            sample(
                &text,
                "vllm:request_success_total",
                &[("finished_reason", "length")]
            ),
            Some(1.0)
        );
        assert_eq!(get("vllm:time_to_first_token_seconds_count"), Some(1.0));
        assert_eq!(get("vllm:time_per_output_token_seconds_count"), Some(2.0));
        let le = |bound| {
            sample(
                &text,
                "vllm:time_to_first_token_seconds_bucket",
                &[("le", bound)],
            )
        };
        assert_eq!(
            (le("0.02"), le("0.04"), le("+Inf")),
            (Some(0.0), Some(1.0), Some(1.0))
        );
        assert!(text.contains("# TYPE vllm:time_to_first_token_seconds histogram"));
        assert_eq!(metrics.requests_served(), 1);
        metrics.aborted();
        assert_eq!(metrics.requests_served(), 1, "aborts are not served");
    }
}
