//! Managing model folders: check one before use ([`validate`]), add one to the user's models
//! directory ([`add`]), take one out again ([`remove`]), download one from the Hugging Face Hub
//! ([`hub`]).
//!
//! Folders are only ever written inside the user's models directory, and always by building them
//! under a hidden staging name (`.add-…`, `.download-…`) and renaming into place: a folder either
//! appears whole or not at all, whatever happens meanwhile (a crash, Ctrl-C, a full disk).

pub mod hub;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::generate::Layout;
use crate::engine::{EngineError, EngineOptions, Generator, Message, Model, ModelFolder, Role, Runtime, Task};

/// What can go wrong managing models (downloads have their own [`hub::HubError`]).
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error(
        "`{name}` is not a usable model name: use letters, digits, `.`, `-` and `_` (not starting with `.`).\n\
         Fix: pass another one with --name."
    )]
    BadName { name: String },

    #[error(
        "a model named `{name}` is already installed at {}.\n\
         Fix: choose another name with --name, or remove it first with `benchtop models remove {name}`.",
        dir.display()
    )]
    Exists { name: String, dir: PathBuf },

    #[error(
        "`{name}` is not one of your added models (they are in {}){}.\n\
         Fix: run `benchtop models` to see what is installed and where.",
        models_dir.display(),
        note.as_deref().map(|n| format!("; {n}")).unwrap_or_default()
    )]
    NotAdded { name: String, models_dir: PathBuf, note: Option<String> },

    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ManageError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ManageError + use<> {
        let path = path.to_path_buf();
        move |source| ManageError::Io { action, path, source }
    }
}

/// One file of a model folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Relative to the folder, `/`-separated.
    pub name: String,
    pub bytes: u64,
}

/// What a generation model looks like from the outside.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationInfo {
    pub layout: Layout,
    /// Prompt and answer together, in tokens.
    pub context: usize,
    pub chat_template: bool,
    pub eos_token_ids: Vec<u32>,
    pub kv_bytes_per_token: u64,
}

/// A folder that loaded: its files, its graph, and what it costs in memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub folder: ModelFolder,
    pub files: Vec<FileInfo>,
    /// The graph's input and output names.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub generation: Option<GenerationInfo>,
    /// `model.onnx` and its external data files.
    pub weights_bytes: u64,
    /// Weights, plus (for generation) a KV cache filling the whole context. ONNX Runtime's own
    /// working memory comes on top; [`Validation::measured_bytes`] is the real figure.
    pub estimated_bytes: u64,
    /// How much this process's resident memory grew while loading the model (Linux only; other
    /// models already loaded in the process make no difference, shared libraries loaded for the
    /// first time do).
    pub measured_bytes: Option<u64>,
    /// Things that work but deserve a look (no chat template, no generation config…).
    pub warnings: Vec<String>,
}

/// Check the folder at `dir` the way using it would: read its files, work out its task, load the
/// graph into ONNX Runtime and check its inputs and outputs. The error names what is missing or
/// wrong and how to fix it.
pub fn validate(runtime: &Runtime, dir: &Path) -> Result<Validation, EngineError> {
    let folder = ModelFolder::open(dir)?;
    let files = list_files(dir);
    let weights_bytes: u64 = files.iter().filter(|f| is_weights_file(&f.name)).map(|f| f.bytes).sum();
    let mut warnings = Vec::new();
    let before = resident_bytes();
    let (inputs, outputs, generation) = match &folder.task {
        Task::Generation => {
            let generator = Generator::load(runtime, folder.clone())?;
            let layout = generator.layout().clone();
            if !generator.has_chat_template() {
                warnings.push("no chat template: send plain text (`--raw`); chat messages are refused".into());
            } else if let Err(e) = generator.render_chat(&[Message::new(Role::User, "hi")]) {
                warnings.push(format!("the chat template fails: {e}"));
            }
            if !dir.join("generation_config.json").is_file() {
                warnings.push("no generation_config.json: greedy decoding unless settings are given".into());
            }
            if layout.layers == 0 {
                warnings.push("the graph has no KV cache inputs: every token recomputes the whole sequence".into());
            }
            let info = GenerationInfo {
                kv_bytes_per_token: layout.kv_bytes_per_token() as u64,
                layout,
                context: generator.context(),
                chat_template: generator.has_chat_template(),
                eos_token_ids: generator.defaults().eos_token_ids.clone(),
            };
            let (inputs, outputs) = generator.with_session(graph_io);
            (inputs, outputs, Some(info))
        }
        _ => {
            let model = Model::load(runtime, folder.clone(), &EngineOptions::default())?;
            let (inputs, outputs) = model.with_session(graph_io);
            (inputs, outputs, None)
        }
    };
    let measured_bytes = before.zip(resident_bytes()).map(|(b, a)| a.saturating_sub(b));
    let kv = generation.as_ref().map(|g| g.kv_bytes_per_token * g.context as u64).unwrap_or(0);
    Ok(Validation {
        folder,
        files,
        inputs,
        outputs,
        generation,
        weights_bytes,
        estimated_bytes: weights_bytes + kv,
        measured_bytes,
        warnings,
    })
}

fn graph_io(session: &mut ort::session::Session) -> (Vec<String>, Vec<String>) {
    (
        session.inputs().iter().map(|i| i.name().to_string()).collect(),
        session.outputs().iter().map(|o| o.name().to_string()).collect(),
    )
}

/// `model.onnx` and its external data (`model.onnx_data`, `model.onnx.data`, `*.onnx_data_1`…).
fn is_weights_file(name: &str) -> bool {
    !name.contains('/') && (name.ends_with(".onnx") || name.contains(".onnx_data") || name.ends_with(".onnx.data"))
}

/// Resident memory of this process, from `/proc/self/status` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Regular files under `dir`, sorted, with `/`-separated relative names (hidden ones left out).
pub fn list_files(dir: &Path) -> Vec<FileInfo> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<FileInfo>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.is_dir() {
                walk(root, &path, out);
            } else if meta.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                out.push(FileInfo { name, bytes: meta.len() });
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// A name that is safe as a single folder name everywhere.
pub fn check_name(name: &str) -> Result<(), ManageError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ManageError::BadName { name: name.to_string() })
    }
}

/// Copy the model folder at `source` into `models_dir` as `name` (default: the source folder's
/// name), after validating it. Files are hard-linked when `source` is on the same file system
/// (instant, no extra space) and copied otherwise. Refuses a name that is already there.
pub fn add(
    runtime: &Runtime,
    source: &Path,
    models_dir: &Path,
    name: Option<&str>,
) -> Result<(PathBuf, Validation), ManageError> {
    let name = match name {
        Some(name) => name.to_string(),
        None => source
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    check_name(&name)?;
    let dest = models_dir.join(&name);
    if dest.exists() {
        return Err(ManageError::Exists { name, dir: dest });
    }
    validate(runtime, source)?;
    std::fs::create_dir_all(models_dir).map_err(ManageError::io("create", models_dir))?;
    let staging = models_dir.join(format!(".add-{name}-{}", std::process::id()));
    let result = copy_tree(source, &staging).and_then(|()| {
        if dest.exists() {
            return Err(ManageError::Exists { name: name.clone(), dir: dest.clone() });
        }
        std::fs::rename(&staging, &dest).map_err(ManageError::io("move into place", &dest))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // Describe the installed copy (its path and name), not the source.
    let validation = validate(runtime, &dest)?;
    tracing::info!(model = %name, dir = %dest.display(), "model added");
    Ok((dest, validation))
}

fn copy_tree(source: &Path, dest: &Path) -> Result<(), ManageError> {
    std::fs::create_dir_all(dest).map_err(ManageError::io("create", dest))?;
    for entry in std::fs::read_dir(source).map_err(ManageError::io("read", source))? {
        let entry = entry.map_err(ManageError::io("read", source))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let meta = std::fs::metadata(&from).map_err(ManageError::io("read", &from))?;
        if meta.is_dir() {
            copy_tree(&from, &to)?;
        } else if meta.is_file() && std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(ManageError::io("copy", &from))?;
        }
    }
    Ok(())
}

/// Delete the added model `name` from `models_dir`. Only folders inside `models_dir` are ever
/// deleted (never the bundled defaults or a `--models-dir` folder); `elsewhere` names where a model
/// of that name lives instead, for the error message. Returns the removed folder's size.
pub fn remove(models_dir: &Path, name: &str, elsewhere: Option<&Path>) -> Result<u64, ManageError> {
    let not_added = || ManageError::NotAdded {
        name: name.to_string(),
        models_dir: models_dir.to_path_buf(),
        note: elsewhere.map(|dir| format!("`{name}` is at {}, which Benchtop does not delete", dir.display())),
    };
    if check_name(name).is_err() {
        return Err(not_added());
    }
    let dir = models_dir.join(name);
    if !dir.is_dir() {
        return Err(not_added());
    }
    let bytes = list_files(&dir).iter().map(|f| f.bytes).sum();
    // Rename first, so the model disappears at once and a half-deleted folder is never listed.
    let trash = models_dir.join(format!(".remove-{name}-{}", std::process::id()));
    std::fs::rename(&dir, &trash).map_err(ManageError::io("move away", &dir))?;
    std::fs::remove_dir_all(&trash).map_err(ManageError::io("delete", &trash))?;
    tracing::info!(model = %name, "model removed");
    Ok(bytes)
}

/// Bytes as people read them.
pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
