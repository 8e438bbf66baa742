//! `benchtop app`: the desktop app when there is a display and it is installed next to this
//! binary (or on PATH), else the browser UI (`benchtop serve --open`) with its URL printed.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "The desktop app is `benchtop-desktop` (built by `./dev start`, or \
`cargo build --release -p benchtop-desktop`). Without a display, or without the desktop app, this \
starts `benchtop serve --open`: the same workbench in your browser at http://127.0.0.1:8077/.")]
pub struct Args {
    /// Use the browser UI even when the desktop app could start
    #[arg(long)]
    browser: bool,
}

/// `benchtop serve`'s arguments, parsed from a fixed command line.
#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    args: super::serve::Args,
}

fn desktop_binary() -> Option<PathBuf> {
    let name = format!("benchtop-desktop{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe().ok()?.parent()?.join(&name);
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(&name)).find(|p| p.is_file()))
}

fn has_display() -> bool {
    cfg!(any(target_os = "macos", target_os = "windows"))
        || std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    if !args.browser && has_display() {
        if let Some(app) = desktop_binary() {
            let mut command = Command::new(&app);
            // The desktop app reads the same settings from the environment.
            command.env("BENCHTOP_DATA_DIR", global.dirs().data);
            if !global.models_dirs.is_empty() {
                command.env("BENCHTOP_MODELS_DIR", std::env::join_paths(&global.models_dirs)?);
            }
            if let Some(lib) = &global.ort_lib {
                command.env("BENCHTOP_ORT_LIB", lib);
            }
            let status = command.status().map_err(|e| anyhow::anyhow!("cannot start {}: {e}", app.display()))?;
            if status.success() {
                return Ok(());
            }
            anyhow::bail!(
                "the desktop app stopped with {status}; `benchtop app --browser` opens the same UI in a browser"
            );
        }
        eprintln!("The desktop app is not built (benchtop-desktop); opening the browser UI instead.");
    } else if !args.browser {
        eprintln!("No display: starting the browser UI instead.");
    }
    let serve = Serve::parse_from(["serve", "--open"]);
    super::serve::run(&serve.args, global)
}
