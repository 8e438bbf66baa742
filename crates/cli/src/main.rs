//! `benchtop`: Benchtop from the command line.

mod commands;
mod exit;
mod input;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use benchtop_core::dirs::Dirs;
use std::sync::Arc;

use benchtop_core::engine::{Catalog, Engine, EngineError, EngineOptions, Model, Runtime, RuntimeOptions};
use benchtop_core::store::{Store, StoreError};

/// mimalloc rather than glibc's malloc: under `benchtop serve` load, requests are parsed and
/// answered on the HTTP thread from rows the batch workers allocated, and glibc's cross-thread
/// frees took about a quarter of the HTTP thread's time (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchtop: a workbench for AI features. Runs local ONNX models on your text, keeps what you
/// try and judge in a local feedback log, and exports it as evaluation sets.
#[derive(Debug, Parser)]
#[command(name = "benchtop", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 ok · 1 other failure · 2 usage · 3 bad input · 4 model not found or broken · \
5 ONNX Runtime missing or too old · 6 inference failed · 7 feedback log unusable · 8 download failed · \
9 run assertions failed · 130 cancelled (Ctrl-C)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// ONNX Runtime library (file or folder) to load [default: next to benchtop, then the cache]
    #[arg(long, global = true, env = "BENCHTOP_ORT_LIB", value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// Extra folder of models, searched before the defaults (repeatable)
    #[arg(long = "models-dir", global = true, value_name = "DIR")]
    models_dirs: Vec<PathBuf>,
    /// Where Benchtop keeps your data (models you add, later the feedback log)
    #[arg(long, global = true, env = "BENCHTOP_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Threads one inference may use [default: cores, at most 8]
    #[arg(long, global = true, env = "BENCHTOP_THREADS", value_name = "N")]
    threads: Option<usize>,
    /// Log more (-v: info, -vv: debug); BENCHTOP_LOG takes a tracing filter, BENCHTOP_LOG_FORMAT=json
    /// writes one JSON object per line
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the models Benchtop can run: task, size, labels or dimensions, location
    Models(commands::models::Args),
    /// Embed texts with a local embedding model
    Embed(commands::embed::Args),
    /// Classify texts with a local classification model
    Predict(commands::predict::Args),
    /// Generate text with a local generation model, streamed as it is written
    Generate(commands::generate::Args),
    /// Run a comparison: test set × prompt × local and remote models, checked and recorded
    Run(commands::run::Args),
    /// Store or remove provider API keys in the OS keychain
    Keys(commands::keys::Args),
    /// Import a test set from CSV, JSONL or Parquet
    Import(commands::import::Args),
    /// List test sets, or show one's cases
    Sets(commands::sets::Args),
    /// Export results as an evaluation or training set (JSONL, CSV, Parquet, chat, DPO…)
    Export(commands::export::Args),
    /// Write a self-contained HTML report of a run
    Report(commands::report::Args),
    /// Record feedback on a logged result (thumb, rating, preference, correction, tag, note, undo)
    Feedback(commands::feedback::Args),
    /// Search everything logged (inputs and outputs)
    History(commands::history::Args),
    /// Serve the local inference API (OpenAI-compatible) and the UI's API over HTTP
    Serve(commands::serve::Args),
    /// Print the API's bearer token (made on first use)
    Token(commands::serve::TokenArgs),
    /// Open the workbench: the desktop app, or the browser UI when there is no display
    App(commands::app::Args),
}

impl GlobalArgs {
    pub fn dirs(&self) -> Dirs {
        Dirs::resolve(self.data_dir.as_deref())
    }

    /// `--models-dir` folders, then `BENCHTOP_MODELS_DIR` (a path list), then the user's models,
    /// then the default models.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.dirs().model_search_path(&self.models_dirs))
    }

    /// The feedback log in the data directory.
    pub fn store(&self) -> Result<Store, StoreError> {
        Store::open_in(&self.dirs().data)
    }

    /// Start ONNX Runtime and load the model `name_or_path` (the one thing embed and predict
    /// need from the engine).
    pub fn load_model(&self, name_or_path: &str, max_batch: usize) -> Result<Arc<Model>, EngineError> {
        self.engine_with(EngineOptions { max_batch })?.model(name_or_path)
    }

    /// Start ONNX Runtime and make an engine over the catalog.
    pub fn engine(&self) -> Result<Engine, EngineError> {
        self.engine_with(EngineOptions::default())
    }

    fn engine_with(&self, options: EngineOptions) -> Result<Engine, EngineError> {
        Ok(Engine::new(self.runtime()?, self.catalog(), options))
    }

    /// An engine for a server: ONNX Runtime's idle threads do not spin, leaving the cores to the
    /// HTTP and logging threads between runs.
    pub fn server_engine(&self, options: EngineOptions) -> Result<Engine, EngineError> {
        let mut runtime = self.runtime_options();
        runtime.spin = false;
        let runtime = Runtime::locate_and_load(self.ort_lib.as_deref(), &self.dirs(), &runtime)?;
        Ok(Engine::new(runtime, self.catalog(), options))
    }

    /// ONNX Runtime, with `--threads`.
    pub fn runtime(&self) -> Result<Runtime, EngineError> {
        Runtime::locate_and_load(self.ort_lib.as_deref(), &self.dirs(), &self.runtime_options())
    }

    fn runtime_options(&self) -> RuntimeOptions {
        let mut options = RuntimeOptions::default();
        if let Some(threads) = self.threads {
            options.intra_threads = threads.max(1);
        }
        options
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ort=warn",
        _ => "debug,ort=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BENCHTOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    // One JSON object per line, for log collectors (`benchtop serve` under a supervisor).
    if std::env::var("BENCHTOP_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let result = match &cli.command {
        Command::Models(args) => commands::models::run(args, &cli.global),
        Command::Embed(args) => commands::embed::run(args, &cli.global),
        Command::Predict(args) => commands::predict::run(args, &cli.global),
        Command::Generate(args) => commands::generate::run(args, &cli.global),
        Command::Run(args) => commands::run::run(args, &cli.global),
        Command::Keys(args) => commands::keys::run(args, &cli.global),
        Command::Import(args) => commands::import::run(args, &cli.global),
        Command::Sets(args) => commands::sets::run(args, &cli.global),
        Command::Export(args) => commands::export::run(args, &cli.global),
        Command::Report(args) => commands::report::run(args, &cli.global),
        Command::Feedback(args) => commands::feedback::run(args, &cli.global),
        Command::History(args) => commands::history::run(args, &cli.global),
        Command::Serve(args) => commands::serve::run(args, &cli.global),
        Command::Token(args) => commands::serve::token(args, &cli.global),
        Command::App(args) => commands::app::run(args, &cli.global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::code_for(&err)
        }
    }
}
