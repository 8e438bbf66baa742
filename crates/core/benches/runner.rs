//! Runner throughput: 1,000 cases × 2 remote targets (OpenAI and Anthropic wire formats) against the
//! mock provider at 50 ms latency, concurrency 16 per target, streaming, every result recorded in a
//! real SQLite log. The limit is cases × latency / concurrency (the targets run side by side);
//! the target is wall time ≤ 1.15 × that, and ≤ 1 ms of CPU per result.
//!
//! CPU is the whole process's (user + system, from /proc/self/stat), so it includes the mock
//! server's own work answering 2,000 streamed requests: an upper bound on the runner's overhead.
//!
//! Run with `./dev bench` (or `cargo bench -p benchtop-core --bench runner`).

#[path = "../tests/common/mock_llm.rs"]
mod mock_llm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use benchtop_core::providers::{ApiKey, PriceTable, Provider};
use benchtop_core::runs::{Cases, RunOptions, RunSpec, Runner};
use benchtop_core::store::{NewCase, RunStatus, Store};
use tokio_util::sync::CancellationToken;

const CASES: usize = 1000;
const LATENCY: Duration = Duration::from_millis(50);
const CONCURRENCY: usize = 16;

/// User + system CPU time of this process so far (Linux reports it in 1/100 s).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

fn main() {
    let mock = mock_llm::MockLlm::start();
    mock.state().latency = LATENCY;
    let limit = LATENCY.mul_f64(CASES as f64 / CONCURRENCY as f64);
    println!("1,000 cases × 2 remote targets, mock latency 50 ms, concurrency 16 per target; limit {limit:?}");
    println!();
    println!("| repetition | wall s | limit s | wall / limit (target ≤ 1.15) | CPU ms per result (target ≤ 1) |");
    println!("|---|---|---|---|---|");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    for rep in 1..=3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open_in(dir.path()).expect("store"));
        let set = store.create_test_set("bench", None).expect("set");
        let cases = (0..CASES)
            .map(|i| NewCase {
                vars: serde_json::json!({"text": format!("benchmark question number {i}")})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                ..NewCase::default()
            })
            .collect();
        store.add_cases(set, cases).expect("cases");
        let yaml = format!(
            "test_set: bench\ncache: false\nproviders:\n  - {{name: a, kind: openai, base_url: {}, max_concurrency: {CONCURRENCY}}}\n  - {{name: b, kind: anthropic, base_url: {}, max_concurrency: {CONCURRENCY}}}\ntargets:\n  - {{provider: a, model: gpt-4o-mini, concurrency: {CONCURRENCY}}}\n  - {{provider: b, model: claude-3-5-haiku, concurrency: {CONCURRENCY}}}\nassert:\n  - {{type: contains, value: benchmark}}\n",
            mock.openai_base(),
            mock.url
        );
        let spec = RunSpec::from_yaml(&yaml).expect("spec");
        let providers = spec
            .providers
            .iter()
            .map(|c| Provider::new(c.clone(), ApiKey::new("sk-bench"), PriceTable::built_in()).expect("provider"))
            .collect();
        let runner = Runner::new(Arc::clone(&store), None, providers);
        let (cpu_before, started) = (cpu(), Instant::now());
        let summary = rt
            .block_on(runner.run(
                &spec,
                Cases::TestSet(set),
                RunOptions::default(),
                Arc::new(|_| {}),
                CancellationToken::new(),
            ))
            .expect("run");
        let (wall, cpu_used) = (started.elapsed(), cpu() - cpu_before);
        assert_eq!(summary.status, RunStatus::Done);
        let results: usize = summary.targets.iter().map(|t| t.cells).sum();
        assert_eq!(results, 2 * CASES);
        assert!(summary.targets.iter().all(|t| t.errors == 0 && t.failed == 0));
        println!(
            "| {rep} | {:.3} | {:.3} | {:.3} | {:.3} |",
            wall.as_secs_f64(),
            limit.as_secs_f64(),
            wall.as_secs_f64() / limit.as_secs_f64(),
            cpu_used.as_secs_f64() * 1e3 / results as f64
        );
    }
}
