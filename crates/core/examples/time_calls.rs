//! Times the engine in-process for `bench/vs_python.py`, which times the Python stack the same
//! way and prints both side by side.
//!
//! `time_calls MODEL BATCH ITERS TEXTS_FILE` → one JSON line
//! `{"model", "batch", "iters", "engine_ms": [...], "raw_ms": [...]}`: end-to-end `embed` /
//! `classify` calls alternating, call by call, with bare `session.run` calls on the model's own
//! session and the tensors the engine builds — a paired measurement, so drift and process
//! placement hit both equally.

use std::time::Instant;

use ort::value::TensorRef;

use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{Catalog, Engine, EngineOptions, Runtime, RuntimeOptions, Task};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
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
    // The batches the engine runs these texts as (padded, or packed rows).
    let batches = model.encode(&texts)?;

    let engine_call = || -> AnyResult<()> {
        if classify {
            std::hint::black_box(model.classify(&texts)?);
        } else {
            std::hint::black_box(model.embed(&texts)?);
        }
        Ok(())
    };
    let raw_call = || -> AnyResult<()> {
        model.with_session(|session| {
            for encoded in &batches {
                let shape = [encoded.batch, encoded.seq];
                let outputs = session.run(ort::inputs![
                    "input_ids" => TensorRef::from_array_view((shape, encoded.input_ids.as_slice()))?,
                    "attention_mask" => TensorRef::from_array_view((shape, encoded.attention_mask.as_slice()))?,
                    "token_type_ids" => TensorRef::from_array_view((shape, encoded.type_ids.as_slice()))?,
                ])?;
                std::hint::black_box(outputs[0].try_extract_tensor::<f32>()?.1[0]);
            }
            Ok(())
        })
    };
    let timed = |f: &dyn Fn() -> AnyResult<()>| -> AnyResult<f64> {
        let start = Instant::now();
        f()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..iters.div_ceil(5).max(3) {
        engine_call()?;
        raw_call()?;
    }
    let (mut engine_ms, mut raw_ms) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for i in 0..iters {
        // Alternate which goes first, so neither always follows the other.
        if i % 2 == 0 {
            engine_ms.push(timed(&engine_call)?);
            raw_ms.push(timed(&raw_call)?);
        } else {
            raw_ms.push(timed(&raw_call)?);
            engine_ms.push(timed(&engine_call)?);
        }
    }
    let json = serde_json::json!({ "model": model.name(), "batch": batch, "iters": iters, "engine_ms": engine_ms, "raw_ms": raw_ms });
    println!("{json}");
    Ok(())
}
