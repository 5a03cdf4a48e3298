//! Prometheus metrics: requests, tokens, batch sizes, queue depth and latencies.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::DecodeStats;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// openai, ollama, tei, rerank or tei_rerank.
    pub api: String,
    /// The HTTP status code.
    pub status: u16,
}

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// openai, ollama or tei.
    pub api: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by API and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by API.
    pub request_seconds: Family<ApiLabels, Histogram>,
    /// Inputs embedded.
    pub inputs: Counter,
    /// Tokens embedded.
    pub tokens: Counter,
    /// Sequences per decode.
    pub batch_sequences: Histogram,
    /// Tokens per decode.
    pub batch_tokens: Histogram,
    /// Requests merged into one decode.
    pub batch_requests: Histogram,
    /// Decode wall time.
    pub decode_seconds: Histogram,
    /// Inputs waiting or running (set when scraped).
    pub queue_depth: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Inputs refused because the queue was full.
    pub rejected: Counter<u64, AtomicU64>,
    /// Query-document pairs reranked.
    pub rerank_pairs: Counter,
    /// Tokens of the reranked pairs' prompts.
    pub rerank_tokens: Counter,
}

impl Metrics {
    /// Registers every metric under the `gguf_embed` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gguf_embed");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP embedding requests by API and status",
            requests.clone(),
        );
        let request_seconds = Family::<ApiLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "request_duration_seconds",
            "Embedding request latency, from receipt to response",
            request_seconds.clone(),
        );
        let inputs = Counter::default();
        registry.register("inputs", "Inputs embedded", inputs.clone());
        let tokens = Counter::default();
        registry.register(
            "tokens",
            "Tokens embedded (instructions and end-of-text included)",
            tokens.clone(),
        );
        let batch_sequences = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "batch_sequences",
            "Sequences per llama.cpp decode",
            batch_sequences.clone(),
        );
        let batch_tokens = Histogram::new(exponential_buckets(16.0, 2.0, 12));
        registry.register(
            "batch_tokens",
            "Tokens per llama.cpp decode",
            batch_tokens.clone(),
        );
        let batch_requests = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "batch_requests",
            "Requests whose inputs shared one decode (above 1: requests were merged)",
            batch_requests.clone(),
        );
        let decode_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "decode_duration_seconds",
            "Wall time of one decode",
            decode_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Inputs waiting or being embedded",
            queue_depth.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "rejected",
            "Requests refused because the queue was full",
            rejected.clone(),
        );
        let rerank_pairs = Counter::default();
        registry.register(
            "rerank_pairs",
            "Query-document pairs scored by the reranker",
            rerank_pairs.clone(),
        );
        let rerank_tokens = Counter::default();
        registry.register(
            "rerank_tokens",
            "Tokens of the reranked pairs' prompts",
            rerank_tokens.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            inputs,
            tokens,
            batch_sequences,
            batch_tokens,
            batch_requests,
            decode_seconds,
            queue_depth,
            rejected,
            rerank_pairs,
            rerank_tokens,
        }
    }

    /// Records one decode (called from the engine thread).
    pub fn observe_decode(&self, stats: &DecodeStats) {
        self.batch_sequences.observe(stats.sequences as f64);
        self.batch_tokens.observe(stats.tokens as f64);
        self.batch_requests.observe(stats.requests as f64);
        self.decode_seconds.observe(stats.seconds);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
