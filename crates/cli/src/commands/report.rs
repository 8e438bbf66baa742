use std::path::PathBuf;

use benchtop_core::store::Id;

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run id
    run: Id,
    /// HTML file to write
    #[arg(long)]
    out: PathBuf,
}

/// A self-contained HTML report of a run, to share with people who do not run Benchtop.
pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let store = global.store()?;
    benchtop_export::report::html_report(&store, args.run, &args.out)?;
    println!("{}", args.out.display());
    Ok(())
}
