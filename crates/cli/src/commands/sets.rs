use benchtop_core::store::Id;

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show this test set's cases
    #[arg(long)]
    show: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Lists test sets, or one set's cases.
pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let store = global.store()?;
    let sets = store.test_sets()?;
    let Some(name) = &args.show else {
        if args.json {
            println!("{}", serde_json::to_string(&sets)?);
        } else if sets.is_empty() {
            println!("No test sets yet. Import one: benchtop import FILE --set NAME");
        } else {
            for set in sets {
                println!("{:<30} {:>6} cases", set.name, set.cases);
            }
        }
        return Ok(());
    };
    let set: Id = sets
        .iter()
        .find(|s| &s.name == name)
        .map(|s| s.id)
        .ok_or_else(|| anyhow::anyhow!("no test set named `{name}` (see `benchtop sets`)"))?;
    let cases = store.cases(set)?;
    if args.json {
        println!("{}", serde_json::to_string(&cases)?);
    } else {
        for case in cases {
            println!(
                "{:>4}  {}  → {}{}",
                case.position,
                serde_json::Value::Object(case.vars),
                case.expected.unwrap_or_else(|| "–".into()),
                if case.tags.is_empty() { String::new() } else { format!("  #{}", case.tags.join(" #")) }
            );
        }
    }
    Ok(())
}
