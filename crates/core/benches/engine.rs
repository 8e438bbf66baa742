//! Engine overhead: end-to-end `embed` / `classify` (tokenise, pad, run, pool, score) against a
//! raw `session.run` on the very same tensors and the very same session.
//! Batch 1 and batch 32, on both default models. Texts: `bench/texts.txt`.
//!
//! Run with `./dev bench` (or `cargo bench -p benchtop-core --bench engine`); figures and the
//! ratio are in docs/benchmarks.md.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ort::value::TensorRef;

use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{Catalog, Engine, EngineOptions, Runtime, RuntimeOptions};

fn texts() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/texts.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_string).collect()
}

fn overhead(c: &mut Criterion) {
    let dirs = Dirs::resolve(None);
    let runtime =
        Runtime::locate_and_load(None, &dirs, &RuntimeOptions::default()).expect("ONNX Runtime (run ./dev setup)");
    let options = EngineOptions::default();
    let engine = Engine::new(runtime, Catalog::new(vec![dirs.default_models()]), options);
    let all = texts();
    for name in ["minilm-l6-v2", "support-triage"] {
        let model = engine.model(name).expect("default model (run ./dev setup)");
        let mut group = c.benchmark_group(name);
        for batch in [1usize, 32] {
            let texts: Vec<&str> = all.iter().take(batch).map(String::as_str).collect();
            // The batches the engine runs these texts as (padded, or packed rows).
            let batches = model.encode(&texts).expect("encodes");
            group.bench_function(BenchmarkId::new("raw_session_run", batch), |b| {
                b.iter(|| {
                    for encoded in &batches {
                        let shape = [encoded.batch, encoded.seq];
                        let inputs = ort::inputs![
                            "input_ids" => TensorRef::from_array_view((shape, encoded.input_ids.as_slice())).expect("view"),
                            "attention_mask" => TensorRef::from_array_view((shape, encoded.attention_mask.as_slice())).expect("view"),
                            "token_type_ids" => TensorRef::from_array_view((shape, encoded.type_ids.as_slice())).expect("view"),
                        ];
                        model.with_session(|session| {
                            let outputs = session.run(inputs).expect("runs");
                            std::hint::black_box(outputs[0].try_extract_tensor::<f32>().expect("f32").1[0]);
                        })
                    }
                })
            });
            group.bench_function(BenchmarkId::new("engine_end_to_end", batch), |b| {
                b.iter(|| {
                    if name == "support-triage" {
                        std::hint::black_box(model.classify(&texts).expect("classifies"));
                    } else {
                        std::hint::black_box(model.embed(&texts).expect("embeds"));
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(60).measurement_time(std::time::Duration::from_secs(8));
    targets = overhead
}
criterion_main!(benches);
