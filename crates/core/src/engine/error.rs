use std::path::PathBuf;

/// What went wrong in the engine, worded for the person who has to fix it: each message says
/// what happened and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "ONNX Runtime was not found (looked for {names} in: {searched}).\n\
         Fix: run `./dev start` (it fetches ONNX Runtime {version} from PyPI), or point \
         `--ort-lib` / BENCHTOP_ORT_LIB at an ONNX Runtime library (version 1.22 or newer).",
        names = .names.join(", "),
        searched = display_paths(.searched),
        version = super::RUNTIME_VERSION
    )]
    RuntimeNotFound { names: Vec<String>, searched: Vec<PathBuf> },

    #[error(
        "could not load ONNX Runtime from {}: {reason}.\n\
         Fix: use ONNX Runtime 1.22 or newer for this platform (`./dev start` fetches {}), \
         or point `--ort-lib` / BENCHTOP_ORT_LIB at another copy.",
        path.display(),
        super::RUNTIME_VERSION
    )]
    RuntimeLoad { path: PathBuf, reason: String },

    #[error("{0}")]
    RuntimeInit(String),

    #[error(
        "no model named `{name}`{}. Looked in: {}.\n\
         Fix: run `benchtop models` to see what is installed, pass a model folder path, \
         or add folders with `--models-dir`.",
        if available.is_empty() { String::new() } else { format!(" (available: {})", available.join(", ")) },
        display_paths(searched)
    )]
    ModelNotFound { name: String, searched: Vec<PathBuf>, available: Vec<String> },

    #[error("model folder {} cannot be used: {problem}", dir.display())]
    InvalidModel { dir: PathBuf, problem: String },

    #[error(
        "{} cannot be loaded: {reason}.\n\
         Fix: the file is corrupt, truncated or not an ONNX model; replace it \
         (for the default models, `./dev start` rebuilds them).",
        path.display()
    )]
    ModelLoad { path: PathBuf, reason: String },

    #[error(
        "{} cannot be read: {reason}.\n\
         Fix: replace it with the tokenizer.json that was exported with the model.",
        path.display()
    )]
    TokenizerLoad { path: PathBuf, reason: String },

    #[error("model `{model}` is {} {actual} model; this needs {} {wanted} model", article(actual), article(wanted))]
    WrongTask { model: String, actual: &'static str, wanted: &'static str },

    #[error("could not tokenize the input for `{model}`: {reason}")]
    Tokenize { model: String, reason: String },

    #[error("inference failed in `{model}`: {reason}")]
    Inference { model: String, reason: String },

    #[error(
        "model `{model}` has no chat template (tokenizer_config.json has no `chat_template`).\n\
         Fix: send the prompt as plain text (`--raw` on the command line), or add the template \
         the model was trained with to its tokenizer_config.json."
    )]
    NoChatTemplate { model: String },

    #[error("the chat template of `{model}` failed: {reason}")]
    ChatTemplate { model: String, reason: String },

    #[error(
        "the prompt is {tokens} tokens, but `{model}` has a context of {context} tokens \
         (prompt and answer together).\nFix: shorten the prompt (or the conversation) to leave room for the answer."
    )]
    PromptTooLong { model: String, tokens: usize, context: usize },

    #[error("invalid generation settings: {0}")]
    InvalidParams(String),
}

/// A closed set of error classes the faces map to exit codes and HTTP statuses, in one place each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// ONNX Runtime is missing, the wrong version or failed to start.
    Runtime,
    /// No such model.
    ModelNotFound,
    /// The model exists but its files are missing, corrupt or unsupported.
    InvalidModel,
    /// The input cannot be handled by this model (wrong task, untokenizable text).
    Input,
    /// The model failed while running.
    Inference,
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::RuntimeNotFound { .. } | EngineError::RuntimeLoad { .. } | EngineError::RuntimeInit(_) => {
                ErrorKind::Runtime
            }
            EngineError::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            EngineError::InvalidModel { .. } | EngineError::ModelLoad { .. } | EngineError::TokenizerLoad { .. } => {
                ErrorKind::InvalidModel
            }
            EngineError::WrongTask { .. }
            | EngineError::Tokenize { .. }
            | EngineError::NoChatTemplate { .. }
            | EngineError::ChatTemplate { .. }
            | EngineError::PromptTooLong { .. }
            | EngineError::InvalidParams(_) => ErrorKind::Input,
            EngineError::Inference { .. } => ErrorKind::Inference,
        }
    }

    pub(crate) fn invalid(dir: &std::path::Path, problem: impl Into<String>) -> EngineError {
        EngineError::InvalidModel { dir: dir.to_path_buf(), problem: problem.into() }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(nowhere)".into();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
