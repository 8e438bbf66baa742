//! Finding and loading the ONNX Runtime shared library.
//!
//! Benchtop links ONNX Runtime at run time (ort's `load-dynamic`), so one binary works with the
//! library the setup step fetched, one the user installed, or one shipped next to the executable.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use super::{EngineError, Result};
use crate::dirs::Dirs;

/// The ONNX Runtime version the setup step fetches (`models/fetch_onnxruntime.py`).
pub const RUNTIME_VERSION: &str = "1.32.0";

/// The oldest ONNX Runtime whose C API this build uses (ort's `api-22` feature).
pub const MIN_RUNTIME_MINOR: u32 = 22;

/// File names the library goes by on this platform, most specific first.
fn library_names() -> Vec<String> {
    if cfg!(target_os = "windows") {
        vec!["onnxruntime.dll".into()]
    } else if cfg!(target_os = "macos") {
        vec![format!("libonnxruntime.{RUNTIME_VERSION}.dylib"), "libonnxruntime.dylib".into()]
    } else {
        vec![format!("libonnxruntime.so.{RUNTIME_VERSION}"), "libonnxruntime.so.1".into(), "libonnxruntime.so".into()]
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
            .find_map(|var| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from))
    });
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path)
        } else if let Some(found) = path.is_dir().then(|| in_dir(&path)).flatten() {
            Ok(found)
        } else {
            Err(EngineError::RuntimeNotFound { names, searched: vec![path] })
        };
    }
    let mut searched = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        searched.push(exe_dir);
    }
    searched.push(dirs.runtimes().join(RUNTIME_VERSION));
    searched.iter().find_map(|dir| in_dir(dir)).ok_or(EngineError::RuntimeNotFound { names, searched })
}

/// How ONNX Runtime runs. Every session shares one intra-op thread pool of `intra_threads`
/// threads: with several models loaded, per-session pools would each want every core and fight
/// over them (measured: 19 % slower per call with four sessions on two cores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub intra_threads: usize,
    /// Let idle intra-op threads spin, waiting for the next run (ONNX Runtime's default). Best for
    /// back-to-back runs with nothing else to do; a server, whose other threads (HTTP, logging)
    /// need the same cores between runs, turns it off.
    pub spin: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        RuntimeOptions { intra_threads: cores.min(8), spin: true }
    }
}

/// A loaded ONNX Runtime. ONNX Runtime can be loaded once per process: a second [`Runtime::load`]
/// with the same library shares the first (and its options), with another library it is refused.
#[derive(Clone)]
pub struct Runtime {
    library: PathBuf,
    version: String,
    options: RuntimeOptions,
    env: Environment,
}

static LOADED: Mutex<Option<Runtime>> = Mutex::new(None);

impl Runtime {
    /// Load the library at `path` and start an environment (telemetry off: Benchtop sends
    /// nothing anywhere on its own).
    pub fn load(path: &Path, options: &RuntimeOptions) -> Result<Runtime> {
        let library = std::fs::canonicalize(path)
            .map_err(|e| EngineError::RuntimeLoad { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(runtime) = loaded.as_ref() {
            if runtime.library != library {
                return Err(EngineError::RuntimeInit(format!(
                    "ONNX Runtime is already loaded from {} in this process; it cannot also load {}",
                    runtime.library.display(),
                    library.display()
                )));
            }
            if runtime.options != *options {
                tracing::warn!(requested = ?options, kept = ?runtime.options, "ONNX Runtime already started; keeping its options");
            }
            return Ok(runtime.clone());
        }
        let version = library_version(&library)?;
        let minor = version.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
        if !version.starts_with("1.") || minor < MIN_RUNTIME_MINOR {
            return Err(EngineError::RuntimeLoad {
                path: library,
                reason: format!("it is ONNX Runtime {version}, and Benchtop needs 1.{MIN_RUNTIME_MINOR} or newer"),
            });
        }
        let env = ort::init_from(&library)
            .map_err(|e| EngineError::RuntimeLoad { path: library.clone(), reason: e.to_string() })?
            .with_name("benchtop")
            .with_telemetry(false)
            .with_global_thread_pool(thread_pool(options).map_err(|e| EngineError::RuntimeInit(e.to_string()))?)
            .build()
            .map_err(|e| EngineError::RuntimeInit(format!("ONNX Runtime did not start: {e}")))?;
        tracing::info!(library = %library.display(), %version, "loaded ONNX Runtime");
        let runtime = Runtime { library, version, options: options.clone(), env };
        *loaded = Some(runtime.clone());
        Ok(runtime)
    }

    /// [`locate_library`] then [`Runtime::load`].
    pub fn locate_and_load(explicit: Option<&Path>, dirs: &Dirs, options: &RuntimeOptions) -> Result<Runtime> {
        Runtime::load(&locate_library(explicit, dirs)?, options)
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The library's version, as it reports itself (e.g. `1.32.0`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A session over the ONNX file at `path`, configured the same way for every caller (the
    /// engine and its benchmarks alike), running on the shared intra-op thread pool.
    pub fn session(&self, path: &Path) -> Result<Session> {
        self.build_session(path, false)
    }

    /// A session with one thread of its own, outside the shared pool: several of them, each run
    /// from its own thread, use the cores without the pool's per-operator hand-offs (see
    /// [`crate::engine::Engine::replicas`]).
    pub fn single_threaded_session(&self, path: &Path) -> Result<Session> {
        self.build_session(path, true)
    }

    fn build_session(&self, path: &Path, single_threaded: bool) -> Result<Session> {
        let fail = |reason: String| EngineError::ModelLoad { path: path.to_path_buf(), reason };
        // ort's builder errors carry the builder and are not Send; keep only their message.
        let mut builder = Session::builder(&self.env)
            .map_err(|e| fail(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| fail(e.to_string()))?;
        if single_threaded {
            builder = builder
                .with_independent_thread_pool()
                .map_err(|e| fail(e.to_string()))?
                .with_intra_threads(1)
                .map_err(|e| fail(e.to_string()))?
                .with_flush_to_zero()
                .map_err(|e| fail(e.to_string()))?;
        }
        let session = builder.commit_from_file(path).map_err(|e| fail(e.to_string()));
        return_freed_memory();
        session
    }
}

/// Give the heap that is free back to the system. Loading a model allocates and frees far more
/// than it keeps (the parsed graph, weights before and after optimisation: ~100 MiB for MiniLM),
/// and glibc would otherwise hold on to those pages for the life of the process.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free pages at the top of or inside glibc's heaps; it is
    // thread-safe and touches no memory that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn thread_pool(options: &RuntimeOptions) -> ort::Result<GlobalThreadPoolOptions> {
    GlobalThreadPoolOptions::default()
        .with_intra_threads(options.intra_threads.max(1))?
        .with_inter_threads(1)?
        .with_spin_control(options.spin)?
        .with_flush_to_zero()
}

/// While alive, the current thread's floating-point unit treats subnormal numbers as zero
/// (x86-64: MXCSR's flush-to-zero and denormals-are-zero; AArch64: FPCR.FZ); dropping it puts
/// the previous mode back.
///
/// Why: a softmax over masked positions (padding, causal masks, texts packed into one row)
/// computes `exp` of very negative numbers, which land in the subnormal range, and arithmetic
/// on subnormals takes the CPU's slow path — measured on MiniLM's 12 × 124 × 124 attention with
/// 7 of 8 positions masked: 0.86 ms per softmax, 0.094 ms flushed. Those values are below
/// 1.2e-38, so dropping them changes no answer. ONNX Runtime sets the same flags on its own
/// pool threads (`with_flush_to_zero`), but a run also computes on the calling thread, which
/// this covers.
pub(crate) struct SubnormalsAsZero {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    saved: u64,
    /// The mode belongs to one thread: the guard must be dropped where it was made.
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl SubnormalsAsZero {
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn enable() -> SubnormalsAsZero {
        const FLUSH_TO_ZERO: u32 = 1 << 15;
        const DENORMALS_ARE_ZERO: u32 = 1 << 6;
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr`/`ldmxcsr` read and write this thread's SSE control register through a
        // pointer to a local; only the two rounding-of-tiny-values bits change.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            let flushed = csr | FLUSH_TO_ZERO | DENORMALS_ARE_ZERO;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &flushed, options(nostack, preserves_flags));
        }
        SubnormalsAsZero { saved: u64::from(csr), _this_thread: std::marker::PhantomData }
    }

    #[cfg(target_arch = "aarch64")]
    pub(crate) fn enable() -> SubnormalsAsZero {
        const FLUSH_TO_ZERO: u64 = 1 << 24;
        let fpcr: u64;
        // SAFETY: reads and writes this thread's floating-point control register; only FZ changes.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr | FLUSH_TO_ZERO, options(nomem, nostack, preserves_flags));
        }
        SubnormalsAsZero { saved: fpcr, _this_thread: std::marker::PhantomData }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(crate) fn enable() -> SubnormalsAsZero {
        SubnormalsAsZero { _this_thread: std::marker::PhantomData }
    }
}

impl Drop for SubnormalsAsZero {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        {
            let csr = self.saved as u32;
            // SAFETY: restores the value `enable` read from this thread's register.
            unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags)) };
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: restores the value `enable` read from this thread's register.
        unsafe {
            std::arch::asm!("msr fpcr, {}", in(reg) self.saved, options(nomem, nostack, preserves_flags))
        };
    }
}

/// Ask the library at `path` its version (`OrtGetApiBase()->GetVersionString()`), before ort
/// commits the process to it, so an unusable library is refused with a message that says why.
fn library_version(path: &Path) -> Result<String> {
    let fail = |reason: String| EngineError::RuntimeLoad { path: path.to_path_buf(), reason };
    // SAFETY: loading the library runs its initialisers, exactly as ort's loader does right after;
    // a file that is not a shared library is rejected by the loader with an error, not run.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| fail(e.to_string()))?;
    // SAFETY: `OrtGetApiBase` is ONNX Runtime's stable C entry point with this signature in every
    // release; a library without the symbol is reported as not being ONNX Runtime.
    let get_api_base =
        unsafe { library.get::<unsafe extern "system" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase") }
            .map_err(|_| fail("it does not export `OrtGetApiBase`, so it is not an ONNX Runtime library".into()))?;
    // SAFETY: the returned pointer is to a static struct inside the library (checked for null),
    // and `GetVersionString` returns a static NUL-terminated string that must not be freed.
    let version = unsafe {
        let base = get_api_base();
        if base.is_null() {
            return Err(fail("`OrtGetApiBase` returned nothing".into()));
        }
        std::ffi::CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned()
    };
    Ok(version)
}
