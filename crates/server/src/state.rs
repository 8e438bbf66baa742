//! What every handler shares: the engine, the feedback log, the batch queues, the settings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use benchtop_core::engine::{Engine, ModelFolder};
use benchtop_core::runs::checks::{Rules, Validator};
use benchtop_core::store::{Id, NewTarget, Store, TargetKind};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::batch::{BatchOptions, Batcher};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Sizes a request may have.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of request body.
    pub max_body_bytes: usize,
    /// Texts in one embeddings or predict request.
    pub max_inputs: usize,
    /// Characters in one input text or chat message.
    pub max_input_chars: usize,
    /// Messages in one chat request.
    pub max_messages: usize,
    /// New tokens one chat request may ask for.
    pub max_new_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 2 * 1024 * 1024,
            max_inputs: 256,
            max_input_chars: 32_768,
            max_messages: 256,
            max_new_tokens: 4096,
        }
    }
}

/// How the server runs. [`ServerConfig::local`] gives the defaults for an address.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The bearer token every request but `/healthz` and `/openapi.json` must carry.
    pub token: String,
    /// `Host` header values accepted (`host:port`, lowercase).
    pub allowed_hosts: Vec<String>,
    /// `Origin` header values accepted (`scheme://host:port`, lowercase); requests without an
    /// `Origin` (not from a browser page) pass this check.
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
    pub batch: BatchOptions,
    /// Chat generations running at once (they share the cores step by step).
    pub generation_slots: usize,
    /// Chat requests waiting for a slot at most; beyond it they are refused (429).
    pub generation_queue: usize,
    /// Business rules per model, checked on every input before the model runs.
    pub rules: HashMap<String, Rules>,
    /// Record calls in the feedback log (on unless turned off).
    pub log_traffic: bool,
    /// Calls queued for the log at most. When the log falls this far behind, requests wait for
    /// room before answering: memory stays bounded and the slowdown reaches clients.
    pub log_queue: usize,
    /// How long a shutdown waits for in-flight requests (streams included) before stopping anyway.
    pub drain_timeout: std::time::Duration,
    /// The built UI served at `/` (browser mode), if any.
    pub ui_dir: Option<std::path::PathBuf>,
    /// Where model downloads come from (default: `HF_ENDPOINT`, else the Hugging Face Hub).
    pub hub_endpoint: Option<String>,
}

impl ServerConfig {
    /// Defaults for a server listening on `addr`: that address (and, on loopback, `localhost`)
    /// as the only accepted hosts and origins.
    pub fn local(addr: std::net::SocketAddr, token: String) -> ServerConfig {
        let port = addr.port();
        let mut hosts = vec![match addr {
            std::net::SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
            std::net::SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
        }];
        if addr.ip().is_loopback() {
            for extra in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
                if !hosts.contains(&extra) {
                    hosts.push(extra);
                }
            }
        }
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        ServerConfig {
            token,
            allowed_hosts: hosts,
            allowed_origins: origins,
            limits: Limits::default(),
            batch: BatchOptions::default(),
            generation_slots: 2,
            generation_queue: 32,
            rules: HashMap::new(),
            log_traffic: true,
            log_queue: 1024,
            drain_timeout: std::time::Duration::from_secs(30),
            ui_dir: None,
            hub_endpoint: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the rules for model `{model}` are not valid: {reason}")]
    Rules { model: String, reason: String },
    #[error(transparent)]
    Store(#[from] benchtop_core::store::StoreError),
}

/// A model's folder and batch queue, once loaded.
type Loaded = (ModelFolder, Arc<Batcher>);

pub struct AppState {
    pub engine: Arc<Engine>,
    pub store: Arc<Store>,
    pub config: ServerConfig,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// The live-traffic run every call is recorded in.
    pub traffic_run: Id,
    validators: HashMap<String, Validator>,
    batchers: Mutex<HashMap<String, Arc<OnceCell<Loaded>>>>,
    /// Target ids of local models, by folder (fingerprinting reads the whole model file: once).
    targets: Mutex<HashMap<PathBuf, Id>>,
    generation: Arc<Semaphore>,
    generation_waiting: Arc<AtomicUsize>,
    /// Room in the log's queue (see [`ServerConfig::log_queue`]).
    pub(crate) log_room: Arc<Semaphore>,
    /// The data directory (exports are written under it).
    pub data_dir: PathBuf,
    /// Runs and exports started from the UI.
    pub(crate) jobs: crate::jobs::Jobs,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, store: Arc<Store>, config: ServerConfig) -> Result<AppState, StartError> {
        let validators = config
            .rules
            .iter()
            .map(|(model, rules)| {
                Validator::new(rules)
                    .map(|v| (model.clone(), v))
                    .map_err(|reason| StartError::Rules { model: model.clone(), reason })
            })
            .collect::<Result<_, _>>()?;
        let traffic_run = store.traffic_run()?;
        let data_dir = store.path().parent().map(PathBuf::from).unwrap_or_default();
        Ok(AppState {
            engine,
            store,
            metrics: Arc::new(Metrics::default()),
            started: Instant::now(),
            traffic_run,
            validators,
            batchers: Mutex::new(HashMap::new()),
            targets: Mutex::new(HashMap::new()),
            generation: Arc::new(Semaphore::new(config.generation_slots.max(1))),
            generation_waiting: Arc::new(AtomicUsize::new(0)),
            log_room: Arc::new(Semaphore::new(config.log_queue.max(1))),
            data_dir,
            jobs: crate::jobs::Jobs::default(),
            config,
        })
    }

    /// Run `f` on the feedback log from a blocking thread (store calls wait on SQLite).
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|e| ApiError::internal(e.to_string()))?
    }

    /// Problems `text` has under the rules configured for `model` (empty: none, or no rules).
    pub fn rule_problems(&self, model: &str, text: &str) -> Vec<String> {
        let Some(validator) = self.validators.get(model) else { return Vec::new() };
        let mut vars = serde_json::Map::new();
        vars.insert("input".into(), serde_json::Value::String(text.to_string()));
        validator.check(&vars)
    }

    /// The batch queue of model `name`, which must do `task` (`embedding` or `classification`),
    /// and the model's folder; loading the model's replicas on first use.
    pub async fn batcher(&self, name: &str, task: &'static str) -> Result<(ModelFolder, Arc<Batcher>), ApiError> {
        // One cell per model: concurrent first requests wait for one load instead of each
        // building sessions (a burst of 32 loads at once starves the machine, or worse).
        let cell =
            Arc::clone(self.batchers.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_string()).or_default());
        let (folder, batcher) = cell
            .get_or_try_init(|| async {
                let engine = Arc::clone(&self.engine);
                let owned = name.to_string();
                let workers = self.config.batch.workers.max(1);
                // Reading the folder is cheap; loading replicas builds sessions: off the executor.
                let loaded = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
                    let folder = engine.catalog().find(&owned)?;
                    if folder.task.name() != task {
                        return Ok(Err(folder));
                    }
                    Ok(Ok(engine.replicas(&owned, workers)?))
                })
                .await
                .map_err(|e| ApiError::internal(format!("loading the model failed: {e}")))??;
                let replicas = match loaded {
                    Ok(replicas) => replicas,
                    // Not cached: the folder may be replaced while the server runs.
                    Err(folder) => return Err(wrong_task(name, &folder, task)),
                };
                let folder = replicas[0].folder().clone();
                let batcher = Batcher::spawn(replicas, &self.config.batch, Arc::clone(&self.metrics))
                    .map_err(|e| ApiError::internal(format!("cannot start the batch workers: {e}")))?;
                Ok::<_, ApiError>((folder, Arc::new(batcher)))
            })
            .await?
            .clone();
        if folder.task.name() != task {
            return Err(wrong_task(name, &folder, task));
        }
        Ok((folder, batcher))
    }

    /// Load `name` now (its batch workers, or its generator) instead of on its first request.
    /// Returns the model's task.
    pub async fn preload(&self, name: &str) -> Result<&'static str, ApiError> {
        let engine = Arc::clone(&self.engine);
        let owned = name.to_string();
        let folder = tokio::task::spawn_blocking(move || engine.catalog().find(&owned))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let task = folder.task.name();
        if task == "generation" {
            let engine = Arc::clone(&self.engine);
            let owned = name.to_string();
            tokio::task::spawn_blocking(move || engine.generator(&owned))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
        } else {
            self.batcher(name, task).await?;
        }
        self.target_id(&folder).await?;
        Ok(task)
    }

    /// Update the queue-depth gauges (at scrape time).
    pub fn refresh_gauges(&self) {
        let batchers = self.batchers.lock().unwrap_or_else(|p| p.into_inner());
        for (name, cell) in batchers.iter() {
            if let Some((_, batcher)) = cell.get() {
                self.metrics.set_queue_depth(name, batcher.waiting());
            }
        }
    }

    /// The log's target for a local model folder.
    pub async fn target_id(&self, folder: &ModelFolder) -> Result<Id, ApiError> {
        if let Some(id) = self.targets.lock().unwrap_or_else(|p| p.into_inner()).get(&folder.dir) {
            return Ok(*id);
        }
        let folder = folder.clone();
        let dir = folder.dir.clone();
        let id = self
            .with_store(move |store| {
                let fingerprint = folder
                    .fingerprint()
                    .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", folder.model_path().display())))?;
                let config =
                    serde_json::json!({ "task": folder.task.name(), "dir": folder.dir, "details": folder.task });
                Ok(store.upsert_target(NewTarget {
                    kind: TargetKind::Local,
                    name: folder.name.clone(),
                    fingerprint,
                    config,
                })?)
            })
            .await?;
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).insert(dir, id);
        Ok(id)
    }

    /// A turn to generate, or 429 when too many are already waiting.
    pub async fn generation_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = Arc::clone(&self.generation).try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.generation_waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.config.generation_queue {
            self.generation_waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::overloaded(format!(
                "{waiting} chat requests are already waiting for the model; retry shortly"
            )));
        }
        let permit = Arc::clone(&self.generation).acquire_owned().await;
        self.generation_waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| ApiError::unavailable("the server is shutting down"))
    }

    /// After the last request: stop the batch workers (each finishes its queue) and wait until
    /// every queued log write has committed.
    pub async fn shutdown(&self) {
        self.jobs.cancel_all(std::time::Duration::from_secs(10)).await;
        let batchers = std::mem::take(&mut *self.batchers.lock().unwrap_or_else(|p| p.into_inner()));
        let store = Arc::clone(&self.store);
        let _ = tokio::task::spawn_blocking(move || {
            drop(batchers);
            if let Err(e) = store.flush() {
                tracing::error!(error = %e, "flushing the feedback log at shutdown");
            }
        })
        .await;
        tracing::info!("stopped; the feedback log is flushed");
    }
}

fn wrong_task(name: &str, folder: &ModelFolder, task: &str) -> ApiError {
    ApiError::invalid(format!(
        "model `{name}` is a {} model; this endpoint needs a {task} model (GET /v1/models lists the tasks)",
        folder.task.name()
    ))
}
