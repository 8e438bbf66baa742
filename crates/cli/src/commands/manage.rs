//! `benchtop models validate|add|remove|download`: the model manager from the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use benchtop_core::models::hub::{Hub, HubError};
use benchtop_core::models::{self, human_bytes, Validation};

use super::generate::Cancelled;
use crate::GlobalArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Check a model folder the way using it would: files, task, graph, memory
    #[command(
        after_help = "Examples:\n  benchtop models validate ./exports/my-model\n  benchtop models validate minilm-l6-v2 --json"
    )]
    Validate {
        /// A name from `benchtop models` or a model folder path
        model: String,
        /// Print JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Add a model folder to your models (validated first; hard-linked or copied)
    #[command(after_help = "Example:\n  benchtop models add ./exports/qwen2.5-0.5b-instruct --name qwen")]
    Add {
        /// The model folder: model.onnx, tokenizer.json, config.json (+ generation/tokenizer configs)
        path: PathBuf,
        /// The name to use [default: the folder's name]
        #[arg(long)]
        name: Option<String>,
        /// Print JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Delete one of your added or downloaded models (never the bundled ones)
    Remove {
        /// The model's name
        name: String,
        /// Do not ask for confirmation (needed when stdin is not a terminal)
        #[arg(short, long)]
        yes: bool,
    },
    /// Download an ONNX model from the Hugging Face Hub into your models (resumable)
    #[command(after_help = "Examples:\n  \
        benchtop models download onnx-community/Qwen2.5-0.5B-Instruct\n  \
        benchtop models download onnx-community/SmolLM2-135M-Instruct --file onnx/model_quantized.onnx --name smollm2\n\n\
        Gated or private repositories need an access token in HF_TOKEN (it is sent only to the endpoint, never \
        printed or logged). An interrupted download resumes when the same command is run again.")]
    Download {
        /// Repository id, `owner/name`
        repo: String,
        /// Branch, tag or commit
        #[arg(long, default_value = "main")]
        revision: String,
        /// The ONNX graph to take, a path in the repository [default: model.onnx or onnx/model.onnx]
        #[arg(long, value_name = "PATH")]
        file: Option<String>,
        /// The name to install it as [default: the repository's name]
        #[arg(long)]
        name: Option<String>,
        /// The Hub's address (or a mirror's)
        #[arg(long, env = "HF_ENDPOINT", default_value = models::hub::DEFAULT_ENDPOINT, hide_env_values = true)]
        endpoint: String,
        /// Print JSON when done (for scripts)
        #[arg(long)]
        json: bool,
    },
}

pub fn run(action: &Action, global: &GlobalArgs) -> anyhow::Result<()> {
    match action {
        Action::Validate { model, json } => {
            let folder = global.catalog().find(model)?;
            let validation = models::validate(&global.runtime()?, &folder.dir)?;
            print_validation(&validation, *json)
        }
        Action::Add { path, name, json } => {
            let user = global.dirs().user_models();
            let (dir, validation) = models::add(&global.runtime()?, path, &user, name.as_deref())?;
            if !*json {
                println!("Added `{}` at {}", validation.folder.name, dir.display());
            }
            print_validation(&validation, *json)
        }
        Action::Remove { name, yes } => remove(name, *yes, global),
        Action::Download { repo, revision, file, name, endpoint, json } => {
            download(repo, revision, file.as_deref(), name.as_deref(), endpoint, *json, global)
        }
    }
}

fn remove(name: &str, yes: bool, global: &GlobalArgs) -> anyhow::Result<()> {
    let user = global.dirs().user_models();
    let dir = user.join(name);
    if dir.is_dir() && models::check_name(name).is_ok() && !yes {
        let size = human_bytes(models::list_files(&dir).iter().map(|f| f.bytes).sum());
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("not removing `{name}` ({size} at {}) without confirmation: pass --yes", dir.display());
        }
        eprint!("Delete `{name}` ({size} at {})? [y/N] ", dir.display());
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).context("reading the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("Kept `{name}`.");
            return Ok(());
        }
    }
    let elsewhere = global.catalog().find(name).ok().map(|f| f.dir).filter(|d| *d != dir);
    let bytes = models::remove(&user, name, elsewhere.as_deref())?;
    println!("Removed `{name}` ({} freed)", human_bytes(bytes));
    Ok(())
}

fn download(
    repo: &str,
    revision: &str,
    file: Option<&str>,
    name: Option<&str>,
    endpoint: &str,
    json: bool,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let hub = Hub::new(Some(endpoint), None)?;
    let name = name.map(str::to_string).unwrap_or_else(|| repo.rsplit('/').next().unwrap_or(repo).to_string());
    models::check_name(&name)?;
    let user = global.dirs().user_models();
    if user.join(&name).exists() {
        let dir = user.join(&name);
        return Err(models::ManageError::Exists { name, dir }.into());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the downloader")?;
    let bar = progress_bar();
    let staging = user.join(format!(".download-{name}"));
    let outcome = rt.block_on(async {
        let work = async {
            let plan = hub.plan(repo, revision, file).await?;
            let short = &plan.commit[..plan.commit.len().min(10)];
            let summary =
                format!("{} files, {} from {repo} at {short}", plan.files.len(), human_bytes(plan.total_bytes()));
            if bar.is_hidden() {
                eprintln!("Downloading {summary}");
            } else {
                bar.println(format!("Downloading {summary}"));
                bar.set_length(plan.total_bytes());
            }
            let mut resumed_from = 0;
            let dir = hub
                .download(&plan, &user, &name, &mut |p| {
                    bar.set_position(p.done);
                    bar.set_message(p.file.clone());
                    resumed_from = p.resumed;
                })
                .await?;
            Ok::<_, HubError>((dir, resumed_from))
        };
        tokio::select! {
            result = work => Some(result),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    bar.finish_and_clear();
    let (dir, resumed) = match outcome {
        Some(result) => result?,
        None => {
            eprintln!(
                "Download stopped. What arrived is kept in {}; run the same command again to resume.",
                staging.display()
            );
            return Err(Cancelled { tokens: 0 }.into());
        }
    };
    if resumed > 0 && !json {
        eprintln!("({} were kept from an earlier attempt)", human_bytes(resumed));
    }
    if !json {
        println!("Downloaded `{name}` to {}", dir.display());
    }
    let validation = models::validate(&global.runtime()?, &dir).with_context(|| {
        format!(
            "`{name}` was downloaded to {} but cannot be used; remove it with `benchtop models remove {name}`",
            dir.display()
        )
    })?;
    print_validation(&validation, json)
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ({eta} left) {msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn print_validation(v: &Validation, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
        return Ok(());
    }
    writeln!(out, "{}: OK, {} model", v.folder.name, v.folder.task.name())?;
    writeln!(out, "  folder   {}", v.folder.dir.display())?;
    let files: Vec<String> = v.files.iter().map(|f| format!("{} ({})", f.name, human_bytes(f.bytes))).collect();
    writeln!(out, "  files    {}", files.join(", "))?;
    writeln!(out, "  inputs   {}", abbreviate(&v.inputs))?;
    writeln!(out, "  outputs  {}", abbreviate(&v.outputs))?;
    match &v.generation {
        Some(g) => {
            let l = &g.layout;
            writeln!(
                out,
                "  decoder  {} layers, {} KV heads × {} dims, {} KV cache ({} bytes/token){}, context {} tokens, {}",
                l.layers,
                l.kv_heads,
                l.head_dim,
                l.kv_type,
                g.kv_bytes_per_token,
                if l.position_ids { ", position_ids" } else { "" },
                g.context,
                if g.chat_template { "chat template" } else { "no chat template" },
            )?;
            writeln!(
                out,
                "  memory   weights {}; about {} with the KV cache of a full context{}",
                human_bytes(v.weights_bytes),
                human_bytes(v.estimated_bytes),
                measured(v)
            )?;
        }
        None => writeln!(out, "  memory   weights {}{}", human_bytes(v.weights_bytes), measured(v))?,
    }
    for warning in &v.warnings {
        writeln!(out, "  warning  {warning}")?;
    }
    Ok(())
}

fn measured(v: &Validation) -> String {
    v.measured_bytes.map(|b| format!("; loading it took {} here", human_bytes(b))).unwrap_or_default()
}

/// Names, with runs of `past_key_values.N.*` / `present.N.*` shortened.
fn abbreviate(names: &[String]) -> String {
    let is_cache = |n: &str| n.starts_with("past_key_values.") || n.starts_with("present.");
    let mut shown: Vec<String> = names.iter().filter(|n| !is_cache(n)).cloned().collect();
    for prefix in ["past_key_values", "present"] {
        let count = names.iter().filter(|n| n.starts_with(&format!("{prefix}."))).count();
        if count > 0 {
            shown.push(format!("{prefix}.N.key|value ({count})"));
        }
    }
    shown.join(", ")
}
