//! Local inference on ONNX models.
//!
//! The pieces, from the outside in:
//! - [`Runtime`]: the ONNX Runtime shared library, found and loaded once per process.
//! - [`Catalog`]: model folders in a list of directories, read without loading anything heavy.
//! - [`ModelFolder`]: one Hugging Face / Optimum style folder — `model.onnx`, `tokenizer.json`,
//!   `config.json`, an optional `benchtop.json` manifest — and the [`Task`] it performs.
//! - [`Model`]: a loaded folder — one ONNX Runtime session, shared, plus its tokenizer —
//!   that embeds or classifies batches of texts.
//! - [`Engine`]: all of the above behind one door, loading each model once.

mod catalog;
mod error;
mod folder;
pub mod generate;
mod model;
mod postprocess;
mod runtime;
mod tokenize;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use catalog::{Catalog, CatalogEntry};
pub use error::{EngineError, ErrorKind};
pub use folder::{Activation, ModelFolder, Pooling, Task};
pub use generate::{FinishReason, GenerateParams, Generation, Generator, Message, Prompt, Role, Usage};
pub use model::{Classification, Embedding, LabelScore, Model};
pub use runtime::{locate_library, Runtime, RuntimeOptions, RUNTIME_VERSION};
pub use tokenize::EncodedBatch;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How models are run (threads are the [`Runtime`]'s, shared by all models).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Texts per `session.run`; larger requests are split, shortest texts grouped together.
    pub max_batch: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { max_batch: 32 }
    }
}

/// The local engine: a runtime, a catalog and the models loaded so far (each once, shared).
pub struct Engine {
    runtime: Runtime,
    catalog: Catalog,
    options: EngineOptions,
    /// Loaded models by the name or path they were asked for.
    loaded: Mutex<HashMap<String, Arc<Model>>>,
    /// Loaded generation models, likewise.
    generators: Mutex<HashMap<String, Arc<Generator>>>,
}

impl Engine {
    pub fn new(runtime: Runtime, catalog: Catalog, options: EngineOptions) -> Engine {
        Engine { runtime, catalog, options, loaded: Mutex::new(HashMap::new()), generators: Mutex::new(HashMap::new()) }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The model with this name (or at this folder path), loading it on first use. A name asked
    /// for before is answered from memory, without touching the folder again (this is on every
    /// request's path).
    pub fn model(&self, name_or_path: &str) -> Result<Arc<Model>> {
        if let Some(model) = self.lock_loaded().get(name_or_path) {
            return Ok(Arc::clone(model));
        }
        let folder = self.catalog.find(name_or_path)?;
        // The same folder asked for by another name (a path, say) shares the loaded model.
        let shared = self.lock_loaded().values().find(|m| m.folder().dir == folder.dir).cloned();
        let model = match shared {
            Some(model) => model,
            // Loading takes a while; do it without holding the lock. Two racing loads of the
            // same model both succeed and the first one stored wins.
            None => Arc::new(Model::load(&self.runtime, folder, &self.options)?),
        };
        Ok(Arc::clone(self.lock_loaded().entry(name_or_path.to_string()).or_insert(model)))
    }

    /// `n` independent copies of the model `name_or_path`, each with a single-threaded session
    /// of its own (not cached; the caller keeps them). Run from `n` threads at once — one batch
    /// each — they use `n` cores with no hand-offs between threads inside a run: measured on two
    /// cores, two replicas embed ~30 % more texts per second than one session on a two-thread pool
    /// (426 against 324 on random batches; docs/benchmarks.md). With `n` = 1 this is the shared model, on the shared pool.
    pub fn replicas(&self, name_or_path: &str, n: usize) -> Result<Vec<Arc<Model>>> {
        if n <= 1 {
            return Ok(vec![self.model(name_or_path)?]);
        }
        let folder = self.catalog.find(name_or_path)?;
        (0..n)
            .map(|_| Model::load_single_threaded(&self.runtime, folder.clone(), &self.options).map(Arc::new))
            .collect()
    }

    /// The generation model with this name (or at this folder path), loading it on first use.
    pub fn generator(&self, name_or_path: &str) -> Result<Arc<Generator>> {
        let lock = || self.generators.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(generator) = lock().get(name_or_path) {
            return Ok(Arc::clone(generator));
        }
        let folder = self.catalog.find(name_or_path)?;
        let shared = lock().values().find(|g| g.folder().dir == folder.dir).cloned();
        let generator = match shared {
            Some(generator) => generator,
            None => Arc::new(Generator::load(&self.runtime, folder)?),
        };
        Ok(Arc::clone(lock().entry(name_or_path.to_string()).or_insert(generator)))
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Model>>> {
        // A panic while holding this lock cannot leave the map half-written (inserts are atomic).
        self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
