//! `benchtop generate`: text from a local decoder-only model, streamed to the terminal as it is
//! produced. Ctrl-C stops the generation (the text so far stays on screen) and exits 130.

use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use benchtop_core::engine::{FinishReason, GenerateParams, Generation, Message, Prompt, Role};

use crate::input::{InputError, MAX_TEXT_BYTES};
use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    benchtop generate -m qwen2.5-0.5b-instruct \"Write a haiku about tickets\"\n  \
    benchtop generate -m qwen2.5-0.5b-instruct --system \"Answer in French\" --seed 7 \"Hello\"\n  \
    benchtop generate -m gpt2 --raw --temperature 0 --max-tokens 40 \"Once upon a time\"\n  \
    cat question.txt | benchtop generate -m qwen2.5-0.5b-instruct --json\n\n\
Settings left out come from the model's generation_config.json (greedy if it does not sample).\n\
The text goes to stdout as it is generated; timings and token counts go to stderr.")]
pub struct Args {
    /// Generation model: a name from `benchtop models` or a model folder path
    #[arg(short, long)]
    model: String,
    /// The prompt [default: read from stdin]
    #[arg(value_name = "PROMPT")]
    prompt: Option<String>,
    /// A system message, sent before the prompt through the model's chat template
    #[arg(short, long, conflicts_with = "raw")]
    system: Option<String>,
    /// Send the prompt as plain text, without the chat template
    #[arg(long)]
    raw: bool,
    /// Sampling temperature; 0 is greedy (always the likeliest token)
    #[arg(short, long, value_name = "T")]
    temperature: Option<f32>,
    /// Sample only among the K likeliest tokens (0 = no limit)
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Sample only among the likeliest tokens whose probabilities add up to P
    #[arg(long, value_name = "P")]
    top_p: Option<f32>,
    /// Penalise tokens already in the text (1 = none; 1.1 is a usual value)
    #[arg(long, value_name = "R")]
    repetition_penalty: Option<f32>,
    /// Seed for sampling: the same seed and settings give the same text
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Most new tokens to generate [default: the model's, else 256]
    #[arg(short = 'n', long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Stop before this text (repeatable)
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Recompute the whole sequence for every token instead of using the KV cache (slow; checks)
    #[arg(long, hide = true)]
    no_cache: bool,
    /// Print one JSON object when done (text, finish reason, usage, seed, timings) instead of streaming
    #[arg(long)]
    json: bool,
}

/// Ctrl-C during a generation: the text so far was shown; exit 130 like other interrupted commands.
#[derive(Debug, thiserror::Error)]
#[error("cancelled (Ctrl-C) after {tokens} tokens")]
pub struct Cancelled {
    pub tokens: usize,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let text = match &args.prompt {
        Some(text) if text != "-" => text.clone(),
        _ => read_stdin()?,
    };
    if text.trim().is_empty() {
        return Err(InputError::NoPrompt.into());
    }
    let generator = global.engine()?.generator(&args.model)?;
    let prompt = if args.raw {
        Prompt::Text(text)
    } else if !generator.has_chat_template() && args.system.is_none() {
        eprintln!("note: `{}` has no chat template; the prompt is sent as plain text", generator.name());
        Prompt::Text(text)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::new(Role::System, system.clone()));
        }
        messages.push(Message::new(Role::User, text));
        Prompt::Chat(messages)
    };
    let params = GenerateParams {
        max_new_tokens: args.max_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
        stop: args.stop.clone(),
        no_cache: args.no_cache,
    };
    let cancel = cancel_on_ctrl_c();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_error = None;
    let generation = generator.generate(&prompt, &params, &cancel, &mut |piece| {
        if args.json || write_error.is_some() {
            return;
        }
        // A closed pipe (`| head`) ends the generation instead of failing every token after.
        if let Err(e) = out.write_all(piece.as_bytes()).and_then(|()| out.flush()) {
            write_error = Some(e);
            cancel.store(true, Ordering::Relaxed);
        }
    })?;
    if let Some(e) = write_error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(e).context("writing the text");
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report(&generation, generator.name()))?)?;
    } else {
        if !generation.text.ends_with('\n') {
            writeln!(out)?;
        }
        out.flush()?;
        eprintln!("{}", summary(&generation));
    }
    if generation.finish_reason == FinishReason::Cancelled {
        return Err(Cancelled { tokens: generation.usage.completion_tokens }.into());
    }
    Ok(())
}

fn read_stdin() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Type the prompt, then Ctrl-D:");
    }
    let mut bytes = Vec::new();
    stdin.lock().take(MAX_TEXT_BYTES as u64 + 1).read_to_end(&mut bytes).context("reading the prompt from stdin")?;
    if bytes.len() > MAX_TEXT_BYTES {
        return Err(InputError::TooLarge { line: 1 }.into());
    }
    String::from_utf8(bytes).map_err(|e| InputError::NotUtf8 { line: 1, offset: e.utf8_error().valid_up_to() }.into())
}

/// A flag Ctrl-C sets, so the generation stops after the current token. The handler is in place
/// when this returns (a Ctrl-C right after start is not lost, nor does it kill the process).
fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    let (ready, installed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return };
        rt.block_on(async {
            #[cfg(unix)]
            let interrupted = async {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::interrupt()) {
                    Ok(mut stream) => {
                        let _ = ready.send(());
                        stream.recv().await.is_some()
                    }
                    Err(_) => false,
                }
            };
            #[cfg(not(unix))]
            let interrupted = async {
                let _ = ready.send(());
                tokio::signal::ctrl_c().await.is_ok()
            };
            if interrupted.await {
                set.store(true, Ordering::Relaxed);
            }
        });
    });
    let _ = installed.recv_timeout(std::time::Duration::from_secs(2));
    flag
}

fn report(g: &Generation, model: &str) -> serde_json::Value {
    json!({
        "model": model,
        "text": g.text,
        "finish_reason": g.finish_reason,
        "usage": g.usage,
        "seed": g.seed,
        "sampled": g.sampled,
        "time_to_first_token_ms": g.time_to_first_token.as_secs_f64() * 1e3,
        "total_ms": g.total_time.as_secs_f64() * 1e3,
        "tokens_per_second": g.tokens_per_second(),
    })
}

fn summary(g: &Generation) -> String {
    let finish = match g.finish_reason {
        FinishReason::Stop => "stopped",
        FinishReason::Length => "reached the token limit",
        FinishReason::Cancelled => "cancelled",
    };
    format!(
        "[{finish} · {} prompt + {} new tokens · first token {:.0} ms · {:.1} tokens/s · {}]",
        g.usage.prompt_tokens,
        g.usage.completion_tokens,
        g.time_to_first_token.as_secs_f64() * 1e3,
        g.tokens_per_second(),
        if g.sampled { format!("seed {}", g.seed) } else { "greedy".into() }
    )
}
