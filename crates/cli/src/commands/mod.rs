//! One module per subcommand; this one holds what embed and predict share: reading input in
//! chunks, writing human / JSON / JSONL output, and the progress bar.

pub mod app;
pub mod embed;
pub mod export;
pub mod feedback;
pub mod generate;
pub mod history;
pub mod import;
pub mod keys;
pub mod manage;
pub mod models;
pub mod predict;
pub mod report;
pub mod run;
pub mod serve;
pub mod sets;

use std::io::{BufWriter, IsTerminal, Write};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::input::{InputArgs, Item, Source};

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Print one JSON array (for scripts)
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per line, as results arrive (for pipelines)
    #[arg(long)]
    pub jsonl: bool,
    /// Texts per inference batch
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024), value_name = "N")]
    pub batch_size: u16,
}

/// Run `infer` over every input text, a chunk at a time, writing each result as it comes.
/// `record` gives a result's JSON fields; `human` its line for people.
pub fn process<T>(
    input: &InputArgs,
    output: &OutputArgs,
    mut infer: impl FnMut(&[&str]) -> anyhow::Result<Vec<T>>,
    record: impl Fn(&T) -> Value,
    human: impl Fn(&Item, &T) -> String,
) -> anyhow::Result<()> {
    let mut source = Source::open(input)?;
    let progress = progress_bar(source.total_bytes());
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let chunk_size = usize::from(output.batch_size) * 8;
    let mut index = 0usize;
    if output.json {
        write!(out, "[")?;
    }
    loop {
        let items = source.next_chunk(chunk_size)?;
        if items.is_empty() {
            break;
        }
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let results = infer(&texts)?;
        for (item, result) in items.iter().zip(&results) {
            if output.json || output.jsonl {
                let mut obj = json!({ "index": index, "text": item.text });
                if let Some(line) = item.line {
                    obj["line"] = json!(line);
                }
                if let (Some(map), Value::Object(fields)) = (obj.as_object_mut(), record(result)) {
                    map.extend(fields);
                }
                if output.json {
                    write!(out, "{}{}", if index == 0 { "\n" } else { ",\n" }, obj)?;
                } else {
                    writeln!(out, "{obj}")?;
                }
            } else {
                writeln!(out, "{}", human(item, result))?;
            }
            index += 1;
        }
        out.flush().context("writing output")?;
        progress.set_position(source.bytes_read());
    }
    progress.finish_and_clear();
    if output.json {
        writeln!(out, "{}]", if index == 0 { "" } else { "\n" })?;
    }
    if index == 0 {
        return Err(crate::input::InputError::NoInput.into());
    }
    out.flush().context("writing output")?;
    Ok(())
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    let Some(total) = total.filter(|_| std::io::stderr().is_terminal()) else {
        return ProgressBar::hidden();
    };
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta} left)")
    {
        bar.set_style(style);
    }
    bar
}

/// A text shortened for one terminal line.
pub fn preview(text: &str, width: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        format!("{}…", flat.chars().take(width.saturating_sub(1)).collect::<String>())
    }
}
