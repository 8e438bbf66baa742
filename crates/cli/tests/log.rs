//! The feedback-log commands end to end with the real binary, a real model and a real SQLite file:
//! predict --log → feedback → history → export / report, import with bad rows, refusals.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn benchtop(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_benchtop"))
        .args(args)
        .env("BENCHTOP_DATA_DIR", data)
        .env_remove("BENCHTOP_ORT_LIB")
        .env_remove("BENCHTOP_ANNOTATOR")
        .stdin(Stdio::null())
        .output()
        .expect("runs")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn predict_log_feedback_history_export_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let rows: Value = serde_json::from_str(&ok(benchtop(
        &data,
        &["predict", "--log", "--json", "I was charged twice this month", "The app crashes on launch"],
    )))
    .expect("JSON");
    let (first, second) = (rows[0]["result_id"].as_i64().expect("id"), rows[1]["result_id"].as_i64().expect("id"));
    let thumb = ok(benchtop(&data, &["feedback", &first.to_string(), "--thumb", "down", "--annotator", "ana"]));
    ok(benchtop(&data, &["feedback", &first.to_string(), "--correct", "Refund it", "--label", "billing"]));
    ok(benchtop(&data, &["feedback", &second.to_string(), "--rating", "5"]));
    ok(benchtop(&data, &["feedback", &first.to_string(), "--undo", thumb.trim()]));

    let out = benchtop(&data, &["feedback", &first.to_string(), "--thumb", "up", "--rating", "3"]);
    assert_eq!(out.status.code(), Some(3), "one kind of feedback per call");
    let out = benchtop(&data, &["feedback", "999", "--thumb", "up"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("result 999 does not exist"));

    assert!(ok(benchtop(&data, &["history", "crashes"])).contains("The app crashes on launch"));

    let out_dir = tmp.path().join("export");
    ok(benchtop(&data, &["export", "--format", "jsonl", "--out", out_dir.to_str().expect("utf8")]));
    let exported: Vec<Value> = std::fs::read_to_string(out_dir.join("data.jsonl"))
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0]["thumb"], Value::Null, "the thumb was undone");
    assert_eq!(exported[0]["correction_label"], "billing");
    assert_eq!(exported[0]["annotator"], Value::Null, "no stray fields");
    assert_eq!(exported[1]["rating"], 5);
    let again = benchtop(&data, &["export", "--format", "jsonl", "--out", out_dir.to_str().expect("utf8")]);
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let report = tmp.path().join("run.html");
    ok(benchtop(&data, &["report", "1", "--out", report.to_str().expect("utf8")]));
    assert!(std::fs::read_to_string(report).expect("read").contains("The app crashes on launch"));
}

#[test]
fn import_reports_bad_rows_and_strict_imports_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let csv = tmp.path().join("cases.csv");
    std::fs::write(&csv, "text,label\ncharged twice,billing\ntoo,many,fields\napp crashes,technical\n").expect("write");
    let path = csv.to_str().expect("utf8");
    let out = benchtop(&data, &["import", path, "--set", "triage", "--strict"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cases.csv:3: 3 fields where the header has 2"));
    assert!(ok(benchtop(&data, &["sets"])).contains("No test sets"), "strict imported nothing");

    let text = ok(benchtop(&data, &["import", path, "--set", "triage"]));
    assert!(text.contains("2 new cases, 0 already there, 1 bad rows skipped"), "{text}");
    let text = ok(benchtop(&data, &["import", path, "--set", "triage"]));
    assert!(text.contains("0 new cases, 2 already there"), "re-import is idempotent: {text}");
    let cases: Value =
        serde_json::from_str(&ok(benchtop(&data, &["sets", "--show", "triage", "--json"]))).expect("JSON");
    assert_eq!(cases[1]["expected"], "technical");
}

#[test]
fn unreadable_import_files_are_bad_input_said_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let missing = tmp.path().join("missing.csv");
    let out = benchtop(&data, &["import", missing.to_str().expect("utf8"), "--set", "x"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("cannot import") && err.contains("missing.csv"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause is said once: {err}");

    let corrupt = tmp.path().join("cases.parquet");
    std::fs::write(&corrupt, b"PAR1 not really").expect("write");
    let out = benchtop(&data, &["import", corrupt.to_str().expect("utf8"), "--set", "x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a readable Parquet file"));
}

#[test]
fn a_newer_or_foreign_log_is_refused_with_exit_7() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    rusqlite::Connection::open(data.join("benchtop.db"))
        .expect("open")
        .pragma_update(None, "user_version", 99)
        .expect("set");
    let out = benchtop(&data, &["sets"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema version 99"));
}
