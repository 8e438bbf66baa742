//! Benchtop's directories: one rule, shared by every face (and mirrored by the setup scripts).

use std::path::{Path, PathBuf};

/// Where Benchtop keeps things.
///
/// - `cache`: re-creatable files — the ONNX Runtime library and the default models built by the
///   setup step. `BENCHTOP_CACHE_DIR`, else the platform cache directory (`~/.cache/benchtop`).
/// - `data`: the user's own things — added models, and later the feedback log.
///   `--data-dir` / `BENCHTOP_DATA_DIR`, else the platform data directory
///   (`~/.local/share/benchtop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub cache: PathBuf,
    pub data: PathBuf,
}

impl Dirs {
    /// Resolve from the environment and the platform; `data_dir` (from a `--data-dir` flag) wins
    /// over `BENCHTOP_DATA_DIR`.
    pub fn resolve(data_dir: Option<&Path>) -> Dirs {
        let project = directories::ProjectDirs::from("", "", "benchtop");
        let env_dir = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache = env_dir("BENCHTOP_CACHE_DIR")
            .or_else(|| project.as_ref().map(|p| p.cache_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".benchtop-cache"));
        let data = data_dir
            .map(Path::to_path_buf)
            .or_else(|| env_dir("BENCHTOP_DATA_DIR"))
            .or_else(|| project.as_ref().map(|p| p.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".benchtop-data"));
        Dirs { cache, data }
    }

    /// The default models, built by the setup step (`models/build.py`).
    pub fn default_models(&self) -> PathBuf {
        self.cache.join("models")
    }

    /// Models the user added.
    pub fn user_models(&self) -> PathBuf {
        self.data.join("models")
    }

    /// Where models are looked for, in order: `explicit` folders (`--models-dir`), then
    /// `BENCHTOP_MODELS_DIR` (a path list), then the user's models, then the default models.
    pub fn model_search_path(&self, explicit: &[PathBuf]) -> Vec<PathBuf> {
        let mut search = explicit.to_vec();
        if let Some(list) = std::env::var_os("BENCHTOP_MODELS_DIR") {
            search.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
        }
        search.push(self.user_models());
        search.push(self.default_models());
        search
    }

    /// ONNX Runtime libraries extracted by `models/fetch_onnxruntime.py`, one folder per version.
    pub fn runtimes(&self) -> PathBuf {
        self.cache.join("onnxruntime")
    }
}
