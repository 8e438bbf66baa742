//! Fills a feedback log with synthetic results and feedback, for export benchmarks.
//! `fill_log DB_PATH COUNT` — COUNT results over 2 targets and 2 runs; 20 % get a thumb, 10 % a
//! rating, 5 % a correction, 5 % a tag. Deterministic.

use benchtop_core::store::{Feedback, NewRun, NewTarget, RunKind, Store, TargetKind};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, count] = args.as_slice() else { return Err("usage: fill_log DB_PATH COUNT".into()) };
    let count: i64 = count.parse()?;
    let store = Store::open(std::path::Path::new(path))?;
    let targets = [
        store.upsert_target(NewTarget {
            kind: TargetKind::Local,
            name: "support-triage".into(),
            fingerprint: "sha256:bench".into(),
            config: json!({}),
        })?,
        store.upsert_target(NewTarget {
            kind: TargetKind::Remote,
            name: "gpt-mock".into(),
            fingerprint: "openai:gpt-mock".into(),
            config: json!({}),
        })?,
    ];
    let runs = [
        store.create_run(NewRun {
            kind: RunKind::Batch,
            name: "nightly".into(),
            test_set_id: None,
            config: json!({}),
        })?,
        store.create_run(NewRun {
            kind: RunKind::Traffic,
            name: "API traffic".into(),
            test_set_id: None,
            config: json!({}),
        })?,
    ];
    let labels = ["billing", "technical", "account", "sales", "feedback", "other"];
    let chunk = 20_000;
    let mut done = 0;
    while done < count {
        let n = chunk.min(count - done);
        let first = done;
        store.write(move |conn| {
            let mut result = conn.prepare_cached(
                "INSERT INTO results (run_id, target_id, input, input_hash, output, label, scores, latency_ms, tokens_in, tokens_out, cost_usd, meta, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            let mut feedback = conn.prepare_cached(
                "INSERT INTO feedback (result_id, kind, value, source, annotator, created_at) VALUES (?1, ?2, ?3, 'human', 'bench', ?4)",
            )?;
            for i in first..first + n {
                let input = format!("Customer message number {} about an order that arrived late and a charge I do not recognise", i / 2);
                let label = labels[(i % 6) as usize];
                result.execute(rusqlite::params![
                    runs[(i % 2) as usize],
                    targets[(i % 2) as usize],
                    input,
                    benchtop_core::store::text_hash(&input),
                    format!("This looks like a {label} question. Here is what to do next: check the invoice, then reply."),
                    label,
                    json!([{ "label": label, "score": 0.9 }]).to_string(),
                    4.0 + (i % 7) as f64,
                    24,
                    18,
                    if i % 2 == 1 { 0.00012 } else { 0.0 },
                    "{}",
                    1_764_000_000_000i64 + i
                ])?;
                let id = conn.last_insert_rowid();
                let mut add = |f: Feedback| feedback.execute(rusqlite::params![id, f.kind(), serde_json::to_string(&f).unwrap_or_default(), 1_764_000_000_000i64 + i]);
                if i % 5 == 0 {
                    add(Feedback::Thumb { up: i % 10 == 0 })?;
                }
                if i % 10 == 3 {
                    add(Feedback::Rating { stars: (i % 5 + 1) as u8 })?;
                }
                if i % 20 == 7 {
                    add(Feedback::Correction { text: Some("A better answer.".into()), label: Some("billing".into()) })?;
                }
                if i % 20 == 9 {
                    add(Feedback::Tag { tag: "reviewed".into(), present: true })?;
                }
            }
            Ok(())
        })?;
        done += n;
    }
    println!("{count} results in {path}");
    Ok(())
}
