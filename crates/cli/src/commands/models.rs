use std::io::Write;

use serde_json::json;

use benchtop_core::engine::{locate_library, Task};
use benchtop_core::models::human_bytes;

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<super::manage::Action>,
    /// Print JSON (for scripts)
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    match &args.action {
        Some(action) => super::manage::run(action, global),
        None => list(args.json, global),
    }
}

/// Lists models without loading them (no ONNX Runtime needed), then says where the runtime is.
fn list(json: bool, global: &GlobalArgs) -> anyhow::Result<()> {
    let catalog = global.catalog();
    let entries = catalog.list();
    let runtime = locate_library(global.ort_lib.as_deref(), &global.dirs());
    let mut out = std::io::stdout().lock();
    if json {
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
                    Task::Generation => "text generation (`benchtop generate`)".into(),
                };
                writeln!(out, "{:<20} {:<15} {:>9}  {}", e.name, f.task.name(), human_bytes(f.size_bytes), details)?;
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
