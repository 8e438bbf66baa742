//! `benchtop serve`: the local inference API (and the UI's API) over HTTP; `benchtop token`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use benchtop_core::engine::EngineOptions;
use benchtop_core::runs::checks::Rules;
use benchtop_server::{token, AppState, BatchOptions, Limits, ServerConfig};

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  benchtop serve                       # http://127.0.0.1:8077\n  \
    benchtop serve --preload support-triage --preload minilm-l6-v2\n  \
    curl -H \"Authorization: Bearer $(benchtop token)\" http://127.0.0.1:8077/v1/models\n\n\
Every request needs the bearer token (`benchtop token` prints it) except /healthz and /openapi.json. \
Requests naming another Host, or sent by a web page from another origin, are refused. Every call is \
recorded in the feedback log's `API traffic` run (see `benchtop history`), unless --no-log.")]
pub struct Args {
    /// Address to listen on; anything but loopback exposes the API to your network
    #[arg(long, default_value = "127.0.0.1:8077", value_name = "IP:PORT")]
    listen: SocketAddr,
    /// Also accept requests for this Host name, e.g. `myhost:8077` (repeatable)
    #[arg(long = "allow-host", value_name = "HOST:PORT")]
    allow_hosts: Vec<String>,
    /// Also accept requests from web pages on this origin, e.g. `http://localhost:5173` (repeatable)
    #[arg(long = "allow-origin", value_name = "URL")]
    allow_origins: Vec<String>,
    /// Load these models before taking requests (repeatable)
    #[arg(long, value_name = "MODEL")]
    preload: Vec<String>,
    /// Texts per batch at most, per worker (small batches on several single-threaded workers
    /// beat large ones on one multi-threaded session; docs/benchmarks.md)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024), value_name = "N")]
    batch_size: u16,
    /// How long a short batch waits for more requests, in milliseconds
    #[arg(long, default_value_t = 1.0, value_name = "MS")]
    batch_wait_ms: f64,
    /// Batch workers per embedding/classification model, each with its own single-threaded copy
    /// of the model (1: one worker using all --threads) [default: cores, at most 4]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Threads for HTTP, validation and logging [default: the cores the batch workers leave, at
    /// least 1]. Under load the batch workers keep their cores busy; more threads than are left
    /// only take turns with them (docs/benchmarks.md)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    http_threads: Option<u16>,
    /// Texts waiting per model at most; more gets 429 Too Many Requests
    #[arg(long, default_value_t = 2048, value_name = "N")]
    queue: usize,
    /// Chat generations running at once
    #[arg(long, default_value_t = 2, value_name = "N")]
    generation_slots: usize,
    /// Request body size limit, in bytes
    #[arg(long, default_value_t = 2 * 1024 * 1024, value_name = "BYTES")]
    max_body: usize,
    /// Texts per embeddings/predict request at most
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_inputs: usize,
    /// Characters per input text (or chat message) at most
    #[arg(long, default_value_t = 32_768, value_name = "N")]
    max_input_chars: usize,
    /// Business rules per model: a YAML map of model name to {schema, required, max_length, forbidden}
    /// checked on every input (as the variable `input`) before the model runs
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Do not record calls in the feedback log
    #[arg(long)]
    no_log: bool,
    /// On Ctrl-C / SIGTERM, how long in-flight requests may take to finish, in seconds
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    drain_timeout: f64,
    /// Open the workbench UI in your browser once listening (browser mode)
    #[arg(long)]
    open: bool,
    /// The built UI to serve at / [default: $BENCHTOP_UI_DIR, else the checkout's ui/dist]
    #[arg(long, value_name = "DIR")]
    ui_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Replace the token with a new one (clients using the old one are refused from then on)
    #[arg(long)]
    new: bool,
}

/// `benchtop token`: print the API token, making it on first use.
pub fn token(args: &TokenArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let data = global.dirs().data;
    if args.new {
        match std::fs::remove_file(data.join(token::TOKEN_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing the old token"),
        }
    }
    println!("{}", token::load_or_create(&data)?);
    Ok(())
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let dirs = global.dirs();
    let token = token::load_or_create(&dirs.data)?;
    let rules = match &args.rules {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading the rules file {}", path.display()))?;
            serde_saphyr::from_str::<HashMap<String, Rules>>(&text)
                .with_context(|| format!("{} is not a map of model name to rules", path.display()))?
        }
        None => HashMap::new(),
    };
    let engine = Arc::new(global.server_engine(EngineOptions { max_batch: usize::from(args.batch_size) })?);
    let store = Arc::new(global.store()?);

    let workers = args.workers.unwrap_or(BatchOptions::default().workers).max(1);
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let http_threads = args.http_threads.map_or(cores.saturating_sub(workers).max(1), usize::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(http_threads)
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {} (is another server using the port? pick one with --listen)", args.listen))?;
        let addr = listener.local_addr()?;
        let mut config = ServerConfig::local(addr, token);
        config.allowed_hosts.extend(args.allow_hosts.iter().map(|h| h.to_ascii_lowercase()));
        config.allowed_origins.extend(args.allow_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()));
        config.limits = Limits {
            max_body_bytes: args.max_body,
            max_inputs: args.max_inputs,
            max_input_chars: args.max_input_chars,
            ..Limits::default()
        };
        config.batch = BatchOptions {
            max_batch: usize::from(args.batch_size),
            max_wait: Duration::from_secs_f64(args.batch_wait_ms.max(0.0) / 1000.0),
            queue_texts: args.queue,
            workers,
        };
        config.generation_slots = args.generation_slots.max(1);
        config.rules = rules;
        config.log_traffic = !args.no_log;
        config.ui_dir = benchtop_server::ui::find_ui_dir(args.ui_dir.as_deref());
        if let (Some(dir), None) = (&args.ui_dir, &config.ui_dir) {
            anyhow::bail!("{} holds no built UI (no index.html); build it with `npm run build` in ui/", dir.display());
        }
        config.drain_timeout = Duration::from_secs_f64(args.drain_timeout.clamp(0.0, 86_400.0));
        let state = Arc::new(AppState::new(engine, store, config)?);
        for name in &args.preload {
            let task = state.preload(name).await.map_err(|e| anyhow::anyhow!("preloading `{name}`: {}", e.message))?;
            say(&format!("loaded {name} ({task})"));
        }
        if !addr.ip().is_loopback() {
            let warning = format!(
                "LISTENING ON {addr}, NOT LOOPBACK: anyone who can reach this machine and has the token can run your models and read your feedback log"
            );
            if json_logs() {
                tracing::warn!("{warning}");
            } else {
                eprintln!("\n  !!! WARNING: {warning} !!!\n");
            }
        }
        let shutdown = shutdown_signal()?;
        // One line for people and scripts (tests read the port from it).
        println!("Benchtop API listening on http://{addr} (token: `benchtop token`; docs: /openapi.json)");
        if state.config.ui_dir.is_some() {
            // The token travels in the fragment, which browsers never send to a server.
            let ui = format!("http://{}/#token={}", ui_host(addr), state.config.token);
            if args.open {
                if let Err(e) = open::that_detached(&ui) {
                    say(&format!("could not open a browser ({e}); open the UI yourself: http://{}/", ui_host(addr)));
                }
            }
            say(&format!("Workbench UI: http://{}/ (`benchtop serve --open` opens it signed in)", ui_host(addr)));
        } else if args.open {
            say("the UI is not built (no ui/dist): build it with `./dev start`; the API is running");
        }
        benchtop_server::serve(listener, state, shutdown).await.context("serving")?;
        say("stopped: in-flight requests finished and the feedback log is flushed");
        anyhow::Ok(())
    })
}

/// How a browser should reach `addr` (a wildcard address is reached through loopback).
fn ui_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Ctrl-C or SIGTERM. The handlers are installed before this returns, so a signal that arrives
/// as soon as the "listening" line is out (a supervisor, a test) still shuts down gracefully
/// instead of killing the process.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

fn json_logs() -> bool {
    std::env::var("BENCHTOP_LOG_FORMAT").is_ok_and(|f| f == "json")
}

/// A line for the person at the terminal, or a log record when logs are JSON lines.
fn say(line: &str) {
    if json_logs() {
        tracing::info!("{line}");
    } else {
        eprintln!("{line}");
    }
}
