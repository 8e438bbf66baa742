use serde_json::json;

use super::{preview, process, OutputArgs};
use crate::input::InputArgs;
use crate::GlobalArgs;

pub const DEFAULT_MODEL: &str = "minilm-l6-v2";

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  benchtop embed \"How do I reset my password?\"\n  benchtop embed --jsonl --file questions.txt > vectors.jsonl\n  cat questions.txt | benchtop embed --json"
)]
pub struct Args {
    /// Embedding model: a name from `benchtop models` or a model folder path
    #[arg(short, long, default_value = DEFAULT_MODEL)]
    model: String,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let model = global.load_model(&args.model, usize::from(args.output.batch_size))?;
    process(
        &args.input,
        &args.output,
        |texts| Ok(model.embed(texts)?),
        |e| json!({ "tokens": e.tokens, "truncated": e.truncated, "embedding": e.vector }),
        |item, e| {
            let head: Vec<String> = e.vector.iter().take(4).map(|v| format!("{v:+.4}")).collect();
            format!(
                "{}-d [{}, …]  {} tokens{}  {}",
                e.vector.len(),
                head.join(", "),
                e.tokens,
                if e.truncated { " (truncated)" } else { "" },
                preview(&item.text, 60)
            )
        },
    )
}
