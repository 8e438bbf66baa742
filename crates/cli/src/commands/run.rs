//! `benchtop run CONFIG.yaml`: a comparison run from the command line, the way promptfoo is used
//! in CI — live progress, a summary table, JSON or JUnit output, and an exit code that fails the
//! build when an assertion fails.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use benchtop_core::providers::PriceTable;
use benchtop_core::runs::{Cases, RunEvent, RunOptions, RunSpec, Runner, Summary};
use benchtop_core::store::{RunStatus, Store};
use benchtop_export::import::{import_file, ColumnMap};
use tokio_util::sync::CancellationToken;

use super::generate::Cancelled;
use crate::input::InputError;
use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example run file:\n\
  name: triage\n\
  tests: tickets.csv              # or  test_set: NAME  /  input: \"one text\"\n\
  prompt:\n\
  \x20 system: You label customer messages as billing, technical, account, sales, feedback or other.\n\
  \x20 template: \"{{ text }}\"\n\
  providers:\n\
  \x20 - {name: openai, kind: openai, base_url: https://api.openai.com/v1}\n\
  targets:\n\
  \x20 - model: support-triage      # a local model\n\
  \x20 - {provider: openai, model: gpt-4o-mini, temperature: 0, concurrency: 8}\n\
  assert:\n\
  \x20 - type: label-equals-expected\n\n\
Keys: `benchtop keys set openai`, or OPENAI_API_KEY (<NAME>_API_KEY, or the provider's key_env).\n\
Exit codes: 0 every cell answered and passed · 9 an assertion failed or a cell errored · 130 cancelled.")]
pub struct Args {
    /// The run file (YAML)
    config: Option<PathBuf>,
    /// Continue an interrupted run: only cells without a result run (the run file is the one stored with it)
    #[arg(long, value_name = "RUN_ID")]
    resume: Option<i64>,
    /// Ask every target afresh instead of reusing earlier answers to the same question
    #[arg(long)]
    no_cache: bool,
    /// Also write the outcome to FILE: `.json` (summary) or `.xml` (JUnit, one test per cell)
    #[arg(short, long, value_name = "FILE")]
    output: Vec<PathBuf>,
    /// Print the summary as JSON instead of tables
    #[arg(long)]
    json: bool,
}

/// A run ended with failed assertions or errored cells (exit code 9).
#[derive(Debug, thiserror::Error)]
#[error("{failed} failed assertion(s) and {errors} errored cell(s) in run #{run_id}")]
pub struct RunFailed {
    pub run_id: i64,
    pub failed: usize,
    pub errors: usize,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let store = Arc::new(global.store()?);
    let (spec, cases) = match (&args.config, args.resume) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| InputError::BadFile { path: path.clone() })?;
            let spec = RunSpec::from_yaml(&text)
                .map_err(|e| anyhow::Error::new(InputError::BadFile { path: path.clone() }).context(e.to_string()))?;
            let cases = cases(&spec, path.parent().unwrap_or(Path::new(".")), &store)?;
            (spec, cases)
        }
        // The run file and the cases as they were when the run started (both are in the log).
        (None, Some(id)) => {
            let info = store.run_info(id)?;
            let spec: RunSpec = serde_json::from_value(info.config)
                .with_context(|| format!("run #{id} has no usable run file stored with it"))?;
            let set =
                info.test_set_id.with_context(|| format!("run #{id} had no test set; there is nothing to resume"))?;
            (spec, Cases::TestSet(set))
        }
        (None, None) => anyhow::bail!("give a run file (benchtop run CONFIG.yaml), or --resume RUN_ID"),
    };
    if let (Some(id), Cases::TestSet(set)) = (args.resume, &cases) {
        let info = store.run_info(id)?;
        if info.test_set_id != Some(*set) {
            anyhow::bail!(
                "run #{id} was not a run of this test set; resume it with `benchtop run --resume {id}` alone"
            );
        }
    }
    // Keys are looked up before any async work (the keychain may block).
    let prices = PriceTable::load(&global.dirs().data.join("prices.json")).map_err(anyhow::Error::msg)?;
    let providers = benchtop_core::runs::providers_for(&spec, &prices)?;
    let needs_engine = spec.targets.iter().any(|t| t.provider.is_none())
        || spec.assertions.iter().chain(spec.targets.iter().flat_map(|t| &t.assertions)).any(|a| a.name() == "similar");
    let engine = if needs_engine { Some(Arc::new(global.engine()?)) } else { None };
    let runner = Runner::new(Arc::clone(&store), engine, providers);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runner")?;
    let bar = progress_bar();
    let cancel = CancellationToken::new();
    let events = {
        let bar = bar.clone();
        Arc::new(move |event: RunEvent| match event {
            RunEvent::Started { run_id, cells, already_done } => {
                let line = if already_done > 0 {
                    format!("Run #{run_id}: {cells} cells to go ({already_done} done before)")
                } else {
                    format!("Run #{run_id}: {cells} cells")
                };
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
                bar.set_length(cells as u64);
            }
            RunEvent::Text { .. } => {}
            RunEvent::Cell(cell) => {
                bar.inc(1);
                if let Some(error) = &cell.error {
                    tracing::info!(target = %cell.target, case = ?cell.case_id, "cell failed: {error}");
                }
            }
        })
    };
    let options = RunOptions { resume: args.resume, no_cache: args.no_cache, stream_text: false };
    let summary = rt.block_on(async {
        let watch = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                watch.cancel();
            }
        });
        runner.run(&spec, cases, options, events, cancel).await
    })?;
    bar.finish_and_clear();
    for path in &args.output {
        write_output(path, &summary, &store)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    if summary.status == RunStatus::Cancelled {
        eprintln!(
            "Run #{} stopped; what finished is recorded. Continue it with `benchtop run --resume {}`.",
            summary.run_id, summary.run_id
        );
        return Err(Cancelled { tokens: 0 }.into());
    }
    if !summary.ok() {
        let failed = summary.targets.iter().map(|t| t.failed).sum();
        let errors = summary.targets.iter().map(|t| t.errors).sum();
        return Err(RunFailed { run_id: summary.run_id, failed, errors }.into());
    }
    Ok(())
}

/// The run's cases: a file imported as a test set named after it and its content (each version
/// of the file is its own set, so resuming and caching never mix versions), a stored set, or one
/// input.
fn cases(spec: &RunSpec, base: &Path, store: &Store) -> anyhow::Result<Cases> {
    if let Some(input) = &spec.input {
        return Ok(Cases::Input(input.clone()));
    }
    if let Some(name) = &spec.test_set {
        let set = store.test_set_by_name(name)?.with_context(|| {
            format!("there is no test set `{name}`; import one with `benchtop import FILE --set {name}`")
        })?;
        return Ok(Cases::TestSet(set.id));
    }
    let file = spec.tests.as_ref().map(|f| base.join(f)).context("the run file names no cases")?;
    let bytes = std::fs::read(&file).with_context(|| InputError::BadFile { path: file.clone() })?;
    let digest: String = Sha256::digest(&bytes).iter().take(6).map(|b| format!("{b:02x}")).collect();
    let name = format!("{}@{digest}", file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    if let Some(set) = store.test_set_by_name(&name)? {
        return Ok(Cases::TestSet(set.id));
    }
    let report =
        import_file(&file, None, &ColumnMap::default()).with_context(|| InputError::BadFile { path: file.clone() })?;
    for rejected in report.rejected.iter().take(20) {
        eprintln!("{}:{}: {}", file.display(), rejected.line, rejected.reason);
    }
    if !report.rejected.is_empty() {
        return Err(InputError::Rejected { rows: report.rejected.len() }.into());
    }
    let set = store.create_test_set(&name, Some(&format!("imported by benchtop run from {}", file.display())))?;
    store.add_cases(set, report.cases)?;
    Ok(Cases::TestSet(set))
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} cells ({eta} left)")
    {
        bar.set_style(style);
    }
    bar
}

fn print_summary(s: &Summary) {
    println!(
        "{:<28} {:>6} {:>6} {:>8} {:>10} {:>10} {:>9} {:>10}",
        "target", "cells", "errors", "pass", "mean ms", "p95 ms", "tokens", "cost $"
    );
    for t in &s.targets {
        let pass = t.pass_rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "-".into());
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<28} {:>6} {:>6} {:>8} {:>10} {:>10} {:>9} {:>10}",
            super::preview(&t.name, 28),
            t.cells,
            t.errors,
            pass,
            ms(t.mean_latency_ms),
            ms(t.p95_latency_ms),
            t.tokens_in + t.tokens_out,
            t.cost_usd.map(|c| format!("{c:.4}")).unwrap_or_else(|| "-".into())
        );
    }
    for a in &s.agreements {
        println!();
        println!("Agreement {} vs {}: {}/{} cases", a.a, a.b, a.agreed, a.compared);
        for d in a.disagreements.iter().take(10) {
            println!("  case {:<6} {:<12} vs {:<12} {}", d.case_id, d.a, d.b, super::preview(&d.input, 50));
        }
    }
    if !s.failures.is_empty() {
        println!();
        println!("Failures ({}):", s.failures.len());
        for f in s.failures.iter().take(20) {
            println!(
                "  {} case {}: {} — {}",
                f.target,
                f.case_id.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                super::preview(&f.input, 40),
                f.reasons.join("; ")
            );
        }
        if s.failures.len() > 20 {
            println!("  … and {} more (--output run.json has them all)", s.failures.len() - 20);
        }
    }
    println!();
    println!(
        "Run #{}: `benchtop export --run {}` exports it; `benchtop report {}` shows it.",
        s.run_id, s.run_id, s.run_id
    );
}

fn write_output(path: &Path, s: &Summary, store: &Store) -> anyhow::Result<()> {
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::to_string_pretty(s)?,
        Some("xml") => junit(s, store)?,
        _ => anyhow::bail!("--output {}: use a .json or .xml (JUnit) file name", path.display()),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// JUnit XML: one suite per target, one test case per cell.
fn junit(s: &Summary, store: &Store) -> anyhow::Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let results = store.run_results(s.run_id)?;
    let mut report = Report::new(format!("benchtop run #{}", s.run_id));
    for target in &s.targets {
        let mut suite = TestSuite::new(target.name.clone());
        for r in results.iter().filter(|r| r.target_id == target.target_id) {
            let verdicts: Vec<String> = r.meta["assertions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|v| v["passed"] == false)
                        .map(|v| {
                            format!(
                                "{}: {}",
                                v["assertion"].as_str().unwrap_or("?"),
                                v["reason"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let status = match (&r.answer.error, verdicts.is_empty()) {
                (Some(error), _) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                    status.set_message(error.clone());
                    status
                }
                (None, false) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(verdicts.join("; "));
                    status
                }
                (None, true) => TestCaseStatus::success(),
            };
            let name = format!(
                "case {} {}",
                r.case_id.map(|c| c.to_string()).unwrap_or_default(),
                super::preview(&r.input, 60)
            );
            let mut case = TestCase::new(name, status);
            if let Some(ms) = r.answer.latency_ms {
                case.set_time(std::time::Duration::from_secs_f64(ms / 1e3));
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    Ok(report.to_string()?)
}
