use serde_json::json;

use super::preview;
use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Words to find in inputs and outputs (all must match)
    query: String,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let store = global.store()?;
    let hits = store.search(&args.query, args.limit)?;
    if args.json {
        println!("{}", json!(hits));
        return Ok(());
    }
    if hits.is_empty() {
        println!("Nothing logged matches `{}`.", args.query);
    }
    for hit in hits {
        let answer = hit.label.or(hit.output).unwrap_or_default();
        println!(
            "#{:<8} {:<18} {}  →  {}",
            hit.result_id,
            preview(&hit.target, 18),
            preview(&hit.input, 50),
            preview(&answer, 40)
        );
    }
    Ok(())
}
