//! `/metrics`: requests, latencies, queue depth, batch sizes and batch run times, in the
//! Prometheus (OpenMetrics) text format, through the `prometheus-client` crate.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    batch_size: Family<ModelLabels, Histogram>,
    batch_duration: Family<ModelLabels, Histogram>,
    queue_depth: Family<ModelLabels, Gauge>,
    logged: Counter,
    log_failures: Counter,
}

/// Durations from 0.25 ms to ~8 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("benchtop");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route, method and status", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer (to the first byte of a stream)",
            latency.clone(),
        );
        let batch_size = Family::<ModelLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1.0, 2.0, 11))) as fn() -> Histogram,
        );
        registry.register("batch_size_texts", "Texts per model batch", batch_size.clone());
        let batch_duration = Family::<ModelLabels, Histogram>::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "batch_duration_seconds",
            "Time a model batch takes to run, tokenising to answers",
            batch_duration.clone(),
        );
        let queue_depth = Family::<ModelLabels, Gauge>::default();
        registry.register("queue_depth_texts", "Texts waiting for a batch, per model", queue_depth.clone());
        let logged = Counter::default();
        registry.register("traffic_logged", "Calls recorded in the feedback log", logged.clone());
        let log_failures = Counter::default();
        registry.register("traffic_log_failures", "Calls the feedback log failed to record", log_failures.clone());
        Metrics { registry, requests, latency, batch_size, batch_duration, queue_depth, logged, log_failures }
    }
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { route: route.into(), method: method.into(), status }).inc();
        self.latency.get_or_create(&RouteLabels { route: route.into() }).observe(seconds);
    }

    pub fn observe_batch(&self, model: &str, texts: usize) {
        self.batch_size.get_or_create(&ModelLabels { model: model.into() }).observe(texts as f64);
    }

    pub fn observe_batch_duration(&self, model: &str, seconds: f64) {
        self.batch_duration.get_or_create(&ModelLabels { model: model.into() }).observe(seconds);
    }

    pub fn set_queue_depth(&self, model: &str, texts: usize) {
        self.queue_depth.get_or_create(&ModelLabels { model: model.into() }).set(texts as i64);
    }

    pub fn logged(&self, ok: bool) {
        if ok { &self.logged } else { &self.log_failures }.inc();
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
