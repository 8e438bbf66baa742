//! Recording calls in the feedback log's live-traffic run.
//!
//! Results are queued on the store's writer and the response goes out without waiting for the
//! commit. At most [`ServerConfig::log_queue`](crate::ServerConfig) calls wait for the writer at
//! once: when the log falls that far behind, a request waits for room before it answers. The log
//! never drops a call, its queue's memory stays bounded, and back-pressure reaches clients.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use benchtop_core::store::{Answer, Id, NewResult};
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;

use crate::batch::BatchInfo;
use crate::state::AppState;

/// Who called: peer address and user agent, stored with each logged call.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: Option<SocketAddr>,
    pub user_agent: Option<String>,
}

impl Client {
    pub fn new(addr: Option<SocketAddr>, headers: &HeaderMap) -> Client {
        let user_agent =
            headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(200).collect());
        Client { addr, user_agent }
    }

    pub fn json(&self) -> Value {
        json!({ "addr": self.addr.map(|a| a.to_string()), "user_agent": self.user_agent })
    }
}

/// A batched call (`/v1/predict`, `/v1/embeddings`) to record: one result per input, sharing
/// the call id, each with the call's context in its meta.
pub struct Call<'a> {
    pub id: &'a str,
    pub endpoint: &'static str,
    pub target_id: Id,
    pub client: Client,
    pub params: Value,
    pub batch: BatchInfo,
}

impl Call<'_> {
    /// The results for `inputs`; `each(i)` gives input i's answer and meta fields of its own.
    pub fn results(
        &self,
        state: &AppState,
        inputs: Vec<String>,
        each: impl Fn(usize) -> (Answer, Value),
    ) -> Vec<NewResult> {
        inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| {
                let (answer, extra) = each(i);
                let mut meta = json!({
                    "endpoint": self.endpoint,
                    "index": i,
                    "params": self.params,
                    "client": self.client.json(),
                    "batch_texts": self.batch.batch_texts,
                    "queued_ms": self.batch.queued.as_secs_f64() * 1000.0,
                });
                if let (Some(meta), Value::Object(extra)) = (meta.as_object_mut(), extra) {
                    meta.extend(extra);
                }
                NewResult {
                    run_id: state.traffic_run,
                    case_id: None,
                    target_id: self.target_id,
                    input,
                    answer,
                    cache_key: None,
                    call_id: Some(self.id.to_string()),
                    meta: Some(meta),
                }
            })
            .collect()
    }
}

/// A new call id: `call_` and 24 random hex digits.
pub fn call_id() -> String {
    match crate::token::random_hex(12) {
        Ok(hex) => format!("call_{hex}"),
        // The OS random source failing is near impossible; time and a counter still make ids unique.
        Err(_) => {
            static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("call_{:x}{n:x}", benchtop_core::store::now_ms())
        }
    }
}

/// Record `results` (one call's) unless logging is off.
pub async fn record(state: &Arc<AppState>, results: Vec<NewResult>) {
    if !state.config.log_traffic || results.is_empty() {
        return;
    }
    for result in results {
        // Room in the queue; released once the write has committed (or failed).
        let Ok(room) = Arc::clone(&state.log_room).acquire_owned().await else { return };
        if let Some(result) = submit(state, result, Some(room)) {
            // The store's own queue is full (other writers): wait for this write.
            let store = Arc::clone(&state.store);
            let ok = tokio::task::spawn_blocking(move || store.record_result(result))
                .await
                .map(|r| r.map_err(|e| tracing::error!(error = %e, "recording a call failed")).is_ok())
                .unwrap_or(false);
            state.metrics.logged(ok);
        }
    }
}

/// [`record`] for code already on a blocking thread (the chat generation).
pub fn record_blocking(state: &Arc<AppState>, result: NewResult) {
    if !state.config.log_traffic {
        return;
    }
    if let Some(result) = submit(state, result, None) {
        let ok = state
            .store
            .record_result(result)
            .map_err(|e| tracing::error!(error = %e, "recording a call failed"))
            .is_ok();
        state.metrics.logged(ok);
    }
}

/// Queue `result` on the store's writer, holding `room` until it has committed; hands the result
/// back (`Some`) if the writer's queue is full, for the caller to write and wait for.
fn submit(state: &AppState, result: NewResult, room: Option<OwnedSemaphorePermit>) -> Option<NewResult> {
    let metrics = Arc::clone(&state.metrics);
    let kept = result.clone();
    let queued = state.store.submit_result(result, move |outcome| {
        drop(room);
        metrics.logged(outcome.is_ok());
        if let Err(e) = outcome {
            tracing::error!(error = %e, "recording a call in the feedback log failed");
        }
    });
    queued.err().map(|busy| {
        tracing::warn!(error = %busy, "the feedback log is behind; this request waits for its write");
        kept
    })
}
