//! Times `embed` / `classify` calls in-process, for `bench/vs_python.py`, which times the Python
//! stack the same way and prints both side by side.
//!
//! `time_calls MODEL BATCH ITERS TEXTS_FILE` → one JSON line: {"model", "batch", "iters", "ms": [...]}.

use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{Catalog, Engine, EngineOptions, Runtime, RuntimeOptions, Task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, batch, iters, file] = args.as_slice() else {
        return Err("usage: time_calls MODEL BATCH ITERS TEXTS_FILE".into());
    };
    let (batch, iters): (usize, usize) = (batch.parse()?, iters.parse()?);
    let dirs = Dirs::resolve(None);
    let runtime = Runtime::locate_and_load(None, &dirs, &RuntimeOptions::default())?;
    let engine = Engine::new(runtime, Catalog::new(vec![dirs.default_models()]), EngineOptions::default());
    let model = engine.model(model)?;
    let all = std::fs::read_to_string(file)?;
    let texts: Vec<&str> = all.lines().cycle().take(batch).collect();
    let classify = matches!(model.folder().task, Task::Classification { .. });
    let call = || -> Result<(), benchtop_core::engine::EngineError> {
        if classify {
            std::hint::black_box(model.classify(&texts)?);
        } else {
            std::hint::black_box(model.embed(&texts)?);
        }
        Ok(())
    };
    for _ in 0..iters.div_ceil(5).max(3) {
        call()?;
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = std::time::Instant::now();
        call()?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!("{}", serde_json::json!({ "model": model.name(), "batch": batch, "iters": iters, "ms": ms }));
    Ok(())
}
