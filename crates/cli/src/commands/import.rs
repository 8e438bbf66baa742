use std::path::PathBuf;

use anyhow::Context;
use benchtop_export::import::{import_file, ColumnMap, ImportFormat};

use crate::input::InputError;
use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  benchtop import tickets.csv --set triage\n  benchtop import qa.jsonl --set qa --vars question,context --expected answer"
)]
pub struct Args {
    /// A CSV (with a header row), JSONL or Parquet file
    file: PathBuf,
    /// Test set to add the cases to (created if it does not exist)
    #[arg(long)]
    set: String,
    /// Input columns, comma-separated [default: every column but the expected and tags ones]
    #[arg(long, value_delimiter = ',')]
    vars: Option<Vec<String>>,
    /// Column with the expected output or label [default: expected, label or answer]
    #[arg(long)]
    expected: Option<String>,
    /// Column with tags (split on , ; or |) [default: tags]
    #[arg(long)]
    tags: Option<String>,
    /// File format [default: from the extension]
    #[arg(long, value_parser = ["csv", "jsonl", "parquet"])]
    format: Option<String>,
    /// Import nothing if any row is bad
    #[arg(long)]
    strict: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let format = args.format.as_deref().map(|f| match f {
        "csv" => ImportFormat::Csv,
        "jsonl" => ImportFormat::Jsonl,
        _ => ImportFormat::Parquet,
    });
    let map = ColumnMap { vars: args.vars.clone(), expected: args.expected.clone(), tags: args.tags.clone() };
    let report =
        import_file(&args.file, format, &map).with_context(|| InputError::BadFile { path: args.file.clone() })?;
    for rejected in report.rejected.iter().take(20) {
        eprintln!("{}:{}: {}", args.file.display(), rejected.line, rejected.reason);
    }
    if report.rejected.len() > 20 {
        eprintln!("… and {} more bad rows", report.rejected.len() - 20);
    }
    if args.strict && !report.rejected.is_empty() {
        return Err(InputError::Rejected { rows: report.rejected.len() }.into());
    }
    let store = global.store()?;
    let set = match store.test_set_by_name(&args.set)? {
        Some(set) => set.id,
        None => store.create_test_set(&args.set, None)?,
    };
    let added = store.add_cases(set, report.cases)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "test_set": args.set, "test_set_id": set, "inserted": added.inserted, "duplicates": added.duplicates, "rejected": report.rejected })
        );
    } else {
        println!(
            "{}: {} new cases, {} already there, {} bad rows skipped{}",
            args.set,
            added.inserted,
            added.duplicates,
            report.rejected.len(),
            if report.rejected.is_empty() { "" } else { " (listed above)" }
        );
    }
    Ok(())
}
