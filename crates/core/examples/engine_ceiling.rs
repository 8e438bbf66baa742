//! The engine's own throughput in-process, for `bench/serve_vs_flask.py`: the ceiling a server
//! over it can approach.
//!
//! `engine_ceiling MODEL TEXTS_FILE [MODE BATCH]` → one JSON line `{"shared": {"BATCH":
//! texts_per_s, …}, "replicas": {"BATCH": texts_per_s, …}}` (only `MODE`'s `BATCH` when given).
//! Batches are drawn at random from the file's lines (as concurrent requests would arrive), each
//! configuration for a fixed wall time:
//! - `shared`: one model on the runtime's shared multi-threaded pool, one batch at a time;
//! - `replicas`: one single-threaded replica per core, each run from its own thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{Catalog, Engine, EngineOptions, Model, Runtime, RuntimeOptions, Task};

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RUN_FOR: Duration = Duration::from_secs(4);

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, file, only) = match args.as_slice() {
        [model, file] => (model, file, None),
        [model, file, mode, batch] if ["shared", "replicas"].contains(&mode.as_str()) => {
            (model, file, Some((mode.as_str(), batch.parse::<usize>()?)))
        }
        _ => return Err("usage: engine_ceiling MODEL TEXTS_FILE [shared|replicas BATCH]".into()),
    };
    let dirs = Dirs::resolve(None);
    let runtime = Runtime::locate_and_load(None, &dirs, &RuntimeOptions { spin: false, ..RuntimeOptions::default() })?;
    let engine = Engine::new(runtime, Catalog::new(vec![dirs.default_models()]), EngineOptions { max_batch: 64 });
    let texts: Vec<String> =
        std::fs::read_to_string(file)?.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
    let texts = Arc::new(texts);
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let shared = engine.model(model)?;
    let replicas = engine.replicas(model, cores)?;
    let mut out: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    let batches = match only {
        Some((_, batch)) => vec![batch],
        None => vec![1usize, 4, 8, 16, 32],
    };
    for batch in batches {
        for (mode, models) in [("shared", std::slice::from_ref(&shared)), ("replicas", replicas.as_slice())] {
            if only.is_none_or(|(wanted, _)| wanted == mode) {
                out.entry(mode).or_default().insert(batch.to_string(), run(models, &texts, batch)?);
            }
        }
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// Texts per second with one thread per model in `models`, each running random batches.
fn run(models: &[Arc<Model>], texts: &Arc<Vec<String>>, batch: usize) -> AnyResult<f64> {
    let started = Instant::now();
    let handles: Vec<_> = models
        .iter()
        .enumerate()
        .map(|(i, model)| {
            let (model, texts) = (Arc::clone(model), Arc::clone(texts));
            std::thread::spawn(move || -> AnyResult<usize> {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let mut done = 0;
                while started.elapsed() < RUN_FOR {
                    let picked: Vec<&str> = (0..batch).map(|_| texts[next() as usize % texts.len()].as_str()).collect();
                    match model.folder().task {
                        Task::Classification { .. } => drop(std::hint::black_box(model.classify(&picked)?)),
                        _ => drop(std::hint::black_box(model.embed(&picked)?)),
                    }
                    done += batch;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.join().map_err(|_| "a benchmark thread panicked")??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
