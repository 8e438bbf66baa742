//! Recording results from the caller's side at a sustained rate (issue 4: p99 ≤ 0.2 ms at
//! 5,000 results/s). A paced loop submits one result every 200 µs for 10 s into a real log file;
//! it times each `submit_result` call (what the caller waits for) and, separately, the time until
//! its commit is acknowledged. Prints one Markdown table row per measure.
//!
//! `cargo bench -p benchtop-core --bench record` (run by `./dev bench`).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use benchtop_core::store::{Answer, NewResult, NewRun, NewTarget, RunKind, Store, TargetKind};
use serde_json::json;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rate = 5_000u64;
    let seconds = 10u64;
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("benchtop.db"))?;
    let target = store.upsert_target(NewTarget {
        kind: TargetKind::Local,
        name: "bench".into(),
        fingerprint: "bench".into(),
        config: json!({}),
    })?;
    let run = store.create_run(NewRun {
        kind: RunKind::Traffic,
        name: "bench".into(),
        test_set_id: None,
        config: json!({}),
    })?;
    let result = |i: u64| NewResult {
        run_id: run,
        target_id: target,
        input: format!("How do I reset my password? request {i}"),
        answer: Answer {
            label: Some("account".into()),
            scores: Some(json!([{ "label": "account", "score": 0.93 }])),
            latency_ms: Some(4.2),
            tokens_in: Some(12),
            ..Default::default()
        },
        meta: Some(json!({ "execution_provider": "cpu", "threads": 2 })),
        ..Default::default()
    };
    // Warm up: the first writes create pages and caches.
    for i in 0..2_000 {
        store.record_result(result(i))?;
    }
    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let (tx, rx) = mpsc::channel::<f64>();
    let mut call_ms = Vec::with_capacity(total as usize);
    let mut busy = 0u64;
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let submitted = Instant::now();
        let tx = tx.clone();
        let outcome = store.submit_result(result(i), move |r| {
            if r.is_ok() {
                let _ = tx.send(submitted.elapsed().as_secs_f64() * 1e3);
            }
        });
        call_ms.push(submitted.elapsed().as_secs_f64() * 1e3);
        if outcome.is_err() {
            busy += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(tx);
    drop(store); // waits for the writer to commit what is queued
    let mut ack_ms: Vec<f64> = rx.iter().collect();
    call_ms.sort_by(f64::total_cmp);
    ack_ms.sort_by(f64::total_cmp);
    println!(
        "{total} results at a target of {rate}/s: achieved {:.0}/s, {} refused as busy, {} acknowledged",
        total as f64 / elapsed,
        busy,
        ack_ms.len()
    );
    println!("| measure | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, v) in [("submit_result call (caller side)", &call_ms), ("until committed (acknowledged)", &ack_ms)] {
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {:.3} |",
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 0.999),
            v[v.len() - 1]
        );
    }
    Ok(())
}
