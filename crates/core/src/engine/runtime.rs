//! Finding and loading the ONNX Runtime shared library.
//!
//! Benchtop links ONNX Runtime at run time (ort's `load-dynamic`), so one binary works with the
//! library the setup step fetched, one the user installed, or one shipped next to the executable.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use super::{EngineError, Result};
use crate::dirs::Dirs;

/// The ONNX Runtime version the setup step fetches (`scripts/fetch_onnxruntime.py`).
pub const RUNTIME_VERSION: &str = "1.32.0";

/// File names the library goes by on this platform, most specific first.
fn library_names() -> Vec<String> {
    if cfg!(target_os = "windows") {
        vec!["onnxruntime.dll".into()]
    } else if cfg!(target_os = "macos") {
        vec![
            format!("libonnxruntime.{RUNTIME_VERSION}.dylib"),
            "libonnxruntime.dylib".into(),
        ]
    } else {
        vec![
            format!("libonnxruntime.so.{RUNTIME_VERSION}"),
            "libonnxruntime.so.1".into(),
            "libonnxruntime.so".into(),
        ]
    }
}

/// Where the library is, in this order: `explicit` (the `--ort-lib` flag), `BENCHTOP_ORT_LIB`,
/// `ORT_DYLIB_PATH`, next to the running executable, then the cache the setup step fills
/// (`<cache>/onnxruntime/<version>/`). Each of the first three may name the file or its folder.
///
/// A path given explicitly (flag or variable) that holds no library is an error rather than a
/// reason to look further: the user asked for that one.
pub fn locate_library(explicit: Option<&Path>, dirs: &Dirs) -> Result<PathBuf> {
    let names = library_names();
    let in_dir = |dir: &Path| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    let given = explicit.map(Path::to_path_buf).or_else(|| {
        ["BENCHTOP_ORT_LIB", "ORT_DYLIB_PATH"]
            .iter()
            .find_map(|var| {
                std::env::var_os(var)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
    });
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path)
        } else if let Some(found) = path.is_dir().then(|| in_dir(&path)).flatten() {
            Ok(found)
        } else {
            Err(EngineError::RuntimeNotFound {
                names,
                searched: vec![path],
            })
        };
    }
    let mut searched = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        searched.push(exe_dir);
    }
    searched.push(dirs.runtimes().join(RUNTIME_VERSION));
    searched
        .iter()
        .find_map(|dir| in_dir(dir))
        .ok_or(EngineError::RuntimeNotFound { names, searched })
}

/// How sessions run. `intra_threads` caps the threads one inference uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    pub intra_threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        SessionOptions {
            intra_threads: cores.min(8),
        }
    }
}

/// A loaded ONNX Runtime. ONNX Runtime can be loaded once per process: a second [`Runtime::load`]
/// with the same library shares it, with another library it is refused.
#[derive(Clone)]
pub struct Runtime {
    library: PathBuf,
    env: Environment,
}

static LOADED: Mutex<Option<Runtime>> = Mutex::new(None);

impl Runtime {
    /// Load the library at `path` and start an environment (telemetry off: Benchtop sends
    /// nothing anywhere on its own).
    pub fn load(path: &Path) -> Result<Runtime> {
        let library = std::fs::canonicalize(path).map_err(|e| EngineError::RuntimeLoad {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(runtime) = loaded.as_ref() {
            if runtime.library != library {
                return Err(EngineError::RuntimeInit(format!(
                    "ONNX Runtime is already loaded from {} in this process; it cannot also load {}",
                    runtime.library.display(),
                    library.display()
                )));
            }
            return Ok(runtime.clone());
        }
        let env = ort::init_from(&library)
            .map_err(|e| EngineError::RuntimeLoad {
                path: library.clone(),
                reason: e.to_string(),
            })?
            .with_name("benchtop")
            .with_telemetry(false)
            .build()
            .map_err(|e| EngineError::RuntimeInit(format!("ONNX Runtime did not start: {e}")))?;
        let runtime = Runtime { library, env };
        *loaded = Some(runtime.clone());
        Ok(runtime)
    }

    /// [`locate_library`] then [`Runtime::load`].
    pub fn locate_and_load(explicit: Option<&Path>, dirs: &Dirs) -> Result<Runtime> {
        Runtime::load(&locate_library(explicit, dirs)?)
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The library's version as its build info reports it (e.g. `1.32.0`), if it says.
    pub fn version(&self) -> Option<String> {
        let info = ort::info();
        let start = info.find("git-branch=rel-")? + "git-branch=rel-".len();
        let rest = &info[start..];
        Some(rest[..rest.find([',', ' ']).unwrap_or(rest.len())].to_string())
    }

    /// A session over the ONNX file at `path`, configured the same way for every caller (the
    /// engine and its benchmarks alike).
    pub fn session(&self, path: &Path, options: &SessionOptions) -> Result<Session> {
        let fail = |reason: String| EngineError::ModelLoad {
            path: path.to_path_buf(),
            reason,
        };
        // ort's builder errors carry the builder and are not Send; keep only their message.
        Session::builder(&self.env)
            .map_err(|e| fail(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| fail(e.to_string()))?
            .with_intra_threads(options.intra_threads.max(1))
            .map_err(|e| fail(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| fail(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| fail(e.to_string()))
    }
}
