//! A finished comparison run for the UI's matrix benchmark: a test set of CASES cases, each
//! answered by a local classifier and a remote LLM (2 × CASES results) with assertion verdicts.
//! `fill_matrix DATA_DIR CASES` prints the run id. Deterministic.

use benchtop_core::store::{Answer, NewCase, NewResult, NewRun, NewTarget, RunKind, RunStatus, Store, TargetKind};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, count] = args.as_slice() else { return Err("usage: fill_matrix DATA_DIR CASES".into()) };
    let count: usize = count.parse()?;
    let store = Store::open_in(std::path::Path::new(dir))?;
    let labels = ["billing", "technical", "account", "sales", "feedback", "other"];
    let set = store.create_test_set("matrix-bench", Some("synthetic cases for the UI benchmark"))?;
    let cases = (0..count)
        .map(|i| NewCase {
            vars: [(
                "text".to_string(),
                json!(format!("Customer message {i}: my order arrived late and I was charged twice")),
            )]
            .into_iter()
            .collect(),
            expected: Some(labels[i % 6].to_string()),
            tags: vec![],
        })
        .collect();
    store.add_cases(set, cases)?;
    let targets = [
        store.upsert_target(NewTarget {
            kind: TargetKind::Local,
            name: "support-triage".into(),
            fingerprint: "sha256:matrix".into(),
            config: json!({}),
        })?,
        store.upsert_target(NewTarget {
            kind: TargetKind::Remote,
            name: "mock/gpt-4o-mini".into(),
            fingerprint: "openai:matrix".into(),
            config: json!({}),
        })?,
    ];
    let run = store.create_run(NewRun {
        kind: RunKind::Batch,
        name: "matrix-bench".into(),
        test_set_id: Some(set),
        config: json!({"targets": []}),
    })?;
    for (i, case) in store.cases(set)?.into_iter().enumerate() {
        for (t, target) in targets.iter().enumerate() {
            // The classifier is right 5 times in 6, the LLM 2 times in 3.
            let right = if t == 0 { i % 6 != 5 } else { i % 3 != 2 };
            let label = if right { labels[i % 6] } else { labels[(i + 1) % 6] };
            let answer = Answer {
                output: (t == 1).then(|| label.to_string()),
                label: Some(label.to_string()),
                latency_ms: Some(if t == 0 { 4.0 + (i % 7) as f64 } else { 300.0 + (i % 200) as f64 }),
                tokens_in: (t == 1).then_some(40),
                tokens_out: (t == 1).then_some(2),
                cost_usd: (t == 1).then_some(0.00001),
                ..Answer::default()
            };
            store.submit_result(
                NewResult {
                    run_id: run,
                    case_id: Some(case.id),
                    target_id: *target,
                    input: case.vars["text"].as_str().unwrap_or_default().to_string(),
                    answer,
                    cache_key: None,
                    call_id: None,
                    meta: Some(json!({"passed": right, "assertions": [{"assertion": "label-equals-expected", "passed": right, "reason": ""}]})),
                },
                |_| {},
            )?;
        }
    }
    store.flush()?;
    store.finish_run(run, RunStatus::Done)?;
    println!("{run}");
    Ok(())
}
