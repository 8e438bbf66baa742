//! Every export format written from a real feedback log and read back with a real parser.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use benchtop_core::store::*;
use benchtop_export::{export, ExportOptions, Format, Manifest, SplitSpec};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

const HOSTILE: &str = "=HYPERLINK(\"http://evil.example\",\"click\") \"quoted\", comma\nnewline \0 nul 🎉";

struct Log {
    _dir: tempfile::TempDir,
    store: Store,
    results: Vec<Id>,
}

/// A log with two targets answering 12 inputs, with every kind of feedback on some of them.
fn log() -> Log {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("benchtop.db")).expect("opens");
    let local = store
        .upsert_target(NewTarget {
            kind: TargetKind::Local,
            name: "support-triage".into(),
            fingerprint: "sha:a".into(),
            config: json!({}),
        })
        .expect("target");
    let remote = store
        .upsert_target(NewTarget {
            kind: TargetKind::Remote,
            name: "gpt-mock".into(),
            fingerprint: "openai:mock".into(),
            config: json!({}),
        })
        .expect("target");
    let set = store.create_test_set("triage", None).expect("set");
    let labels = ["billing", "technical", "account"];
    let cases: Vec<NewCase> = (0..12)
        .map(|i| NewCase {
            vars: json!({ "text": if i == 0 { HOSTILE.to_string() } else { format!("message {i}") } })
                .as_object()
                .expect("obj")
                .clone(),
            expected: Some(labels[i % 3].into()),
            tags: if i % 4 == 0 { vec!["smoke".into()] } else { vec![] },
        })
        .collect();
    store.add_cases(set, cases).expect("cases");
    let cases = store.cases(set).expect("cases");
    let run = store
        .create_run(NewRun { kind: RunKind::Batch, name: "nightly".into(), test_set_id: Some(set), config: json!({}) })
        .expect("run");
    let mut results = Vec::new();
    for case in &cases {
        let input = case.vars["text"].as_str().expect("text").to_string();
        for (target, answer) in
            [(local, labels[(case.position as usize + 1) % 3]), (remote, case.expected.as_deref().expect("expected"))]
        {
            let id = store
                .record_result(NewResult {
                    run_id: run,
                    case_id: Some(case.id),
                    target_id: target,
                    input: input.clone(),
                    answer: Answer {
                        output: Some(format!("<img src=x onerror=alert(1)> {answer}")),
                        label: Some(answer.into()),
                        latency_ms: Some(10.0 + case.position as f64),
                        tokens_in: Some(5),
                        tokens_out: Some(7),
                        cost_usd: Some(if target == remote { 0.001 } else { 0.0 }),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .expect("result");
            results.push(id);
        }
    }
    let add = |result_id, feedback, source| {
        store
            .add_feedback(NewFeedback { result_id, feedback, source, annotator: Some("ana".into()) })
            .expect("feedback")
    };
    add(results[0], Feedback::Thumb { up: false }, LabelSource::Human);
    add(
        results[0],
        Feedback::Correction { text: Some("billing: refund the duplicate".into()), label: Some("billing".into()) },
        LabelSource::Human,
    );
    add(results[1], Feedback::Thumb { up: true }, LabelSource::Human);
    add(results[1], Feedback::Rating { stars: 5 }, LabelSource::Human);
    add(results[2], Feedback::Rating { stars: 2 }, LabelSource::Judge);
    add(results[3], Feedback::Tag { tag: "tone".into(), present: true }, LabelSource::Human);
    add(
        results[4],
        Feedback::Preference { other: results[5], choice: Choice::B, blind: true, shown_left: results[5] },
        LabelSource::Human,
    );
    add(
        results[6],
        Feedback::Preference { other: results[7], choice: Choice::Tie, blind: false, shown_left: results[6] },
        LabelSource::Human,
    );
    for (i, id) in results.iter().enumerate() {
        add(*id, Feedback::Thumb { up: i % 2 == 1 }, LabelSource::Assertion);
    }
    let undone = add(results[8], Feedback::Rating { stars: 1 }, LabelSource::Human);
    add(results[8], Feedback::Undo { feedback_id: undone }, LabelSource::Human);
    Log { _dir: dir, store, results }
}

fn run_export(log: &Log, out: &Path, format: Format, filter: ExportFilter, split: Option<SplitSpec>) -> Manifest {
    let options = ExportOptions {
        format,
        out_dir: out.to_path_buf(),
        filter,
        split,
        dedup: false,
        system_prompt: Some("Triage the message.".into()),
        overwrite: false,
    };
    export(&log.store, &options, &mut |_| {}).expect("exports")
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).expect("read").lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn jsonl_carries_every_result_faithfully_with_feedback_and_sources() {
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    let manifest = run_export(&log, out.path(), Format::Jsonl, ExportFilter::default(), None);
    let rows = jsonl(&out.path().join("data.jsonl"));
    assert_eq!(rows.len(), 24);
    assert_eq!(rows.iter().map(|r| r["result_id"].as_i64().expect("id")).collect::<Vec<_>>(), log.results);
    assert_eq!(rows[0]["input"], HOSTILE, "stored and exported byte for byte");
    assert_eq!(rows[0]["thumb"], false);
    assert_eq!(rows[0]["thumb_source"], "human");
    assert_eq!(rows[0]["correction_text"], "billing: refund the duplicate");
    assert_eq!(rows[0]["gold_label"], "billing");
    assert_eq!(rows[0]["passed"], false, "assertion verdicts are kept apart from human thumbs");
    assert_eq!(rows[1]["rating"], 5);
    assert_eq!(rows[2]["rating_source"], "judge");
    assert_eq!(rows[3]["tags"], json!(["tone"]));
    assert_eq!(rows[0]["case_tags"], json!(["smoke"]));
    assert_eq!(rows[8]["rating"], Value::Null, "undone rating is gone");
    assert_eq!(rows[0]["vars"], json!({ "text": HOSTILE }));
    assert_eq!(manifest.files[0].rows, 24);
    assert_eq!(manifest.counts["data"].labels["billing"], 8);
}

#[test]
fn csv_is_rfc4180_utf8_and_formula_safe() {
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    run_export(&log, out.path(), Format::Csv, ExportFilter::default(), None);
    let bytes = std::fs::read(out.path().join("data.csv")).expect("read");
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "BOM for spreadsheets");
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let headers: Vec<String> = reader.headers().expect("headers").iter().map(str::to_string).collect();
    assert_eq!(headers[0], "result_id");
    let input = headers.iter().position(|h| h == "input").expect("input column");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 24);
    assert_eq!(&records[0][input], format!("'{HOSTILE}"), "a formula-looking cell is prefixed, the rest kept");
    assert_eq!(&records[2][input], "message 1");
}

#[test]
fn parquet_round_trips_with_types() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::Array;
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    run_export(
        &log,
        out.path(),
        Format::Parquet,
        ExportFilter { targets: vec!["gpt-mock".into()], ..Default::default() },
        None,
    );
    let file = std::fs::File::open(out.path().join("data.parquet")).expect("open");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
    let (mut ids, mut inputs, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    for batch in reader {
        let batch = batch.expect("batch");
        let id = batch.column_by_name("result_id").expect("id").as_primitive::<Int64Type>().clone();
        let input = batch.column_by_name("input").expect("input").as_string::<i32>().clone();
        let tag = batch.column_by_name("tags").expect("tags").as_list::<i32>().clone();
        for i in 0..batch.num_rows() {
            ids.push(id.value(i));
            inputs.push(input.value(i).to_string());
            tags.push(tag.value(i).as_string::<i32>().len());
        }
    }
    let expected: Vec<Id> = log.results.iter().copied().skip(1).step_by(2).collect();
    assert_eq!(ids, expected, "only the filtered target");
    assert_eq!(inputs[0], HOSTILE);
    assert_eq!(tags.len(), 12);
}

#[test]
fn training_formats_use_corrections_and_skip_bad_outputs() {
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    run_export(&log, &out.path().join("chat"), Format::Chat, ExportFilter::default(), None);
    let chat = jsonl(&out.path().join("chat/data.jsonl"));
    assert_eq!(chat[0]["messages"][0], json!({ "role": "system", "content": "Triage the message." }));
    assert_eq!(
        chat[0]["messages"][2]["content"], "billing: refund the duplicate",
        "the correction replaces the output"
    );
    assert!(chat.iter().all(|c| c.as_object().expect("obj").len() == 1), "only `messages`");
    // Judged-bad outputs without corrections are left out (assertion failures, thumbs down, ≤ 2 stars).
    assert!(chat.len() < 24 && !chat.is_empty());

    run_export(&log, &out.path().join("kto"), Format::Kto, ExportFilter::default(), None);
    let kto = jsonl(&out.path().join("kto/data.jsonl"));
    assert_eq!(kto.len(), 2, "only human thumbs: {kto:?}");
    assert_eq!((kto[0]["label"].clone(), kto[1]["label"].clone()), (json!(false), json!(true)));

    run_export(&log, &out.path().join("dpo"), Format::Dpo, ExportFilter::default(), None);
    let dpo = jsonl(&out.path().join("dpo/data.jsonl"));
    assert_eq!(dpo.len(), 2, "one A/B preference (the tie gives none) and one correction: {dpo:?}");
    assert_eq!(dpo[0]["chosen_target"], "gpt-mock");
    assert_eq!(dpo[0]["blind"], true);
    assert_eq!(dpo[1]["chosen"], "billing: refund the duplicate");
    assert_eq!(dpo[1]["source"], "human");

    run_export(&log, &out.path().join("openai"), Format::OpenaiPreference, ExportFilter::default(), None);
    let pref = jsonl(&out.path().join("openai/data.jsonl"));
    let keys: HashSet<&str> = pref[0].as_object().expect("obj").keys().map(String::as_str).collect();
    assert_eq!(keys, HashSet::from(["input", "preferred_output", "non_preferred_output"]));
    assert_eq!(pref[0]["preferred_output"][0]["role"], "assistant");
}

#[test]
fn promptfoo_tests_parse_as_yaml_with_assertions() {
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    run_export(&log, out.path(), Format::Promptfoo, ExportFilter::default(), None);
    let text = std::fs::read_to_string(out.path().join("data.yaml")).expect("read");
    let tests: Vec<Value> = serde_norway::from_str(&text).expect("a YAML list");
    assert_eq!(tests.len(), 12, "one test per distinct input");
    assert_eq!(tests[0]["vars"]["text"], HOSTILE);
    assert_eq!(tests[0]["assert"][0], json!({ "type": "equals", "value": "billing: refund the duplicate" }));
    assert_eq!(tests[1]["assert"][0]["value"], "technical");
    assert_eq!(tests[0]["metadata"]["tags"], json!(["smoke"]));
}

#[test]
fn filters_select_what_they_say() {
    let log = log();
    let count = |filter: ExportFilter| {
        let mut n = 0;
        log.store
            .for_each_export_row(&filter, |_| {
                n += 1;
                Ok(())
            })
            .expect("reads");
        n
    };
    assert_eq!(count(ExportFilter { min_rating: Some(4), ..Default::default() }), 1);
    assert_eq!(count(ExportFilter { max_rating: Some(2), ..Default::default() }), 1);
    assert_eq!(count(ExportFilter { tags: vec!["tone".into()], ..Default::default() }), 1);
    assert_eq!(count(ExportFilter { tags: vec!["smoke".into()], ..Default::default() }), 6, "case tags count too");
    assert_eq!(count(ExportFilter { has_feedback: Some("correction".into()), ..Default::default() }), 1);
    assert_eq!(count(ExportFilter { passed: Some(true), ..Default::default() }), 12);
    assert_eq!(count(ExportFilter { query: Some("HYPERLINK".into()), ..Default::default() }), 2);
    assert_eq!(count(ExportFilter { until_ms: Some(0), ..Default::default() }), 0);
    assert_eq!(count(ExportFilter { run_id: Some(999), ..Default::default() }), 0);
}

#[test]
fn splits_are_stratified_seeded_and_leak_free() {
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    let spec = SplitSpec { train: 0.5, seed: 7 };
    let manifest = run_export(&log, &out.path().join("a"), Format::Jsonl, ExportFilter::default(), Some(spec));
    assert_eq!(manifest.inputs_in_several_splits, 0);
    let mut split_of: HashMap<String, String> = HashMap::new();
    for split in ["train", "test"] {
        for row in jsonl(&out.path().join(format!("a/{split}.jsonl"))) {
            let previous = split_of.insert(row["input_hash"].as_str().expect("hash").to_string(), split.to_string());
            assert!(previous.is_none_or(|p| p == split), "an input in two splits");
        }
    }
    // 12 inputs, 4 per gold label: 2 of each label's inputs in train.
    for label in ["billing", "technical", "account"] {
        assert_eq!(
            manifest.counts["train"].labels.get(label).copied().unwrap_or(0) / 2,
            2,
            "{label}: {:?}",
            manifest.counts
        );
    }
    let again = run_export(&log, &out.path().join("b"), Format::Jsonl, ExportFilter::default(), Some(spec));
    assert_eq!(
        manifest.files.iter().map(|f| &f.sha256).collect::<Vec<_>>(),
        again.files.iter().map(|f| &f.sha256).collect::<Vec<_>>()
    );
    let other = run_export(
        &log,
        &out.path().join("c"),
        Format::Jsonl,
        ExportFilter::default(),
        Some(SplitSpec { train: 0.5, seed: 8 }),
    );
    assert_ne!(manifest.files[1].sha256, other.files[1].sha256, "another seed, another split");
}

#[test]
fn manifest_hashes_files_dedups_and_refuses_to_overwrite() {
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    let options = ExportOptions {
        format: Format::Jsonl,
        out_dir: out.path().to_path_buf(),
        filter: ExportFilter::default(),
        split: None,
        dedup: true,
        system_prompt: None,
        overwrite: false,
    };
    let manifest = export(&log.store, &options, &mut |_| {}).expect("exports");
    assert_eq!((manifest.files[0].rows, manifest.skipped_duplicates), (12, 12));
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("manifest.json")).expect("read")).expect("JSON");
    let data = std::fs::read(out.path().join("data.jsonl")).expect("read");
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(on_disk["files"][0]["sha256"], digest);
    assert!(std::fs::read_to_string(out.path().join("README.md")).expect("card").contains("path: data.jsonl"));
    let err = export(&log.store, &options, &mut |_| {}).expect_err("refuses to overwrite");
    assert!(err.to_string().contains("already holds an export"), "{err}");
    assert!(export(&log.store, &ExportOptions { overwrite: true, ..options.clone() }, &mut |_| {}).is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn html_report_is_self_contained_and_inert() {
    let log = log();
    let out = tempfile::tempdir().expect("tempdir");
    let path = out.path().join("report.html");
    benchtop_export::report::html_report(&log.store, 1, &path).expect("report");
    let html = std::fs::read_to_string(&path).expect("read");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<img"), "model output never becomes markup");
    for tag in ["<script", "<link", "<iframe", "<object", "<embed", "url("] {
        assert!(!html.contains(tag), "no scripts, no external resources: found {tag}");
    }
    assert!(html.contains("<th>support-triage</th>") && html.contains("<th>gpt-mock</th>"));
    assert!(html.contains("0 % (0/12)") && html.contains("100 % (12/12)"), "pass rates per target");
    assert!(benchtop_export::report::html_report(&log.store, 999, &path).is_err());
}
