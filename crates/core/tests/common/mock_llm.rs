//! A stand-in for remote LLM providers on 127.0.0.1, speaking the OpenAI chat completions format
//! (`POST /v1/chat/completions`) and the Anthropic Messages API (`POST /v1/messages`), streamed
//! (SSE) or not, with faults on demand: latency, 429 with `retry-after`, 500/529, hangs, streams
//! cut short, malformed JSON, refused keys (with the key echoed back, as real APIs partly do).
//!
//! The answer is deterministic: `[MODEL] ` followed by the last user message, so a test can tell
//! which request an answer belongs to — or, when the message holds `ANSWER:`, what follows it (a
//! scripted answer). Usage counts words.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};

include!("serve_local.rs");

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// 429 with `retry-after-ms` (and `retry-after` in whole seconds).
    RateLimit { retry_after_ms: u64 },
    /// 500 with a JSON error.
    ServerError,
    /// Anthropic's 529 "overloaded".
    Overloaded,
    /// No answer for this long (longer than the client's read timeout).
    Hang(Duration),
    /// Part of the answer, then the connection ends (stream: no end event; whole: short body).
    Truncated,
    /// 200 with JSON that does not parse.
    Malformed,
    /// 401, the body echoing the key that was sent.
    Unauthorized,
    /// 400 with a message (not retryable).
    BadRequest,
}

#[derive(Default)]
pub struct LlmState {
    /// The key requests must carry (`Authorization: Bearer` / `x-api-key`); any if `None`.
    pub key: Option<String>,
    /// Added before every answer.
    pub latency: Duration,
    /// Between the events of a streamed answer (0: all at once).
    pub chunk_delay: Duration,
    /// Faults for the next requests, one each, in order.
    pub script: VecDeque<Fault>,
    /// Besides the script: this share of requests (0..1) gets a random fault from `random_faults`.
    pub fault_rate: f64,
    pub random_faults: Vec<Fault>,
    rng: u64,
    /// Every request: path and JSON body.
    pub requests: Vec<(String, Value)>,
    /// Faults served, by request index.
    pub faults_served: Vec<(usize, Fault)>,
    /// Requests being answered now, and the most at once.
    pub in_flight: usize,
    pub max_in_flight: usize,
}

pub struct MockLlm {
    pub url: String,
    state: Arc<Mutex<LlmState>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl MockLlm {
    pub fn start() -> MockLlm {
        MockLlm::with(LlmState { rng: 0x9E37_79B9_7F4A_7C15, ..LlmState::default() })
    }

    pub fn with(state: LlmState) -> MockLlm {
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(Arc::clone(&state));
        let (url, stop) = serve_local(app);
        MockLlm { url, state, _stop: stop }
    }

    /// Base URL for an OpenAI-compatible provider.
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// Requests received, once no more are arriving: a request a cancelled or killed client had
    /// already sent can reach the server a moment after the client gave up on it.
    pub fn settled_requests(&self) -> usize {
        let mut seen = self.state().requests.len();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = self.state().requests.len();
            if now == seen {
                return now;
            }
            seen = now;
        }
    }

    pub fn state(&self) -> MutexGuard<'_, LlmState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one request gets: a fault or nothing, the key check, the latency.
fn admit(
    state: &Arc<Mutex<LlmState>>,
    path: &str,
    body: &Value,
    sent_key: Option<&str>,
) -> (Option<Fault>, bool, Duration) {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.requests.push((path.to_string(), body.clone()));
    let index = s.requests.len() - 1;
    let authorised = s.key.as_deref().is_none_or(|k| sent_key == Some(k));
    let mut fault = s.script.pop_front();
    if fault.is_none() && s.fault_rate > 0.0 && !s.random_faults.is_empty() {
        // xorshift: reproducible from the seed in `rng`.
        s.rng ^= s.rng << 13;
        s.rng ^= s.rng >> 7;
        s.rng ^= s.rng << 17;
        let roll = (s.rng >> 11) as f64 / (1u64 << 53) as f64;
        if roll < s.fault_rate {
            let pick = (s.rng % s.random_faults.len() as u64) as usize;
            fault = Some(s.random_faults[pick]);
        }
    }
    if let Some(f) = fault {
        s.faults_served.push((index, f));
    }
    s.in_flight += 1;
    s.max_in_flight = s.max_in_flight.max(s.in_flight);
    (fault, authorised, s.latency)
}

/// The request's answer is on its way (headers sent; a stream may still be running).
fn answered(state: &Arc<Mutex<LlmState>>) {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.in_flight = s.in_flight.saturating_sub(1);
}

fn last_user(messages: &Value) -> String {
    messages
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

fn answer_text(model: &str, user: &str) -> String {
    match user.rsplit_once("ANSWER:") {
        Some((_, scripted)) => scripted.trim().to_string(),
        None => format!("[{model}] {user}"),
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The answer in pieces of up to 4 characters (streams split words and multi-byte characters).
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

fn error_response(fault: Fault, key: Option<&str>, anthropic: bool) -> Option<Response> {
    let (status, message) = match fault {
        Fault::RateLimit { retry_after_ms } => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": {"type": "rate_limit_error", "message": "Rate limit reached, slow down"}})),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert("retry-after-ms", retry_after_ms.into());
            headers.insert("retry-after", retry_after_ms.div_ceil(1000).into());
            return Some(response);
        }
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "The server had an error processing your request"),
        Fault::Overloaded => (StatusCode::from_u16(529).expect("529"), "Overloaded"),
        Fault::BadRequest => (StatusCode::BAD_REQUEST, "Invalid value for 'temperature'"),
        Fault::Unauthorized => {
            let message = format!("Incorrect API key provided: {}", key.unwrap_or("(none)"));
            let kind = if anthropic { "authentication_error" } else { "invalid_request_error" };
            return Some(
                (StatusCode::UNAUTHORIZED, Json(json!({"error": {"type": kind, "message": message}}))).into_response(),
            );
        }
        Fault::Hang(_) | Fault::Truncated | Fault::Malformed => return None,
    };
    Some((status, Json(json!({"error": {"type": "api_error", "message": message}}))).into_response())
}

fn sse(state: &Arc<Mutex<LlmState>>, events: Vec<String>, cut: bool) -> Response {
    let delay = state.lock().unwrap_or_else(|p| p.into_inner()).chunk_delay;
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = events.into_iter().map(|e| Ok(Bytes::from(e))).collect();
    if cut {
        chunks.push(Err(std::io::Error::other("connection cut by the mock")));
    }
    let stream = futures_util::stream::iter(chunks).then(move |item| async move {
        if item.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        item
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert("content-type", "text/event-stream".parse().expect("header"));
    response
}

async fn openai(State(state): State<Arc<Mutex<LlmState>>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let response = openai_answer(&state, headers, body).await;
    answered(&state);
    response
}

async fn openai_answer(state: &Arc<Mutex<LlmState>>, headers: HeaderMap, body: Value) -> Response {
    let sent = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let (fault, authorised, latency) = admit(state, "/v1/chat/completions", &body, sent);
    tokio::time::sleep(latency).await;
    if let Some(Fault::Hang(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let fault = if authorised { fault } else { Some(Fault::Unauthorized) };
    if let Some(response) = fault.and_then(|f| error_response(f, sent, false)) {
        return response;
    }
    let model = body["model"].as_str().unwrap_or("?").to_string();
    let text = answer_text(&model, &last_user(&body["messages"]));
    let input: u64 = body["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| words(m["content"].as_str().unwrap_or(""))).sum())
        .unwrap_or(0);
    let usage =
        json!({"prompt_tokens": input, "completion_tokens": words(&text), "total_tokens": input + words(&text)});
    if body["stream"] != true {
        return match fault {
            Some(Fault::Malformed) => (StatusCode::OK, "{\"choices\": [{\"message\": ").into_response(),
            Some(Fault::Truncated) => {
                let full = json!({"choices": [{"message": {"content": text}}]}).to_string();
                let half = full[..full.len() / 2].to_string();
                let stream = futures_util::stream::iter(vec![
                    Ok::<_, std::io::Error>(Bytes::from(half)),
                    Err(std::io::Error::other("cut")),
                ]);
                let mut response = Response::new(Body::from_stream(stream));
                response.headers_mut().insert("content-length", full.len().into());
                response
            }
            _ => Json(json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }))
            .into_response(),
        };
    }
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    let parts = pieces(&text);
    let keep = if fault == Some(Fault::Truncated) { parts.len() / 2 } else { parts.len() };
    for (i, piece) in parts.iter().take(keep).enumerate() {
        if fault == Some(Fault::Malformed) && i == 1 {
            events.push("data: {\"choices\": [{\"delta\": {\"content\": \n\n".into());
        }
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    if fault == Some(Fault::Truncated) {
        return sse(state, events, true);
    }
    events.push(chunk(json!({}), json!("stop")));
    if body.pointer("/stream_options/include_usage") == Some(&json!(true)) {
        events.push(format!("data: {}\n\n", json!({"id": "chatcmpl-mock", "choices": [], "usage": usage})));
    }
    events.push("data: [DONE]\n\n".into());
    sse(state, events, false)
}

async fn anthropic(State(state): State<Arc<Mutex<LlmState>>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let response = anthropic_answer(&state, headers, body).await;
    answered(&state);
    response
}

async fn anthropic_answer(state: &Arc<Mutex<LlmState>>, headers: HeaderMap, body: Value) -> Response {
    let sent = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let (fault, authorised, latency) = admit(state, "/v1/messages", &body, sent);
    if headers.get("anthropic-version").is_none() {
        return (StatusCode::BAD_REQUEST, Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version header is required"}}))).into_response();
    }
    tokio::time::sleep(latency).await;
    if let Some(Fault::Hang(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let fault = if authorised { fault } else { Some(Fault::Unauthorized) };
    if let Some(response) = fault.and_then(|f| error_response(f, sent, true)) {
        return response;
    }
    let model = body["model"].as_str().unwrap_or("?").to_string();
    let text = answer_text(&model, &last_user(&body["messages"]));
    let input: u64 = words(body["system"].as_str().unwrap_or(""))
        + body["messages"]
            .as_array()
            .map(|m| m.iter().map(|m| words(m["content"].as_str().unwrap_or(""))).sum())
            .unwrap_or(0);
    let output = words(&text);
    if body["stream"] != true {
        if fault == Some(Fault::Malformed) {
            return (StatusCode::OK, "{\"content\": [").into_response();
        }
        return Json(json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "usage": {"input_tokens": input, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    let parts = pieces(&text);
    let keep = if fault == Some(Fault::Truncated) { parts.len() / 2 } else { parts.len() };
    for (i, piece) in parts.iter().take(keep).enumerate() {
        if fault == Some(Fault::Malformed) && i == 1 {
            events.push("event: content_block_delta\ndata: {\"type\": \n\n".into());
        }
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    if fault == Some(Fault::Truncated) {
        return sse(state, events, true);
    }
    events.push(event("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    sse(state, events, false)
}
