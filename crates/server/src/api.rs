//! The UI's API under `/api/…`: each handler translates one core operation (arguments in, errors
//! out) and nothing more. Store calls run on blocking threads.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use benchtop_core::providers::PriceTable;
use benchtop_core::store::{Id, LabelSource, NewCase, NewFeedback, ReviewQueue};
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// Keep each result's `meta.detail` (cache key, the provider call's own details): large, and
    /// not needed to show a run.
    #[serde(default)]
    detail: bool,
    /// Skip this many results (oldest first).
    #[serde(default)]
    offset: usize,
    /// At most this many results (default: all).
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(serde::Serialize)]
pub struct RunResults {
    targets: Vec<benchtop_core::store::TargetRow>,
    /// Results in the run, whatever `offset` and `limit` chose.
    total: usize,
    results: Vec<benchtop_core::store::StoredResult>,
}

/// A run's results with its targets' names: what the runs matrix shows. 10,000 results are a few
/// MB, so the UI asks for the first screenful (`limit`) before the rest.
pub async fn run_results(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Id>,
    query: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunResults>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid(format!("{}; use ?offset=N&limit=N&detail=true", e.body_text())))?;
    let (targets, total, mut results) = state
        .with_store(move |s| {
            s.run_info(id)?;
            Ok((s.run_targets(id)?, s.count_results(id)?, s.run_results_range(id, query.offset, query.limit)?))
        })
        .await?;
    if !query.detail {
        for result in &mut results {
            if let Some(meta) = result.meta.as_object_mut() {
                meta.remove("detail");
            }
        }
    }
    Ok(Json(RunResults { targets, total, results }))
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

/// A provider's key, into the OS keychain (`{"key": "…"}`); never stored elsewhere, never echoed.
pub async fn put_provider_key(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<KeyBody>,
) -> Result<Json<Value>, ApiError> {
    let known = name.clone();
    let saved = state.with_store(move |s| Ok(s.saved_providers()?)).await?;
    let Some(provider) = saved.into_iter().find(|p| p.config.name == known) else {
        return Err(ApiError::not_found(format!("no provider named `{name}`; save it first")));
    };
    let key =
        benchtop_core::providers::ApiKey::new(body.key.trim()).ok_or_else(|| ApiError::invalid("the key is empty"))?;
    let config = provider.config;
    tokio::task::spawn_blocking(move || {
        benchtop_core::providers::keychain_set(&config.name, &key).map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "keychain_error",
                format!(
                    "the OS keychain could not store the key ({e}); set the variable {} instead",
                    benchtop_core::providers::env_name(&config)
                ),
            )
        })?;
        Ok(Json(json!({ "name": config.name, "key": key_status(&config) })))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    key: String,
}

// ---- test sets -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSet {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

pub async fn create_test_set(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<NewSet>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::invalid("a test set needs a name"));
    }
    let owned = name.clone();
    let exists = state.with_store(move |s| Ok(s.test_set_by_name(&owned)?)).await?;
    if exists.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", format!("a test set named `{name}` exists")));
    }
    let id = state.with_store(move |s| Ok(s.create_test_set(&name, body.description.as_deref())?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

pub async fn delete_test_set(State(state): State<Arc<AppState>>, Path(id): Path<Id>) -> Result<Response, ApiError> {
    state.with_store(move |s| Ok(s.delete_test_set(id)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCases {
    cases: Vec<NewCase>,
}

/// Add cases to a set (a pasted block, a new row); exact duplicates are skipped and counted.
pub async fn add_cases(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Id>,
    ApiJson(body): ApiJson<NewCases>,
) -> Result<Json<Value>, ApiError> {
    check_cases(&body.cases)?;
    let report = state.with_store(move |s| Ok(s.add_cases(id, body.cases)?)).await?;
    Ok(Json(json!(report)))
}

pub async fn update_case(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Id>,
    ApiJson(case): ApiJson<NewCase>,
) -> Result<Response, ApiError> {
    check_cases(std::slice::from_ref(&case))?;
    state.with_store(move |s| Ok(s.update_case(id, case)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete_case(State(state): State<Arc<AppState>>, Path(id): Path<Id>) -> Result<Response, ApiError> {
    state.with_store(move |s| Ok(s.delete_case(id)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn check_cases(cases: &[NewCase]) -> Result<(), ApiError> {
    for (i, case) in cases.iter().enumerate() {
        if case.vars.is_empty() {
            return Err(ApiError::invalid(format!("case {}: `vars` is empty (a case needs at least `text`)", i + 1)));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// `csv` or `jsonl`.
    format: String,
    /// The file's text.
    content: String,
    #[serde(default)]
    vars: Option<Vec<String>>,
    #[serde(default)]
    expected: Option<String>,
    #[serde(default)]
    tags: Option<String>,
    /// Only show what would be imported.
    #[serde(default)]
    dry_run: bool,
}

/// Import a CSV or JSONL file's text into a set with a column mapping. A dry run answers the
/// columns found, the first rows as cases and every rejected row; otherwise the cases are added.
pub async fn import_cases(
    State(state): State<Arc<AppState>>,
    Path(id): Path<Id>,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<Json<Value>, ApiError> {
    use benchtop_export::import::{import_csv, import_jsonl, ColumnMap};
    let map = ColumnMap { vars: body.vars, expected: body.expected, tags: body.tags };
    let bytes = body.content.into_bytes();
    let (report, columns) = match body.format.as_str() {
        "csv" => {
            let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let columns = String::from_utf8_lossy(header)
                .trim_start_matches('\u{feff}')
                .trim_end()
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_string())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>();
            (import_csv(bytes.as_slice(), &map), columns)
        }
        "jsonl" => {
            let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let columns = serde_json::from_slice::<serde_json::Map<String, Value>>(first)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            (import_jsonl(bytes.as_slice(), &map), columns)
        }
        other => return Err(ApiError::invalid(format!("format `{other}` is not csv or jsonl"))),
    };
    let report = report.map_err(|e| ApiError::invalid(e.to_string()))?;
    let rejected = report.rejected;
    if body.dry_run {
        let preview: Vec<&NewCase> = report.cases.iter().take(20).collect();
        return Ok(Json(
            json!({ "columns": columns, "count": report.cases.len(), "preview": preview, "rejected": rejected }),
        ));
    }
    let count = report.cases.len();
    let added = state.with_store(move |s| Ok(s.add_cases(id, report.cases)?)).await?;
    Ok(Json(json!({ "columns": columns, "count": count, "added": added, "rejected": rejected })))
}

// ---- review, settings ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    queue: ReviewQueue,
    #[serde(default)]
    limit: Option<usize>,
}

/// Results waiting for a person: `?queue=unrated` or `?queue=disagreements`.
pub async fn review(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ReviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid(format!("{}; use ?queue=unrated|disagreements", e.body_text())))?;
    let limit = query.limit.unwrap_or(200).clamp(1, 5000);
    let items = state.with_store(move |s| Ok(s.review_queue(query.queue, limit)?)).await?;
    Ok(Json(json!({ "items": items })))
}

/// Where things are and how this server was started (never the token: the UI already has it).
pub async fn settings(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let prices_path = state.data_dir.join("prices.json");
    let prices = tokio::task::spawn_blocking(move || PriceTable::load(&prices_path))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::invalid)?;
    Ok(Json(json!({
        "data_dir": state.data_dir,
        "log": state.store.path(),
        "models_dirs": state.engine.catalog().dirs(),
        "prices": prices,
        "prices_file": state.data_dir.join("prices.json"),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// Replace the price table (`{"model": {"input_per_mtok": …, "output_per_mtok": …}}`), kept in
/// `<data dir>/prices.json`.
pub async fn put_prices(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let table: PriceTable =
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("not a price table: {e}")))?;
    if let Some((model, _)) = table.0.iter().find(|(_, p)| !(p.input_per_mtok >= 0.0 && p.output_per_mtok >= 0.0)) {
        return Err(ApiError::invalid(format!("the price of `{model}` must be a number ≥ 0")));
    }
    let path = state.data_dir.join("prices.json");
    let text = serde_json::to_string_pretty(&table).map_err(|e| ApiError::internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        // Written beside, then renamed: a crash leaves the old table or the new one.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("cannot write prices.json: {e}")))?;
    Ok(Json(json!(table)))
}

// ---- model folders ------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDir {
    /// A model folder on this machine.
    dir: std::path::PathBuf,
    /// The name to install it as (default: the folder's name).
    #[serde(default)]
    name: Option<String>,
}

/// The manager's words name command-line flags; here they are fields.
pub(crate) fn manage_message(e: &benchtop_core::models::ManageError) -> String {
    e.to_string().replace("with --name", "with `name`").replace("--name", "`name`")
}

/// Check a model folder the way using it would (load it into ONNX Runtime): its task, files,
/// inputs and outputs, memory; or what is wrong and how to fix it (422).
pub async fn validate_model(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ModelDir>,
) -> Result<Json<Value>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let validation = tokio::task::spawn_blocking(move || benchtop_core::models::validate(engine.runtime(), &body.dir))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_model", e.to_string()))?;
    Ok(Json(json!(validation)))
}

/// Install a model folder among the user's models (`<data dir>/models/<name>`), validated first.
pub async fn add_model(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ModelDir>,
) -> Result<Response, ApiError> {
    use benchtop_core::models::ManageError;
    let engine = Arc::clone(&state.engine);
    let models_dir = state.data_dir.join("models");
    let added = tokio::task::spawn_blocking(move || {
        benchtop_core::models::add(engine.runtime(), &body.dir, &models_dir, body.name.as_deref())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    match added {
        Ok((dir, validation)) => {
            Ok((StatusCode::CREATED, Json(json!({ "dir": dir, "validation": validation }))).into_response())
        }
        Err(e @ ManageError::Exists { .. }) => Err(ApiError::new(StatusCode::CONFLICT, "conflict", manage_message(&e))),
        Err(e @ ManageError::BadName { .. }) => Err(ApiError::invalid(manage_message(&e))),
        Err(e @ ManageError::Engine(_)) => {
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_model", manage_message(&e)))
        }
        Err(e) => Err(ApiError::internal(manage_message(&e))),
    }
}
