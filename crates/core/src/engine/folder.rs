//! Reading a model folder: which files it has, what task it performs, how long its inputs may be.
//!
//! The task comes from `config.json` (`architectures`, `problem_type`, `id2label`) the way
//! Hugging Face exports describe themselves; a small `benchtop.json` manifest overrides any of it:
//!
//! ```json
//! {"task": "embedding", "pooling": "mean", "normalize": true, "max_length": 256, "packed_batches": true}
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EngineError, Result};

pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const CONFIG_FILE: &str = "config.json";
pub const MANIFEST_FILE: &str = "benchtop.json";

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average of the attended tokens (sentence-transformers' default).
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

/// How logits become scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// One label per input; scores sum to 1.
    Softmax,
    /// Any number of labels per input; each score is independent.
    Sigmoid,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Softmax => "softmax",
            Activation::Sigmoid => "sigmoid",
        }
    }
}

/// What a model does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Task {
    Embedding {
        pooling: Pooling,
        normalize: bool,
        dimensions: Option<usize>,
    },
    Classification {
        labels: Vec<String>,
        activation: Activation,
    },
    /// Decoder-only text generation (see [`crate::engine::generate`]).
    Generation,
}

impl Task {
    pub fn name(&self) -> &'static str {
        match self {
            Task::Embedding { .. } => "embedding",
            Task::Classification { .. } => "classification",
            Task::Generation => "generation",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    task: Option<String>,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
    activation: Option<Activation>,
    max_length: Option<usize>,
    /// The graph output to read; by default `logits` / `sentence_embedding` / `last_hidden_state`.
    output: Option<String>,
    /// The graph takes several texts in one row (see [`ModelFolder::packed_batches`]).
    packed_batches: Option<bool>,
}

/// A model folder, read and checked, nothing loaded yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFolder {
    pub name: String,
    pub dir: PathBuf,
    pub task: Task,
    /// Inputs longer than this many tokens are truncated.
    pub max_length: usize,
    /// The graph output to read, if the manifest names one.
    pub output: Option<String>,
    /// The padding token id (`config.json`'s `pad_token_id`), if declared.
    pub pad_token_id: Option<u32>,
    /// Bytes on disk of the folder's files (model, external data, tokenizer, configs).
    pub size_bytes: u64,
    /// `benchtop.json`'s `"packed_batches": true`: the graph reads `attention_mask` values
    /// 1, 2, … n as n texts packed one after another into a row (0 is padding): each token
    /// attends only to its own text, positions restart for each text, and a graph that pools
    /// returns one row per row and text number. The engine then runs each batch as one run of
    /// balanced rows of several texts (see `Model::plan`, and `models/build.py`,
    /// `packed_attention`); with 0/1 masks such a graph answers as before.
    pub packed_batches: bool,
}

impl ModelFolder {
    /// Read the folder at `dir`. Fails, naming the file and the fix, if `model.onnx`,
    /// `tokenizer.json` or `config.json` is missing or unreadable, or the task cannot be told.
    pub fn open(dir: &Path) -> Result<ModelFolder> {
        let name =
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string());
        if !dir.is_dir() {
            return Err(EngineError::invalid(dir, "it is not a directory"));
        }
        for file in [MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE] {
            if !dir.join(file).is_file() {
                return Err(EngineError::invalid(
                    dir,
                    format!("{file} is missing; a model folder needs {MODEL_FILE}, {TOKENIZER_FILE} and {CONFIG_FILE} (as exported by Hugging Face Optimum)"),
                ));
            }
        }
        let config = read_json(dir, CONFIG_FILE)?;
        let manifest: Manifest = if dir.join(MANIFEST_FILE).is_file() {
            serde_json::from_value(read_json(dir, MANIFEST_FILE)?)
                .map_err(|e| EngineError::invalid(dir, format!("{MANIFEST_FILE} is not valid: {e}")))?
        } else {
            Manifest::default()
        };
        let task = detect_task(dir, &config, &manifest)?;
        let max_length = max_length(dir, &config, &manifest)?;
        let pad_token_id = config.get("pad_token_id").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
        Ok(ModelFolder {
            name,
            dir: dir.to_path_buf(),
            task,
            max_length,
            output: manifest.output,
            packed_batches: manifest.packed_batches.unwrap_or(false),
            pad_token_id,
            size_bytes: folder_size(dir),
        })
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join(TOKENIZER_FILE)
    }

    /// A stable identity for results: `sha256:` of `model.onnx`. The whole file is read once per
    /// process for each (path, size, modification time); asking again is answered from memory
    /// (the playground and the server ask on every call).
    pub fn fingerprint(&self) -> std::io::Result<String> {
        type Key = (PathBuf, u64, Option<std::time::SystemTime>);
        static KNOWN: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<Key, String>>> =
            std::sync::LazyLock::new(Default::default);
        let path = self.model_path();
        let meta = std::fs::metadata(&path)?;
        let key = (path, meta.len(), meta.modified().ok());
        let lock = || KNOWN.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = lock().get(&key) {
            return Ok(known.clone());
        }
        let fingerprint = hash_file(&key.0)?;
        lock().insert(key, fingerprint.clone());
        Ok(fingerprint)
    }
}

/// `sha256:` and the hex digest of the file at `path`.
fn hash_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", crate::util::hex(&hasher.finalize())))
}

fn read_json(dir: &Path, file: &str) -> Result<Value> {
    let path = dir.join(file);
    let text =
        std::fs::read_to_string(&path).map_err(|e| EngineError::invalid(dir, format!("{file} cannot be read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| EngineError::invalid(dir, format!("{file} is not valid JSON: {e}")))
}

fn detect_task(dir: &Path, config: &Value, manifest: &Manifest) -> Result<Task> {
    let architectures: Vec<&str> = config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let kind = match manifest.task.as_deref() {
        Some(kind) => kind.to_string(),
        None if architectures.iter().any(|a| a.ends_with("ForSequenceClassification")) => "classification".into(),
        None if architectures.iter().any(|a| a.ends_with("ForCausalLM") || a.ends_with("LMHeadModel")) => {
            "generation".into()
        }
        None => "embedding".into(),
    };
    match kind.as_str() {
        "embedding" => Ok(Task::Embedding {
            pooling: manifest.pooling.or_else(|| sentence_transformers_pooling(dir)).unwrap_or(Pooling::Mean),
            normalize: manifest.normalize.unwrap_or(true),
            dimensions: config.get("hidden_size").and_then(Value::as_u64).map(|d| d as usize),
        }),
        "classification" => Ok(Task::Classification {
            labels: labels(dir, config)?,
            activation: manifest.activation.unwrap_or(
                if config.get("problem_type").and_then(Value::as_str) == Some("multi_label_classification") {
                    Activation::Sigmoid
                } else {
                    Activation::Softmax
                },
            ),
        }),
        "generation" => Ok(Task::Generation),
        other => Err(EngineError::invalid(
            dir,
            format!("{MANIFEST_FILE} names task `{other}`; Benchtop knows embedding, classification and generation"),
        )),
    }
}

/// `1_Pooling/config.json` of a sentence-transformers folder, if present.
fn sentence_transformers_pooling(dir: &Path) -> Option<Pooling> {
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("1_Pooling/config.json")).ok()?).ok()?;
    if config.get("pooling_mode_cls_token").and_then(Value::as_bool) == Some(true) {
        Some(Pooling::Cls)
    } else {
        Some(Pooling::Mean)
    }
}

fn labels(dir: &Path, config: &Value) -> Result<Vec<String>> {
    let map = config.get("id2label").and_then(Value::as_object).ok_or_else(|| {
        EngineError::invalid(dir, format!("{CONFIG_FILE} has no `id2label`, so the classifier's labels are unknown"))
    })?;
    let mut labels = vec![None; map.len()];
    for (id, label) in map {
        let index = id.parse::<usize>().ok().filter(|i| *i < labels.len()).ok_or_else(|| {
            EngineError::invalid(dir, format!("{CONFIG_FILE}'s `id2label` has id `{id}`; ids must be 0..{}", map.len()))
        })?;
        labels[index] = label.as_str().map(str::to_string);
    }
    labels
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| EngineError::invalid(dir, format!("{CONFIG_FILE}'s `id2label` must map 0..n to label strings")))
}

/// The manifest's `max_length`, else the smallest of the model's position limit and the
/// tokenizer's `model_max_length`. (The Python references in `models/` apply the same rule.)
fn max_length(dir: &Path, config: &Value, manifest: &Manifest) -> Result<usize> {
    let positions = config.get("max_position_embeddings").and_then(Value::as_u64).map(|v| v as usize);
    if let Some(len) = manifest.max_length {
        if len == 0 || positions.is_some_and(|p| len > p) {
            return Err(EngineError::invalid(
                dir,
                format!(
                    "{MANIFEST_FILE} sets max_length {len}; it must be between 1 and the model's {} positions",
                    positions.unwrap_or(len)
                ),
            ));
        }
        return Ok(len);
    }
    let tokenizer_limit = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|c| c.get("model_max_length").and_then(Value::as_u64))
        .filter(|v| *v < 1 << 20)
        .map(|v| v as usize);
    Ok([positions, tokenizer_limit].into_iter().flatten().min().unwrap_or(512))
}

fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}
