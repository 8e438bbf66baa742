//! The UI's API under `/api/…`: each handler translates one core operation (arguments in, errors
//! out) and nothing more. Store calls run on blocking threads.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use benchtop_core::store::{Id, LabelSource, NewFeedback};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::{parse_feedback, ApiJson};

/// Every model folder the engine sees, usable or not (with why not).
pub async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let entries = tokio::task::spawn_blocking(move || engine.catalog().list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let models: Vec<Value> = entries
        .into_iter()
        .map(|entry| match entry.folder {
            Ok(folder) => json!({ "name": entry.name, "dir": entry.dir, "ok": true, "folder": folder }),
            Err(e) => json!({ "name": entry.name, "dir": entry.dir, "ok": false, "problem": e.to_string() }),
        })
        .collect();
    Ok(Json(json!({ "models": models })))
}

pub async fn test_sets(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let sets = state.with_store(|s| Ok(s.test_sets()?)).await?;
    Ok(Json(json!({ "test_sets": sets })))
}

pub async fn cases(State(state): State<Arc<AppState>>, Path(id): Path<Id>) -> Result<Json<Value>, ApiError> {
    let cases = state.with_store(move |s| Ok(s.cases(id)?)).await?;
    Ok(Json(json!({ "cases": cases })))
}

pub async fn runs(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let runs = state.with_store(|s| Ok(s.runs()?)).await?;
    Ok(Json(json!({ "runs": runs })))
}

pub async fn run(State(state): State<Arc<AppState>>, Path(id): Path<Id>) -> Result<Json<Value>, ApiError> {
    let info = state.with_store(move |s| Ok(s.run_info(id)?)).await?;
    Ok(Json(json!(info)))
}

pub async fn run_results(State(state): State<Arc<AppState>>, Path(id): Path<Id>) -> Result<Json<Value>, ApiError> {
    let results = state
        .with_store(move |s| {
            s.run_info(id)?;
            Ok(s.run_results(id)?)
        })
        .await?;
    Ok(Json(json!({ "results": results })))
}

pub async fn result_feedback(State(state): State<Arc<AppState>>, Path(id): Path<Id>) -> Result<Json<Value>, ApiError> {
    let (current, history) = state.with_store(move |s| Ok((s.current_feedback(id)?, s.feedback_history(id)?))).await?;
    Ok(Json(json!({ "current": current, "history": history })))
}

/// Feedback on a result by its id: `{result_id, kind, …the kind's fields, annotator?}`.
pub async fn add_feedback(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::invalid("the body must be a JSON object"));
    };
    let result_id = body
        .remove("result_id")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| ApiError::invalid("`result_id` (an integer) is missing"))?;
    let annotator = match body.remove("annotator") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::invalid("`annotator` must be a string")),
    };
    let feedback = parse_feedback(&body)?;
    let event = NewFeedback { result_id, feedback, source: LabelSource::Human, annotator };
    let id = state.with_store(move |s| Ok(s.add_feedback(event)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "result_id": result_id }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    q: String,
    #[serde(default)]
    limit: Option<usize>,
}

/// Full-text search over every logged input and output (API traffic included).
pub async fn history(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("{}; use ?q=words&limit=N", e.body_text())))?;
    if query.q.trim().is_empty() {
        return Err(ApiError::invalid("`q` is empty: give words to search for"));
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let hits = state.with_store(move |s| Ok(s.search(&query.q, limit)?)).await?;
    Ok(Json(json!({ "hits": hits })))
}

// ---- providers ------------------------------------------------------------------------------------

/// Where a provider's key would come from — never the key.
fn key_status(config: &benchtop_core::providers::ProviderConfig) -> Value {
    use benchtop_core::providers::{ApiKey, KeySource};
    if config.no_key {
        return json!({ "needed": false, "available": true, "source": null });
    }
    match ApiKey::resolve(config) {
        Some((_, KeySource::Keychain)) => json!({ "needed": true, "available": true, "source": "keychain" }),
        Some((_, KeySource::Env(name))) => {
            json!({ "needed": true, "available": true, "source": format!("env {name}") })
        }
        None => json!({ "needed": true, "available": false, "source": null,
            "env": benchtop_core::providers::env_name(config) }),
    }
}

/// The providers set up, each with where its key would come from.
pub async fn providers(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let list = state.with_store(|s| {
        let saved = s.saved_providers()?;
        // The keychain may block: this runs on a blocking thread already.
        Ok(saved
            .into_iter()
            .map(|p| json!({ "name": p.config.name, "config": p.config, "models": p.models, "key": key_status(&p.config) }))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "providers": list })))
}

/// Add or replace provider `name`: `{kind, base_url, models?, key_env?, no_key?, timeouts…}`.
pub async fn put_provider(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::invalid("the body must be a JSON object"));
    };
    if ["api_key", "key", "apiKey"].iter().any(|k| body.contains_key(*k)) {
        return Err(ApiError::invalid(
            "keys are never stored with the provider; keep it in the OS keychain (`benchtop keys set NAME`) or in the variable `key_env` names",
        ));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
        return Err(ApiError::invalid("a provider name is letters, digits, - and _"));
    }
    let models = match body.remove("models") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<String>>(v)
            .map_err(|_| ApiError::invalid("`models` must be an array of model ids"))?,
    };
    body.insert("name".into(), Value::String(name.clone()));
    let config: benchtop_core::providers::ProviderConfig = serde_json::from_value(Value::Object(body))
        .map_err(|e| ApiError::invalid(format!("not a valid provider: {e}")))?;
    if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
        return Err(ApiError::invalid("`base_url` must start with http:// or https://"));
    }
    let saved = benchtop_core::store::SavedProvider { config, models };
    let answer = json!({ "name": name, "config": saved.config, "models": saved.models });
    state.with_store(move |s| Ok(s.save_provider(saved)?)).await?;
    Ok(Json(answer))
}

pub async fn delete_provider(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let owned = name.clone();
    if state.with_store(move |s| Ok(s.delete_provider(&owned)?)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no provider named `{name}`")))
    }
}
