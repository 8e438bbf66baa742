//! How much memory loaded models take (docs/benchmarks.md, "Model memory").
//!
//! `model_memory MODEL…` loads the models one after another on the shared pool, runs each once on
//! a batch of 8 texts, then prints one JSON line with the process's resident memory (RSS and
//! PSS, in MiB, from `/proc/self/smaps_rollup`) before and after each step.

use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{Catalog, Engine, EngineOptions, Runtime, RuntimeOptions, Task};

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn memory() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("Rss:"), field("Pss:"))
}

fn main() -> AnyResult<()> {
    let models: Vec<String> = std::env::args().skip(1).collect();
    if models.is_empty() {
        return Err("usage: model_memory MODEL…".into());
    }
    let mut steps = vec![("start".to_string(), memory())];
    let dirs = Dirs::resolve(None);
    let runtime = Runtime::locate_and_load(None, &dirs, &RuntimeOptions::default())?;
    let engine = Engine::new(runtime, Catalog::new(vec![dirs.default_models()]), EngineOptions::default());
    steps.push(("runtime".into(), memory()));
    let texts = [
        "I was charged twice this month",
        "The app crashes when I upload a photo",
        "How do I change my email?",
        "Do you offer a discount for teams?",
        "Love the new dashboard",
        "ok",
        "Refund please, the invoice is wrong and I want my money back",
        "hello",
    ];
    for name in &models {
        let model = engine.model(name)?;
        steps.push((format!("{name} loaded"), memory()));
        match model.folder().task {
            Task::Embedding { .. } => drop(model.embed(&texts)?),
            _ => drop(model.classify(&texts)?),
        }
        steps.push((format!("{name} ran"), memory()));
    }
    let out: Vec<_> = steps
        .iter()
        .map(|(step, (rss, pss))| serde_json::json!({"step": step, "rss_mib": (rss * 10.0).round() / 10.0, "pss_mib": (pss * 10.0).round() / 10.0}))
        .collect();
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
