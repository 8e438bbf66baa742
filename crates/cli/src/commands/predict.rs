use serde_json::json;

use super::{preview, process, OutputArgs};
use crate::input::InputArgs;
use crate::GlobalArgs;

pub const DEFAULT_MODEL: &str = "support-triage";

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  benchtop predict \"I was charged twice this month\"\n  benchtop predict --top-k 3 --jsonl --file tickets.txt > labels.jsonl"
)]
pub struct Args {
    /// Classification model: a name from `benchtop models` or a model folder path
    #[arg(short, long, default_value = DEFAULT_MODEL)]
    model: String,
    /// How many labels to show per text, best first (0 = all)
    #[arg(short = 'k', long, default_value_t = 3)]
    top_k: usize,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let model = global.load_model(&args.model, usize::from(args.output.batch_size))?;
    let k = if args.top_k == 0 { usize::MAX } else { args.top_k };
    process(
        &args.input,
        &args.output,
        |texts| Ok(model.classify(texts)?),
        |c| {
            json!({
                "label": c.top().label,
                "score": c.top().score,
                "scores": c.scores.iter().take(k).collect::<Vec<_>>(),
                "activation": c.activation,
                "tokens": c.tokens,
                "truncated": c.truncated,
            })
        },
        |item, c| {
            let others: Vec<String> =
                c.scores.iter().take(k).skip(1).map(|s| format!("{} {:.2}", s.label, s.score)).collect();
            format!(
                "{:<12} {:.2}  {}{}{}",
                c.top().label,
                c.top().score,
                preview(&item.text, 60),
                if others.is_empty() { String::new() } else { format!("  ({})", others.join(", ")) },
                if c.truncated { "  [truncated]" } else { "" }
            )
        },
    )
}
