//! Long work started from the UI — comparison runs and exports — as jobs: started by a POST that
//! answers at once, watched as server-sent events (`GET /api/jobs/{id}/events`) or polled
//! (`GET /api/jobs/{id}`), cancelled with `POST /api/jobs/{id}/cancel`. Each job is one core
//! operation (`Runner::run`, `benchtop_export::export`); this module only carries its progress.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use benchtop_core::providers::PriceTable;
use benchtop_core::runs::{providers_for, Cases, RunEvent, RunOptions, RunSpec, Runner};
use benchtop_core::store::Id;
use benchtop_export::{ExportOptions, Format, SplitSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::ApiJson;

/// A job's state, as `GET /api/jobs/{id}` gives it and the first event of a stream repeats.
#[derive(Debug, Clone, Serialize)]
pub struct JobState {
    pub id: u64,
    pub kind: &'static str,
    /// `running`, `done`, `failed` or `cancelled`.
    pub status: &'static str,
    pub done: u64,
    pub total: Option<u64>,
    pub run_id: Option<Id>,
    /// The outcome: a run's summary, an export's manifest.
    pub result: Option<Value>,
    pub error: Option<String>,
}

pub struct Job {
    state: Mutex<JobState>,
    events: broadcast::Sender<Value>,
    cancel: CancellationToken,
}

impl Job {
    fn snapshot(&self) -> JobState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Change the state and tell every watcher (`event` goes out as is, with the job id).
    fn update(&self, change: impl FnOnce(&mut JobState), mut event: Value) {
        let id = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            change(&mut state);
            state.id
        };
        event["job"] = json!(id);
        // Nobody watching is fine.
        let _ = self.events.send(event);
    }

    fn finish(&self, outcome: Result<Value, String>, cancelled: bool) {
        let (status, event) = match (&outcome, cancelled) {
            (Ok(_), true) => ("cancelled", "cancelled"),
            (Ok(_), false) => ("done", "done"),
            (Err(_), _) => ("failed", "failed"),
        };
        let (result, error) = match outcome {
            Ok(result) => (Some(result), None),
            Err(error) => (None, Some(error)),
        };
        let body = json!({ "event": event, "result": result, "error": error });
        self.update(
            |s| {
                s.status = status;
                s.result = result;
                s.error = error;
            },
            body,
        );
    }
}

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    fn start(&self, kind: &'static str) -> Arc<Job> {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let (events, _) = broadcast::channel(1024);
        let state =
            JobState { id, kind, status: "running", done: 0, total: None, run_id: None, result: None, error: None };
        let job = Arc::new(Job { state: Mutex::new(state), events, cancel: CancellationToken::new() });
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Arc::clone(&job));
        job
    }

    fn get(&self, id: u64) -> Result<Arc<Job>, ApiError> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no job {id} (jobs are kept until the server stops)")))
    }

    /// Cancel every running job and wait (up to `patience`) for them to wind down: a cancelled
    /// run is marked so in the log and can be resumed with `benchtop run --resume`.
    pub async fn cancel_all(&self, patience: std::time::Duration) {
        let jobs: Vec<Arc<Job>> = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for job in &jobs {
            job.cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + patience;
        while jobs.iter().any(|j| j.snapshot().status == "running") && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

// ---- runs ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The run file's content, as JSON (the YAML keys of `benchtop run`), with `test_set` (a
    /// stored test set's name) or `input` — not `tests`, a file on the server.
    spec: RunSpec,
    #[serde(default)]
    no_cache: bool,
}

/// A run request made ready: the spec (with the saved providers it names filled in), its cases
/// and a runner with the providers' keys.
async fn prepare_run(state: &Arc<AppState>, mut spec: RunSpec) -> Result<(RunSpec, Cases, Runner), ApiError> {
    if spec.tests.is_some() {
        return Err(ApiError::invalid("`tests` names a file; over the API, import it first and give `test_set`"));
    }
    // Providers saved in Settings need not be repeated in every spec.
    let saved = state.with_store(|s| Ok(s.saved_providers()?)).await?;
    for target in &spec.targets {
        if let Some(name) = &target.provider {
            if !spec.providers.iter().any(|p| &p.name == name) {
                if let Some(p) = saved.iter().find(|p| &p.config.name == name) {
                    spec.providers.push(p.config.clone());
                }
            }
        }
    }
    spec.check().map_err(|e| ApiError::invalid(e.to_string()))?;
    let cases = match (&spec.test_set, &spec.input) {
        (Some(name), None) => {
            let name = name.clone();
            let set = state.with_store(move |store| Ok(store.test_set_by_name(&name)?)).await?;
            let set = set.ok_or_else(|| {
                ApiError::not_found(format!("no test set named `{}`", spec.test_set.as_deref().unwrap_or("")))
            })?;
            Cases::TestSet(set.id)
        }
        (None, Some(input)) => Cases::Input(input.clone()),
        _ => return Err(ApiError::invalid("give exactly one of `test_set` and `input`")),
    };
    let prices_path = state.data_dir.join("prices.json");
    let for_keys = spec.clone();
    // Keys come from the keychain, which may block.
    let providers = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let prices = PriceTable::load(&prices_path).map_err(ApiError::invalid)?;
        providers_for(&for_keys, &prices).map_err(|e| ApiError::invalid(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let runner = Runner::new(Arc::clone(&state.store), Some(Arc::clone(&state.engine)), providers);
    Ok((spec, cases, runner))
}

/// `POST /api/runs`: start a comparison run; answers once it has started (or failed to).
pub async fn start_run(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<StartRun>,
) -> Result<Response, ApiError> {
    let (spec, cases, runner) = prepare_run(&state, body.spec).await?;
    let job = state.jobs.start("run");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Result<Id, String>>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let on_event = {
        let (job, started_tx) = (Arc::clone(&job), Arc::clone(&started_tx));
        Arc::new(move |event: RunEvent| {
            let body = serde_json::to_value(&event).unwrap_or(Value::Null);
            match event {
                RunEvent::Started { run_id, cells, already_done } => {
                    job.update(
                        |s| {
                            s.run_id = Some(run_id);
                            s.total = Some((cells + already_done) as u64);
                            s.done = already_done as u64;
                        },
                        body,
                    );
                    if let Some(tx) = started_tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let _ = tx.send(Ok(run_id));
                    }
                }
                RunEvent::Text { .. } => job.update(|_| {}, body),
                RunEvent::Cell(_) => job.update(|s| s.done += 1, body),
            }
        })
    };
    let task_job = Arc::clone(&job);
    tokio::spawn(async move {
        let options = RunOptions { no_cache: body.no_cache, ..RunOptions::default() };
        let outcome = runner.run(&spec, cases, options, on_event, task_job.cancel.clone()).await;
        let cancelled = task_job.cancel.is_cancelled();
        let outcome =
            outcome.map(|summary| serde_json::to_value(summary).unwrap_or(Value::Null)).map_err(|e| e.to_string());
        if let Some(tx) = started_tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(outcome.clone().map(|_| 0));
        }
        task_job.finish(outcome, cancelled);
    });
    match started_rx.await {
        Ok(Ok(run_id)) => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "job": job.snapshot().id, "run_id": run_id }))).into_response())
        }
        Ok(Err(error)) => Err(ApiError::invalid(format!("the run could not start: {error}"))),
        Err(_) => Err(ApiError::internal("the run stopped before it started")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// A run spec with `input` (and usually `prompt.system` and several `targets`).
    spec: RunSpec,
}

/// `POST /api/playground`: ask every target of `spec` its `input` at once and stream the answers
/// as server-sent events in this response: `started` (run id), `text` (a piece of one target's
/// answer), `cell` (one target done), then `done` with the recorded results (ids for feedback)
/// or `failed`. Recorded as an ad-hoc run; closing the stream cancels what is still running.
pub async fn playground(State(state): State<Arc<AppState>>, ApiJson(body): ApiJson<Ask>) -> Result<Response, ApiError> {
    if body.spec.input.is_none() || body.spec.test_set.is_some() {
        return Err(ApiError::invalid("the playground asks one `input`; runs over a test set go to POST /api/runs"));
    }
    let (spec, cases, runner) = prepare_run(&state, body.spec).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let cancel = CancellationToken::new();
    let on_event = {
        let tx = tx.clone();
        Arc::new(move |event: RunEvent| {
            let name = match &event {
                RunEvent::Started { .. } => "started",
                RunEvent::Text { .. } => "text",
                RunEvent::Cell(_) => "cell",
            };
            let _ = tx.send(Event::default().event(name).data(json!(event).to_string()));
        })
    };
    let (store, run_cancel) = (Arc::clone(&state.store), cancel.clone());
    tokio::spawn(async move {
        let options = RunOptions { stream_text: true, no_cache: true, ..RunOptions::default() };
        let last = match runner.run(&spec, cases, options, on_event, run_cancel).await {
            Ok(summary) => {
                let run_id = summary.run_id;
                let results = tokio::task::spawn_blocking(move || store.run_results(run_id)).await;
                match results {
                    Ok(Ok(results)) => {
                        Event::default().event("done").data(json!({"summary": summary, "results": results}).to_string())
                    }
                    Ok(Err(e)) => Event::default().event("failed").data(json!({"error": e.to_string()}).to_string()),
                    Err(e) => Event::default().event("failed").data(json!({"error": e.to_string()}).to_string()),
                }
            }
            Err(e) => Event::default().event("failed").data(json!({"error": e.to_string()}).to_string()),
        };
        let _ = tx.send(last);
    });
    // The guard travels with the stream: a client that goes away cancels the run.
    let guard = cancel.drop_guard();
    let stream = futures_util::stream::unfold((rx, Some(guard)), |(mut rx, guard)| async move {
        let event = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(event), (rx, guard)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

// ---- exports ------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartExport {
    format: Format,
    /// A folder name under `<data dir>/exports/` (default: the time); never a path.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    filter: benchtop_core::store::ExportFilter,
    #[serde(default)]
    split: Option<SplitSpec>,
    #[serde(default)]
    dedup: bool,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    overwrite: bool,
    /// Answer at once with the counts and each file's first rows, writing nothing that stays.
    #[serde(default)]
    preview: bool,
}

/// `POST /api/exports`: write an evaluation set into `<data dir>/exports/<name>/`.
pub async fn start_export(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<StartExport>,
) -> Result<Response, ApiError> {
    let name = body.name.clone().unwrap_or_else(|| format!("export-{}", benchtop_core::store::now_ms()));
    if benchtop_core::models::check_name(&name).is_err() {
        return Err(ApiError::invalid("`name` must be a plain folder name (letters, digits, - _ .)"));
    }
    if let Some(split) = &body.split {
        if !(split.train > 0.0 && split.train < 1.0) {
            return Err(ApiError::invalid("`split.train` must be between 0 and 1"));
        }
    }
    if body.preview {
        return preview_export(&state, body).await;
    }
    let out_dir: PathBuf = state.data_dir.join("exports").join(&name);
    let options = ExportOptions {
        format: body.format,
        out_dir: out_dir.clone(),
        filter: body.filter,
        split: body.split,
        dedup: body.dedup,
        system_prompt: body.system_prompt,
        overwrite: body.overwrite,
    };
    let job = state.jobs.start("export");
    let (store, task_job) = (Arc::clone(&state.store), Arc::clone(&job));
    tokio::task::spawn_blocking(move || {
        let mut last = 0u64;
        let outcome = benchtop_export::export(&store, &options, &mut |rows| {
            // One event per 1,000 rows at most.
            if rows >= last + 1000 {
                last = rows;
                task_job.update(|s| s.done = rows, json!({ "event": "progress", "rows": rows }));
            }
        });
        // The export's own words name the command-line flag; here it is a field.
        let outcome = outcome
            .map(|manifest| json!({ "dir": options.out_dir, "manifest": manifest }))
            .map_err(|e| e.to_string().replace("(--force)", "(`\"overwrite\": true`)"));
        task_job.finish(outcome, false);
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job.snapshot().id, "dir": out_dir }))).into_response())
}

/// Rows shown per file in a preview.
const PREVIEW_ROWS: usize = 5;

/// The export written to a scratch folder, its manifest and first rows read back, the folder gone.
async fn preview_export(state: &Arc<AppState>, body: StartExport) -> Result<Response, ApiError> {
    let scratch = state
        .data_dir
        .join("exports")
        .join(format!(".preview-{}", crate::token::random_hex(8).map_err(|e| ApiError::internal(e.to_string()))?));
    let options = ExportOptions {
        format: body.format,
        out_dir: scratch.clone(),
        filter: body.filter,
        split: body.split,
        dedup: body.dedup,
        system_prompt: body.system_prompt,
        overwrite: true,
    };
    let store = Arc::clone(&state.store);
    let answer = tokio::task::spawn_blocking(move || {
        let outcome = benchtop_export::export(&store, &options, &mut |_| {}).map(|manifest| {
            let heads: serde_json::Map<String, Value> = manifest
                .files
                .iter()
                .map(|file| {
                    let path = scratch.join(&file.path);
                    let rows: Vec<String> = if file.path.ends_with(".parquet") {
                        Vec::new()
                    } else {
                        std::fs::read_to_string(&path)
                            .map(|text| text.lines().take(PREVIEW_ROWS + 1).map(str::to_string).collect())
                            .unwrap_or_default()
                    };
                    (file.path.clone(), json!(rows))
                })
                .collect();
            json!({ "manifest": manifest, "head": heads })
        });
        let _ = std::fs::remove_dir_all(&scratch);
        outcome
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(Json(answer).into_response())
}

/// `GET /api/exports/{name}/files/{file}`: one file of a finished export, as a download.
pub async fn export_file(
    State(state): State<Arc<AppState>>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    // One folder name and one file name, never a path (the rule model names follow).
    let plain = |s: &str| benchtop_core::models::check_name(s).is_ok();
    if !plain(&name) || !plain(&file) {
        return Err(ApiError::invalid("export and file names are plain names (letters, digits, - _ .)"));
    }
    let path = state.data_dir.join("exports").join(&name).join(&file);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("no file `{file}` in export `{name}`")))?;
    let kind = match file.rsplit('.').next() {
        Some("json") => "application/json",
        Some("jsonl") => "application/x-ndjson",
        Some("csv") => "text/csv; charset=utf-8",
        Some("md") | Some("yaml") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, kind.to_string()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        bytes,
    )
        .into_response())
}

// ---- model downloads ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartDownload {
    /// `owner/name` on the Hugging Face Hub (or the mirror `HF_ENDPOINT` names).
    repo: String,
    #[serde(default)]
    revision: Option<String>,
    /// Which `.onnx` file, when the repository has several.
    #[serde(default)]
    file: Option<String>,
    /// The name to install it as (default: the repository's name).
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/models/download`: fetch a model into the user's models, as a job with byte
/// progress; cancelling keeps what arrived (the same request resumes). Validated at the end.
pub async fn start_download(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<StartDownload>,
) -> Result<Response, ApiError> {
    use benchtop_core::models::{self, hub::Hub};
    let name = body.name.clone().unwrap_or_else(|| body.repo.rsplit('/').next().unwrap_or(&body.repo).to_string());
    models::check_name(&name).map_err(|e| ApiError::invalid(crate::api::manage_message(&e)))?;
    let models_dir = state.data_dir.join("models");
    if models_dir.join(&name).exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("a model named `{name}` is already installed; choose another `name`"),
        ));
    }
    let hub = Hub::new(state.config.hub_endpoint.as_deref(), None).map_err(|e| ApiError::invalid(e.to_string()))?;
    let job = state.jobs.start("download");
    let (task_job, engine, answer_name) = (Arc::clone(&job), Arc::clone(&state.engine), name.clone());
    tokio::spawn(async move {
        let work = async {
            let revision = body.revision.as_deref().unwrap_or("main");
            let plan = hub.plan(&body.repo, revision, body.file.as_deref()).await.map_err(|e| e.to_string())?;
            let total = plan.total_bytes();
            task_job.update(
                |s| s.total = Some(total),
                json!({ "event": "progress", "file": null, "done": 0, "total": total }),
            );
            let mut last = 0u64;
            let dir = hub
                .download(&plan, &models_dir, &name, &mut |p| {
                    // One event per 1 % (and the last byte).
                    if p.done == p.total || p.done >= last + (p.total / 100).max(1) {
                        last = p.done;
                        task_job.update(
                            |s| s.done = p.done,
                            json!({ "event": "progress", "file": p.file, "done": p.done, "total": p.total }),
                        );
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
            let checked = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || models::validate(engine.runtime(), &dir))
                    .await
                    .map_err(|e| e.to_string())?
            };
            match checked {
                Ok(validation) => Ok(json!({ "dir": dir, "validation": validation })),
                Err(e) => Err(format!("downloaded to {} but it cannot be used: {e}", dir.display())),
            }
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = task_job.cancel.cancelled() => Ok(json!({ "kept": "what arrived is kept; the same request resumes" })),
        };
        let cancelled = task_job.cancel.is_cancelled();
        task_job.finish(outcome, cancelled);
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job.snapshot().id, "name": answer_name }))).into_response())
}

// ---- watching and cancelling --------------------------------------------------------------------

/// Every job since the server started, newest first.
pub async fn jobs(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut list: Vec<JobState> =
        state.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner()).values().map(|j| j.snapshot()).collect();
    list.sort_by_key(|j| std::cmp::Reverse(j.id));
    Json(json!({ "jobs": list }))
}

pub async fn job(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Result<Json<JobState>, ApiError> {
    Ok(Json(state.jobs.get(id)?.snapshot()))
}

pub async fn cancel(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Result<Json<JobState>, ApiError> {
    let job = state.jobs.get(id)?;
    let snapshot = job.snapshot();
    if snapshot.kind == "export" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "exports cannot be cancelled; a finished export can be replaced with `overwrite`",
        ));
    }
    job.cancel.cancel();
    Ok(Json(snapshot))
}

/// The job's state as a first `state` event, then each change as it happens, until it ends.
pub async fn events(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Result<Response, ApiError> {
    let job = state.jobs.get(id)?;
    // Subscribe before taking the snapshot: no change falls between the two.
    let rx = job.events.subscribe();
    let snapshot = job.snapshot();
    let finished = snapshot.status != "running";
    let first = Event::default().event("state").data(json!(snapshot).to_string());
    let live = (!finished).then_some(rx);
    let stream = futures_util::stream::unfold((Some(first), live), move |(first, live)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, std::convert::Infallible>(first), (None, live)));
        }
        let mut rx = live?;
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let name = event["event"].as_str().unwrap_or("update").to_string();
                    let last = matches!(name.as_str(), "done" | "failed" | "cancelled");
                    let sse = Event::default().event(name).data(event.to_string());
                    return Some((Ok(sse), (None, if last { None } else { Some(rx) })));
                }
                // A slow watcher missed some progress: the next event carries on.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
