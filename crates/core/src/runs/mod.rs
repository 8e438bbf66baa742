//! Comparison runs: the cases of a test set (or one ad-hoc input) × a prompt template × targets
//! (local models and remote LLMs), every cell validated before, checked after, and recorded in the
//! feedback log as it completes.
//!
//! - A run is described by a [`RunSpec`] (the YAML of `benchtop run`).
//! - [`Runner::run`] executes it with bounded concurrency per target, reports [`RunEvent`]s,
//!   stops on cancel, and can resume a run: cells that already hold a result are not run again
//!   (the log has at most one result per cell, enforced by a unique index).
//! - Answers are cached by (target fingerprint, rendered input): a cell whose exact question was
//!   answered before takes that answer (marked `cached`) unless the cache is bypassed.

pub mod checks;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, GenerateParams, Prompt, Task};
use crate::providers::{ApiKey, ChatRequest, Message, PriceTable, Provider, ProviderConfig, ProviderError, Role};
use crate::store::{
    text_hash, Answer, Feedback, Id, LabelSource, NewFeedback, NewResult, NewRun, NewTarget, RunKind, RunStatus, Store,
    TargetKind,
};
pub use checks::{Assertion, Rules, Verdict};

/// A run, as written in `benchtop run`'s YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// A test set file (CSV, JSONL or Parquet; relative to the YAML file), imported into the log.
    #[serde(default)]
    pub tests: Option<std::path::PathBuf>,
    /// A test set already in the log, by name.
    #[serde(default)]
    pub test_set: Option<String>,
    /// One ad-hoc input instead of a test set (the `text` variable).
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub prompt: PromptSpec,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    pub targets: Vec<TargetSpec>,
    #[serde(default)]
    pub validate: Option<Rules>,
    /// Checks on every answer.
    #[serde(default, rename = "assert")]
    pub assertions: Vec<Assertion>,
    /// Reuse earlier answers to the same question from the same target.
    #[serde(default = "yes")]
    pub cache: bool,
    /// The local embedding model for `similar` assertions.
    #[serde(default = "default_embedding_model")]
    pub embedding_model: String,
}

fn yes() -> bool {
    true
}

fn default_embedding_model() -> String {
    "minilm-l6-v2".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// A system prompt for chat targets (itself a template).
    #[serde(default)]
    pub system: Option<String>,
    /// The input, from the case's variables (`{{ text }}`, `{{ question }}`…) [default: the
    /// `text` variable, or the only variable].
    #[serde(default)]
    pub template: Option<String>,
}

/// One target: a local model (a name from `benchtop models` or a folder) or a provider's model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The name shown in tables [default: `provider/model`, or the model].
    #[serde(default)]
    pub name: Option<String>,
    pub model: String,
    /// A provider from `providers:`; none means a local model.
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stream remote answers (measures time to first token).
    #[serde(default = "yes")]
    pub stream: bool,
    /// Cells of this target in flight at once [default: 1 for local models, 8 for remote ones].
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Checks for this target only, on top of the run's.
    #[serde(default, rename = "assert")]
    pub assertions: Vec<Assertion>,
}

impl TargetSpec {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| match &self.provider {
            Some(p) => format!("{p}/{}", self.model),
            None => self.model.clone(),
        })
    }

    /// The settings that change answers (part of the fingerprint and the cache key).
    fn params(&self) -> Value {
        json!({"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
               "stop": self.stop, "seed": self.seed})
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the run file is not valid: {0}")]
    Spec(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
}

impl RunSpec {
    pub fn from_yaml(text: &str) -> Result<RunSpec, RunError> {
        let spec: RunSpec = serde_saphyr::from_str(text).map_err(|e| RunError::Spec(e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// Problems a run would only meet later: no targets, unknown providers, bad assertions.
    pub fn check(&self) -> Result<(), RunError> {
        let bad = |m: String| Err(RunError::Spec(m));
        if self.targets.is_empty() {
            return bad("`targets` is empty; list at least one model".into());
        }
        let sources = [self.tests.is_some(), self.test_set.is_some(), self.input.is_some()];
        if sources.iter().filter(|s| **s).count() != 1 {
            return bad("give exactly one of `tests` (a file), `test_set` (a stored set) or `input`".into());
        }
        let mut names = std::collections::HashSet::new();
        for target in &self.targets {
            if let Some(p) = &target.provider {
                if !self.providers.iter().any(|c| &c.name == p) {
                    let known: Vec<&str> = self.providers.iter().map(|c| c.name.as_str()).collect();
                    return bad(format!(
                        "target `{}` uses provider `{p}`, which `providers` does not define (it has: {})",
                        target.model,
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ));
                }
            }
            if target.concurrency == Some(0) {
                return bad(format!("target `{}`: concurrency must be at least 1", target.display_name()));
            }
            if !names.insert(target.display_name()) {
                return bad(format!("two targets are named `{}`; give one a `name`", target.display_name()));
            }
            for a in self.assertions.iter().chain(&target.assertions) {
                a.check_definition().map_err(RunError::Spec)?;
            }
        }
        if let Some(rules) = &self.validate {
            checks::Validator::new(rules).map_err(RunError::Spec)?;
        }
        let mut env = minijinja::Environment::new();
        for (name, source) in [("template", &self.prompt.template), ("system", &self.prompt.system)] {
            if let Some(source) = source {
                env.add_template_owned(name, source.clone())
                    .map_err(|e| RunError::Spec(format!("prompt.{name} is not a valid template: {e}")))?;
            }
        }
        Ok(())
    }
}

/// What a run works through.
#[derive(Debug, Clone, PartialEq)]
pub enum Cases {
    /// A stored test set.
    TestSet(Id),
    /// One input (not resumable).
    Input(String),
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue this run: only cells without a result run.
    pub resume: Option<Id>,
    /// Ask every target afresh even if the spec allows the cache.
    pub no_cache: bool,
    /// Send each answer's text as it is written ([`RunEvent::Text`]) — the playground shows it
    /// live; batch runs leave it off.
    pub stream_text: bool,
}

/// Progress, as it happens.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    Started {
        run_id: Id,
        cells: usize,
        already_done: usize,
    },
    /// A piece of a cell's answer, as it is written (with [`RunOptions::stream_text`]).
    Text {
        case: usize,
        target: usize,
        delta: String,
    },
    Cell(CellReport),
}

/// One finished cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellReport {
    pub result_id: Id,
    pub case_id: Option<Id>,
    pub target: String,
    pub error: Option<String>,
    /// All assertions passed (`None` without assertions, or when the cell failed).
    pub passed: Option<bool>,
    pub cached: bool,
    pub latency_ms: Option<f64>,
}

/// A run's outcome, from everything recorded for it (resumed parts included).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: Id,
    pub status: RunStatus,
    pub targets: Vec<TargetSummary>,
    /// Label agreement between the first label-producing local target and each other target.
    pub agreements: Vec<Agreement>,
    /// Every failed assertion and error, by cell.
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    pub name: String,
    pub target_id: Id,
    pub cells: usize,
    pub errors: usize,
    pub passed: usize,
    pub failed: usize,
    pub cached: usize,
    pub pass_rate: Option<f64>,
    pub mean_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub a: String,
    pub b: String,
    pub compared: usize,
    pub agreed: usize,
    /// `confusion[a_label][b_label]` = cases.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub disagreements: Vec<Disagreement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    pub case_id: Id,
    pub input: String,
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub case_id: Option<Id>,
    pub target: String,
    pub input: String,
    pub output: Option<String>,
    pub reasons: Vec<String>,
}

impl Summary {
    /// No errors and no failed assertions.
    pub fn ok(&self) -> bool {
        self.status == RunStatus::Done && self.targets.iter().all(|t| t.errors == 0 && t.failed == 0)
    }
}

/// A target ready to answer.
struct Ready {
    spec: TargetSpec,
    name: String,
    id: Id,
    fingerprint: String,
    kind: ReadyKind,
    limit: Semaphore,
}

enum ReadyKind {
    Remote(Provider),
    Local(Task),
}

/// Runs comparison runs; holds the log, the local engine and the configured providers.
pub struct Runner {
    store: Arc<Store>,
    engine: Option<Arc<Engine>>,
    providers: HashMap<String, Provider>,
}

struct Shared {
    store: Arc<Store>,
    engine: Option<Arc<Engine>>,
    targets: Vec<Ready>,
    run_id: Id,
    template: minijinja::Environment<'static>,
    validator: Option<checks::Validator>,
    assertions: Vec<Assertion>,
    cache: bool,
    embedding_model: String,
    stop: Arc<AtomicBool>,
    /// Where answer text goes as it is written (`stream_text`).
    on_event: Option<Arc<dyn Fn(RunEvent) + Send + Sync>>,
}

/// The providers `spec`'s remote targets use, each with its key (keychain, then environment;
/// may block on the keychain) and `prices`.
pub fn providers_for(spec: &RunSpec, prices: &PriceTable) -> Result<Vec<Provider>, ProviderError> {
    spec.providers
        .iter()
        .filter(|c| spec.targets.iter().any(|t| t.provider.as_deref() == Some(c.name.as_str())))
        .map(|c| {
            let key = ApiKey::resolve(c).map(|(key, source)| {
                tracing::info!(provider = %c.name, ?source, "API key found");
                key
            });
            Provider::new(c.clone(), key, prices.clone())
        })
        .collect()
}

impl Runner {
    /// `engine` is needed for local targets and `similar` assertions; `providers` by name.
    pub fn new(store: Arc<Store>, engine: Option<Arc<Engine>>, providers: Vec<Provider>) -> Runner {
        let providers = providers.into_iter().map(|p| (p.config().name.clone(), p)).collect();
        Runner { store, engine, providers }
    }

    /// Execute `spec` over `cases`. Returns when every cell is done or `cancel` fires (the run is
    /// then `cancelled` and can be resumed).
    pub async fn run(
        &self,
        spec: &RunSpec,
        cases: Cases,
        options: RunOptions,
        on_event: Arc<dyn Fn(RunEvent) + Send + Sync>,
        cancel: CancellationToken,
    ) -> Result<Summary, RunError> {
        spec.check()?;
        let targets = self.prepare_targets(spec, true).await?;
        let store = Arc::clone(&self.store);
        let (cases, test_set_id) = match &cases {
            Cases::TestSet(id) => {
                let id = *id;
                let store = Arc::clone(&store);
                (blocking(move || store.cases(id)).await??, Some(id))
            }
            Cases::Input(text) => {
                let mut vars = Map::new();
                vars.insert("text".into(), Value::String(text.clone()));
                (
                    vec![crate::store::Case {
                        id: 0,
                        test_set_id: 0,
                        position: 0,
                        vars,
                        expected: None,
                        tags: vec![],
                        content_hash: String::new(),
                    }],
                    None,
                )
            }
        };
        let adhoc = test_set_id.is_none();
        let run_id = match options.resume {
            Some(id) => {
                let store = Arc::clone(&store);
                blocking(move || store.reopen_run(id).map(|()| id)).await??
            }
            None => {
                let run = NewRun {
                    kind: if adhoc { RunKind::Adhoc } else { RunKind::Batch },
                    name: spec.name.clone().unwrap_or_else(|| "run".into()),
                    test_set_id,
                    config: serde_json::to_value(spec).unwrap_or(Value::Null),
                };
                let store = Arc::clone(&store);
                blocking(move || store.create_run(run)).await??
            }
        };
        let done = {
            let store = Arc::clone(&store);
            blocking(move || store.done_cells(run_id)).await??
        };
        let mut template = minijinja::Environment::new();
        template.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let source = spec.prompt.template.clone().unwrap_or_else(|| default_template(&cases));
        template.add_template_owned("input", source).map_err(|e| RunError::Spec(e.to_string()))?;
        if let Some(system) = &spec.prompt.system {
            template.add_template_owned("system", system.clone()).map_err(|e| RunError::Spec(e.to_string()))?;
        }
        let shared = Arc::new(Shared {
            store: Arc::clone(&store),
            engine: self.engine.clone(),
            targets,
            run_id,
            template,
            validator: spec.validate.as_ref().map(checks::Validator::new).transpose().map_err(RunError::Spec)?,
            assertions: spec.assertions.clone(),
            cache: spec.cache && !options.no_cache,
            embedding_model: spec.embedding_model.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            on_event: options.stream_text.then(|| Arc::clone(&on_event)),
        });
        let cells: Vec<(usize, usize)> = (0..cases.len())
            .flat_map(|c| (0..shared.targets.len()).map(move |t| (c, t)))
            .filter(|&(c, t)| adhoc || !done.contains(&(cases[c].id, shared.targets[t].id)))
            .collect();
        on_event(RunEvent::Started {
            run_id,
            cells: cells.len(),
            already_done: cases.len() * shared.targets.len() - cells.len(),
        });
        let cases = Arc::new(cases);
        let mut tasks = tokio::task::JoinSet::new();
        for (c, t) in cells {
            let (shared, cases, on_event) = (Arc::clone(&shared), Arc::clone(&cases), Arc::clone(&on_event));
            tasks.spawn(async move {
                let report = run_cell(&shared, &cases[c], c, t, adhoc).await;
                match report {
                    Ok(report) => on_event(RunEvent::Cell(report)),
                    Err(e) => tracing::error!(run = shared.run_id, "a cell could not be recorded: {e}"),
                }
            });
        }
        let cancelled = loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    None => break false,
                    Some(Err(e)) if e.is_panic() => tracing::error!("a cell panicked: {e}"),
                    Some(_) => {}
                },
                _ = cancel.cancelled() => {
                    shared.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break true;
                }
            }
        };
        let status = if cancelled { RunStatus::Cancelled } else { RunStatus::Done };
        {
            let store = Arc::clone(&store);
            blocking(move || store.finish_run(run_id, status)).await??;
        }
        summarise(&store, run_id, status, &shared.targets).await
    }

    /// Ask one target one question, streaming its text to `on_text` as it comes (the playground's
    /// path; nothing is recorded). `target.provider` names one of the runner's providers.
    pub async fn ask(
        &self,
        target: &TargetSpec,
        input: &str,
        system: Option<&str>,
        on_text: Arc<dyn Fn(&str) + Send + Sync>,
        cancel: CancellationToken,
    ) -> Result<Answer, RunError> {
        let spec = RunSpec {
            name: None,
            tests: None,
            test_set: None,
            input: Some(input.to_string()),
            prompt: PromptSpec::default(),
            providers: self.providers.values().map(|p| p.config().clone()).collect(),
            targets: vec![target.clone()],
            validate: None,
            assertions: Vec::new(),
            cache: false,
            embedding_model: default_embedding_model(),
        };
        spec.check()?;
        // A one-off question: nothing is recorded, so the target is not either.
        let ready = self.prepare_targets(&spec, false).await?.remove(0);
        let call = Call { engine: self.engine.clone(), stop: Arc::new(AtomicBool::new(false)), on_text };
        let stop = Arc::clone(&call.stop);
        let answer = tokio::select! {
            (answer, _) = answer_cell(&call, &ready, input, system) => answer,
            _ = cancel.cancelled() => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                Answer { error: Some("cancelled".into()), ..Answer::default() }
            }
        };
        Ok(answer)
    }

    /// The targets of `spec`, loaded and fingerprinted; `record`: also in the log (their ids).
    async fn prepare_targets(&self, spec: &RunSpec, record: bool) -> Result<Vec<Ready>, RunError> {
        let mut ready = Vec::new();
        for target in &spec.targets {
            let name = target.display_name();
            let (kind, fingerprint, kind_name, config) = match &target.provider {
                Some(p) => {
                    let provider = self.providers.get(p).cloned().ok_or_else(|| {
                        RunError::Spec(format!("provider `{p}` is not configured (no key, or not in `providers`)"))
                    })?;
                    let c = provider.config();
                    let identity = json!({"kind": c.kind, "base_url": c.base_url, "model": target.model, "params": target.params()});
                    (ReadyKind::Remote(provider), text_hash(&identity.to_string()), TargetKind::Remote, identity)
                }
                None => {
                    let engine = self.engine.as_ref().ok_or_else(|| {
                        RunError::Spec(format!("target `{name}` is a local model, but ONNX Runtime is not available"))
                    })?;
                    let folder = engine.catalog().find(&target.model)?;
                    let path = folder.model_path();
                    let file = {
                        let folder = folder.clone();
                        blocking(move || folder.fingerprint())
                            .await?
                            .map_err(|e| RunError::Spec(format!("cannot read {}: {e}", path.display())))?
                    };
                    // Load now, so the first cell's latency is the model's answer, not its loading.
                    let (engine, model, generation) =
                        (Arc::clone(engine), target.model.clone(), folder.task == Task::Generation);
                    blocking(move || {
                        if generation {
                            engine.generator(&model).map(drop)
                        } else {
                            engine.model(&model).map(drop)
                        }
                    })
                    .await??;
                    let identity = json!({"model": folder.name, "file": file, "task": folder.task.name(), "params": target.params()});
                    (
                        ReadyKind::Local(folder.task.clone()),
                        text_hash(&identity.to_string()),
                        TargetKind::Local,
                        identity,
                    )
                }
            };
            let id = if record {
                let new = NewTarget { kind: kind_name, name: name.clone(), fingerprint: fingerprint.clone(), config };
                let store = Arc::clone(&self.store);
                blocking(move || store.upsert_target(new)).await??
            } else {
                0
            };
            let default = match kind {
                ReadyKind::Remote(ref p) => p.config().max_concurrency,
                ReadyKind::Local(_) => 1,
            };
            let limit = Semaphore::new(target.concurrency.unwrap_or(default));
            ready.push(Ready { spec: target.clone(), name, id, fingerprint, kind, limit });
        }
        Ok(ready)
    }
}

fn default_template(cases: &[crate::store::Case]) -> String {
    let first = cases.first().map(|c| &c.vars);
    match first {
        Some(vars) if !vars.contains_key("text") && vars.len() == 1 => {
            format!("{{{{ {} }}}}", vars.keys().next().map(String::as_str).unwrap_or("text"))
        }
        _ => "{{ text }}".into(),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| RunError::Spec(format!("a worker thread failed: {e}")))
}

/// One cell: validate, render, answer (or take the cached answer), check, record.
async fn run_cell(
    shared: &Shared,
    case: &crate::store::Case,
    c: usize,
    t: usize,
    adhoc: bool,
) -> Result<CellReport, RunError> {
    let target = &shared.targets[t];
    let case_id = (!adhoc).then_some(case.id);
    let mut vars = case.vars.clone();
    if let Some(expected) = &case.expected {
        vars.entry("expected").or_insert_with(|| Value::String(expected.clone()));
    }
    let render = |name: &str| -> Result<Option<String>, String> {
        match shared.template.get_template(name) {
            Ok(t) => t
                .render(minijinja::Value::from(minijinja::value::Serde(&vars)))
                .map(Some)
                .map_err(|e| format!("the prompt template failed for this case: {e}")),
            Err(_) => Ok(None),
        }
    };
    let problems = shared.validator.as_ref().map(|v| v.check(&case.vars)).unwrap_or_default();
    let rendered = render("input").and_then(|input| Ok((input.unwrap_or_default(), render("system")?)));
    let (input, system, answer, cached, meta_extra) = match (problems.is_empty(), rendered) {
        (false, _) => {
            let error = format!("validation failed: {}", problems.join("; "));
            (
                serde_json::to_string(&case.vars).unwrap_or_default(),
                None,
                Answer { error: Some(error), ..Answer::default() },
                false,
                json!({"validation": problems}),
            )
        }
        (true, Err(e)) => (
            serde_json::to_string(&case.vars).unwrap_or_default(),
            None,
            Answer { error: Some(e), ..Answer::default() },
            false,
            json!({}),
        ),
        (true, Ok((input, system))) => {
            let key = text_hash(&format!("{}\n{}\n{}", target.fingerprint, system.as_deref().unwrap_or(""), input));
            let cached = if shared.cache {
                let (store, key) = (Arc::clone(&shared.store), key.clone());
                blocking(move || store.cached_answer(&key)).await??
            } else {
                None
            };
            match cached {
                Some(answer) => (input, system, answer, true, json!({"cache_key": key})),
                None => {
                    let _permit = target.limit.acquire().await.map_err(|e| RunError::Spec(e.to_string()))?;
                    let on_text: Arc<dyn Fn(&str) + Send + Sync> = match &shared.on_event {
                        Some(on_event) => {
                            let on_event = Arc::clone(on_event);
                            Arc::new(move |piece: &str| {
                                on_event(RunEvent::Text { case: c, target: t, delta: piece.to_string() })
                            })
                        }
                        None => Arc::new(|_| {}),
                    };
                    let call = Call { engine: shared.engine.clone(), stop: Arc::clone(&shared.stop), on_text };
                    let (answer, extra) = answer_cell(&call, target, &input, system.as_deref()).await;
                    (input, system, answer, false, json!({"cache_key": key, "call": extra}))
                }
            }
        }
    };
    let _ = system;
    // Assertions, for answers only.
    let verdicts: Vec<Verdict> = if answer.error.is_none() {
        let assertions: Vec<Assertion> = shared.assertions.iter().chain(&target.spec.assertions).cloned().collect();
        if assertions.is_empty() {
            Vec::new()
        } else {
            let engine = shared.engine.clone();
            let model = shared.embedding_model.clone();
            let expected = case.expected.clone();
            let checked = answer.clone();
            blocking(move || {
                let embed = |texts: &[&str]| -> Result<Vec<Vec<f32>>, String> {
                    let engine = engine.as_ref().ok_or("no local engine for `similar`")?;
                    let model = engine.model(&model).map_err(|e| e.to_string())?;
                    Ok(model.embed(texts).map_err(|e| e.to_string())?.into_iter().map(|e| e.vector).collect())
                };
                let cx = checks::Context { expected: expected.as_deref(), embed: &embed };
                assertions.iter().map(|a| a.check(&checked, &cx)).collect()
            })
            .await?
        }
    } else {
        Vec::new()
    };
    let passed = (!verdicts.is_empty()).then(|| verdicts.iter().all(|v| v.passed));
    let cache_key = meta_extra.get("cache_key").and_then(Value::as_str).map(str::to_string);
    let meta = json!({"cached": cached, "assertions": verdicts, "passed": passed, "detail": meta_extra});
    let result = NewResult {
        run_id: shared.run_id,
        case_id,
        target_id: target.id,
        input,
        answer: answer.clone(),
        cache_key,
        call_id: None,
        meta: Some(meta),
    };
    let store = Arc::clone(&shared.store);
    let result_id = blocking(move || {
        let id = store.record_result(result)?;
        if let Some(up) = passed {
            store.add_feedback(NewFeedback {
                result_id: id,
                feedback: Feedback::Thumb { up },
                source: LabelSource::Assertion,
                annotator: Some("benchtop run".into()),
            })?;
        }
        Ok::<_, crate::store::StoreError>(id)
    })
    .await??;
    Ok(CellReport {
        result_id,
        case_id,
        target: target.name.clone(),
        error: answer.error.clone(),
        passed,
        cached,
        latency_ms: answer.latency_ms,
    })
}

/// What asking a target needs besides the target: the engine, a stop flag for local generation,
/// and where streamed text goes.
struct Call {
    engine: Option<Arc<Engine>>,
    stop: Arc<AtomicBool>,
    on_text: Arc<dyn Fn(&str) + Send + Sync>,
}

/// Ask the target. Failures become the answer's `error` (the cell records them).
async fn answer_cell(call: &Call, target: &Ready, input: &str, system: Option<&str>) -> (Answer, Value) {
    let spec = &target.spec;
    match &target.kind {
        ReadyKind::Remote(provider) => {
            let request = ChatRequest {
                model: spec.model.clone(),
                system: system.map(str::to_string),
                messages: vec![Message::new(Role::User, input)],
                temperature: spec.temperature,
                top_p: spec.top_p,
                max_tokens: spec.max_tokens,
                stop: spec.stop.clone(),
                seed: spec.seed,
                stream: spec.stream,
            };
            let started = Instant::now();
            let on_text = Arc::clone(&call.on_text);
            match provider.chat(&request, &mut |piece| on_text(piece)).await {
                Ok(r) => (
                    Answer {
                        output: Some(r.text),
                        latency_ms: Some(r.latency.as_secs_f64() * 1e3),
                        ttft_ms: r.ttft.map(|d| d.as_secs_f64() * 1e3),
                        tokens_in: r.usage.map(|u| u.input as i64),
                        tokens_out: r.usage.map(|u| u.output as i64),
                        cost_usd: r.cost_usd,
                        ..Answer::default()
                    },
                    json!({"attempts": r.attempts, "finish_reason": r.finish_reason}),
                ),
                Err(e) => (
                    Answer {
                        error: Some(e.to_string()),
                        latency_ms: Some(started.elapsed().as_secs_f64() * 1e3),
                        ..Answer::default()
                    },
                    json!({}),
                ),
            }
        }
        ReadyKind::Local(task) => {
            let Some(engine) = call.engine.clone() else {
                return (Answer { error: Some("no local engine".into()), ..Answer::default() }, json!({}));
            };
            let (task, model, input, system) =
                (task.clone(), spec.model.clone(), input.to_string(), system.map(str::to_string));
            let params = GenerateParams {
                max_new_tokens: spec.max_tokens.map(|n| n as usize),
                temperature: spec.temperature,
                top_p: spec.top_p,
                seed: spec.seed,
                stop: spec.stop.clone(),
                ..GenerateParams::default()
            };
            let (stop, on_text) = (Arc::clone(&call.stop), Arc::clone(&call.on_text));
            let outcome = blocking(move || -> Result<Answer, crate::engine::EngineError> {
                let started = Instant::now();
                let ms = |s: Instant| Some(s.elapsed().as_secs_f64() * 1e3);
                match task {
                    Task::Classification { .. } => {
                        let c = engine.model(&model)?.classify(&[input.as_str()])?.remove(0);
                        Ok(Answer {
                            label: Some(c.top().label.clone()),
                            scores: serde_json::to_value(&c.scores).ok(),
                            latency_ms: ms(started),
                            tokens_in: Some(c.tokens as i64),
                            ..Answer::default()
                        })
                    }
                    Task::Embedding { .. } => {
                        let e = engine.model(&model)?.embed(&[input.as_str()])?.remove(0);
                        Ok(Answer {
                            scores: serde_json::to_value(&e.vector).ok(),
                            latency_ms: ms(started),
                            tokens_in: Some(e.tokens as i64),
                            ..Answer::default()
                        })
                    }
                    Task::Generation => {
                        let generator = engine.generator(&model)?;
                        let prompt = if generator.has_chat_template() {
                            let mut messages = Vec::new();
                            if let Some(system) = system {
                                messages.push(Message::new(Role::System, system));
                            }
                            messages.push(Message::new(Role::User, input));
                            Prompt::Chat(messages)
                        } else {
                            Prompt::Text(input)
                        };
                        let g = generator.generate(&prompt, &params, &stop, &mut |piece| on_text(piece))?;
                        Ok(Answer {
                            output: Some(g.text),
                            latency_ms: ms(started),
                            ttft_ms: Some(g.time_to_first_token.as_secs_f64() * 1e3),
                            tokens_in: Some(g.usage.prompt_tokens as i64),
                            tokens_out: Some(g.usage.completion_tokens as i64),
                            ..Answer::default()
                        })
                    }
                }
            })
            .await;
            match outcome {
                Ok(Ok(answer)) => (answer, json!({})),
                Ok(Err(e)) => (Answer { error: Some(e.to_string()), ..Answer::default() }, json!({})),
                Err(e) => (Answer { error: Some(e.to_string()), ..Answer::default() }, json!({})),
            }
        }
    }
}

async fn summarise(store: &Arc<Store>, run_id: Id, status: RunStatus, targets: &[Ready]) -> Result<Summary, RunError> {
    let results = {
        let store = Arc::clone(store);
        blocking(move || store.run_results(run_id)).await??
    };
    let name_of: HashMap<Id, &str> = targets.iter().map(|t| (t.id, t.name.as_str())).collect();
    let mut summaries = Vec::new();
    let mut failures = Vec::new();
    for target in targets {
        let mine: Vec<_> = results.iter().filter(|r| r.target_id == target.id).collect();
        let passed_of = |r: &&crate::store::StoredResult| r.meta.get("passed").and_then(Value::as_bool);
        let mut latencies: Vec<f64> =
            mine.iter().filter(|r| r.answer.error.is_none()).filter_map(|r| r.answer.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let costs: Vec<f64> = mine.iter().filter_map(|r| r.answer.cost_usd).collect();
        let passed = mine.iter().filter(|r| passed_of(r) == Some(true)).count();
        let failed = mine.iter().filter(|r| passed_of(r) == Some(false)).count();
        summaries.push(TargetSummary {
            name: target.name.clone(),
            target_id: target.id,
            cells: mine.len(),
            errors: mine.iter().filter(|r| r.answer.error.is_some()).count(),
            passed,
            failed,
            cached: mine.iter().filter(|r| r.meta.get("cached") == Some(&Value::Bool(true))).count(),
            pass_rate: (passed + failed > 0).then(|| passed as f64 / (passed + failed) as f64),
            mean_latency_ms: (!latencies.is_empty()).then(|| latencies.iter().sum::<f64>() / latencies.len() as f64),
            p95_latency_ms: latencies.get((latencies.len() as f64 * 0.95) as usize).or(latencies.last()).copied(),
            tokens_in: mine.iter().filter_map(|r| r.answer.tokens_in).sum(),
            tokens_out: mine.iter().filter_map(|r| r.answer.tokens_out).sum(),
            cost_usd: (!costs.is_empty()).then(|| costs.iter().sum()),
        });
        for r in &mine {
            let mut reasons: Vec<String> = r.answer.error.iter().cloned().collect();
            if let Some(verdicts) = r.meta.get("assertions").and_then(Value::as_array) {
                for v in verdicts.iter().filter(|v| v["passed"] == false) {
                    reasons.push(format!(
                        "{}: {}",
                        v["assertion"].as_str().unwrap_or("?"),
                        v["reason"].as_str().unwrap_or("")
                    ));
                }
            }
            if !reasons.is_empty() {
                failures.push(Failure {
                    case_id: r.case_id,
                    target: name_of.get(&r.target_id).map(|s| s.to_string()).unwrap_or_default(),
                    input: r.input.clone(),
                    output: r.answer.text().map(str::to_string),
                    reasons,
                });
            }
        }
    }
    // Agreement: the first local classifier against every other target, case by case.
    let mut agreements = Vec::new();
    if let Some(base) = targets.iter().find(|t| matches!(t.kind, ReadyKind::Local(Task::Classification { .. }))) {
        let labels_of = |target: Id| -> HashMap<Id, (String, String)> {
            results
                .iter()
                .filter(|r| r.target_id == target && r.answer.error.is_none())
                .filter_map(|r| Some((r.case_id?, (checks::answer_label(&r.answer)?, r.input.clone()))))
                .collect()
        };
        let a_labels = labels_of(base.id);
        for other in targets.iter().filter(|t| t.id != base.id) {
            let b_labels = labels_of(other.id);
            let mut agreement = Agreement {
                a: base.name.clone(),
                b: other.name.clone(),
                compared: 0,
                agreed: 0,
                confusion: BTreeMap::new(),
                disagreements: Vec::new(),
            };
            let mut case_ids: Vec<&Id> = a_labels.keys().filter(|id| b_labels.contains_key(id)).collect();
            case_ids.sort();
            for id in case_ids {
                let (a, input) = &a_labels[id];
                let (b, _) = &b_labels[id];
                let (a_norm, b_norm) = (checks::normalise_label(a), checks::normalise_label(b));
                agreement.compared += 1;
                *agreement.confusion.entry(a_norm.clone()).or_default().entry(b_norm.clone()).or_default() += 1;
                if a_norm == b_norm {
                    agreement.agreed += 1;
                } else {
                    agreement.disagreements.push(Disagreement {
                        case_id: *id,
                        input: input.clone(),
                        a: a.clone(),
                        b: b.clone(),
                    });
                }
            }
            agreements.push(agreement);
        }
    }
    Ok(Summary { run_id, status, targets: summaries, agreements, failures })
}
