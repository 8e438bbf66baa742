//! The public inference API: `/v1/predict`, OpenAI-compatible `/v1/embeddings`,
//! `/v1/chat/completions` and `/v1/models`, `/v1/feedback`; plus `/healthz`, `/metrics` and
//! `/openapi.json`.
//!
//! Unknown fields: the OpenAI-compatible endpoints ignore fields they do not know (OpenAI's
//! clients send optional ones freely: `user`, `stream_options`…) but refuse known features they
//! do not support (`n` > 1, tools, logprobs…) rather than silently answering something else.
//! Benchtop's own endpoints (`/v1/predict`, `/v1/feedback`, `/api/…`) refuse unknown fields, so a
//! typo is an error, not a silently ignored setting.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use benchtop_core::engine::{
    Classification, FinishReason, GenerateParams, Generation, Message, ModelFolder, Prompt, Role, Task,
};
use benchtop_core::store::{now_ms, Answer, Feedback, Id, LabelSource, NewFeedback, NewResult};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::batch::Rows;
use crate::error::ApiError;
use crate::state::AppState;
use crate::traffic::{self, Client};

/// The header every logged call's response carries its id in (also the body's `id`).
pub const CALL_ID_HEADER: HeaderName = HeaderName::from_static("x-benchtop-call-id");

/// `Json<T>` whose rejections are [`ApiError`]s (JSON bodies, right statuses).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

// ---- operability --------------------------------------------------------------------------------

pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "onnxruntime": state.engine.runtime().version(),
    }))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.refresh_gauges();
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}

pub async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}; GET /openapi.json lists the API",
        request.method(),
        request.uri().path()
    ))
}

pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{} is not allowed on {}; GET /openapi.json lists the API", request.method(), request.uri().path()),
    )
}

// ---- models -------------------------------------------------------------------------------------

pub async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let entries = tokio::task::spawn_blocking(move || engine.catalog().list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let data: Vec<Value> = entries
        .into_iter()
        .filter_map(|entry| {
            let folder = entry.folder.ok()?;
            let mut details = serde_json::to_value(&folder.task).unwrap_or(Value::Null);
            if let Some(map) = details.as_object_mut() {
                map.insert("max_length".into(), json!(folder.max_length));
                map.insert("size_bytes".into(), json!(folder.size_bytes));
            }
            Some(json!({
                "id": entry.name,
                "object": "model",
                "created": 0,
                "owned_by": "benchtop",
                "task": folder.task.name(),
                "benchtop": details,
            }))
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

// ---- shared input checks ------------------------------------------------------------------------

/// The texts of an `input` field: a string or a non-empty array of strings, within the limits.
fn texts_of(state: &AppState, input: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let limits = &state.config.limits;
    let texts: Vec<String> = match input {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("`input` is missing: send a string or an array of strings"))
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(ApiError::invalid("`input` is an empty array: send at least one text"));
            }
            if items.len() > limits.max_inputs {
                return Err(ApiError::too_large(format!(
                    "`input` has {} texts; at most {} per request (--max-inputs)",
                    items.len(),
                    limits.max_inputs
                )));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(_) | Value::Array(_) => Err(ApiError::invalid(
                        "`input` holds token ids; Benchtop tokenizes for you — send the text instead",
                    )),
                    _ => Err(ApiError::invalid(format!("`input[{i}]` must be a string"))),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(ApiError::invalid("`input` must be a string or an array of strings")),
    };
    for (i, text) in texts.iter().enumerate() {
        let which = if texts.len() == 1 { "`input`".to_string() } else { format!("`input[{i}]`") };
        if text.trim().is_empty() {
            return Err(ApiError::invalid(format!("{which} is empty")));
        }
        let chars = text.chars().count();
        if chars > limits.max_input_chars {
            return Err(ApiError::too_large(format!(
                "{which} is {chars} characters; the limit is {} (--max-input-chars)",
                limits.max_input_chars
            )));
        }
    }
    Ok(texts)
}

/// The model named in a request.
fn model_of(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ApiError::invalid("`model` is missing: name a model (GET /v1/models lists them)"))
        }
        Some(_) => Err(ApiError::invalid("`model` must be a string")),
    }
}

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid("the body must be a JSON object")),
    }
}

/// Refuse fields not in `known` (Benchtop's own endpoints).
fn deny_unknown(body: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(ApiError::invalid(format!("unknown field `{key}`; expected one of: {}", known.join(", ")))),
        None => Ok(()),
    }
}

fn check_rules(state: &AppState, model: &str, texts: &[String]) -> Result<(), ApiError> {
    for (i, text) in texts.iter().enumerate() {
        let problems = state.rule_problems(model, text);
        if !problems.is_empty() {
            let which = if texts.len() == 1 { "`input`".to_string() } else { format!("`input[{i}]`") };
            return Err(ApiError::rule(format!("{which} breaks the rules set for `{model}`: {}", problems.join("; "))));
        }
    }
    Ok(())
}

/// Queue texts on the model's batcher and wait for their rows.
async fn run_batched(
    state: &AppState,
    model_name: &str,
    task: &'static str,
    texts: &[String],
) -> Result<(ModelFolder, Rows, crate::batch::BatchInfo), ApiError> {
    let (folder, batcher) = state.batcher(model_name, task).await?;
    let rx = batcher.submit(texts.to_vec()).map_err(|o| {
        ApiError::overloaded(format!(
            "`{model_name}` has {} texts waiting already; retry shortly (the queue holds {})",
            o.waiting, state.config.batch.queue_texts
        ))
    })?;
    let (rows, info) =
        rx.await.map_err(|_| ApiError::unavailable("the model's worker stopped; the server is shutting down"))??;
    Ok((folder, rows, info))
}

fn with_call_id(call_id: &str, body: Value) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(call_id) {
        response.headers_mut().insert(CALL_ID_HEADER, value);
    }
    response
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---- /v1/predict --------------------------------------------------------------------------------

pub async fn predict(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = object(body)?;
    deny_unknown(&body, &["model", "input", "top_k"])?;
    let model_name = model_of(&body)?;
    let texts = texts_of(&state, body.get("input"))?;
    let top_k = match body.get("top_k") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(v.as_u64().filter(|k| *k >= 1).ok_or_else(|| ApiError::invalid("`top_k` must be an integer ≥ 1"))?
                as usize)
        }
    };
    check_rules(&state, &model_name, &texts)?;
    let (folder, rows, info) = run_batched(&state, &model_name, "classification", &texts).await?;
    let Rows::Classes(classes) = rows else {
        return Err(ApiError::internal("the batch worker answered with embeddings"));
    };
    let latency = ms(started.elapsed());
    let call_id = traffic::call_id();
    let shown = |c: &Classification| -> Vec<Value> {
        c.scores
            .iter()
            .take(top_k.unwrap_or(usize::MAX))
            .map(|s| json!({ "label": s.label, "score": s.score }))
            .collect()
    };
    let data: Vec<Value> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "index": i,
                "label": c.top().label,
                "score": c.top().score,
                "scores": shown(c),
                "tokens": c.tokens,
                "truncated": c.truncated,
            })
        })
        .collect();
    let tokens: usize = classes.iter().map(|c| c.tokens).sum();
    let response = with_call_id(
        &call_id,
        json!({
            "id": call_id,
            "object": "prediction",
            "model": model_name,
            "data": data,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    );
    let call = traffic::Call {
        id: &call_id,
        endpoint: "/v1/predict",
        target_id: state.target_id(&folder).await?,
        client: Client::new(peer.map(|c| c.0 .0), &headers),
        params: json!({ "top_k": top_k }),
        batch: info,
    };
    let results = call.results(&state, texts, |i| {
        let c = &classes[i];
        let answer = Answer {
            label: Some(c.top().label.clone()),
            scores: Some(Value::Object(c.scores.iter().map(|s| (s.label.clone(), json!(s.score))).collect())),
            latency_ms: Some(latency),
            tokens_in: Some(c.tokens as i64),
            ..Answer::default()
        };
        (answer, json!({ "truncated": c.truncated }))
    });
    traffic::record(&state, results).await;
    Ok(response)
}

// ---- /v1/embeddings -----------------------------------------------------------------------------

pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = object(body)?;
    let model_name = model_of(&body)?;
    let texts = texts_of(&state, body.get("input"))?;
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(other) => {
            return Err(ApiError::invalid(format!("`encoding_format` must be \"float\" or \"base64\", not {other}")))
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(v.as_u64().ok_or_else(|| ApiError::invalid("`dimensions` must be a positive integer"))? as usize)
        }
    };
    check_rules(&state, &model_name, &texts)?;
    let (folder, rows, info) = run_batched(&state, &model_name, "embedding", &texts).await?;
    let Rows::Embeddings(vectors) = rows else {
        return Err(ApiError::internal("the batch worker answered with labels"));
    };
    let dims = vectors.first().map(|v| v.vector.len()).unwrap_or(0);
    if let Some(wanted) = dimensions {
        if wanted != dims {
            return Err(ApiError::invalid(format!(
                "`dimensions` is {wanted}, but `{model_name}` gives {dims}-dimensional vectors (it cannot shorten them); leave `dimensions` out"
            )));
        }
    }
    let latency = ms(started.elapsed());
    let call_id = traffic::call_id();
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = e.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.vector)
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    let tokens: usize = vectors.iter().map(|e| e.tokens).sum();
    let response = with_call_id(
        &call_id,
        json!({
            "id": call_id,
            "object": "list",
            "data": data,
            "model": model_name,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    );
    let call = traffic::Call {
        id: &call_id,
        endpoint: "/v1/embeddings",
        target_id: state.target_id(&folder).await?,
        client: Client::new(peer.map(|c| c.0 .0), &headers),
        params: json!({ "encoding_format": if base64 { "base64" } else { "float" } }),
        batch: info,
    };
    // The vector itself is not stored: it is reproducible from the input and the model
    // fingerprint, and would make the log hundreds of times larger.
    let results = call.results(&state, texts, |i| {
        let e = &vectors[i];
        let answer = Answer { latency_ms: Some(latency), tokens_in: Some(e.tokens as i64), ..Answer::default() };
        (answer, json!({ "dimensions": e.vector.len(), "truncated": e.truncated }))
    });
    traffic::record(&state, results).await;
    Ok(response)
}

// ---- /v1/chat/completions -----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    /// Benchtop extensions (vLLM and others accept them too).
    top_k: Option<u64>,
    repetition_penalty: Option<f32>,
    seed: Option<i64>,
    stop: Option<Value>,
    n: Option<u64>,
    tools: Option<Value>,
    functions: Option<Value>,
    logprobs: Option<bool>,
    response_format: Option<Value>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
}

#[derive(Debug, Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

fn chat_messages(state: &AppState, value: Option<&Value>) -> Result<Vec<Message>, ApiError> {
    let limits = &state.config.limits;
    let Some(Value::Array(items)) = value else {
        return Err(ApiError::invalid("`messages` must be an array of {role, content} objects"));
    };
    if items.is_empty() {
        return Err(ApiError::invalid("`messages` is empty: send at least one message"));
    }
    if items.len() > limits.max_messages {
        return Err(ApiError::too_large(format!(
            "{} messages; at most {} per request",
            items.len(),
            limits.max_messages
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "`messages[{i}].role` is `{other}`; Benchtop's local models take system, developer, user and assistant messages"
                    )))
                }
                None => return Err(ApiError::invalid(format!("`messages[{i}].role` is missing"))),
            };
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(text)) => Ok(text.to_string()),
                        (kind, _) => Err(ApiError::invalid(format!(
                            "`messages[{i}]` has a `{}` part; local models take text parts only",
                            kind.unwrap_or("untyped")
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(""),
                None | Some(Value::Null) => String::new(),
                Some(_) => return Err(ApiError::invalid(format!("`messages[{i}].content` must be a string or text parts"))),
            };
            let chars = content.chars().count();
            if chars > limits.max_input_chars {
                return Err(ApiError::too_large(format!(
                    "`messages[{i}].content` is {chars} characters; the limit is {} (--max-input-chars)",
                    limits.max_input_chars
                )));
            }
            Ok(Message::new(role, content))
        })
        .collect()
}

fn chat_params(state: &AppState, req: &ChatRequest) -> Result<GenerateParams, ApiError> {
    let unsupported =
        |what: &str| Err(ApiError::invalid(format!("{what} is not supported by Benchtop's local models")));
    if req.n.is_some_and(|n| n != 1) {
        return unsupported("`n` other than 1");
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()))
        || req.functions.as_ref().is_some_and(|f| !f.is_null())
    {
        return unsupported("tool calling (`tools`, `functions`)");
    }
    if req.logprobs == Some(true) {
        return unsupported("`logprobs`");
    }
    if let Some(format) = &req.response_format {
        if format.get("type").and_then(Value::as_str).is_some_and(|t| t != "text") {
            return unsupported("`response_format` other than text");
        }
    }
    if req.frequency_penalty.is_some_and(|p| p != 0.0) || req.presence_penalty.is_some_and(|p| p != 0.0) {
        return unsupported("`frequency_penalty` / `presence_penalty` (use `repetition_penalty`)");
    }
    let limit = state.config.limits.max_new_tokens;
    let max_new_tokens = match req.max_completion_tokens.or(req.max_tokens) {
        Some(0) => return Err(ApiError::invalid("`max_tokens` must be at least 1")),
        Some(n) if n as usize > limit => {
            return Err(ApiError::invalid(format!("`max_tokens` is {n}; the server allows at most {limit}")))
        }
        Some(n) => Some(n as usize),
        None => None,
    };
    let stop = match &req.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 => items
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(|| ApiError::invalid("`stop` must hold strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::invalid("`stop` must be a string or an array of up to 4 strings")),
    };
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid("`stop` strings must not be empty"));
    }
    Ok(GenerateParams {
        max_new_tokens,
        temperature: req.temperature,
        top_k: req.top_k.map(|k| k as usize),
        top_p: req.top_p,
        repetition_penalty: req.repetition_penalty,
        seed: req.seed.map(|s| s as u64),
        stop,
        no_cache: false,
    })
}

/// Sets the flag when dropped: a client that goes away stops its generation.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = object(body)?;
    let model_name = model_of(&body)?;
    let req: ChatRequest = serde_json::from_value(Value::Object(body))
        .map_err(|e| ApiError::invalid(format!("the request does not match the chat completions format: {e}")))?;
    let messages = chat_messages(&state, req.messages.as_ref())?;
    let params = chat_params(&state, &req)?;
    let stream = req.stream.unwrap_or(false);
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    if let Some(last_user) = messages.iter().rev().find(|m| m.role == Role::User) {
        check_rules(&state, &model_name, std::slice::from_ref(&last_user.content))?;
    }

    // Load, render and tokenize, and check the settings, before answering anything: a bad
    // request gets its 4xx even when it asked for a stream.
    let engine = Arc::clone(&state.engine);
    let name = model_name.clone();
    let prompt = Prompt::Chat(messages.clone());
    let checked = params.clone();
    let (generator, prompt_ids) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        // A loaded generator is answered from memory; only a failed load reads the folder,
        // to say plainly when the model is not a generation model at all.
        let generator = engine.generator(&name).map_err(|err| match engine.catalog().find(&name) {
            Ok(folder) if folder.task != Task::Generation => ApiError::invalid(format!(
                "model `{name}` is a {} model; chat completions need a generation model (GET /v1/models lists the tasks)",
                folder.task.name()
            )),
            _ => ApiError::from(err),
        })?;
        generator.sampling(&checked)?;
        let ids = generator.prompt_ids(&prompt)?;
        if ids.len() >= generator.context() {
            return Err(ApiError::invalid(format!(
                "the conversation is {} tokens, but `{name}` has a context of {} tokens (prompt and answer together); shorten it",
                ids.len(),
                generator.context()
            )));
        }
        Ok((generator, ids))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let target_id = state.target_id(generator.folder()).await?;
    let slot = state.generation_slot().await?;

    let call_id = traffic::call_id();
    let created = now_ms() / 1000;
    let cancel = Arc::new(AtomicBool::new(false));
    let client = Client::new(peer.map(|c| c.0 .0), &headers);
    let input = messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default();
    let log = ChatLog {
        state: Arc::clone(&state),
        call_id: call_id.clone(),
        target_id,
        input,
        meta: json!({
            "endpoint": "/v1/chat/completions",
            "index": 0,
            "messages": messages,
            "params": {
                "max_tokens": params.max_new_tokens, "temperature": params.temperature, "top_p": params.top_p,
                "top_k": params.top_k, "repetition_penalty": params.repetition_penalty, "seed": params.seed,
                "stop": params.stop, "stream": stream,
            },
            "client": client.json(),
        }),
    };

    if !stream {
        let guard = CancelOnDrop(Arc::clone(&cancel));
        let generation = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let outcome = generator.generate_ids(&prompt_ids, &params, &cancel, &mut |_| {}, started);
            log.record(&outcome, started);
            outcome
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
        drop(guard);
        let body = json!({
            "id": call_id,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": generation.text },
                "finish_reason": finish_name(generation.finish_reason),
                "logprobs": null,
            }],
            "usage": usage(&generation),
        });
        return Ok(with_call_id(&call_id, body));
    }

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let chunk = {
        let (id, model) = (call_id.clone(), model_name.clone());
        move |delta: Value, finish: Option<&str>| {
            Event::default().data(
                json!({
                    "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
                })
                .to_string(),
            )
        }
    };
    let _ = tx.send(chunk(json!({ "role": "assistant", "content": "" }), None));
    let (id, model) = (call_id.clone(), model_name.clone());
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut on_text = |piece: &str| {
            // The receiver is gone when the client disconnected: stop generating.
            if tx.send(chunk(json!({ "content": piece }), None)).is_err() {
                cancel.store(true, Ordering::SeqCst);
            }
        };
        let outcome = generator.generate_ids(&prompt_ids, &params, &cancel, &mut on_text, started);
        log.record(&outcome, started);
        match outcome {
            Ok(generation) => {
                let _ = tx.send(chunk(json!({}), Some(finish_name(generation.finish_reason))));
                if include_usage {
                    let last = json!({
                        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [], "usage": usage(&generation),
                    });
                    let _ = tx.send(Event::default().data(last.to_string()));
                }
            }
            Err(err) => {
                let _ = tx.send(Event::default().data(ApiError::from(err).body().to_string()));
            }
        }
        let _ = tx.send(Event::default().data("[DONE]"));
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    });
    let mut response = Sse::new(events).keep_alive(KeepAlive::default()).into_response();
    if let Ok(value) = HeaderValue::from_str(&call_id) {
        response.headers_mut().insert(CALL_ID_HEADER, value);
    }
    Ok(response)
}

fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Cancelled => "stop",
        FinishReason::Length => "length",
    }
}

fn usage(generation: &Generation) -> Value {
    let u = generation.usage;
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// What a chat call records, once its generation has ended (normally, cancelled or failed).
struct ChatLog {
    state: Arc<AppState>,
    call_id: String,
    target_id: Id,
    input: String,
    meta: Value,
}

impl ChatLog {
    /// Runs on the generation's blocking thread.
    fn record(self, outcome: &Result<Generation, benchtop_core::engine::EngineError>, started: Instant) {
        let mut meta = self.meta;
        let answer = match outcome {
            Ok(g) => {
                meta["finish_reason"] = json!(g.finish_reason.name());
                meta["seed"] = json!(g.seed);
                Answer {
                    output: Some(g.text.clone()),
                    error: (g.finish_reason == FinishReason::Cancelled)
                        .then(|| "the client went away before the end".to_string()),
                    latency_ms: Some(ms(started.elapsed())),
                    ttft_ms: Some(ms(g.time_to_first_token)),
                    tokens_in: Some(g.usage.prompt_tokens as i64),
                    tokens_out: Some(g.usage.completion_tokens as i64),
                    ..Answer::default()
                }
            }
            Err(e) => {
                Answer { error: Some(e.to_string()), latency_ms: Some(ms(started.elapsed())), ..Answer::default() }
            }
        };
        let result = NewResult {
            run_id: self.state.traffic_run,
            case_id: None,
            target_id: self.target_id,
            input: self.input,
            answer,
            cache_key: None,
            call_id: Some(self.call_id),
            meta: Some(meta),
        };
        traffic::record_blocking(&self.state, result);
    }
}

// ---- /v1/feedback -------------------------------------------------------------------------------

pub async fn feedback(State(state): State<Arc<AppState>>, ApiJson(body): ApiJson<Value>) -> Result<Response, ApiError> {
    let mut body = object(body)?;
    let call_id = match body.remove("id") {
        Some(Value::String(id)) if id.starts_with("call_") => id,
        Some(_) => return Err(ApiError::invalid("`id` must be a call id (`call_…`), as returned by the call")),
        None => {
            return Err(ApiError::invalid(
                "`id` is missing: the id of the call (its response's `id` or x-benchtop-call-id header)",
            ))
        }
    };
    let index = match body.remove("index") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| ApiError::invalid("`index` must be an integer ≥ 0"))? as usize),
    };
    let annotator = match body.remove("annotator") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::invalid("`annotator` must be a string")),
    };
    let result_id = resolve_call(&state, &call_id, index).await?;
    if body.get("kind").and_then(Value::as_str) == Some("preference") {
        // B may be named by its call id too; who was shown left defaults to A.
        if let Some(Value::String(other)) = body.get("other").cloned() {
            let other_id = resolve_call(&state, &other, None).await?;
            body.insert("other".into(), json!(other_id));
        }
        body.entry("blind").or_insert(json!(false));
        body.entry("shown_left").or_insert(json!(result_id));
    }
    let feedback = parse_feedback(&body)?;
    let event = NewFeedback { result_id, feedback, source: LabelSource::Human, annotator };
    let id = state.with_store(move |store| Ok(store.add_feedback(event)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "call_id": call_id, "result_id": result_id }))).into_response())
}

/// A feedback event from its JSON fields (`kind` and the kind's own), refusing unknown fields.
pub fn parse_feedback(body: &Map<String, Value>) -> Result<Feedback, ApiError> {
    let feedback: Feedback = serde_json::from_value(Value::Object(body.clone())).map_err(|e| {
        ApiError::invalid(format!(
            "not a valid feedback event ({e}); `kind` is one of thumb {{up}}, rating {{stars}}, preference {{other, choice}}, correction {{text|label}}, tag {{tag, present}}, note {{text}}, undo {{feedback_id}}"
        ))
    })?;
    // Serialising the parsed event back lists every field the kind has.
    let known = serde_json::to_value(&feedback).unwrap_or(Value::Null);
    if let Some(extra) = body.keys().find(|k| known.get(k.as_str()).is_none()) {
        return Err(ApiError::invalid(format!("unknown field `{extra}` for feedback of kind `{}`", feedback.kind())));
    }
    Ok(feedback)
}

/// The result a call id (and index, for calls with several inputs) names.
async fn resolve_call(state: &Arc<AppState>, call_id: &str, index: Option<usize>) -> Result<Id, ApiError> {
    let id = call_id.to_string();
    let ids = state
        .with_store(move |store| {
            let ids = store.call_results(&id)?;
            if !ids.is_empty() {
                return Ok(ids);
            }
            // Logged calls are queued, not yet committed, for a moment after their response.
            store.flush()?;
            Ok(store.call_results(&id)?)
        })
        .await?;
    match (ids.len(), index) {
        (0, _) => Err(ApiError::not_found(format!(
            "no logged call has id `{call_id}` (calls are logged unless the server runs with --no-log)"
        ))),
        (1, None) => Ok(ids[0]),
        (n, None) => {
            Err(ApiError::invalid(format!("call `{call_id}` had {n} inputs; say which with `index` (0–{})", n - 1)))
        }
        (n, Some(i)) if i >= n => {
            Err(ApiError::invalid(format!("`index` is {i}, but call `{call_id}` had {n} inputs")))
        }
        (_, Some(i)) => Ok(ids[i]),
    }
}
