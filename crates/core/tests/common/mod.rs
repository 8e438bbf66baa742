//! Shared by the engine tests: the real ONNX Runtime and models the test command sets up.
#![allow(dead_code)]

pub mod hub;
pub mod mock_llm;

use std::path::PathBuf;
use std::sync::Arc;

use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{Catalog, Engine, EngineOptions, Model, Runtime, RuntimeOptions};
use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("models/fixtures").join(name)
}

pub fn dirs() -> Dirs {
    Dirs::resolve(None)
}

pub fn runtime() -> Runtime {
    Runtime::locate_and_load(None, &dirs(), &RuntimeOptions::default())
        .unwrap_or_else(|e| panic!("these tests need ONNX Runtime; run `./dev test`, which fetches it.\n{e}"))
}

pub fn engine_with(options: EngineOptions) -> Engine {
    let catalog = Catalog::new(vec![dirs().default_models(), repo().join("models/fixtures")]);
    Engine::new(runtime(), catalog, options)
}

pub fn model(name: &str) -> Arc<Model> {
    engine_with(EngineOptions::default())
        .model(name)
        .unwrap_or_else(|e| panic!("{e}\n(run `./dev test` to build the default models)"))
}

/// Reference outputs written by `models/golden.py` (Python onnxruntime + tokenizers).
pub fn golden(name: &str) -> Value {
    let path = repo().join("models/build/golden").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `./dev test`, which writes the golden references", path.display()));
    serde_json::from_str(&text).expect("golden file is JSON")
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A copy of a fixture folder in a temporary directory, to break on purpose.
pub fn scratch_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).expect("mkdir");
    for entry in std::fs::read_dir(fixture(name)).expect("fixture exists") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
    }
    (tmp, dir)
}
