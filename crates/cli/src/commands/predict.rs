use benchtop_core::engine::{Classification, Model};
use benchtop_core::store::{Answer, Id, NewResult, NewRun, NewTarget, RunKind, Store, TargetKind};
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
    /// Record each prediction in the feedback log (prints its result id, for `benchtop feedback`)
    #[arg(long)]
    log: bool,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let model = global.load_model(&args.model, usize::from(args.output.batch_size))?;
    let k = if args.top_k == 0 { usize::MAX } else { args.top_k };
    let log = if args.log { Some(Log::open(global, &model)?) } else { None };
    process(
        &args.input,
        &args.output,
        |texts| {
            let start = std::time::Instant::now();
            let results = model.classify(texts)?;
            let per_text_ms = start.elapsed().as_secs_f64() * 1e3 / texts.len().max(1) as f64;
            results
                .into_iter()
                .zip(texts)
                .map(|(c, text)| {
                    let id = log.as_ref().map(|log| log.record(text, &c, per_text_ms)).transpose()?;
                    Ok((c, id))
                })
                .collect()
        },
        |(c, id)| {
            json!({
                "result_id": id,
                "label": c.top().label,
                "score": c.top().score,
                "scores": c.scores.iter().take(k).collect::<Vec<_>>(),
                "activation": c.activation,
                "tokens": c.tokens,
                "truncated": c.truncated,
            })
        },
        |item, (c, id)| {
            let others: Vec<String> =
                c.scores.iter().take(k).skip(1).map(|s| format!("{} {:.2}", s.label, s.score)).collect();
            format!(
                "{}{:<12} {:.2}  {}{}{}",
                id.map(|id| format!("#{id:<6} ")).unwrap_or_default(),
                c.top().label,
                c.top().score,
                preview(&item.text, 60),
                if others.is_empty() { String::new() } else { format!("  ({})", others.join(", ")) },
                if c.truncated { "  [truncated]" } else { "" }
            )
        },
    )
}

/// Where `--log` records predictions: one ad-hoc run per invocation, the model as a target.
struct Log {
    store: Store,
    run: Id,
    target: Id,
    threads: usize,
}

impl Log {
    fn open(global: &GlobalArgs, model: &Model) -> anyhow::Result<Log> {
        let store = global.store()?;
        let folder = model.folder();
        let fingerprint =
            folder.fingerprint().map_err(|e| anyhow::anyhow!("reading {}: {e}", folder.model_path().display()))?;
        let target = store.upsert_target(NewTarget {
            kind: TargetKind::Local,
            name: folder.name.clone(),
            fingerprint,
            config: json!({ "path": folder.dir, "task": folder.task }),
        })?;
        let run = store.create_run(NewRun {
            kind: RunKind::Adhoc,
            name: format!("benchtop predict ({})", folder.name),
            test_set_id: None,
            config: json!({}),
        })?;
        Ok(Log {
            store,
            run,
            target,
            threads: global.threads.unwrap_or_else(|| benchtop_core::engine::RuntimeOptions::default().intra_threads),
        })
    }

    fn record(&self, text: &str, c: &Classification, latency_ms: f64) -> anyhow::Result<Id> {
        Ok(self.store.record_result(NewResult {
            run_id: self.run,
            target_id: self.target,
            input: text.to_string(),
            answer: Answer {
                label: Some(c.top().label.clone()),
                scores: Some(json!(c.scores)),
                latency_ms: Some(latency_ms),
                tokens_in: Some(c.tokens as i64),
                ..Default::default()
            },
            meta: Some(json!({ "execution_provider": "cpu", "threads": self.threads, "truncated": c.truncated })),
            ..Default::default()
        })?)
    }
}
