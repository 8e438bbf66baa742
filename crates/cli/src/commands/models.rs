use std::io::Write;

use serde_json::json;

use benchtop_core::engine::{locate_library, Task};

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (for scripts)
    #[arg(long)]
    json: bool,
}

/// Lists models without loading them (no ONNX Runtime needed), then says where the runtime is.
pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let catalog = global.catalog();
    let entries = catalog.list();
    let runtime = locate_library(global.ort_lib.as_deref(), &global.dirs());
    let mut out = std::io::stdout().lock();
    if args.json {
        let models: Vec<_> = entries
            .iter()
            .map(|e| match &e.folder {
                Ok(f) => json!({ "name": e.name, "path": e.dir, "valid": true, "task": f.task, "max_length": f.max_length, "size_bytes": f.size_bytes }),
                Err(err) => json!({ "name": e.name, "path": e.dir, "valid": false, "error": err.to_string() }),
            })
            .collect();
        let runtime = match &runtime {
            Ok(path) => json!({ "found": true, "path": path }),
            Err(err) => json!({ "found": false, "error": err.to_string() }),
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &json!({ "models": models, "search_path": catalog.dirs(), "runtime": runtime })
            )?
        )?;
        return Ok(());
    }
    if entries.is_empty() {
        writeln!(out, "No models found. Run `./dev start` to build the default models, or pass --models-dir DIR.")?;
    }
    for e in &entries {
        match &e.folder {
            Ok(f) => {
                let details = match &f.task {
                    Task::Embedding { pooling, normalize, dimensions } => format!(
                        "{}{} pooling{}",
                        dimensions.map(|d| format!("{d}-d, ")).unwrap_or_default(),
                        pooling.name(),
                        if *normalize { ", normalised" } else { "" }
                    ),
                    Task::Classification { labels, activation } => {
                        format!("{} labels ({}): {}", labels.len(), activation.name(), labels.join(", "))
                    }
                    Task::Generation => "text generation (not runnable yet)".into(),
                };
                writeln!(out, "{:<20} {:<15} {:>9}  {}", e.name, f.task.name(), human_size(f.size_bytes), details)?;
                writeln!(out, "{:<20} {}", "", e.dir.display())?;
            }
            Err(err) => writeln!(out, "{:<20} {:<15} {:>9}  {}", e.name, "invalid", "", err)?,
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Searched: {}",
        catalog.dirs().iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )?;
    match runtime {
        Ok(path) => writeln!(out, "ONNX Runtime: {}", path.display())?,
        Err(err) => writeln!(out, "ONNX Runtime: not found. {err}")?,
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.0} KiB", b as f64 / 1024.0),
    }
}
